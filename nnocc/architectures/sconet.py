"""SCONet (seed 002, Jouvencel et al., ISBI 2025), the ``3d_sconet`` architecture.

It never convolves the image at full resolution.  Its encoder reads a contour point cloud: the
case's 3D Canny edges, each with a local descriptor (preprocessing/contours.py extracts it once per
case; the loader resamples it per step):

* PointNet on the points' coordinates (ConvONet's local-pool PointNet: Linear 3 -> 2h, five residual
  FC blocks, each after the first fed the per-cell max of the previous one's features) -> h features;
* those and the descriptors, averaged per cell onto a G^3 grid over the whole case (32^3, or 64^3
  as the larger preset);
* a 3D U-Net on that grid (three levels, 32/64/128 channels, group norm over all channels, max-pool
  down) -> 32 channels;
* decoder: the trilinear feature at the query point, five residual FC blocks (hidden 32) each
  adding a linear map of that feature, then logits (softmax over classes, sigmoids for regions).

Coordinates are physical millimetres around the case's centre, divided per axis by the planned
extent of the dataset's cases (``grid_extent_mm``), so every case sits at the same scale; the grid
spans that extent plus 10 % on each side (ConvONet's padding), as the paper's +-0.55.

Where nnocc differs from the paper's code: the U-Net is dynamic-network-architectures' (conv ->
norm -> ReLU, transposed-convolution upsampling; the paper: norm -> conv -> ReLU, nearest
upsampling); the grid's extent is per axis and planned from the dataset rather than a fixed 440 mm
cube; the descriptor is our own 48-value gradient descriptor (contours.py) rather than 3D-SURF.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from dynamic_network_architectures.building_blocks.plain_conv_encoder import PlainConvEncoder
from dynamic_network_architectures.building_blocks.unet_decoder import UNetDecoder
from torch import nn
from torch.nn import functional as F

from nnocc.architectures.base import Encoding, MemoryCalibration, OccupancyArchitecture, Placement, PlanningHints
from nnocc.architectures.blocks import lookup_features
from nnocc.utils.memory import release_freed_memory

GRID_PADDING = 0.1             # the grid spans the extent plus this share, as ConvONet's (+-0.55)
PRESETS: Dict[str, Dict[str, Any]] = {"grid32": dict(grid_size=32), "grid64": dict(grid_size=64)}
PRESET_ORDER = ["grid32", "grid64"]
CLOUD_POINTS = 50_000          # the paper's points per load


class ResnetBlockFC(nn.Module):
    """ConvONet's residual FC block: x + fc1(relu(fc0(relu(x)))), a linear shortcut when sizes differ."""

    def __init__(self, size_in: int, size_out: int):
        super().__init__()
        self.fc0 = nn.Linear(size_in, size_out)
        self.fc1 = nn.Linear(size_out, size_out)
        self.shortcut = nn.Linear(size_in, size_out, bias=False) if size_in != size_out else None
        nn.init.zeros_(self.fc1.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc1(F.relu(self.fc0(F.relu(x))))
        return (x if self.shortcut is None else self.shortcut(x)) + h


def grid_cells(u: torch.Tensor, grid_size: int) -> torch.Tensor:
    """Grid coordinates (B, N, 3) in [-0.5, 0.5] (z, y, x) -> flat cell index (B, N); outside -> border cell."""
    cell = ((u + 0.5) * grid_size).floor().long().clamp(0, grid_size - 1)
    return (cell[..., 0] * grid_size + cell[..., 1]) * grid_size + cell[..., 2]


def scatter_to_cells(features: torch.Tensor, cells: torch.Tensor, count: int, reduce: str) -> torch.Tensor:
    """(B, N, C) features, (B, N) cells -> (B, count, C): the mean, or the max, per cell (empty cells 0)."""
    b, _, c = features.shape
    index = cells[..., None].expand(-1, -1, c)
    if reduce == "max":
        out = features.new_zeros(b, count, c)
        return out.scatter_reduce(1, index, features, reduce="amax", include_self=False)
    total = features.new_zeros(b, count, c).scatter_add(1, index, features)
    points = features.new_zeros(b, count, 1).scatter_add(1, cells[..., None], torch.ones_like(features[..., :1]))
    return total.div_(points.clamp(min=1))      # in place: a 64^3 grid of 80 channels is 84 MB


class LocalPoolPointNet(nn.Module):
    """Per-point features of the cloud's coordinates, each block after the first also fed the max of
    the previous block's features over the point's grid cell."""

    def __init__(self, hidden: int, out_channels: int, num_blocks: int = 5):
        super().__init__()
        self.fc_pos = nn.Linear(3, 2 * hidden)
        self.blocks = nn.ModuleList(ResnetBlockFC(2 * hidden, hidden) for _ in range(num_blocks))
        self.fc_c = nn.Linear(hidden, out_channels)

    def forward(self, u: torch.Tensor, cells: torch.Tensor, count: int) -> torch.Tensor:
        net = self.blocks[0](self.fc_pos(u))
        for block in self.blocks[1:]:
            pooled = scatter_to_cells(net, cells, count, "max")
            gathered = torch.gather(pooled, 1, cells[..., None].expand(-1, -1, net.shape[-1]))
            net = block(torch.cat([net, gathered], dim=-1))
        return self.fc_c(net)


class GroupNormAll(nn.GroupNorm):
    """Group norm with one group (the paper's U-Net), built as dynamic-network-architectures builds norms."""

    def __init__(self, num_channels: int, **kwargs):
        super().__init__(1, num_channels, **kwargs)


class GridUNet(nn.Module):
    def __init__(self, in_channels: int, channels: Sequence[int], out_channels: int):
        super().__init__()
        levels = len(channels)
        self.encoder = PlainConvEncoder(in_channels, levels, list(channels), nn.Conv3d, 3, [1] + [2] * (levels - 1), 2,
                                        conv_bias=True, norm_op=GroupNormAll, nonlin=nn.ReLU,
                                        nonlin_kwargs={"inplace": True}, return_skips=True, pool="max")
        self.decoder = UNetDecoder(self.encoder, out_channels, 2, deep_supervision=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))

    def forward_consuming(self, inputs: List[torch.Tensor]) -> torch.Tensor:
        """``forward(inputs[0])``, emptying ``inputs`` so that the input grid (84 MB at grid64) is freed
        once the first stage has read it, rather than held through the whole U-Net by the caller."""
        x = inputs.pop()
        skips = []
        for stage in self.encoder.stages:
            x = stage(x)
            skips.append(x)
        return self.decoder(skips)


@dataclass
class SconetEncoding(Encoding):
    grid: torch.Tensor             # (B, C, G, G, G) features over the whole case
    to_grid: torch.Tensor          # (B, 2, 3): patch coordinate * [0] + [1] = grid coordinate in [-0.5, 0.5]


class SCONet(OccupancyArchitecture):
    configuration_name = "3d_sconet"
    field_of_view = "case"
    input_kind = "point_cloud"
    # CPU peak RSS, benchmarks/results/memory_model_sconet_cpu.json: within 13 % over 6 sizes
    memory_calibration = MemoryCalibration(6.81, 285e6, bytes_per_point=6949)
    PRESET_ORDER = PRESET_ORDER

    def __init__(self, in_channels: int, num_outputs: int, spacing: Sequence[float], grid_extent_mm: Sequence[float],
                 grid_size: int, point_features: int, cloud_points: int = CLOUD_POINTS, hidden: int = 32,
                 unet_channels: Sequence[int] = (32, 64, 128), feature_channels: int = 32, decoder_blocks: int = 5,
                 preset: str = ""):
        super().__init__()
        self.in_channels, self.num_outputs = in_channels, num_outputs
        self.spacing = [float(s) for s in spacing]
        self.grid_extent_mm = [float(e) for e in grid_extent_mm]
        self.grid_size, self.point_features, self.cloud_points = grid_size, point_features, cloud_points
        self.pointnet = LocalPoolPointNet(hidden, hidden)
        self.unet = GridUNet(hidden + point_features, unet_channels, feature_channels)
        self.fc_c = nn.ModuleList(nn.Linear(feature_channels, hidden) for _ in range(decoder_blocks))
        self.blocks = nn.ModuleList(ResnetBlockFC(hidden, hidden) for _ in range(decoder_blocks))
        self.fc_out = nn.Linear(hidden, num_outputs)

    # ---- planning ---------------------------------------------------------------------------
    @classmethod
    def build_kwargs(cls, preset: str, in_channels: int, num_outputs: int, spacing: Sequence[float],
                     global_downsampling: Optional[Sequence[int]] = None, case_shape: Optional[Sequence[float]] = None,
                     point_features: int = 48, grid_extent_mm: Optional[Sequence[float]] = None) -> Dict[str, Any]:
        """``grid_extent_mm``: the physical extent the grid covers (the planner takes the dataset's
        largest cases); without it, the case shape (or 64 voxels) at ``spacing``.  A point-cloud
        encoder has no global input to downscale: ``global_downsampling`` is ignored."""
        if preset not in PRESETS:
            raise ValueError(f"unknown SCONet preset {preset!r}; expected one of {PRESET_ORDER}")
        if grid_extent_mm is None:
            grid_extent_mm = [n * s for n, s in zip(case_shape or [64.0] * 3, spacing)]
        return dict(in_channels=in_channels, num_outputs=num_outputs, spacing=[float(s) for s in spacing],
                    grid_extent_mm=[round(float(e), 1) for e in grid_extent_mm], point_features=point_features,
                    cloud_points=CLOUD_POINTS, preset=preset, **PRESETS[preset])

    @classmethod
    def planning_hints(cls) -> PlanningHints:
        # the paper: one case per step, 50k query points, CE + soft Dice 1:1, AdamW without weight decay
        # (at 1e-4 over 300 epochs; nnocc's budgets are shorter, so 1e-3 with poly decay), a joint
        # random affine of cloud and queries but no mirroring (the grid keeps where organs lie)
        return PlanningHints(training={"optimizer": "adamw", "initial_lr": 1e-3, "weight_decay": 0.0,
                                       "ce_weight": 1.0, "dice_weight": 1.0},
                             points_per_patch=CLOUD_POINTS, augmentation={"mirror_axes": []}, max_batch_size=1)

    def input_multiple(self) -> List[int]:
        return [1, 1, 1]

    def cloud_size(self) -> Optional[int]:
        return self.cloud_points

    # ---- the model ----------------------------------------------------------------------------
    def patch_to_grid(self, placement: Placement) -> torch.Tensor:
        """(B, 2, 3): scale and offset from patch coordinates to the grid's [-0.5, 0.5] coordinates."""
        spacing = placement.size.new_tensor(self.spacing)
        span = placement.size.new_tensor(self.grid_extent_mm) * (1 + 2 * GRID_PADDING)
        # voxel = (p + 0.5) * size - 0.5 + start; mm = (voxel - (case - 1) / 2) * spacing; grid = mm / span
        scale = placement.size * spacing / span
        offset = (0.5 * placement.size - 0.5 + placement.start - (placement.case_shape - 1) / 2) * spacing / span
        return torch.stack([scale, offset], dim=1)

    def encode(self, image: torch.Tensor, placement: Optional[Placement] = None) -> SconetEncoding:
        """image: the contour cloud (B, N, 3 + F), patch coordinates then descriptors."""
        cloud = image
        if placement is None:
            raise ValueError("SCONet places the cloud in its case: it needs the placement")
        to_grid = self.patch_to_grid(placement.to(cloud.device)).to(cloud.dtype)
        u = cloud[..., :3] * to_grid[:, None, 0] + to_grid[:, None, 1]
        count = self.grid_size ** 3
        cells = grid_cells(u, self.grid_size)
        features = torch.cat([self.pointnet(u, cells, count), cloud[..., 3:]], dim=-1)
        pooled = scatter_to_cells(features, cells, count, "mean")                         # (B, G^3, C)
        g = self.grid_size
        grids = [pooled.transpose(1, 2).reshape(cloud.shape[0], -1, g, g, g)]            # a copy
        del pooled, features      # not needed beside the U-Net's activations: 84 MB at grid64
        if not torch.is_grad_enabled() and cloud.device.type == "cpu":
            release_freed_memory()    # the PointNet's blocks of 50000 points would stay in glibc's heap
        return SconetEncoding(self.unet.forward_consuming(grids), to_grid)

    def decode(self, points: torch.Tensor, encoding: Encoding) -> torch.Tensor:
        assert isinstance(encoding, SconetEncoding)
        to_grid = encoding.to_grid.to(points.dtype)
        u = points * to_grid[:, None, 0] + to_grid[:, None, 1]
        c = lookup_features(encoding.grid, u).to(points.dtype)
        net = self.fc_c[0](c)
        net = self.blocks[0](net)
        for fc, block in zip(self.fc_c[1:], self.blocks[1:]):
            net = block(net + fc(c))
        return self.fc_out(F.relu(net))

    # ---- training -------------------------------------------------------------------------
    def pretrained_module(self) -> nn.Module:
        return self.unet

    def example_inputs(self, batch: int, patch: Sequence[int], points: int,
                       device: Optional[torch.device] = None) -> Tuple[torch.Tensor, torch.Tensor, Placement]:
        cloud = torch.empty(batch, self.cloud_points, 3 + self.point_features, device=device)
        return cloud, torch.empty(batch, points, 3, device=device), Placement.centred(batch, patch, device)
