"""``nnoccPlans.json``: what to do with a dataset, one entry per configuration.

Every number a later stage uses is here, so that a model rebuilds from plans + checkpoint alone
and a user can read (and edit) why nnocc does what it does.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from nnocc.utils.errors import NnoccError
from nnocc.utils.serialization import JsonDataclass, to_dict


@dataclass
class ChannelNormalization:
    channel: str
    scheme: str                      # 'ct' | 'zscore' | 'rescale_to_0_1' | 'none'
    clip_low: Optional[float] = None
    clip_high: Optional[float] = None
    mean: Optional[float] = None
    std: Optional[float] = None
    use_nonzero_mask: bool = False


@dataclass
class ResamplingPlan:
    image_order: int = 3
    label_order: int = 1
    separate_z: bool = False          # resample the out-of-plane axis apart from the plane
    z_axis: Optional[int] = None
    image_order_z: int = 0
    label_order_z: int = 0


@dataclass
class SamplingPlan:
    """Patch samplers and query points, per patch."""
    random_share: float
    label_share: float
    donut_share: float
    donut_labels: List[int]           # label values the donut sampler circles (the small classes)
    donut_margin_mm: float            # shell thickness around a structure for donut centres
    points_per_patch: int
    boundary_point_share: float       # share of points drawn in a band around label boundaries
    boundary_band_mm: float
    soft_point_targets: bool = False
    case_share: float = 0.0           # centred on the case (a patch that is the whole case, jittered by its slack)
    point_sampler: str = "uniform_and_band"   # or 'class_balanced' (SwIPE): training/points.py
    background_point_weight: float = 1.0      # class_balanced: background points per foreground label's points
    proposed_share: float = 0.0               # centred on a learned patch sampler's proposals (nnocc/shape)
    proposed_centres: Optional[str] = None    # their file, beside the preprocessed data folder


@dataclass
class AugmentationPlan:
    rotation_deg: List[float] = field(default_factory=lambda: [15.0, 15.0, 15.0])
    p_rotation: float = 0.2
    scale_range: List[float] = field(default_factory=lambda: [0.85, 1.25])
    p_scale: float = 0.2
    p_elastic: float = 0.0
    elastic_alpha: List[float] = field(default_factory=lambda: [0.0, 200.0])
    elastic_sigma: List[float] = field(default_factory=lambda: [9.0, 13.0])
    mirror_axes: List[int] = field(default_factory=lambda: [0, 1, 2])
    p_gamma: float = 0.3
    gamma_range: List[float] = field(default_factory=lambda: [0.7, 1.5])
    p_noise: float = 0.1
    p_blur: float = 0.2
    p_brightness: float = 0.15
    p_contrast: float = 0.15


@dataclass
class TrainingPlan:
    optimizer: str = "adamw"
    initial_lr: float = 1e-3
    weight_decay: float = 3e-5
    lr_schedule: str = "poly"
    poly_exponent: float = 0.9
    num_epochs: int = 1000
    iterations_per_epoch: int = 250
    validation_iterations: int = 50
    checkpoint_every: int = 50
    ce_weight: float = 1.0
    dice_weight: float = 1.0
    aux_weight: float = 0.1
    # the decoder's term ('decoder', 1 unless named) and the architecture's further terms (its LOSS_TERMS)
    loss_weights: Dict[str, float] = field(default_factory=dict)
    grad_clip: float = 12.0
    ema_pseudo_dice: float = 0.9


@dataclass
class ArchitecturePlan:
    name: str                          # registry key
    kwargs: Dict[str, Any]


@dataclass
class MisePlan:
    coarse_spacing_mm: float           # no larger than the smallest structure
    threshold: float                   # region mode: sigmoid threshold; label mode: unused
    uncertainty_margin: float          # a corner whose decision is within this margin is refined
    refine_labels: List[int]           # label values that get a second, centred pass
    refine_spacing_factor: float = 0.5
    tile_step: float = 0.5
    stitching: str = "nearest"         # 'nearest' tile centre or 'gaussian' blend
    seed_from_aux: bool = False


# contour descriptors (preprocessing/contours.py) and the values each gives a point
DESCRIPTOR_CHANNELS = {"gradient": 48, "intensity": 1, "none": 0}


@dataclass
class PointCloudPlan:
    """A point-cloud encoder's input (seed 002): 3D Canny contours of the preprocessed case, with a
    descriptor per contour point (preprocessing/contours.py).  Thresholds are in the preprocessed
    image's normalised units; ``thresholds_note`` says what they are in raw intensities (HU for CT)."""
    canny_variance_mm2: float
    canny_lower: float
    canny_upper: float
    descriptor: str = "gradient"       # 'gradient' (48 values) | 'intensity' (1) | 'none'
    stored_points: int = 200_000       # per case, subsampled beyond (the loader draws from these)
    affine_sigma: float = 0.1          # training: cloud and queries move by one affine, I + N(0, sigma) ...
    shift_sigma: float = 0.1           # ... plus a shift N(0, sigma) x the case's largest extent
    augment_intensities: bool = False  # training: extract each step's cloud from the intensity-augmented case
    thresholds_note: str = ""


@dataclass
class MemoryEstimate:
    budget_gb: float
    estimated_peak_gb: float
    model_parameters: int
    notes: str = ""


@dataclass
class ConfigurationPlan:
    name: str
    spacing: List[float]
    median_shape: List[float]
    patch_size: List[int]
    patch_size_mm: List[float]
    batch_size: int
    normalization: List[ChannelNormalization]
    resampling: ResamplingPlan
    sampling: SamplingPlan
    augmentation: AugmentationPlan
    training: TrainingPlan
    architecture: ArchitecturePlan
    mise: MisePlan
    memory: MemoryEstimate
    # configurations with the same spacing, normalisation and resampling share one preprocessed
    # copy, named by this (nnU-Net's data identifier); empty in plans from before it existed
    data_identifier: str = ""
    point_cloud: Optional[PointCloudPlan] = None      # for an architecture that reads point clouds

    def data_folder_name(self, plans_name: str) -> str:
        return self.data_identifier or f"{plans_name}_{self.name}"

    def point_cloud_folder_name(self, plans_name: str) -> str:
        """Beside the data folder: the clouds belong to one plan's configuration, the images to several."""
        return f"{plans_name}_{self.name}_point_clouds"

    def point_cloud_key(self) -> str:
        """Changes whenever the clouds would differ: their images or their extraction settings."""
        relevant = {"images": self.preprocessing_key(), "point_cloud": to_dict(self.point_cloud)}
        return hashlib.sha1(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]

    def preprocessing_key(self) -> str:
        """Changes whenever preprocessed data would differ, so stale cases are redone."""
        relevant = {k: to_dict(getattr(self, k)) for k in ("spacing", "normalization", "resampling")}
        relevant["donut"] = [self.sampling.donut_labels, self.sampling.donut_margin_mm]
        return hashlib.sha1(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class Plans(JsonDataclass):
    dataset_name: str
    plans_name: str
    planner: str
    gpu_memory_target_gb: float
    has_regions: bool
    output_names: List[str]
    label_values: List[int]
    configurations: Dict[str, ConfigurationPlan]
    notes: List[str] = field(default_factory=list)
    recommended_configuration: str = ""
    recommendation_reason: str = ""

    def data_folders(self) -> Dict[str, List[str]]:
        """Preprocessed folder name -> the configurations that read it."""
        folders: Dict[str, List[str]] = {}
        for name, config in self.configurations.items():
            folders.setdefault(config.data_folder_name(self.plans_name), []).append(name)
        return folders

    def configuration(self, name: str) -> ConfigurationPlan:
        if name not in self.configurations:
            raise NnoccError(f"plans {self.plans_name}: no configuration {name!r} "
                             f"(available: {', '.join(self.configurations)})")
        return self.configurations[name]
