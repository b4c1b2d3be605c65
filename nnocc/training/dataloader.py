"""Training batches: patches, query points and their targets, built in background workers.

One sample = a patch centre from the PatchSampler, a random coordinate field (augmentation.py),
the image patch read through it, query points and aux-grid points labelled from the
original-resolution labels (points.py), then intensity augmentation.  A point-cloud encoder
(seed 002) reads instead a fresh draw from its case's contour cloud, which moves with the labelled
query points by one random affine (the coordinate field is then the plain crop).  Workers are
batchgenerators' MultiThreadedAugmenter processes (the command line takes their number from
``nnocc_n_proc_DA``, as nnU-Net does).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np
from batchgenerators.dataloading.data_loader import SlimDataLoaderBase
from batchgenerators.dataloading.multi_threaded_augmenter import MultiThreadedAugmenter
from batchgenerators.dataloading.single_threaded_augmenter import SingleThreadedAugmenter

from nnocc.architectures.registry import architecture_facts
from nnocc.coordinates import cell_centres, index_to_patch, patch_start
from nnocc.io.dataset_json import DatasetDescription
from nnocc.planning.plans import ConfigurationPlan
from nnocc.preprocessing.contours import extract_point_cloud
from nnocc.preprocessing.point_clouds import load_point_cloud
from nnocc.preprocessing.storage import PreprocessedCase, load_preprocessed_case
from nnocc.training.augmentation import (
    apply_affine,
    augment_intensities,
    random_joint_affine,
    random_spatial_transform,
    sample_volume,
)
from nnocc.training.points import (
    QUERY_SAMPLERS,
    boundary_band,
    label_points,
    original_indices,
    read_original_labels,
    sample_class_balanced_points,
    sample_query_points,
    soft_label_points,
)
from nnocc.training.sampling import PatchSampler, SamplingInfo, load_proposed_centres


@dataclass
class BatchSettings:
    batch_size: int
    augment: bool
    seed: int


class OccupancyDataLoader(SlimDataLoaderBase):
    def __init__(self, folder: Path, cases: Sequence[str], config: ConfigurationPlan,
                 description: DatasetDescription, settings: BatchSettings, cloud_folder: Optional[Path] = None):
        super().__init__(None, settings.batch_size, None)
        self.folder = Path(folder)
        self.cloud_folder = cloud_folder
        self.config = config
        self.description = description
        self.settings = settings
        self.patch_size = list(config.patch_size)
        facts = architecture_facts(config.architecture.name, config.architecture.kwargs, self.patch_size)
        # targets for the auxiliary voxel prediction, at its grid's cell centres (none without one)
        self.grid_shape = facts.aux_grid_shape
        self.grid_points = cell_centres(self.grid_shape).reshape(-1, 3) if self.grid_shape else None
        self.cloud_size = facts.cloud_size
        if config.sampling.point_sampler not in QUERY_SAMPLERS:
            raise ValueError(f"{config.name}: sampling.point_sampler {config.sampling.point_sampler!r} is not one of "
                             f"{', '.join(QUERY_SAMPLERS)}")
        if self.cloud_size and (cloud_folder is None or config.point_cloud is None):
            raise ValueError(f"{config.name} reads point clouds: it needs their folder and the plan's settings")
        self._cases: Dict[str, PreprocessedCase] = {}
        infos = {}
        proposed = self._proposed_centres(cases)
        for name in cases:
            case = self._case(name)
            locations = case.locations | ({"proposed": proposed[name]} if proposed else {})
            infos[name] = SamplingInfo(case.properties.preprocessed_shape, locations)
        self._infos = infos
        self.set_thread_id(0)

    def set_thread_id(self, thread_id: int) -> None:
        self.thread_id = thread_id
        self.rng = np.random.default_rng([self.settings.seed, thread_id])
        self.sampler = PatchSampler(self._infos, self.config.sampling, self.rng, self.patch_size)
        self._cases = {}  # blosc2 handles are reopened in each worker process

    def _proposed_centres(self, cases: Sequence[str]) -> Dict[str, np.ndarray]:
        sampling = self.config.sampling
        if sampling.proposed_share <= 0:
            return {}
        if not sampling.proposed_centres:
            raise ValueError(f"{self.config.name}: sampling.proposed_share without sampling.proposed_centres")
        return load_proposed_centres(self.folder, sampling.proposed_centres, cases)

    def _case(self, name: str) -> PreprocessedCase:
        if name not in self._cases:
            self._cases[name] = load_preprocessed_case(self.folder, name)
        return self._cases[name]

    def generate_train_batch(self) -> Dict[str, np.ndarray]:
        samples = [self.make_sample() for _ in range(self.batch_size)]
        return {key: np.stack([s[key] for s in samples]) for key in samples[0]}

    def make_sample(self) -> Dict[str, np.ndarray]:
        choice = self.sampler.sample()
        case = self._case(choice.case)
        props = case.properties
        augmentation = self.config.augmentation if self.settings.augment else None
        # a point cloud moves with its labelled queries (below): its field is the plain crop
        field_augmentation = None if self.cloud_size else augmentation
        transform = random_spatial_transform(self.patch_size, choice.centre, props.preprocessed_spacing,
                                             field_augmentation, self.rng)
        points = self._query_points(case, transform)
        sample = {"points": points,
                  "placement": patch_placement(choice.centre, self.patch_size, props.preprocessed_shape, transform.flips)}
        sample.update(self._targets(case, transform, points, "point"))
        if self.cloud_size:
            sample["data"] = self._cloud_input(case, choice.centre, sample, self.settings.augment)
            return sample
        image = sample_volume(case.image, transform, order=3, fill=0.0)
        sample["data"] = augment_intensities(image, augmentation, self.rng) if augmentation else image
        if self.grid_points is not None:
            sample.update(self._targets(case, transform, self.grid_points, "grid", soft=False))
            sample["grid_targets"] = self._grid_layout(sample["grid_targets"])
        return sample

    def _query_points(self, case: PreprocessedCase, transform) -> np.ndarray:
        sampling = self.config.sampling
        balanced = sampling.point_sampler == "class_balanced"
        if sampling.boundary_point_share <= 0 and not balanced:
            return sample_query_points(sampling.points_per_patch, 0.0, None, self.rng)
        labels = sample_volume(case.seg, transform, order=0, fill=0.0)
        band = boundary_band(labels, sampling.boundary_band_mm, case.properties.preprocessed_spacing)
        if balanced:
            return sample_class_balanced_points(sampling.points_per_patch, labels, band,
                                                sampling.boundary_point_share, self.rng, sampling.background_point_weight)
        return sample_query_points(sampling.points_per_patch, sampling.boundary_point_share, band, self.rng)

    def _cloud_input(self, case: PreprocessedCase, centre: np.ndarray, sample: Dict[str, np.ndarray],
                     augment: bool) -> np.ndarray:
        """A draw of the case's contour cloud (with replacement, as the paper) in patch coordinates;
        with augmentation, it and the sample's query points move by one random affine, and with the
        plan's ``augment_intensities`` the cloud is extracted afresh from the intensity-augmented case."""
        settings = self.config.point_cloud
        assert self.cloud_folder is not None and self.cloud_size is not None and settings is not None
        if augment and settings.augment_intensities:      # costly: an extraction (Canny, descriptors) per step
            image = augment_intensities(case.image[...], self.config.augmentation, self.rng)
            cloud = extract_point_cloud(image, case.properties.preprocessed_spacing, settings, case.properties.name,
                                        seed=int(self.rng.integers(2 ** 31)))
        else:
            cloud = load_point_cloud(self.cloud_folder, case.properties.name)
        rows = np.array(cloud[np.sort(self.rng.integers(0, len(cloud), self.cloud_size))], dtype=np.float32)
        rows[:, :3] = index_to_patch(rows[:, :3], patch_start(centre, self.patch_size).tolist(), self.patch_size)
        if augment:
            affine = random_joint_affine(self.config.patch_size_mm, settings.affine_sigma, settings.shift_sigma, self.rng)
            rows[:, :3] = apply_affine(affine, rows[:, :3])
            sample["points"] = apply_affine(affine, sample["points"])
        return rows

    def _targets(self, case: PreprocessedCase, transform, points: np.ndarray, prefix: str,
                 soft: Optional[bool] = None) -> Dict[str, np.ndarray]:
        props = case.properties
        indices = original_indices(points, self.patch_size, transform, props.preprocessed_shape, props.cropped_shape)
        block, local = read_original_labels(case.seg_original, indices)
        labels = label_points(block, local)
        targets = self.description.label_map_to_targets(labels)
        out = {f"{prefix}_targets": targets.astype(np.float32 if self.description.has_regions else np.int64)}
        if soft if soft is not None else self.config.sampling.soft_point_targets:
            probabilities = soft_label_points(block, local, self.description.label_values)
            if self.description.has_regions:
                members = [[self.description.label_values.index(v) for v in values]
                           for _, values in self.description.regions]
                probabilities = np.stack([probabilities[:, m].sum(axis=1) for m in members], axis=1)
            out[f"{prefix}_targets"] = probabilities.astype(np.float32)
        return out

    def _grid_layout(self, targets: np.ndarray) -> np.ndarray:
        """(G, [R]) per grid point -> (G0, G1, G2) or (R, G0, G1, G2)."""
        assert self.grid_shape is not None
        if targets.ndim == 1:
            return targets.reshape(self.grid_shape)
        return np.moveaxis(targets.reshape(*self.grid_shape, -1), -1, 0)


def make_loader(folder: Path, cases: Sequence[str], config: ConfigurationPlan, description: DatasetDescription,
                settings: BatchSettings, num_workers: int, cloud_folder: Optional[Path] = None):
    """Single-threaded with 0 workers (tests, debugging), else batchgenerators' background workers."""
    loader = OccupancyDataLoader(folder, cases, config, description, settings, cloud_folder)
    if num_workers <= 0:
        return SingleThreadedAugmenter(loader, None)
    seeds = [settings.seed * 1000 + i for i in range(num_workers)]
    return MultiThreadedAugmenter(loader, None, num_workers, num_cached_per_queue=2, seeds=seeds, pin_memory=False)


def patch_placement(centre: np.ndarray, patch_size: Sequence[int], case_shape: Sequence[int],
                    flips: Sequence[int] = ()) -> np.ndarray:
    """Placement's row for a training patch: its first voxel, its size, the case's shape and, per axis,
    -1 where the patch is mirrored.  Rotation and scaling are not in it: a position in the case read
    from it is right at the patch's centre and off by the turn and zoom elsewhere."""
    direction = np.ones(3)
    direction[list(flips)] = -1
    return np.concatenate([patch_start(centre, patch_size), patch_size, case_shape, direction]).astype(np.float32)
