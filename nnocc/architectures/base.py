"""The contract between an occupancy architecture and the rest of nnocc.

Training, inference, planning, the memory model and export talk to an architecture only through
this class, so adding one means one module and one line in ``registry.py``.

An architecture declares:

* ``configuration_name``: the plans' configuration it becomes (``3d_occ``, ``3d_ossnet``, ...);
* ``field_of_view``: what its encoder sees.  ``"patch"``: a patch of the plan's patch size
  (training samples patches; inference tiles the case).  ``"case"``: the whole case, which the
  planner makes the patch (a global encoder; inference encodes each case once, as one tile);
* ``input_kind``: what its encoder reads.  ``"image"``: the patch's normalised intensities.
  ``"point_cloud"``: the case's contour points with descriptors (seed 002), which preprocessing
  extracts once per case (the plan's ``point_cloud`` settings) and the loader resamples to
  ``cloud_size()`` points per step, in patch coordinates;
* ``build_kwargs(...)``, ``PRESET_ORDER`` and ``planning_hints()``: what the planner writes
  (presets from small to large, the paper's recipe: optimiser, query points, MISE seeding);
* ``input_multiple()``: what the patch size must be divisible by;
* ``aux_grid_shape(patch)``: the shape of its auxiliary low-resolution voxel prediction over the
  patch, or None: the loader then supplies targets at that grid's cell centres and the loss adds
  the auxiliary term, and inference may seed or guide MISE with it;
* ``memory_calibration``: the memory model's coefficients fitted to its measured peaks;
* ``LOSS_TERMS`` and ``training_terms(...)``: further terms of its training loss (SwIPE's image
  decoder, patch overreach and embedding penalty), which the plan's ``training.loss_weights`` weigh;
* ``pretrained_module()``: the part that ``--pretrained_weights`` loads;
* ``parameter_groups(lr)``: per-group learning rates for the optimiser;
* ``example_inputs(...)``: what the memory model traces on the ``meta`` device.

It encodes an image patch (``(B, C, *patch)``, normalised intensities; or a point cloud
``(B, N, 3 + F)``, patch coordinates then features) and where the patch lies
in its case (``Placement``) to an ``Encoding``, opaque to everyone else but movable between
devices and of known size, and decodes query points in patch coordinates (``[-0.5, 0.5]^3``,
array order, see coordinates.py) to logits per output.
"""
from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple

import torch
from torch import nn

from nnocc.architectures.blocks import lookup_features

FIELDS_OF_VIEW = ("patch", "case")
INPUT_KINDS = ("image", "point_cloud")


@dataclasses.dataclass(frozen=True)
class PlanningHints:
    """An architecture's own recipe, which the planner applies on top of its general rules."""
    training: Dict[str, Any] = dataclasses.field(default_factory=dict)   # TrainingPlan fields
    points_per_patch: Optional[int] = None            # None: the planner's rule (by the patch's surface)
    boundary_point_share: Optional[float] = None      # None: the planner's rule (by small structures)
    boundary_band_voxels: Optional[float] = None      # None: two voxels of the coarsest axis
    seed_mise_from_aux: bool = False                  # start MISE from the auxiliary prediction
    max_batch_size: Optional[int] = None              # None: the planner's rule (memory, 5 % of the data)
    augmentation: Dict[str, Any] = dataclasses.field(default_factory=dict)   # AugmentationPlan fields
    sampling: Dict[str, Any] = dataclasses.field(default_factory=dict)       # SamplingPlan fields (point_sampler, ...)
    cubic_patch: bool = False                         # the same number of voxels on every axis (SwIPE's crops)


class ForwardOutput(NamedTuple):
    """A training forward pass: the decoder's logits (B, N, K), the auxiliary grid's logits or None, and
    the architecture's further loss terms by name (``training_terms``)."""
    logits: torch.Tensor
    aux: Optional[torch.Tensor]
    terms: Dict[str, torch.Tensor]


@dataclasses.dataclass
class Placement:
    """Where encoded patches lie in their cases, in preprocessed voxels: the patch's first voxel
    (B, 3), the patch size (B, 3), the case's shape (B, 3), and per axis whether the patch is mirrored
    (B, 3: -1 mirrored, +1 not).  A mirrored patch (training's flips, inference's test-time
    mirroring) holds the case's voxels in reverse along that axis, so its patch coordinate p lies where
    an unmirrored patch has -p."""
    start: torch.Tensor
    size: torch.Tensor
    case_shape: torch.Tensor
    direction: torch.Tensor

    @classmethod
    def unmirrored(cls, start: torch.Tensor, size: torch.Tensor, case_shape: torch.Tensor) -> "Placement":
        return cls(start, size, case_shape, torch.ones_like(start))

    @classmethod
    def from_rows(cls, rows: torch.Tensor) -> "Placement":
        """From the loader's (B, 12) rows: start, size, case shape, direction; or (B, 9), unmirrored."""
        if rows.shape[1] < 12:
            return cls.unmirrored(rows[:, 0:3], rows[:, 3:6], rows[:, 6:9])
        return cls(rows[:, 0:3], rows[:, 3:6], rows[:, 6:9], rows[:, 9:12])

    @classmethod
    def centred(cls, batch: int, patch: Sequence[int], device: Optional[torch.device] = None) -> "Placement":
        """A patch that is the whole case (tests, tracing)."""
        size = torch.tensor([list(patch)] * batch, dtype=torch.float32, device=device)
        return cls.unmirrored(torch.zeros_like(size), size, size.clone())

    def to(self, device: torch.device) -> "Placement":
        return Placement(self.start.to(device), self.size.to(device), self.case_shape.to(device), self.direction.to(device))

    def mirrored(self, axes: Sequence[int]) -> "Placement":
        """The same patch mirrored along ``axes`` (as inference's test-time mirroring flips it)."""
        direction = self.direction.clone()
        direction[:, list(axes)] *= -1
        return Placement(self.start, self.size, self.case_shape, direction)

    def case_position(self, points: torch.Tensor) -> torch.Tensor:
        """Patch coordinates (B, N, 3) -> positions in the case (B, N, 3), in voxels with the case's
        edges at 0 and its shape."""
        direction = self.direction[:, None].to(points.dtype)
        return self.start[:, None] + (0.5 + direction * points) * self.size[:, None]


@dataclasses.dataclass
class Encoding:
    """Base of every architecture's encoding: a dataclass of tensors, lists of tensors, or None."""

    def tensors(self) -> Iterator[torch.Tensor]:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, torch.Tensor):
                    yield item

    def to(self, device: torch.device, dtype: Optional[torch.dtype] = None) -> "Encoding":
        def move(value: Any) -> Any:
            if isinstance(value, list):
                return [move(v) for v in value]
            if not isinstance(value, torch.Tensor):
                return value
            floating = dtype is not None and value.is_floating_point()
            return value.to(device, dtype) if floating else value.to(device)
        return dataclasses.replace(self, **{f.name: move(getattr(self, f.name)) for f in dataclasses.fields(self)})

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors())


@dataclasses.dataclass(frozen=True)
class MemoryCalibration:
    """How the planner's memory model turns a traced forward pass into bytes: per activation element,
    a fixed overhead, and per parameter (weights, gradients, two Adam moments, allocator slack).
    Fitted to measured peaks by ``python -m benchmarks.memory_model --architecture NAME --fit``."""
    bytes_per_activation: float
    fixed_overhead_bytes: float
    bytes_per_parameter: float = 22.0
    bytes_per_point: float = 0.0      # what a point costs beyond the traced module outputs


class OccupancyArchitecture(nn.Module, ABC):
    configuration_name: ClassVar[str]
    field_of_view: ClassVar[str] = "patch"
    input_kind: ClassVar[str] = "image"
    # None until measured: the memory model then uses a conservative default
    memory_calibration: ClassVar[Optional[MemoryCalibration]] = None
    # planning: presets from small to large; the planner takes the largest that fits the budget
    PRESET_ORDER: ClassVar[List[str]] = []
    # names of the terms ``training_terms`` returns; the plan's ``training.loss_weights`` weighs each
    LOSS_TERMS: ClassVar[Tuple[str, ...]] = ()

    in_channels: int
    num_outputs: int

    # ---- planning ---------------------------------------------------------------------------
    @classmethod
    @abstractmethod
    def build_kwargs(cls, preset: str, in_channels: int, num_outputs: int, spacing: Sequence[float]) -> Dict[str, Any]:
        """The plan's architecture arguments for one preset at the data's target spacing.

        A whole-case architecture also takes ``case_shape`` (the median case at the target spacing)
        and ``global_downsampling`` (per axis, None for its own choice), and returns the latter in its
        arguments: the planner coarsens it when the whole case does not fit the memory target."""

    @classmethod
    def planning_hints(cls) -> PlanningHints:
        return PlanningHints()

    @abstractmethod
    def input_multiple(self) -> List[int]:
        """Each patch axis must be a multiple of this (the encoder's total stride)."""

    def cloud_size(self) -> Optional[int]:
        """Points per cloud that a point-cloud encoder reads per training step; None for an image encoder."""
        return None

    # ---- the model ----------------------------------------------------------------------------
    @abstractmethod
    def encode(self, image: torch.Tensor, placement: Optional[Placement] = None) -> Encoding:
        """image (B, C, *patch), or the point cloud (B, N, 3 + F) -> the encoding the decoder reads."""

    @abstractmethod
    def decode(self, points: torch.Tensor, encoding: Encoding) -> torch.Tensor:
        """points (B, N, 3) in patch coordinates -> logits (B, N, num_outputs).  In eval mode a
        point's answer does not depend on the other points."""

    def auxiliary_logits(self, encoding: Encoding) -> Optional[torch.Tensor]:
        """The auxiliary voxel prediction (B, K, *aux_grid) over the patch, or None."""
        return None

    def aux_grid_shape(self, patch: Sequence[int]) -> Optional[List[int]]:
        return None

    def auxiliary_at(self, points: torch.Tensor, encoding: Encoding) -> Optional[torch.Tensor]:
        """Auxiliary logits (B, N, K) at patch coordinates, trilinear between the grid's cells."""
        grid = self.auxiliary_logits(encoding)
        return None if grid is None else lookup_features(grid, points)

    def training_terms(self, points: torch.Tensor, encoding: Encoding) -> Dict[str, torch.Tensor]:
        """Further terms of the training loss (``LOSS_TERMS``), by name: logits (B, r * N, K) of the points
        decoded another way (r copies of the N points, copy after copy), which the loss scores against the
        points' targets as it scores the decoder's; or a scalar penalty, added as it is.  Each is weighted
        by the plan's ``training.loss_weights``."""
        return {}

    def forward(self, image: torch.Tensor, points: torch.Tensor, placement: Optional[Placement] = None
                ) -> ForwardOutput:
        encoding = self.encode(image, placement)
        return ForwardOutput(self.decode(points, encoding), self.auxiliary_logits(encoding),
                             self.training_terms(points, encoding))

    # ---- training -------------------------------------------------------------------------
    @abstractmethod
    def pretrained_module(self) -> nn.Module:
        """What ``--pretrained_weights`` loads (the encoder)."""

    def parameter_groups(self, learning_rate: float) -> List[Dict[str, Any]]:
        """Optimiser parameter groups; an architecture gives some parameters their own rate."""
        return [{"params": list(self.parameters()), "lr": learning_rate}]

    def example_inputs(self, batch: int, patch: Sequence[int], points: int,
                       device: Optional[torch.device] = None) -> Tuple[torch.Tensor, torch.Tensor, Placement]:
        """Inputs of one training forward pass (encoder input, query points, placement), for the memory
        model's trace and the contract test."""
        image = torch.empty(batch, self.in_channels, *patch, device=device)
        query = torch.empty(batch, points, 3, device=device)
        return image, query, Placement.centred(batch, patch, device)
