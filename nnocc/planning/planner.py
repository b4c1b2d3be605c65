"""The default planner: from a fingerprint and a memory budget to ``nnoccPlans.json``.

One configuration per registered architecture that fits the budget (``3d_occ``, ``3d_ossnet``,
...), sharing one preprocessed copy, and a recommended one.  The rules, in order (each is a
method, so a custom planner overrides only what it changes):

1. target spacing: nnU-Net's median / anisotropy rule (target_spacing.py); the same for every
   configuration, and so are normalisation and resampling (one data identifier);
2. patch-based architectures: the largest preset whose training estimate at a reference patch (the
   median shape, at most 64 voxels per axis) and batch 2 uses at most a quarter of the budget; the
   patch starts from the median shape at the target spacing (rounded up to the encoder's stride)
   and its longest axis in millimetres shrinks until batch 2 fits in 85 % of the budget (a cubic
   patch, which SwIPE asks for, starts from the shortest axis and shrinks on all three);
3. whole-case architectures: the patch is the median case (rounded up to the input multiple); the
   largest preset whose batch of 1 fits in 85 % of the budget; if none does, a coarser global input,
   and if that does not fit either, no plan for it (the plans' notes say which);
4. batch size: grow while it fits and one batch covers at most 5 % of the dataset's voxels
   (nnU-Net's rule), at most 16 (seed 000) or the architecture's own limit (SCONet: one case);
5. query points: 2048 per 64^3 voxels (seed 000), scaled with the patch's surface (volume^2/3),
   unless the architecture's recipe names its own (OSS-Net: 2^14 per case);
6. small labels (median volume under an eighth of the patch and within 2x of the smallest label)
   get the donut sampler (seed 000's 2/4/4 random/label/donut mix), half of the query points in a
   boundary band (OSS-Net) and a refinement pass at inference; without small labels the mix is
   nnU-Net's one third label-centred, and a quarter of the points lie in the band;
7. MISE's coarse spacing is the smallest structure's diameter (5th percentile over components):
   such a structure reaches at least near a lattice point, where the uncertainty margin or the
   auxiliary head's hint marks it for refinement (measured on the generated CT: 99.998 % voxel
   agreement with dense evaluation at 16 % of the queries, benchmarks/readme.md);
8. point-cloud architectures (seed 002): Canny thresholds from the foreground's intensity spread,
   the grid over the extent of 95 % of the cases, no mirroring (the grid keeps where organs lie);
9. the recommendation: ``3d_occ`` when there are small structures (it samples patches around them
   and refines them at inference) or its patch covers a quarter of the median case; else (context
   patches cannot see at once) ``3d_ossnet`` when it sees the whole case at half resolution and no
   structure is smaller than two of its 7-voxel neighbourhoods; else ``3d_sconet`` when no
   structure is smaller than two of its grid cells; else ``3d_occ`` (recommendation.py).
   ``nnocc_find_best_configuration`` then decides on cross-validation.
"""
from __future__ import annotations

import dataclasses
import importlib
import math
from importlib.metadata import entry_points
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from nnocc.architectures.base import PlanningHints
from nnocc.architectures.registry import architecture_class, architecture_facts, registered
from nnocc.fingerprint.fingerprint import DatasetFingerprint, StructureStatistics
from nnocc.io.dataset_json import DatasetDescription
from nnocc.planning.memory_model import TrainingFootprint, training_footprint
from nnocc.planning.normalization import plan_normalization
from nnocc.planning.plans import (
    DESCRIPTOR_CHANNELS,
    ArchitecturePlan,
    AugmentationPlan,
    ChannelNormalization,
    ConfigurationPlan,
    MemoryEstimate,
    MisePlan,
    Plans,
    PointCloudPlan,
    ResamplingPlan,
    SamplingPlan,
    TrainingPlan,
)
from nnocc.planning.point_cloud_plan import plan_point_cloud
from nnocc.planning.recommendation import recommend_configuration
from nnocc.planning.target_spacing import out_of_plane_axis, target_spacing
from nnocc.utils.errors import NnoccError

REFERENCE_PATCH_VOXELS = 64
MAX_BATCH = 16
PATCH_BUDGET_SHARE = 0.85
PRESET_BUDGET_SHARE = 0.25
COARSER_GLOBAL_INPUT = 2          # how much coarser a whole-case input gets when the first does not fit
CASE_EXTENT_PERCENTILE = 95       # a point-cloud grid covers this share of the cases' extents


@dataclasses.dataclass
class Sizing:
    preset: str
    kwargs: Dict
    patch: List[int]
    batch: int
    points: int
    footprint: TrainingFootprint


class OccupancyPlanner:
    plans_name = "nnoccPlans"
    architectures: Optional[Sequence[str]] = None        # None: every registered one
    contour_descriptor = "gradient"                      # point-cloud encoders' descriptor (contours.py)

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
        spacing = target_spacing(self.fingerprint.spacings, self.fingerprint.cropped_shapes)
        configurations: Dict[str, ConfigurationPlan] = {}
        for name in self.architectures or registered():
            config = self.plan_configuration(name, spacing)
            if config is not None:
                configurations[config.name] = config
        if not configurations:
            raise NnoccError(f"no architecture fits a {self.budget_gb:g} GB budget; raise --gpu_memory_target")
        self.share_preprocessing(configurations)
        recommended, reason = self.recommend(configurations)
        return Plans(dataset_name=self.fingerprint.dataset_name, plans_name=self.plans_name,
                     planner=type(self).__name__, gpu_memory_target_gb=self.budget_gb,
                     has_regions=self.description.has_regions, output_names=self.description.output_names,
                     label_values=self.description.label_values, configurations=configurations, notes=self.notes,
                     recommended_configuration=recommended, recommendation_reason=reason)

    def plan_configuration(self, architecture: str, spacing: List[float]) -> Optional[ConfigurationPlan]:
        cls = architecture_class(architecture)
        median_shape = self.median_shape_at(spacing)
        if cls.field_of_view == "case":
            sizing = self.size_whole_case(architecture, spacing, median_shape)
        else:
            sizing = self.size_patch(architecture, spacing, median_shape)
        if sizing is None:
            return None
        hints = cls.planning_hints()
        patch_mm = [p * s for p, s in zip(sizing.patch, spacing)]
        small = self.small_labels(patch_mm)
        augmentation = dataclasses.replace(self.augmentation(spacing), **hints.augmentation)
        return ConfigurationPlan(
            name=cls.configuration_name, spacing=spacing, median_shape=[float(m) for m in median_shape],
            patch_size=sizing.patch, patch_size_mm=patch_mm, batch_size=sizing.batch,
            normalization=self.normalization(), resampling=self.resampling(spacing),
            sampling=self.sampling(sizing.patch, patch_mm, spacing, small, cls.field_of_view, hints, sizing.points),
            augmentation=augmentation, training=TrainingPlan(**hints.training),
            architecture=ArchitecturePlan(architecture, sizing.kwargs), mise=self.mise(spacing, small, hints),
            memory=MemoryEstimate(budget_gb=self.budget_gb, estimated_peak_gb=round(sizing.footprint.estimated_gb(), 3),
                                  model_parameters=sizing.footprint.parameters,
                                  notes=f"CPU-calibrated estimate for {architecture} (benchmarks/memory_model.py); "
                                        f"float32 training"),
            point_cloud=self.point_cloud(spacing) if cls.input_kind == "point_cloud" else None)

    def share_preprocessing(self, configurations: Dict[str, ConfigurationPlan]) -> None:
        """Configurations with the same preprocessing read one copy; the donut sampler's locations are
        part of it, so they follow the first configuration's."""
        owners: List[ConfigurationPlan] = []
        for config in configurations.values():
            owner = next((o for o in owners if _same_preprocessing(o, config)), None)
            if owner is None:
                suffix = "3d_fullres" if not owners else config.name
                config.data_identifier = f"{self.plans_name}_{suffix}"
                owners.append(config)
            else:
                config.sampling.donut_labels = list(owner.sampling.donut_labels)
                config.sampling.donut_margin_mm = owner.sampling.donut_margin_mm
                config.data_identifier = owner.data_identifier

    def recommend(self, configurations: Dict[str, ConfigurationPlan]) -> Tuple[str, str]:
        return recommend_configuration(configurations, self.structure_size_mm(self.fingerprint.labels()),
                                       self.budget_gb)

    # ---- geometry ------------------------------------------------------------------------
    def median_shape_at(self, spacing: Sequence[float]) -> np.ndarray:
        physical = self.fingerprint.cropped_shapes * self.fingerprint.spacings
        return np.median(physical / np.asarray(spacing), axis=0)

    def case_extent_mm(self) -> List[float]:
        """Per axis, the physical extent that most cases fit in (a larger case's rim shares border cells)."""
        physical = self.fingerprint.cropped_shapes * self.fingerprint.spacings
        return [float(e) for e in np.percentile(physical, CASE_EXTENT_PERCENTILE, axis=0)]

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
    def architecture_kwargs(self, architecture: str, preset: str, spacing: Sequence[float], **extra) -> Dict:
        cls = architecture_class(architecture)
        if cls.input_kind == "point_cloud":
            extra.update(point_features=DESCRIPTOR_CHANNELS[self.contour_descriptor],
                         grid_extent_mm=self.case_extent_mm())
        return cls.build_kwargs(preset, self.description.num_channels, self.description.num_outputs, spacing, **extra)

    def points_for(self, architecture: str, patch: Sequence[int]) -> int:
        return architecture_class(architecture).planning_hints().points_per_patch or self.points_per_patch(patch)

    def footprint(self, architecture: str, kwargs: Dict, patch: Sequence[int], batch: int,
                  points: Optional[int] = None) -> TrainingFootprint:
        return training_footprint(architecture, kwargs, patch, batch, points or self.points_for(architecture, patch))

    @staticmethod
    def _round_to(value: float, multiple: int) -> int:
        return int(max(multiple, math.ceil(value / multiple) * multiple))

    def _rounded(self, shape: Union[Sequence[float], np.ndarray], multiple: Sequence[int]) -> List[int]:
        return [self._round_to(m, s) for m, s in zip(shape, multiple)]

    def size_patch(self, architecture: str, spacing: Sequence[float], median_shape: np.ndarray) -> Optional[Sizing]:
        preset = self.choose_preset(architecture, spacing, median_shape)
        kwargs = self.architecture_kwargs(architecture, preset, spacing)
        patch, batch, footprint = self.choose_patch_and_batch(architecture, kwargs, spacing, median_shape)
        return Sizing(preset, kwargs, patch, batch, self.points_for(architecture, patch), footprint)

    def choose_preset(self, architecture: str, spacing: Sequence[float], median_shape: np.ndarray) -> str:
        order = architecture_class(architecture).PRESET_ORDER
        chosen = order[0]
        for preset in order:
            kwargs = self.architecture_kwargs(architecture, preset, spacing)
            multiple = architecture_facts(architecture, kwargs, [1, 1, 1]).input_multiple
            reference = self.start_patch(architecture, [min(m, REFERENCE_PATCH_VOXELS) for m in median_shape], multiple)
            if self.footprint(architecture, kwargs, reference, 2).estimated_gb() <= PRESET_BUDGET_SHARE * self.budget_gb:
                chosen = preset
        self.notes.append(f"{architecture} size '{chosen}': the largest preset using at most "
                          f"{PRESET_BUDGET_SHARE:.0%} of {self.budget_gb:g} GB at the reference patch")
        return chosen

    def choose_patch_and_batch(self, architecture: str, kwargs: Dict, spacing: Sequence[float],
                               median_shape: np.ndarray) -> Tuple[List[int], int, TrainingFootprint]:
        stride = architecture_facts(architecture, kwargs, [1, 1, 1]).input_multiple
        patch = self.start_patch(architecture, median_shape, stride)
        cubic = architecture_class(architecture).planning_hints().cubic_patch
        step = math.lcm(*stride)         # a cubic patch shrinks on every axis by the multiple they share
        budget = PATCH_BUDGET_SHARE * self.budget_gb
        while self.footprint(architecture, kwargs, patch, 2).estimated_gb() > budget:
            if cubic:
                extents = [p * s if p > step else -1 for p, s in zip(patch, spacing)]
            else:
                extents = [p * s if p > 2 * st else -1 for p, s, st in zip(patch, spacing, stride)]
            axis = int(np.argmax(extents))
            if extents[axis] < 0:
                raise NnoccError(f"a {self.budget_gb:g} GB budget cannot hold even the smallest patch; "
                                 f"raise --gpu_memory_target")
            patch = [p - step for p in patch] if cubic else [p - (st if a == axis else 0)
                                                              for a, (p, st) in enumerate(zip(patch, stride))]
        batch = self.grow_batch(architecture, kwargs, patch, 2, spacing, self.points_for(architecture, patch))
        return patch, batch, self.footprint(architecture, kwargs, patch, batch)

    def start_patch(self, architecture: str, shape: Union[Sequence[float], np.ndarray], multiple: Sequence[int]) -> List[int]:
        """The shape rounded up to the input multiple; for a cubic patch (SwIPE's crops), its shortest axis
        on every axis, rounded up to the multiple the axes share."""
        if not architecture_class(architecture).planning_hints().cubic_patch:
            return self._rounded(shape, multiple)
        return [self._round_to(min(shape), math.lcm(*multiple))] * 3

    def grow_batch(self, architecture: str, kwargs: Dict, patch: Sequence[int], smallest: int,
                   spacing: Sequence[float], points: int) -> int:
        dataset_voxels = float(np.sum(np.prod(self.fingerprint.cropped_shapes * self.fingerprint.spacings
                                              / np.asarray(spacing), axis=1)))
        max_by_dataset = max(smallest, int(0.05 * dataset_voxels / np.prod(patch)))
        largest = min(MAX_BATCH, max_by_dataset, architecture_class(architecture).planning_hints().max_batch_size or MAX_BATCH)
        budget = PATCH_BUDGET_SHARE * self.budget_gb
        batch = smallest
        while batch < largest and \
                self.footprint(architecture, kwargs, patch, batch + 1, points).estimated_gb() <= budget:
            batch += 1
        return batch

    def size_whole_case(self, architecture: str, spacing: Sequence[float], median_shape: np.ndarray
                        ) -> Optional[Sizing]:
        """The patch is the median case.  The first option that fits a batch of 1, in order: the largest
        preset at the recipe's query points and the architecture's global resolution; fewer points
        (halved, down to a quarter: OSS-Net's own table varies them 2^13-2^15 at similar Dice); a
        coarser global input.  None when nothing fits."""
        preferred = self.points_for(architecture, [1, 1, 1])
        options: List[Tuple[Optional[List[int]], int]] = [(None, preferred), (None, preferred // 2), (None, preferred // 4)]
        default = self.architecture_kwargs(architecture, architecture_class(architecture).PRESET_ORDER[0], spacing)
        if "global_downsampling" in default:      # a point-cloud encoder has no global image to coarsen
            coarser = [d * COARSER_GLOBAL_INPUT for d in default["global_downsampling"]]
            options += [(coarser, points) for _, points in options]
        for downsampling, points in options:
            fitting = self._largest_fitting_preset(architecture, spacing, median_shape, downsampling, points)
            if fitting is None:
                continue
            fitting.batch = self.grow_batch(architecture, fitting.kwargs, fitting.patch, 1, spacing, points)
            fitting.footprint = self.footprint(architecture, fitting.kwargs, fitting.patch, fitting.batch, points)
            changes = ([f"{points} query points instead of the recipe's {preferred}"] if points != preferred else []) + \
                (["a coarser global input than the paper's half resolution"] if downsampling else [])
            global_input = (f"global input downscaled {fitting.kwargs['global_downsampling']}"
                            if "global_downsampling" in fitting.kwargs else "a point cloud of its contours")
            self.notes.append(f"{architecture}: the whole case {fitting.patch}, {global_input}, preset '{fitting.preset}'"
                              + (f"; to fit {self.budget_gb:g} GB: {', '.join(changes)}" if changes else ""))
            return fitting
        self.notes.append(f"{architecture}: no plan; the whole median case {self._rounded(median_shape, [1, 1, 1])} "
                          f"does not fit {self.budget_gb:g} GB even with fewer points and a coarser global input")
        return None

    def _largest_fitting_preset(self, architecture: str, spacing: Sequence[float], median_shape: np.ndarray,
                                downsampling: Optional[List[int]], points: int) -> Optional[Sizing]:
        budget = PATCH_BUDGET_SHARE * self.budget_gb
        fitting = None
        for preset in architecture_class(architecture).PRESET_ORDER:
            kwargs = self.architecture_kwargs(architecture, preset, spacing, global_downsampling=downsampling,
                                              case_shape=[float(m) for m in median_shape])
            multiple = architecture_facts(architecture, kwargs, [1, 1, 1]).input_multiple
            patch = self._rounded(median_shape, multiple)
            footprint = self.footprint(architecture, kwargs, patch, 1, points)
            if footprint.estimated_gb() <= budget:
                fitting = Sizing(preset, kwargs, patch, 1, points, footprint)
        return fitting

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

    def sampling(self, patch: Sequence[int], patch_mm: Sequence[float], spacing: Sequence[float], small: List[int],
                 field_of_view: str = "patch", hints: Optional[PlanningHints] = None,
                 points: Optional[int] = None) -> SamplingPlan:
        hints = hints or PlanningHints()
        shares = (0.2, 0.4, 0.4, 0.0) if small else (2 / 3, 1 / 3, 0.0, 0.0)
        if field_of_view == "case":
            shares = (0.0, 0.0, 0.0, 1.0)
        band = hints.boundary_band_voxels * min(spacing) if hints.boundary_band_voxels else 2 * max(spacing)
        share = hints.boundary_point_share if hints.boundary_point_share is not None else (0.5 if small else 0.25)
        return SamplingPlan(random_share=shares[0], label_share=shares[1], donut_share=shares[2], case_share=shares[3],
                            donut_labels=small, donut_margin_mm=min(patch_mm) / 4,
                            points_per_patch=points or hints.points_per_patch or self.points_per_patch(patch),
                            boundary_point_share=share, boundary_band_mm=band, **hints.sampling)

    def augmentation(self, spacing: Sequence[float]) -> AugmentationPlan:
        aug = AugmentationPlan()
        z_axis = out_of_plane_axis(spacing, spacing)
        if z_axis is not None:
            # thick slices: rotate and scale in-plane only, as nnU-Net does for anisotropic data
            aug.rotation_deg = [30.0 if a == z_axis else 0.0 for a in range(3)]
        return aug

    def point_cloud(self, spacing: Sequence[float]) -> PointCloudPlan:
        return plan_point_cloud(self.normalization()[0], self.fingerprint.intensities, spacing, self.contour_descriptor)

    def structure_size_mm(self, structures: Sequence[StructureStatistics]) -> float:
        sizes = [s.component_diameter_p05_mm for s in structures if s.cases_present > 0]
        return float(min(sizes)) if sizes else float("inf")

    def mise(self, spacing: Sequence[float], small: List[int], hints: Optional[PlanningHints] = None) -> MisePlan:
        hints = hints or PlanningHints()
        smallest = self.structure_size_mm(self.fingerprint.labels())
        coarse = smallest if math.isfinite(smallest) else 8 * max(spacing)
        coarse = max(min(spacing), coarse)
        return MisePlan(coarse_spacing_mm=float(coarse), threshold=0.5, uncertainty_margin=0.4,
                        refine_labels=small, seed_from_aux=hints.seed_mise_from_aux)


def _same_preprocessing(a: ConfigurationPlan, b: ConfigurationPlan) -> bool:
    return a.spacing == b.spacing and a.normalization == b.normalization and a.resampling == b.resampling


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
