"""The default planner: from a fingerprint and a memory budget to ``nnoccPlans.json``.

The rules, in order (each is a method, so a custom planner overrides only what it changes):

1. target spacing: nnU-Net's median / anisotropy rule (target_spacing.py);
2. architecture size: the largest ConvOccNet preset whose training estimate at a reference patch
   (the median shape, at most 64 voxels per axis) and batch 2 uses at most a quarter of the budget;
3. patch size: start from the median shape at the target spacing (rounded up to the encoder's
   stride), then shrink the axis that is longest in millimetres until batch 2 fits in 85 % of
   the budget;
4. batch size: grow from 2 while it fits and one batch covers at most 5 % of the dataset's
   voxels (nnU-Net's rule), at most 16 (seed 000);
5. query points: 2048 per 64^3 voxels (seed 000), scaled with the patch's surface (volume^2/3);
6. small labels (median volume under an eighth of the patch and within 2x of the smallest label)
   get the donut sampler (seed 000's 2/4/4 random/label/donut mix), half of the query points in a
   boundary band (OSS-Net) and a refinement pass at inference; without small labels the mix is
   nnU-Net's one third label-centred, and a quarter of the points lie in the band;
7. MISE's coarse spacing is the smallest structure's diameter (5th percentile over components):
   such a structure reaches at least near a lattice point, where the uncertainty margin or the
   auxiliary head's hint marks it for refinement (measured on the generated CT: 99.998 % voxel
   agreement with dense evaluation at 16 % of the queries, benchmarks/readme.md).
"""
from __future__ import annotations

import importlib
import math
from importlib.metadata import entry_points
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from nnocc.architectures.registry import architecture_module
from nnocc.fingerprint.fingerprint import DatasetFingerprint, StructureStatistics
from nnocc.io.dataset_json import DatasetDescription
from nnocc.planning.memory_model import TrainingFootprint, training_footprint
from nnocc.planning.plans import (
    ArchitecturePlan,
    AugmentationPlan,
    ChannelNormalization,
    ConfigurationPlan,
    MemoryEstimate,
    MisePlan,
    Plans,
    ResamplingPlan,
    SamplingPlan,
    TrainingPlan,
)
from nnocc.planning.target_spacing import target_spacing
from nnocc.preprocessing.normalization import plan_normalization
from nnocc.preprocessing.resampling import out_of_plane_axis
from nnocc.utils.errors import NnoccError

REFERENCE_PATCH_VOXELS = 64
MAX_BATCH = 16
PATCH_BUDGET_SHARE = 0.85
PRESET_BUDGET_SHARE = 0.25


class OccupancyPlanner:
    plans_name = "nnoccPlans"
    configuration_name = "3d_occ"
    architecture = "convocc"

    def __init__(self, fingerprint: DatasetFingerprint, description: DatasetDescription,
                 gpu_memory_target_gb: float = 8.0, plans_name: Optional[str] = None):
        self.fingerprint = fingerprint
        self.description = description
        self.budget_gb = float(gpu_memory_target_gb)
        if plans_name:
            self.plans_name = plans_name
        self.notes: List[str] = []

    # ---- entry point ---------------------------------------------------------------------
    def plan(self) -> Plans:
        config = self.plan_configuration()
        return Plans(dataset_name=self.fingerprint.dataset_name, plans_name=self.plans_name,
                     planner=type(self).__name__, gpu_memory_target_gb=self.budget_gb,
                     has_regions=self.description.has_regions, output_names=self.description.output_names,
                     label_values=self.description.label_values,
                     configurations={config.name: config}, notes=self.notes)

    def plan_configuration(self) -> ConfigurationPlan:
        spacing = target_spacing(self.fingerprint.spacings, self.fingerprint.cropped_shapes)
        median_shape = self.median_shape_at(spacing)
        preset = self.choose_preset(spacing, median_shape)
        kwargs = self.architecture_kwargs(preset, spacing)
        patch, batch, footprint = self.choose_patch_and_batch(kwargs, spacing, median_shape)
        patch_mm = [p * s for p, s in zip(patch, spacing)]
        small = self.small_labels(patch_mm)
        sampling = self.sampling(patch, patch_mm, spacing, small)
        return ConfigurationPlan(
            name=self.configuration_name, spacing=spacing, median_shape=[float(m) for m in median_shape],
            patch_size=patch, patch_size_mm=patch_mm, batch_size=batch, normalization=self.normalization(),
            resampling=self.resampling(spacing), sampling=sampling, augmentation=self.augmentation(spacing),
            training=TrainingPlan(), architecture=ArchitecturePlan(self.architecture, kwargs),
            mise=self.mise(spacing, small),
            memory=MemoryEstimate(budget_gb=self.budget_gb, estimated_peak_gb=round(footprint.estimated_gb(), 3),
                                  model_parameters=footprint.parameters,
                                  notes="CPU-calibrated estimate (benchmarks/memory_model.py); float32 training"))

    # ---- geometry ------------------------------------------------------------------------
    def median_shape_at(self, spacing: Sequence[float]) -> np.ndarray:
        physical = self.fingerprint.cropped_shapes * self.fingerprint.spacings
        return np.median(physical / np.asarray(spacing), axis=0)

    def resampling(self, spacing: Sequence[float]) -> ResamplingPlan:
        z_axes = {out_of_plane_axis(c.spacing, spacing) for c in self.fingerprint.cases}
        z_axis = next((z for z in z_axes if z is not None), None)
        return ResamplingPlan(separate_z=z_axis is not None, z_axis=z_axis)

    def normalization(self) -> List[ChannelNormalization]:
        original = np.prod([c.shape for c in self.fingerprint.cases], axis=1)
        cropped = np.prod([c.cropped_shape for c in self.fingerprint.cases], axis=1)
        # nnU-Net: normalise inside the non-zero mask only when cropping removed a lot of background
        use_mask = float(np.median(cropped / original)) < 0.75
        return [plan_normalization(name, self.fingerprint.intensities[name], use_mask)
                for name in self.description.channel_list]

    # ---- architecture, patch and batch ---------------------------------------------------
    def architecture_kwargs(self, preset: str, spacing: Sequence[float]) -> Dict:
        module = architecture_module(self.architecture)
        return module.build_kwargs(preset, self.description.num_channels, self.description.num_outputs, spacing)

    def _footprint(self, kwargs: Dict, patch: Sequence[int], batch: int):
        return training_footprint(self.architecture, kwargs, patch, batch, self.points_per_patch(patch))

    def choose_preset(self, spacing: Sequence[float], median_shape: np.ndarray) -> str:
        module = architecture_module(self.architecture)
        chosen = module.PRESET_ORDER[0]
        for preset in module.PRESET_ORDER:
            kwargs = self.architecture_kwargs(preset, spacing)
            stride = module.total_stride(kwargs["strides"])
            reference = [self._round_to(min(m, REFERENCE_PATCH_VOXELS), s) for m, s in zip(median_shape, stride)]
            if self._footprint(kwargs, reference, 2).estimated_gb() <= PRESET_BUDGET_SHARE * self.budget_gb:
                chosen = preset
        self.notes.append(f"architecture size '{chosen}': the largest preset using at most "
                          f"{PRESET_BUDGET_SHARE:.0%} of {self.budget_gb:g} GB at the reference patch")
        return chosen

    @staticmethod
    def _round_to(value: float, multiple: int) -> int:
        return int(max(multiple, math.ceil(value / multiple) * multiple))

    def choose_patch_and_batch(self, kwargs: Dict, spacing: Sequence[float], median_shape: np.ndarray
                               ) -> Tuple[List[int], int, TrainingFootprint]:
        stride = architecture_module(self.architecture).total_stride(kwargs["strides"])
        patch = [self._round_to(m, s) for m, s in zip(median_shape, stride)]
        budget = PATCH_BUDGET_SHARE * self.budget_gb
        while self._footprint(kwargs, patch, 2).estimated_gb() > budget:
            extents = [p * s if p > 2 * st else -1 for p, s, st in zip(patch, spacing, stride)]
            axis = int(np.argmax(extents))
            if extents[axis] < 0:
                raise NnoccError(f"a {self.budget_gb:g} GB budget cannot hold even the smallest patch; "
                                 f"raise --gpu_memory_target")
            patch[axis] -= stride[axis]
        dataset_voxels = float(np.sum(np.prod(self.fingerprint.cropped_shapes * self.fingerprint.spacings
                                              / np.asarray(spacing), axis=1)))
        max_by_dataset = max(2, int(0.05 * dataset_voxels / np.prod(patch)))
        batch = 2
        while batch < min(MAX_BATCH, max_by_dataset) and self._footprint(kwargs, patch, batch + 1).estimated_gb() <= budget:
            batch += 1
        return patch, batch, self._footprint(kwargs, patch, batch)

    @staticmethod
    def points_per_patch(patch: Sequence[int]) -> int:
        scale = (float(np.prod(patch)) / REFERENCE_PATCH_VOXELS ** 3) ** (2.0 / 3.0)
        return int(np.clip(round(2048 * scale / 256) * 256, 1024, 8192))

    # ---- sampling, augmentation, inference -----------------------------------------------
    def small_labels(self, patch_mm: Sequence[float]) -> List[int]:
        labels = [s for s in self.fingerprint.labels() if s.cases_present > 0]
        if not labels:
            return []
        smallest = min(s.volume_mm3_median for s in labels)
        patch_volume = float(np.prod(patch_mm))
        return [s.label_values[0] for s in labels
                if s.volume_mm3_median <= 2 * smallest and s.volume_mm3_median < patch_volume / 8]

    def sampling(self, patch: Sequence[int], patch_mm: Sequence[float], spacing: Sequence[float],
                 small: List[int]) -> SamplingPlan:
        shares = (0.2, 0.4, 0.4) if small else (2 / 3, 1 / 3, 0.0)
        return SamplingPlan(random_share=shares[0], label_share=shares[1], donut_share=shares[2], donut_labels=small,
                            donut_margin_mm=min(patch_mm) / 4, points_per_patch=self.points_per_patch(patch),
                            boundary_point_share=0.5 if small else 0.25, boundary_band_mm=2 * max(spacing))

    def augmentation(self, spacing: Sequence[float]) -> AugmentationPlan:
        aug = AugmentationPlan()
        z_axis = out_of_plane_axis(spacing, spacing)
        if z_axis is not None:
            # thick slices: rotate and scale in-plane only, as nnU-Net does for anisotropic data
            aug.rotation_deg = [30.0 if a == z_axis else 0.0 for a in range(3)]
        return aug

    def structure_size_mm(self, structures: Sequence[StructureStatistics]) -> float:
        sizes = [s.component_diameter_p05_mm for s in structures if s.cases_present > 0]
        return float(min(sizes)) if sizes else float("inf")

    def mise(self, spacing: Sequence[float], small: List[int]) -> MisePlan:
        smallest = self.structure_size_mm(self.fingerprint.labels())
        coarse = smallest if math.isfinite(smallest) else 8 * max(spacing)
        coarse = max(min(spacing), coarse)
        return MisePlan(coarse_spacing_mm=float(coarse), threshold=0.5, uncertainty_margin=0.4,
                        refine_labels=small)


def find_planner(name: str):
    """A planner class by name: a built-in one, one that an installed package registers under the
    ``nnocc.planners`` entry-point group, or ``package.module:ClassName``."""
    if ":" in name:
        module_name, class_name = name.split(":", 1)
        try:
            return getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError) as e:
            raise NnoccError(f"planner {name!r} not found ({e})") from None
    planners = {cls.__name__: cls for cls in (OccupancyPlanner,)}
    for entry in entry_points(group="nnocc.planners"):
        if entry.name == name:
            return entry.load()
    if name not in planners:
        raise NnoccError(f"unknown planner {name!r}; built in: {', '.join(planners)}; "
                         f"or give module:ClassName of your own")
    return planners[name]
