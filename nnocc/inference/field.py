"""The occupancy field of one preprocessed volume: probabilities at any continuous position.

Members are (network, mirroring) pairs: every fold's network under every mirroring of the test-time
augmentation.  A query averages the members' probabilities per point, so MISE refines the
ensemble's surface, not each member's.  Encoded tiles are kept in a least-recently-used cache of at
most ``cache_mb``: Gaussian blending re-encodes without end if a box's neighbours are evicted
(measured: 25x more encodings with an eight-tile cache on a 1 x 3 x 3 tiling).  With ``nearest``
stitching each ownership box is answered by its own tile alone (``query_tile``), the tile is
dropped after its box (``forget_tile``), and the cache holds at most the eight tiles a box of the
refinement pass can touch, so that a whole case's encodings are never held at once.
"""
from __future__ import annotations

import itertools
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

from nnocc.architectures.base import Encoding, OccupancyArchitecture, Placement
from nnocc.architectures.outputs import probabilities
from nnocc.coordinates import index_to_patch
from nnocc.inference.tiling import Tiling
from nnocc.utils.convolutions import onednn_convolutions

logger = logging.getLogger(__name__)
STITCHING = ("nearest", "gaussian")
TILES_PER_BOX = 8            # a box's corners reach at most two tiles per axis


def mirror_sets(axes: Sequence[int], enabled: bool) -> List[Tuple[int, ...]]:
    """All subsets of the mirror axes (8 for three axes), or only the identity."""
    if not enabled:
        return [()]
    return [c for r in range(len(axes) + 1) for c in itertools.combinations(axes, r)]


@dataclass
class EncodedTile:
    encodings: List[Encoding]                 # per member (network x mirroring), batch of one

    def nbytes(self) -> int:
        return sum(e.nbytes() for e in self.encodings)


class VolumeField:
    def __init__(self, data: torch.Tensor, networks: Sequence[OccupancyArchitecture], tiling: Tiling, regions: bool,
                 mirror_axes: Sequence[int] = (0, 1, 2), tta: bool = True, stitching: str = "nearest",
                 cache_mb: float = 2048.0, amp: bool = False, cloud: Optional[torch.Tensor] = None):
        if stitching not in STITCHING:
            raise ValueError(f"stitching must be one of {STITCHING}, got {stitching!r}")
        self.data = data                      # (C, z, y, x) on the inference device
        self.cloud = cloud                    # (N, 3 + F) contour points (preprocessed index) and features, or None
        self.networks = list(networks)
        self.tiling = tiling
        self.regions = regions
        self.mirrors = mirror_sets(mirror_axes, tta)
        self.stitching = stitching
        self.cache: "OrderedDict[Tuple[int, ...], EncodedTile]" = OrderedDict()
        self.cache_mb = cache_mb
        self.cache_tiles: Optional[int] = None   # set from the first encoded tile's size
        self.amp = amp and data.device.type == "cuda"
        self.encoded_tiles = 0
        self.encode_seconds = 0.0

    @property
    def has_aux(self) -> bool:
        return all(n.aux_grid_shape(self.tiling.patch) is not None for n in self.networks)

    @property
    def whole_case(self) -> bool:
        """An encoder that sees the whole case: a tile centred elsewhere adds nothing."""
        return any(n.field_of_view == "case" for n in self.networks)

    @property
    def num_members(self) -> int:
        return len(self.networks) * len(self.mirrors)

    # ---- encoding ----------------------------------------------------------------------
    def _crop(self, start: Sequence[float]) -> torch.Tensor:
        first = [int(round(s)) for s in start]
        if first != list(start):
            raise ValueError(f"tile start {list(start)} is not on whole voxels; points would be looked up off the crop")
        patch = self.tiling.patch
        out = torch.zeros((self.data.shape[0], *patch), dtype=self.data.dtype, device=self.data.device)
        src, dst = [], []
        for axis, (s, p) in enumerate(zip(first, patch)):
            lo, hi = max(s, 0), min(s + p, self.data.shape[axis + 1])
            src.append(slice(lo, hi))
            dst.append(slice(lo - s, hi - s))
        out[(slice(None), *dst)] = self.data[(slice(None), *src)]
        return out

    @torch.no_grad()
    def encode_at(self, start: Sequence[float]) -> EncodedTile:
        began = time.perf_counter()
        patch = self._crop(start)[None]
        device = patch.device
        placement = Placement.unmirrored(*(torch.tensor([list(v)], dtype=torch.float32, device=device)
                                           for v in (start, self.tiling.patch, self.data.shape[1:])))
        encodings = []
        with onednn_convolutions(device):
            for network in self.networks:
                for flips in self.mirrors:
                    x = self._encoder_input(network, patch, flips, start)
                    with torch.autocast("cuda", dtype=torch.float16, enabled=self.amp):
                        encodings.append(network.encode(x, placement.mirrored(flips)))
        self.encoded_tiles += 1
        self.encode_seconds += time.perf_counter() - began
        return EncodedTile(encodings)

    def _encoder_input(self, network: OccupancyArchitecture, patch: torch.Tensor, flips: Tuple[int, ...],
                       start: Sequence[float]) -> torch.Tensor:
        """The (mirrored) image patch, or the case's contour cloud in the tile's patch coordinates."""
        if network.cloud_size() is None:
            return torch.flip(patch, [2 + a for a in flips]) if flips else patch
        if self.cloud is None or flips:
            raise ValueError("a point-cloud encoder needs the case's contour cloud and no mirroring")
        rows = self.cloud.clone()
        rows[:, :3] = index_to_patch(rows[:, :3], start, self.tiling.patch)
        return rows[None]

    def tile(self, index: Tuple[int, ...]) -> EncodedTile:
        if index in self.cache:
            self.cache.move_to_end(index)
            return self.cache[index]
        encoded = self.encode_at(self.tiling.start(index))
        if self.cache_tiles is None:
            self.cache_tiles = self._cache_capacity(encoded.nbytes())
        self.cache[index] = encoded
        while len(self.cache) > self.cache_tiles:
            self.cache.popitem(last=False)
        return encoded

    def _cache_capacity(self, tile_bytes: int) -> int:
        wanted = min(TILES_PER_BOX, int(np.prod(self.tiling.grid)))
        by_memory = max(2, int(self.cache_mb * 2 ** 20 // max(tile_bytes, 1)))
        if self.stitching == "gaussian" and by_memory < wanted:
            logger.warning("Gaussian stitching: the tile cache holds %d of the %d tiles a box needs, so tiles "
                           "will be encoded again; --tile_cache_mb %d avoids it", by_memory, wanted,
                           int(np.ceil(wanted * tile_bytes / 2 ** 20)))
        # blending boxes share tiles with the next row of boxes too: keep what memory allows
        return by_memory if self.stitching == "gaussian" else min(wanted, by_memory)

    def forget_tile(self, index: Tuple[int, ...]) -> None:
        """Drop a tile no box will ask for again (its memory is the largest part of a prediction)."""
        self.cache.pop(tuple(index), None)

    def centred_tile(self, centre: np.ndarray) -> Optional[Tuple[EncodedTile, List[float]]]:
        """A tile centred on ``centre`` (preprocessed index) for seed 000's refinement pass, or None
        when it would add nothing: a whole-case encoder, or the owning tile already has the point in
        its central half."""
        patch = np.asarray(self.tiling.patch, dtype=np.float64)
        owner = tuple(int(self.tiling.nearest_tile(a, centre[a:a + 1])[0]) for a in range(3))
        owner_centre = np.asarray(self.tiling.start(owner)) + (patch - 1) / 2.0
        if self.whole_case or np.all(np.abs(centre - owner_centre) <= patch / 4):
            return None
        # whole voxels: the crop starts at one, and the points must be looked up where it starts
        start = np.round(centre - (patch - 1) / 2.0).tolist()
        return self.encode_at(start), start

    # ---- querying ----------------------------------------------------------------------
    @torch.no_grad()
    def members_probabilities(self, encoded: EncodedTile, start: Sequence[float], points: torch.Tensor,
                              aux: bool = False) -> torch.Tensor:
        """Mean over members of the probabilities at preprocessed indices ``points`` (M, 3)."""
        local = index_to_patch(points, start, self.tiling.patch).to(torch.float32)
        total: Optional[torch.Tensor] = None
        members = [(network, flips) for network in self.networks for flips in self.mirrors]
        for (network, flips), encoding in zip(members, encoded.encodings):
            p = local.clone()
            for a in flips:
                p[:, a] = -p[:, a]
            with torch.autocast("cuda", dtype=torch.float16, enabled=self.amp):
                logits = network.auxiliary_at(p[None], encoding) if aux else network.decode(p[None], encoding)
            assert logits is not None, "auxiliary queries need networks with an auxiliary output"
            probs = probabilities(logits[0].float(), self.regions)
            total = probs if total is None else total + probs
        assert total is not None
        return total / len(members)

    def _groups(self, points: torch.Tensor):
        """Points grouped by their nearest tile: (tile index, positions in ``points``)."""
        cpu = points.detach().cpu().numpy()
        per_axis = [self.tiling.nearest_tile(a, cpu[:, a]) for a in range(3)]
        keys = per_axis[0] * 10 ** 8 + per_axis[1] * 10 ** 4 + per_axis[2]
        for key in np.unique(keys):
            where = np.nonzero(keys == key)[0]
            yield (int(key // 10 ** 8), int(key // 10 ** 4 % 10 ** 4), int(key % 10 ** 4)), torch.from_numpy(where)

    def query(self, points: torch.Tensor, aux: bool = False) -> torch.Tensor:
        """Probabilities (M, K) at preprocessed indices (M, 3)."""
        if self.stitching == "gaussian" and not aux:
            return self._blended(points)
        return self._nearest(points, aux)

    def query_tile(self, index: Tuple[int, ...], points: torch.Tensor, aux: bool = False) -> torch.Tensor:
        """Probabilities (M, K) at preprocessed indices (M, 3), all from one tile: a box's lattice may
        reach a few voxels past its ownership region, which the tile's patch still covers, so the box
        never wakes a neighbour's encoding."""
        return self.members_probabilities(self.tile(index), self.tiling.start(index), points, aux)

    def _nearest(self, points: torch.Tensor, aux: bool = False) -> torch.Tensor:
        out: Optional[torch.Tensor] = None
        for tile, where in self._groups(points):
            probs = self.members_probabilities(self.tile(tile), self.tiling.start(tile), points[where], aux)
            if out is None:
                out = torch.zeros(len(points), probs.shape[1], device=probs.device)
            out[where.to(probs.device)] = probs
        assert out is not None, "no points to query"
        return out

    def _blended(self, points: torch.Tensor) -> torch.Tensor:
        """Gaussian-weighted average over every tile that covers a point (nnU-Net's sigma = patch / 8)."""
        cpu = points.detach().cpu().numpy()
        candidates = [sorted({t for x in cpu[:, a] for t in self.tiling.covering_tiles(a, float(x))}) for a in range(3)]
        sigma = torch.tensor(self.tiling.patch, dtype=torch.float32, device=points.device) / 8
        total: Optional[torch.Tensor] = None
        weights = torch.zeros(len(points), 1, device=points.device)
        for tile in itertools.product(*candidates):
            start = torch.tensor(self.tiling.start(tile), dtype=torch.float32, device=points.device)
            centre = start + (torch.tensor(self.tiling.patch, device=points.device, dtype=torch.float32) - 1) / 2
            inside = ((points >= start - 0.5) & (points <= start + sigma * 8 - 0.5)).all(dim=1)
            if not inside.any():
                continue
            w = torch.exp(-0.5 * (((points[inside] - centre) / sigma) ** 2).sum(1))[:, None] + 1e-8
            probs = self.members_probabilities(self.tile(tile), start.tolist(), points[inside])
            if total is None:
                total = torch.zeros(len(points), probs.shape[1], device=probs.device)
            total[inside] += w * probs
            weights[inside] += w
        if total is None:
            return self._nearest(points)
        uncovered = weights[:, 0] == 0          # beyond every tile (outside the volume)
        if uncovered.any():
            total[uncovered], weights[uncovered] = self._nearest(points[uncovered]), 1.0
        return total / weights

