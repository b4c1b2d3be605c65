"""SwIPE (seed 003, Zhang et al., MICCAI 2023), the ``3d_swipe`` architecture.

Every S^3 cell of the (cubic) patch gets its own implicit embedding z^P; the patch's mean is the
image embedding z^I.  A point is decoded from the embedding of the cell it lies in.

* Encoder: a 3D Res2Net (stem and four stages, res2net.py), an RFB-lite neck per stage, the cascade
  (each stage's neck output plus the previous one's, average-pooled to the coarsest scale and
  projected to d channels: one embedding grid per stage), and Multi-stage Embedding Attention (MEA):
  per cell, softmax weights over the stages from a shared MLP, z = sum_n e_n + sum_n w_n e_n.  The
  result is resized (trilinear) to the grid of cells, patch / S.
* Patch decoder D^P: [p^I, p^P, sin/cos(p^P), p^S, z^P, z^I] -> MLP (Linear -> BN -> ReLU -> Dropout
  0.1), the input joining again at the second layer -> logits.  p^I: the point in [-1, 1]^3 of the
  patch; p^P: relative to its cell's centre, in the same units; p^S: the point in [-1, 1]^3 of the whole
  case (from the Placement).  Softmax over classes or sigmoids for regions, as the loss says.
* Image decoder D^I: [p^I, z^I] -> MLP -> logits; a training term of its own (``image_decoder``).
* Stochastic Patch Overreach (SPO): in training each point is also decoded from ``overreach`` random
  neighbouring cells (the ``connectivity``-neighbourhood, reflected at the grid's border), p^P measured
  from that cell's centre; a training term (``overreach``).
* Inference: a point's logits are averaged over its own cell and its neighbours that exist (as the
  paper's code does in 2D with 8 neighbours; here the 3D neighbourhood of ``connectivity`` cells).
* ``embedding_l2``: the mean square of z^P and z^I, the paper's small regulariser.

Where nnocc differs from the paper: the paper writes ||z||^2; nnocc takes the mean square (the
weight then does not depend on d or the grid's size).  New plans normalise the encoder with group norm,
not batch norm (``encoder_norm``; res2net.py says why).  A training step decodes the points from their
own cells and from their overreach cells in one batch of D^P: its batch norm then trains on the
statistics that its running averages keep for inference, where a point is decoded from its own cell
and its neighbours alike.  Decoded in two batches, each was normalised by its own statistics while
the running averages mixed them, and eval mode lost a third of the kidney's pseudo Dice.

The linear layers that read z^P and z^I are applied once per cell and case at encoding, not per point
(the same numbers: a linear map of a concatenation is the sum of its parts' maps), so decoding costs
256-wide layers per point only.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from nnocc.architectures.base import Encoding, ForwardOutput, MemoryCalibration, OccupancyArchitecture, Placement, PlanningHints
from nnocc.architectures.blocks import pooling_strides
from nnocc.architectures.res2net import Res2NetBackbone, RFBLite, conv_norm_relu, use_group_norm

PRESETS: Dict[str, Dict[str, Any]] = {
    "tiny": dict(stem_channels=16, stage_channels=[32, 48, 64, 96], blocks_per_stage=[1, 1, 1, 1], neck_channels=32,
                 embedding_dim=128, patch_decoder=[128, 128, 128, 128], image_decoder=[128, 128, 64]),
    "small": dict(stem_channels=32, stage_channels=[64, 96, 128, 192], blocks_per_stage=[2, 2, 2, 2],
                  neck_channels=64, embedding_dim=256, patch_decoder=[256, 256, 256, 256],
                  image_decoder=[256, 256, 128]),
    # the paper's 3D sizes: d = 512, D^P 4 x 256, D^I 256-256-128, Res2Net-50's 3-4-6-3 blocks (slimmed, as the
    # paper's 4.4 M parameters imply): 4.38 M parameters with BCV's 14 outputs
    "base": dict(stem_channels=32, stage_channels=[64, 128, 256, 480], blocks_per_stage=[3, 4, 6, 3],
                 neck_channels=64, embedding_dim=512, patch_decoder=[256, 256, 256, 256],
                 image_decoder=[256, 256, 128]),
}
PRESET_ORDER = ["tiny", "small", "base"]
CELL_VOXELS = 8                      # S: the paper's 3D patch-embedding size
PE_FREQUENCIES = 2.0 ** np.linspace(0, 6, 6)
DROPOUT = 0.1
BACKGROUND_POINT_WEIGHT = 5.0       # BCV's 20,000 background points against 4,000 per organ
LOSS_WEIGHTS = {"decoder": 0.5, "image_decoder": 0.5, "overreach": 0.1, "embedding_l2": 1e-4}


def neighbour_offsets(connectivity: int) -> torch.Tensor:
    """(connectivity, 3) cell offsets: 6 (faces) or 26 (faces, edges and corners)."""
    if connectivity not in (6, 26):
        raise ValueError(f"SwIPE connectivity must be 6 or 26, got {connectivity}")
    offsets = [o for o in itertools.product((-1, 0, 1), repeat=3) if any(o)]
    if connectivity == 6:
        offsets = [o for o in offsets if sum(map(abs, o)) == 1]
    return torch.tensor(offsets, dtype=torch.long)


class EmbeddingAttention(nn.Module):
    """MEA: per cell, softmax weights over the stage embeddings from a shared MLP_0 and a joint MLP_1."""

    def __init__(self, dim: int, stages: int, hidden: int):
        super().__init__()
        self.squeeze = conv_norm_relu(dim, hidden, 1, padding=0)
        self.weights = nn.Conv3d(stages * hidden, stages, 1)

    def forward(self, embeddings: List[torch.Tensor]) -> torch.Tensor:
        w = torch.softmax(self.weights(torch.cat([self.squeeze(e) for e in embeddings], dim=1)), dim=1)
        stacked = torch.stack(embeddings, dim=1)                                      # (B, stages, d, *g)
        return stacked.sum(1) + (w[:, :, None] * stacked).sum(1)


class PointMLP(nn.Module):
    """Linear -> BN -> ReLU -> Dropout layers over points (M, F); the first layer's input (points' own
    features, plus per-cell and per-case terms added by the caller) joins again at the second layer."""

    def __init__(self, point_features: int, widths: Sequence[int], num_outputs: int, rejoin: bool):
        super().__init__()
        self.rejoin = rejoin
        ins = [point_features] + [w + (point_features if rejoin and i == 0 else 0) for i, w in enumerate(widths[:-1])]
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in zip(ins, widths))
        self.norms = nn.ModuleList(nn.BatchNorm1d(w) for w in widths)
        self.head = nn.Linear(widths[-1], num_outputs)

    def forward(self, features: torch.Tensor, added: Sequence[Optional[torch.Tensor]]) -> torch.Tensor:
        """features (M, F); added: per layer, a term (M, width) from the embeddings, or None."""
        h = features
        for i, (linear, norm) in enumerate(zip(self.linears, self.norms)):
            x = torch.cat([h, features], dim=1) if self.rejoin and i == 1 else h
            y = linear(x)
            if i < len(added) and added[i] is not None:
                y = y + added[i]
            h = F.dropout(F.relu(norm(y)), DROPOUT, self.training)
        return self.head(h)


@dataclass
class SwipeEncoding(Encoding):
    patch_embeddings: torch.Tensor      # (B, d, *cells) z^P
    image_embedding: torch.Tensor       # (B, d) z^I
    cell_terms: List[torch.Tensor]      # per D^P input layer, (B, cells, width): its share of z^P
    case_terms: List[torch.Tensor]      # per D^P input layer, (B, width): its share of z^I
    image_term: Optional[torch.Tensor]  # (B, width) D^I's first layer's share of z^I, or None without D^I
    start: torch.Tensor                 # (B, 3) the patch's first voxel in its case
    size: torch.Tensor                  # (B, 3) the patch's size
    case_shape: torch.Tensor            # (B, 3)
    direction: torch.Tensor             # (B, 3) -1 where the patch is mirrored (Placement)

    def placement(self) -> Placement:
        return Placement(self.start, self.size, self.case_shape, self.direction)


class SwIPE(OccupancyArchitecture):
    configuration_name = "3d_swipe"
    field_of_view = "patch"
    # CPU peak RSS, benchmarks/results/memory_model_swipe_cpu.json: within 7 % over 7 sizes
    memory_calibration = MemoryCalibration(6.78, 188e6, bytes_per_point=6800)
    PRESET_ORDER = PRESET_ORDER
    LOSS_TERMS = ("image_decoder", "overreach", "embedding_l2")

    def __init__(self, in_channels: int, num_outputs: int, strides: Sequence[Sequence[int]], stem_channels: int,
                 stage_channels: Sequence[int], blocks_per_stage: Sequence[int], neck_channels: int,
                 embedding_dim: int, patch_decoder: Sequence[int], image_decoder: Sequence[int],
                 cell_voxels: int = CELL_VOXELS, connectivity: int = 6, overreach: int = 1, mea: bool = True,
                 use_image_decoder: bool = True, encoder_norm: str = "batch", preset: str = ""):
        super().__init__()
        self.in_channels, self.num_outputs = in_channels, num_outputs
        self.strides = [list(s) for s in strides]
        self.cell_voxels, self.connectivity, self.overreach = cell_voxels, connectivity, overreach
        self.neighbours: torch.Tensor
        self.register_buffer("neighbours", neighbour_offsets(connectivity), persistent=False)
        self.frequencies: torch.Tensor
        self.register_buffer("frequencies", torch.tensor(PE_FREQUENCIES, dtype=torch.float32), persistent=False)
        d = embedding_dim
        self.backbone = Res2NetBackbone(in_channels, stem_channels, stage_channels, blocks_per_stage, strides)
        self.necks = nn.ModuleList(RFBLite(c, neck_channels) for c in stage_channels)
        self.projections = nn.ModuleList(nn.Conv3d(neck_channels, d, 1) for _ in stage_channels)
        self.attention = EmbeddingAttention(d, len(stage_channels), max(neck_channels // 4, 1)) if mea else None
        if encoder_norm not in ("batch", "group"):
            raise ValueError(f"SwIPE encoder_norm must be 'batch' or 'group', got {encoder_norm!r}")
        if encoder_norm == "group":     # plans made before group norm keep batch norm, the constructor's default
            for part in (self.backbone, self.necks, self.attention):
                if part is not None:
                    use_group_norm(part)
        point_features = 3 + 3 + 6 * len(PE_FREQUENCIES) + 3          # p^I, p^P, sin/cos(p^P), p^S
        self.patch_decoder = PointMLP(point_features, patch_decoder, num_outputs, rejoin=True)
        self.cell_layers = nn.ModuleList(nn.Linear(d, w, bias=False) for w in patch_decoder[:2])
        self.case_layers = nn.ModuleList(nn.Linear(d, w, bias=False) for w in patch_decoder[:2])
        self.image_decoder = PointMLP(3, image_decoder, num_outputs, rejoin=False) if use_image_decoder else None
        self.image_layer = nn.Linear(d, image_decoder[0], bias=False) if use_image_decoder else None

    @classmethod
    def build_kwargs(cls, preset: str, in_channels: int, num_outputs: int, spacing: Sequence[float]) -> Dict[str, Any]:
        if preset not in PRESETS:
            raise ValueError(f"unknown SwIPE preset {preset!r}; expected one of {PRESET_ORDER}")
        # stem convolution, stem pooling, stages 2-4: nnU-Net's rule keeps thick slices from pooling early
        return dict(in_channels=in_channels, num_outputs=num_outputs, strides=pooling_strides(spacing, 5),
                    cell_voxels=CELL_VOXELS, connectivity=6, overreach=1, mea=True, use_image_decoder=True,
                    encoder_norm="group", preset=preset, **PRESETS[preset])

    @classmethod
    def planning_hints(cls) -> PlanningHints:
        # the paper: AdamW with cosine decay (7.5e-4 on BCV), 0.5 CE + 0.5 Dice per decoder, 0.5 / 0.5 / 0.1 /
        # 1e-4 for the patch decoder, image decoder, overreach and embeddings; class-balanced Latin-hypercube
        # points, half of each class's within 10 voxels of its boundary, the background five times a class's
        # (BCV: 20,000 and 4,000 per organ); cubic crops
        return PlanningHints(training={"optimizer": "adamw", "initial_lr": 7.5e-4, "lr_schedule": "cosine",
                                       "ce_weight": 0.5, "dice_weight": 0.5, "aux_weight": 0.0,
                                       "loss_weights": dict(LOSS_WEIGHTS)},
                             boundary_point_share=0.5, boundary_band_voxels=10.0, cubic_patch=True,
                             sampling={"point_sampler": "class_balanced",
                                       "background_point_weight": BACKGROUND_POINT_WEIGHT})

    def input_multiple(self) -> List[int]:
        return [math.lcm(int(np.prod([s[a] for s in self.strides])), self.cell_voxels) for a in range(3)]

    # ---- encoding ---------------------------------------------------------------------------
    def stage_embeddings(self, image: torch.Tensor) -> List[torch.Tensor]:
        """The cascade: each stage's neck output plus the previous one's, at the coarsest scale, in d channels."""
        features = self.backbone(image)
        coarsest = features[-1].shape[2:]
        embeddings, previous = [], None
        for f, neck, projection in zip(features, self.necks, self.projections):
            x = neck(f)
            if previous is not None:
                x = x + F.adaptive_avg_pool3d(previous, x.shape[2:])
            previous = x
            embeddings.append(projection(F.adaptive_avg_pool3d(x, coarsest)))
        return embeddings

    def encode(self, image: torch.Tensor, placement: Optional[Placement] = None) -> SwipeEncoding:
        embeddings = self.stage_embeddings(image)
        z = self.attention(embeddings) if self.attention is not None else torch.stack(embeddings).sum(0)
        cells = [p // self.cell_voxels for p in image.shape[2:]]
        patch_embeddings = F.interpolate(z, size=cells, mode="trilinear", align_corners=False)
        image_embedding = patch_embeddings.mean(dim=(2, 3, 4))
        per_cell = patch_embeddings.flatten(2).transpose(1, 2)                            # (B, cells, d)
        placement = placement or Placement.centred(image.shape[0], list(image.shape[2:]), image.device)
        return SwipeEncoding(patch_embeddings, image_embedding, [layer(per_cell) for layer in self.cell_layers],
                             [layer(image_embedding) for layer in self.case_layers],
                             self.image_layer(image_embedding) if self.image_layer is not None else None,
                             placement.start, placement.size, placement.case_shape, placement.direction)

    # ---- decoding ---------------------------------------------------------------------------
    def _grid(self, encoding: SwipeEncoding) -> torch.Tensor:
        return torch.tensor(encoding.patch_embeddings.shape[2:], device=encoding.patch_embeddings.device)

    def own_cells(self, points: torch.Tensor, encoding: SwipeEncoding) -> torch.Tensor:
        grid = self._grid(encoding)
        return torch.minimum(torch.floor((points + 0.5) * grid).long().clamp(min=0), grid - 1)

    def point_features(self, points: torch.Tensor, cells: torch.Tensor, encoding: SwipeEncoding) -> torch.Tensor:
        """(B, N, 45): p^I, p^P (from the cell's centre), its sin/cos features, p^S."""
        grid = self._grid(encoding).to(points.dtype)
        p_image = 2 * points
        p_patch = p_image - 2 * ((cells.to(points.dtype) + 0.5) / grid - 0.5)
        scaled = (p_patch[..., None] * self.frequencies.to(points.dtype)).flatten(-2)
        p_case = 2 * encoding.placement().case_position(points) / encoding.case_shape[:, None] - 1
        return torch.cat([p_image, p_patch, torch.sin(scaled), torch.cos(scaled), p_case.to(points.dtype)], dim=-1)

    def decode_from_cells(self, points: torch.Tensor, cells: torch.Tensor, encoding: SwipeEncoding) -> torch.Tensor:
        """D^P's logits (B, N, K) of points decoded from the given cells' embeddings."""
        b, n, _ = points.shape
        g = encoding.patch_embeddings.shape[2:]
        flat = (cells[..., 0] * g[1] + cells[..., 1]) * g[2] + cells[..., 2]
        added = [(torch.gather(cell, 1, flat[..., None].expand(-1, -1, cell.shape[-1])) + case[:, None]).reshape(b * n, -1)
                 for cell, case in zip(encoding.cell_terms, encoding.case_terms)]
        features = self.point_features(points, cells, encoding).reshape(b * n, -1)
        return self.patch_decoder(features.to(added[0].dtype), added).reshape(b, n, -1)

    def decode(self, points: torch.Tensor, encoding: Encoding) -> torch.Tensor:
        """Training: from the point's own cell.  Evaluation: the mean over its own cell and the neighbours
        that exist."""
        assert isinstance(encoding, SwipeEncoding)
        own = self.own_cells(points, encoding)
        logits = self.decode_from_cells(points, own, encoding)
        if self.training:
            return logits
        grid = self._grid(encoding)
        count = torch.ones_like(logits[..., :1])
        for offset in self.neighbours:
            cells = own + offset
            exists = ((cells >= 0) & (cells < grid)).all(-1, keepdim=True)
            if exists.any():
                neighbour = self.decode_from_cells(points, torch.minimum(cells.clamp(min=0), grid - 1), encoding)
                logits = logits + torch.where(exists, neighbour, torch.zeros_like(neighbour))
                count = count + exists.to(count.dtype)
        return logits / count

    def overreach_cells(self, own: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        """A random neighbour of each point's cell, reflected at the grid's border (as the paper's code)."""
        choice = torch.randint(len(self.neighbours), own.shape[:-1], device=own.device)
        cells = own + self.neighbours[choice]
        cells = torch.where(cells < 0, -cells, cells)
        return torch.where(cells >= grid, 2 * (grid - 1) - cells, cells).clamp(min=0)

    def decode_with_overreach(self, points: torch.Tensor, encoding: SwipeEncoding) -> torch.Tensor:
        """Logits (B, (1 + overreach) * N, K): the points from their own cells, then from ``overreach``
        random neighbours each, copy after copy, all in one batch of D^P (its batch norm sees them together)."""
        own, grid = self.own_cells(points, encoding), self._grid(encoding)
        cells = [own] + [self.overreach_cells(own, grid) for _ in range(self.overreach)]
        return self.decode_from_cells(points.repeat(1, len(cells), 1), torch.cat(cells, dim=1), encoding)

    def forward(self, image: torch.Tensor, points: torch.Tensor, placement: Optional[Placement] = None
                ) -> ForwardOutput:
        if not (self.training and self.overreach > 0):
            return super().forward(image, points, placement)
        encoding = self.encode(image, placement)
        logits = self.decode_with_overreach(points, encoding)
        n = points.shape[1]
        return ForwardOutput(logits[:, :n], None, {**self.regularising_terms(points, encoding), "overreach": logits[:, n:]})

    def regularising_terms(self, points: torch.Tensor, encoding: SwipeEncoding) -> Dict[str, torch.Tensor]:
        """The embeddings' mean square and, with D^I, the image decoder's logits."""
        b, n, _ = points.shape
        terms = {"embedding_l2": encoding.patch_embeddings.float().pow(2).mean()
                 + encoding.image_embedding.float().pow(2).mean()}
        if self.image_decoder is not None:
            assert encoding.image_term is not None
            added = encoding.image_term[:, None].expand(-1, n, -1).reshape(b * n, -1)
            terms["image_decoder"] = self.image_decoder((2 * points).reshape(b * n, 3).to(added.dtype),
                                                        [added]).reshape(b, n, -1)
        return terms

    def training_terms(self, points: torch.Tensor, encoding: Encoding) -> Dict[str, torch.Tensor]:
        assert isinstance(encoding, SwipeEncoding)
        terms = self.regularising_terms(points, encoding)
        if self.overreach > 0:
            terms["overreach"] = self.decode_with_overreach(points, encoding)[:, points.shape[1]:]
        return terms

    def pretrained_module(self) -> nn.Module:
        return self.backbone
