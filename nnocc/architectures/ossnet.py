"""OSS-Net (seed 001, Reich et al., BMVC 2021), the ``3d_ossnet`` architecture.

Its field of view is the whole case: the planner makes the patch the case at the target spacing,
so training and inference encode each case once.

* Global encoder: the case downscaled (x2 by default, ``global_downsampling``), residual blocks
  (conv 3^3 -> BN -> PAU -> avg-pool -> conv 3^3 -> BN, plus a pooled 1x1 shortcut, then PAU), each
  stage's output adaptively max-pooled to the latent grid and turned into latent vectors: vector 0
  joins the decoder's input, vectors 1-5 condition its five blocks (conditional normalisation).
* Local encoder: the raw image around each query point, a 7^3 neighbourhood and a 14^3 one
  average-pooled to 7^3 (two conv 7^3 layers with PAU, flattened to 343 values).
* Decoder: [coordinates, local, vector 0] -> five residual FC blocks with conditional normalisation
  and PAU -> one logit per output (softmax over classes, sigmoids for regions, as the loss says).
* Auxiliary output: a conv 5^3 on the deepest stage at the latent grid, the coarse prediction that
  the 0.1-weighted auxiliary loss supervises and that seeds MISE at inference ("improved" mode).
* PAU: a learnable Pade activation P5(x) / (1 + |Q4(x)|), initialised to a leaky ReLU.

Where nnocc differs from the paper's code: coordinates are patch coordinates in [-0.5, 0.5] rather
than raw voxel indices (the same convention as every nnocc architecture); neighbourhoods are read
by trilinear interpolation at the (jittered) point rather than at its voxel; the 14^3 context is
average-pooled at inference as in training (the code max-pools it there); pooling per stage follows
the spacing (thick-slice axes are pooled later), as nnU-Net does; the decoder's conditional norm
normalises by the case's own statistics over a fixed lattice of 512 reference points rather than by
batch statistics of the query points (``ReferenceConditionalNorm`` says why; plans made before keep
batch norm).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from nnocc.architectures.base import Encoding, MemoryCalibration, OccupancyArchitecture, Placement, PlanningHints
from nnocc.architectures.blocks import ConditionalBatchNorm, pooling_strides
from nnocc.architectures.pade import PAU, PAU_LEARNING_RATE
from nnocc.coordinates import patch_to_grid_sample

NEIGHBOURHOOD = 7

PRESETS: Dict[str, Dict[str, Any]] = {
    "tiny": dict(stage_channels=[8, 16, 32, 64], latent_grid=[4, 4, 4], width=128),
    "small": dict(stage_channels=[16, 32, 64, 128], latent_grid=[8, 8, 8], width=256),
    "base": dict(stage_channels=[8, 16, 32, 64, 128], latent_grid=[8, 8, 8], width=512),   # the paper's LiTS model
}
PRESET_ORDER = ["tiny", "small", "base"]


def _triple(values: Sequence[int]) -> Tuple[int, int, int]:
    a, b, c = values
    return int(a), int(b), int(c)


class ResidualDownBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: Sequence[int]):
        super().__init__()
        self.conv0 = nn.Conv3d(in_channels, out_channels, 3, padding=1)
        self.norm0 = nn.BatchNorm3d(out_channels)
        self.act0 = PAU()
        self.pool = nn.AvgPool3d(_triple(stride))
        self.conv1 = nn.Conv3d(out_channels, out_channels, 3, padding=1)
        self.norm1 = nn.BatchNorm3d(out_channels)
        self.shortcut = nn.Sequential(nn.Conv3d(in_channels, out_channels, 1), nn.AvgPool3d(_triple(stride)))
        self.act1 = PAU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(self.conv1(self.pool(self.act0(self.norm0(self.conv0(x))))))
        return self.act1(h + self.shortcut(x))


class GlobalEncoder(nn.Module):
    """The downscaled case -> latent vectors (1 + num_blocks of them) and the auxiliary logits."""

    def __init__(self, in_channels: int, stage_channels: Sequence[int], strides: Sequence[Sequence[int]],
                 latent_grid: Sequence[int], num_vectors: int, num_outputs: int):
        super().__init__()
        channels = [in_channels, *stage_channels]
        self.stages = nn.ModuleList(ResidualDownBlock(a, b, s) for a, b, s in zip(channels, channels[1:], strides))
        self.latent_grid = list(latent_grid)
        self.skips = nn.ModuleList(nn.Sequential(nn.Conv3d(c, max(c // 2, 1), 5, padding=2),
                                                 nn.BatchNorm3d(max(c // 2, 1)), PAU()) for c in stage_channels)
        self.merge = nn.Conv3d(sum(max(c // 2, 1) for c in stage_channels), num_vectors, 5, padding=2)
        self.aux_head = nn.Conv3d(stage_channels[-1], num_outputs, 5, padding=2)

    def forward(self, x: torch.Tensor):
        pooled = []
        for stage, skip in zip(self.stages, self.skips):
            x = stage(x)
            pooled.append(skip(F.adaptive_max_pool3d(x, self.latent_grid)))
        vectors = self.merge(torch.cat(pooled, dim=1)).flatten(2)            # (B, num_vectors, L)
        aux = self.aux_head(F.adaptive_max_pool3d(x, self.latent_grid))      # (B, K, *latent_grid)
        return vectors, aux


def _kernel_index() -> torch.Tensor:
    """(343, 343): for input voxel i and output voxel o of a cube, the kernel tap joining them in a
    'same' 7^3 convolution, or 343 (a zero) where the kernel does not reach."""
    r = NEIGHBOURHOOD // 2
    cells = torch.stack(torch.meshgrid(*[torch.arange(NEIGHBOURHOOD)] * 3, indexing="ij"), -1).reshape(-1, 3)
    offset = cells[:, None, :] - cells[None, :, :] + r                          # input - output + r
    inside = ((offset >= 0) & (offset < NEIGHBOURHOOD)).all(-1)
    tap = (offset[..., 0] * NEIGHBOURHOOD + offset[..., 1]) * NEIGHBOURHOOD + offset[..., 2]
    return torch.where(inside, tap, torch.full_like(tap, NEIGHBOURHOOD ** 3))


class CubeConv(nn.Conv3d):
    """A 'same' 7^3 convolution of 7^3 cubes as one matrix product with its (C_in * 343, C_out * 343)
    matrix, gathered from the kernel.  The same numbers as ``nn.Conv3d``, but a CPU convolution of
    many tiny volumes held several GB of workspace (measured: 4 GB for 2^14 points), where the
    product holds only its output."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(in_channels, out_channels, NEIGHBOURHOOD, padding=NEIGHBOURHOOD // 2)
        self.tap_index: torch.Tensor
        self.register_buffer("tap_index", _kernel_index(), persistent=False)

    def matrix(self, dtype: torch.dtype) -> torch.Tensor:
        taps = F.pad(self.weight.to(dtype).flatten(2), (0, 1))                 # (C_out, C_in, 343 + zero)
        gathered = taps[:, :, self.tap_index]                                   # (C_out, C_in, 343 in, 343 out)
        return gathered.permute(1, 2, 0, 3).reshape(self.in_channels * NEIGHBOURHOOD ** 3, -1)

    def forward(self, flat: torch.Tensor) -> torch.Tensor:
        """(M, C_in * 343) -> (M, C_out * 343), channels first as Conv3d's flattened layout."""
        out = flat @ self.matrix(flat.dtype)
        if self.bias is None:
            return out
        return out + self.bias.to(flat.dtype).repeat_interleave(NEIGHBOURHOOD ** 3)


class LocalEncoder(nn.Module):
    """(M, 2C, 7, 7, 7) neighbourhoods -> (M, 343): conv 7^3 -> PAU -> conv 7^3 -> PAU."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.conv0 = CubeConv(in_channels, 2)
        self.act0 = PAU()
        self.conv1 = CubeConv(2, 1)
        self.act1 = PAU()

    def forward(self, cubes: torch.Tensor) -> torch.Tensor:
        return self.act1(self.conv1(self.act0(self.conv0(cubes.flatten(1)))))


class CaseConditionalBatchNorm(ConditionalBatchNorm):
    """Conditional batch norm whose scale and shift come from the case's latent vector, shared by
    all of the case's points (seed 000's version conditions on each point's own feature)."""

    def forward(self, x: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        """x (B * N, W) for the N points of each of B cases; latent (B, L), one per case."""
        b = latent.shape[0]
        normed = self.norm(x).view(b, -1, x.shape[1])
        return (self.gamma(latent)[:, None] * normed + self.beta(latent)[:, None]).view_as(x)


class ReferenceStatistics:
    """Per-case mean and variance of each normalised decoder layer over the reference points, in layer
    order: collected while the reference points pass through the decoder, then read back in the same
    order for the query points."""

    def __init__(self, mean: Optional[torch.Tensor] = None, variance: Optional[torch.Tensor] = None):
        """mean, variance (B, layers, W) as ``stacked`` gives them; none: collect."""
        self.collecting = mean is None
        self.means = [] if mean is None else list(mean.unbind(1))
        self.variances = [] if variance is None else list(variance.unbind(1))
        self._next = 0

    def take(self, rows: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """rows (B, N, W) of one layer -> its mean and variance, each (B, W)."""
        if self.collecting:           # in float32 under mixed precision: a half-precision variance can overflow
            variance, mean = torch.var_mean(rows.float(), 1, unbiased=False)
            self.means.append(mean)
            self.variances.append(variance)
        self._next += 1
        return self.means[self._next - 1], self.variances[self._next - 1]

    def stacked(self) -> Tuple[torch.Tensor, torch.Tensor]:
        return torch.stack(self.means, 1), torch.stack(self.variances, 1)


class ReferenceConditionalNorm(nn.Module):
    """The case-conditional scale and shift over a normalisation by statistics of the case itself:
    the layer's mean and variance over a fixed lattice of reference points in the case, taken when the
    case is encoded.  Batch norm over one case's query points (the planner's batch is often one case)
    learnt on statistics that inference cannot reproduce: the points are drawn around the true
    structures, and no running average stands for one case (measured: validation-point kidney Dice
    0.45 in eval mode, 0.78 on batch statistics).  The lattice needs no label, is the same in training
    and inference, and leaves each query point's output independent of the others."""
    eps = 1e-5

    def __init__(self, latent: int, width: int):
        super().__init__()
        self.gamma, self.beta = nn.Linear(latent, width), nn.Linear(latent, width)
        for layer, bias in ((self.gamma, 1.0), (self.beta, 0.0)):       # starts as plain normalisation
            nn.init.zeros_(layer.weight)
            nn.init.constant_(layer.bias, bias)

    def forward(self, x: torch.Tensor, latent: torch.Tensor,
                statistics: Optional[ReferenceStatistics] = None) -> torch.Tensor:
        if statistics is None:
            raise ValueError("reference normalisation needs the case's reference statistics")
        b = latent.shape[0]
        rows = x.view(b, -1, x.shape[1])
        mean, variance = statistics.take(rows)
        normed = (rows - mean[:, None]) * torch.rsqrt(variance[:, None] + self.eps)
        return (self.gamma(latent)[:, None] * normed + self.beta(latent)[:, None]).view_as(x)


class ResidualFCBlock(nn.Module):
    """Linear -> CBN -> PAU -> Linear -> CBN -> + input -> PAU."""

    def __init__(self, latent: int, width: int, norm: str = "batch"):
        super().__init__()
        conditional_norm = ReferenceConditionalNorm if norm == "reference" else CaseConditionalBatchNorm
        self.fc0, self.norm0, self.act0 = nn.Linear(width, width), conditional_norm(latent, width), PAU()
        self.fc1, self.norm1, self.act1 = nn.Linear(width, width), conditional_norm(latent, width), PAU()

    def forward(self, x: torch.Tensor, latent: torch.Tensor,
                statistics: Optional[ReferenceStatistics] = None) -> torch.Tensor:
        extra = () if statistics is None else (statistics,)
        h = self.act0(self.norm0(self.fc0(x), latent, *extra))
        return self.act1(x + self.norm1(self.fc1(h), latent, *extra))


@dataclass
class OssEncoding(Encoding):
    vectors: torch.Tensor          # (B, 1 + blocks, L) latent vectors of the case
    aux_logits: torch.Tensor       # (B, K, *latent_grid)
    image: torch.Tensor            # (B, C, *patch) the normalised case: the local encoder reads it
    context: torch.Tensor          # (B, C, *patch / 2) the same, 2x average-pooled: the 14^3 context
    reference_mean: Optional[torch.Tensor] = None       # (B, 2 * blocks, W) with decoder_norm "reference"
    reference_variance: Optional[torch.Tensor] = None


REFERENCE_LATTICE = 8             # reference points per axis for decoder_norm "reference": 512 per case


def reference_lattice(device: Optional[torch.device] = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(1, 512, 3) cell centres of an 8^3 lattice over the patch, in patch coordinates."""
    axis = (torch.arange(REFERENCE_LATTICE, device=device, dtype=dtype) + 0.5) / REFERENCE_LATTICE - 0.5
    return torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1).reshape(1, -1, 3)


def neighbourhood_offsets(device: Optional[torch.device] = None) -> torch.Tensor:
    """(343, 3) voxel offsets of a 7^3 cube around its centre."""
    r = torch.arange(NEIGHBOURHOOD, dtype=torch.float32, device=device) - NEIGHBOURHOOD // 2
    return torch.stack(torch.meshgrid(r, r, r, indexing="ij"), dim=-1).reshape(-1, 3)


def sample_cubes(volume: torch.Tensor, points: torch.Tensor, step_voxels: float, patch: Sequence[int]) -> torch.Tensor:
    """Trilinear 7^3 cubes around each point: volume (B, C, *v), points (B, N, 3) in patch coordinates,
    cube spacing ``step_voxels`` patch voxels -> (B * N, C, 7, 7, 7).  Outside the patch reads zero."""
    b, n, _ = points.shape
    size = torch.tensor(list(patch), dtype=points.dtype, device=points.device)
    offsets = neighbourhood_offsets(points.device).to(points.dtype) * step_voxels / size          # patch coordinates
    positions = points[:, :, None, :] + offsets[None, None]                                         # (B, N, 343, 3)
    grid = patch_to_grid_sample(positions).to(volume.dtype)[:, :, :, None, :]                       # (B, N, 343, 1, 3)
    values = F.grid_sample(volume, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    c = volume.shape[1]
    return values[..., 0].permute(0, 2, 1, 3).reshape(b * n, c, NEIGHBOURHOOD, NEIGHBOURHOOD, NEIGHBOURHOOD)


class CubeSampler(nn.Module):
    """The 7^3 neighbourhood and the pooled 14^3 context of every point, as (B * N, 2C, 7, 7, 7).  A
    module of its own so that the memory model's trace counts what it holds."""

    def forward(self, points: torch.Tensor, image: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        patch = list(image.shape[2:])
        return torch.cat([sample_cubes(image, points, 1.0, patch), sample_cubes(context, points, 2.0, patch)], dim=1)


class OssNet(OccupancyArchitecture):
    configuration_name = "3d_ossnet"
    field_of_view = "case"
    # CPU peak RSS, benchmarks/results/memory_model_ossnet_cpu.json: fitted to its seven isotropic rows before the
    # chunked Pade backward, which lowered every peak (now it overestimates those by up to 54 %); at anisotropic
    # strides it underestimates (0.81 of the peak for KiTS23's 2 GB plan), where a refit would err more
    memory_calibration = MemoryCalibration(2.28, 564e6, bytes_per_point=85.3e3)
    PRESET_ORDER = PRESET_ORDER

    def __init__(self, in_channels: int, num_outputs: int, strides: Sequence[Sequence[int]],
                 global_downsampling: Sequence[int], stage_channels: Sequence[int], latent_grid: Sequence[int],
                 width: int, num_blocks: int = 5, decoder_norm: str = "batch", preset: str = ""):
        super().__init__()
        if decoder_norm not in ("batch", "reference"):
            raise ValueError(f"OSS-Net decoder_norm must be 'batch' or 'reference', got {decoder_norm!r}")
        if len(strides) != len(stage_channels):
            raise ValueError("OssNet needs one pooling stride per encoder stage")
        self.in_channels, self.num_outputs = in_channels, num_outputs
        self.strides = [list(s) for s in strides]
        self.global_downsampling = list(global_downsampling)
        self.latent_grid = list(latent_grid)
        latent = int(np.prod(latent_grid))
        self.global_encoder = GlobalEncoder(in_channels, stage_channels, strides, latent_grid, num_blocks + 1,
                                            num_outputs)
        self.cubes = CubeSampler()
        self.local_encoder = LocalEncoder(2 * in_channels)
        # the input layer on [coordinates, local, vector 0], split so that vector 0 (one per case) is
        # not copied to every point: a linear map of a concatenation is the sum of its parts' maps
        self.fc_points = nn.Linear(3 + NEIGHBOURHOOD ** 3, width)
        self.fc_case = nn.Linear(latent, width, bias=False)
        self.decoder_norm = decoder_norm
        self.blocks = nn.ModuleList(ResidualFCBlock(latent, width, decoder_norm) for _ in range(num_blocks))
        self.head = nn.Linear(width, num_outputs, bias=False)

    @classmethod
    def build_kwargs(cls, preset: str, in_channels: int, num_outputs: int, spacing: Sequence[float],
                     global_downsampling: Optional[Sequence[int]] = None,
                     case_shape: Optional[Sequence[float]] = None) -> Dict[str, Any]:
        """``case_shape``: the median case at the target spacing, when the planner knows it, so that
        a short axis is not pooled below four voxels (nor padded to a large multiple)."""
        if preset not in PRESETS:
            raise ValueError(f"unknown OSS-Net preset {preset!r}; expected one of {PRESET_ORDER}")
        # the paper halves the resolution; a thick-slice axis (over 2x the finest spacing) keeps its own
        down = list(global_downsampling or [1 if s > 2 * min(spacing) else 2 for s in spacing])
        global_spacing = [s * d for s, d in zip(spacing, down)]
        global_shape = None if case_shape is None else [n / d for n, d in zip(case_shape, down)]
        stages = len(PRESETS[preset]["stage_channels"])
        # plans made before reference normalisation name no decoder_norm and keep the constructor's batch norm
        return dict(in_channels=in_channels, num_outputs=num_outputs, global_downsampling=down, preset=preset,
                    strides=pooling_strides(global_spacing, stages, global_shape), decoder_norm="reference",
                    **PRESETS[preset])

    @classmethod
    def planning_hints(cls) -> PlanningHints:
        # the paper: Lookahead over RAdam at 3e-4, BCE (here CE) plus 0.1 x the auxiliary loss, 2^14
        # points per case, half of them in the border of the structures (~12 voxels wide), and MISE
        # seeded by the encoder's coarse prediction
        return PlanningHints(training={"optimizer": "lookahead_radam", "initial_lr": 3e-4, "weight_decay": 0.0,
                                       "dice_weight": 0.0, "aux_weight": 0.1},
                             points_per_patch=2 ** 14, boundary_point_share=0.5, boundary_band_voxels=12.5,
                             seed_mise_from_aux=True)

    def input_multiple(self) -> List[int]:
        return [d * int(np.prod([s[a] for s in self.strides])) for a, d in enumerate(self.global_downsampling)]

    def encode(self, image: torch.Tensor, placement: Optional[Placement] = None) -> OssEncoding:
        downscaled = F.avg_pool3d(image, self.global_downsampling) if max(self.global_downsampling) > 1 else image
        vectors, aux = self.global_encoder(downscaled)
        encoding = OssEncoding(vectors, aux, image, F.avg_pool3d(image, 2, ceil_mode=True))
        if self.decoder_norm == "reference":
            statistics = ReferenceStatistics()
            lattice = reference_lattice(image.device, image.dtype).expand(image.shape[0], -1, -1)
            self._decode_rows(lattice, encoding, statistics)
            encoding.reference_mean, encoding.reference_variance = statistics.stacked()
        return encoding

    def decode(self, points: torch.Tensor, encoding: Encoding) -> torch.Tensor:
        assert isinstance(encoding, OssEncoding)
        statistics = None
        if self.decoder_norm == "reference":
            statistics = ReferenceStatistics(encoding.reference_mean, encoding.reference_variance)
        return self._decode_rows(points, encoding, statistics).reshape(points.shape[0], points.shape[1], -1)

    def _decode_rows(self, points: torch.Tensor, encoding: OssEncoding,
                     statistics: Optional[ReferenceStatistics]) -> torch.Tensor:
        """points (B, N, 3) -> logits (B * N, K)."""
        b, n, _ = points.shape
        local = self.local_encoder(self.cubes(points, encoding.image, encoding.context))      # (B*N, 343)
        vectors = encoding.vectors.to(local.dtype)                                           # (B, V, L)
        h = self.fc_points(torch.cat([points.reshape(b * n, 3).to(local.dtype), local], dim=1))
        h = (h.view(b, n, -1) + self.fc_case(vectors[:, 0])[:, None]).view(b * n, -1)
        for i, block in enumerate(self.blocks):
            h = block(h, vectors[:, i + 1], statistics)
        return self.head(h)

    def auxiliary_logits(self, encoding: Encoding) -> Optional[torch.Tensor]:
        assert isinstance(encoding, OssEncoding)
        return encoding.aux_logits

    def aux_grid_shape(self, patch: Sequence[int]) -> Optional[List[int]]:
        return list(self.latent_grid)

    def pretrained_module(self) -> nn.Module:
        return self.global_encoder

    def parameter_groups(self, learning_rate: float) -> List[Dict[str, Any]]:
        pau = [p for m in self.modules() if isinstance(m, PAU) for p in m.parameters()]
        ids = {id(p) for p in pau}
        rest = [p for p in self.parameters() if id(p) not in ids]
        return [{"params": rest, "lr": learning_rate}, {"params": pau, "lr": PAU_LEARNING_RATE}]
