"""Predicting cases with a trained configuration, from the command line or from Python.

    predictor = Predictor.from_model_folder("nnocc_results/Dataset023_KiTS2023/nnoccTrainer__nnoccPlans__3d_occ")
    labels = predictor.predict_array(ct, spacing=(3.0, 0.8, 0.8)).labels
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Union

import numpy as np
import torch

from nnocc.architectures.base import OccupancyArchitecture
from nnocc.architectures.registry import build_model
from nnocc.inference.export import CasePrediction
from nnocc.inference.field import VolumeField
from nnocc.inference.mise import DEFAULT_CHILDREN, Decision
from nnocc.inference.output_grid import OutputGrid, output_geometry
from nnocc.inference.query_batch import points_per_batch, release_memory_between_calls
from nnocc.inference.tiling import Tiling
from nnocc.inference.volume import VolumeSettings, predict_volume
from nnocc.io.dataset_json import DatasetDescription, load_dataset_json
from nnocc.io.images import ImageGeometry, read_channels, write_segmentation
from nnocc.planning.plans import ConfigurationPlan, Plans
from nnocc.preprocessing.contours import extract_point_cloud
from nnocc.preprocessing.point_clouds import check_point_cloud_plan
from nnocc.preprocessing.preprocessor import PreprocessedImage, preprocess_image
from nnocc.utils.checkpoints import load_checkpoint
from nnocc.utils.errors import NnoccError
from nnocc.utils.memory import memory_peak_mb

logger = logging.getLogger(__name__)
IDENTITY = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]


@dataclass
class InferenceSettings:
    tta: bool = True
    output_spacing: Optional[List[float]] = None
    keep_probabilities: bool = False
    max_points_per_batch: Optional[int] = None   # None: what fits the device's working set (query_batch)
    stitching: Optional[str] = None           # None: the plan's choice
    seed_from_aux: Optional[bool] = None      # None: the plan's choice
    aux_hint: bool = True
    hint_factor: float = 1.0                  # MISE starts this many times coarser than the plan's lattice, guarded by the hint
    mise_children: str = DEFAULT_CHILDREN     # which children of an active MISE cell go on (mise.CHILDREN)
    refine: bool = True
    dense: bool = False                       # evaluate every output voxel (reference for MISE)
    uncertainty_margin: Optional[float] = None
    coarse_spacing_mm: Optional[float] = None  # None: the plan's (no coarser than the smallest structure)
    device: str = "cpu"
    tile_cache_mb: float = 2048.0             # encoded tiles kept; Gaussian stitching wants eight tiles' worth


def available_folds(model_folder: Path, checkpoint: str) -> List[str]:
    return sorted(p.name[len("fold_"):] for p in model_folder.glob("fold_*") if (p / checkpoint).is_file())


def _load_network(path: Path, config: ConfigurationPlan, device: torch.device) -> OccupancyArchitecture:
    payload = load_checkpoint(path, map_location=str(device), mmap=True)
    network = build_model(config.architecture.name, config.architecture.kwargs)
    try:
        network.load_state_dict(payload["network_weights"])
    except (KeyError, RuntimeError) as e:
        raise NnoccError(f"{path}: weights do not fit the plan's architecture ({str(e).splitlines()[0][:160]})") from None
    return network.to(device).eval()


class Predictor:
    def __init__(self, plans: Plans, configuration: str, description: DatasetDescription,
                 networks: Sequence[OccupancyArchitecture], settings: InferenceSettings, folds: Sequence[str] = ()):
        self.plans = plans
        self.config = plans.configuration(configuration)
        self.description = description
        self.networks = list(networks)
        self.settings = settings
        self.folds = list(folds)
        self.device = torch.device(settings.device)
        check_point_cloud_plan(self.config)

    @classmethod
    def from_model_folder(cls, model_folder: Union[str, Path], folds: Optional[Sequence[Union[int, str]]] = None,
                          checkpoint: str = "checkpoint_final.pth", settings: Optional[InferenceSettings] = None
                          ) -> "Predictor":
        model_folder = Path(model_folder)
        settings = settings or InferenceSettings()
        for required in ("plans.json", "dataset.json"):
            if not (model_folder / required).is_file():
                raise NnoccError(f"{model_folder / required}: missing; is {model_folder} a trained model folder?")
        plans = Plans.load(model_folder / "plans.json")
        configuration = model_folder.name.split("__")[-1]
        folds = [str(f) for f in folds] if folds else available_folds(model_folder, checkpoint)
        if not folds:
            raise NnoccError(f"{model_folder}: no fold_*/{checkpoint}; train a fold first or pass -chk")
        device = torch.device(settings.device)
        networks = [_load_network(model_folder / f"fold_{f}" / checkpoint, plans.configuration(configuration), device)
                    for f in folds]
        return cls(plans, configuration, load_dataset_json(model_folder / "dataset.json"), networks, settings, folds)

    # ---- decisions ----------------------------------------------------------------------
    def decision(self) -> Decision:
        mise = self.config.mise
        margin = self.settings.uncertainty_margin if self.settings.uncertainty_margin is not None else mise.uncertainty_margin
        return Decision(self.description.has_regions, mise.threshold, margin)

    def code_of_label(self, value: int) -> int:
        d = self.description
        if not d.has_regions:
            return d.label_values.index(value)
        return sum(1 << r for r, (_, values) in enumerate(d.regions) if value in values)

    def codes_to_labels(self, codes: np.ndarray) -> np.ndarray:
        d = self.description
        if not d.has_regions:
            return d.class_indices_to_labels(codes)
        masks = np.stack([(codes >> r) & 1 for r in range(len(d.regions))]).astype(bool)
        return d.regions_to_labels(masks)

    def coarse_spacing_mm(self) -> float:
        chosen = self.settings.coarse_spacing_mm
        return self.config.mise.coarse_spacing_mm if chosen is None else chosen

    def points_per_batch(self) -> int:
        if self.settings.max_points_per_batch:
            return self.settings.max_points_per_batch
        architecture = self.config.architecture
        return points_per_batch(architecture.name, architecture.kwargs, self.config.patch_size, self.device)

    def volume_settings(self) -> VolumeSettings:
        mise, s = self.config.mise, self.settings
        points = self.points_per_batch()
        return VolumeSettings(
            coarse_spacing_mm=0.0 if s.dense else self.coarse_spacing_mm(), decision=self.decision(),
            max_points_per_batch=points,
            release_memory=release_memory_between_calls(points, self.device),
            seed_from_aux=mise.seed_from_aux if s.seed_from_aux is None else s.seed_from_aux, aux_hint=s.aux_hint,
            hint_factor=s.hint_factor, children=s.mise_children,
            keep_probabilities=s.keep_probabilities,
            refine_codes=[self.code_of_label(v) for v in mise.refine_labels] if s.refine and not s.dense else [],
            refine_spacing_factor=mise.refine_spacing_factor)

    # ---- prediction ---------------------------------------------------------------------
    def preprocess(self, image: np.ndarray, geometry: ImageGeometry, name: str = "case",
                   overwrite_image: bool = False) -> PreprocessedImage:
        """The same preprocessing as in training; runs in worker processes for folders."""
        if image.ndim == 3:
            image = image[None]
        if image.shape[0] != self.description.num_channels:
            raise NnoccError(f"{name}: {image.shape[0]} channel(s) given, the model expects "
                             f"{self.description.num_channels} ({', '.join(self.description.channel_list)})")
        floats = image.astype(np.float32, copy=False)     # a converted copy is ours to overwrite
        return preprocess_image(floats, geometry, self.config, name, overwrite_image=overwrite_image or floats is not image)

    def predict_case(self, image: np.ndarray, geometry: ImageGeometry, name: str = "case") -> CasePrediction:
        """image (C, z, y, x) raw intensities on ``geometry`` -> labels on the output grid."""
        started = time.perf_counter()
        return self._predict_timed(self.preprocess(image, geometry, name), started)

    def _predict_timed(self, pre: PreprocessedImage, started: float) -> CasePrediction:
        prediction = self.predict_preprocessed(pre)
        prediction.stats["seconds_preprocess"] = time.perf_counter() - started - prediction.stats["seconds_total"]
        return prediction

    def predict_preprocessed(self, pre: PreprocessedImage, cloud: Optional[torch.Tensor] = None) -> CasePrediction:
        """``cloud``: the case's contour cloud (``point_cloud(pre)``) when already extracted."""
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        started = time.perf_counter()
        data = torch.from_numpy(pre.data).to(self.device)
        if cloud is None:
            cloud = self.point_cloud(pre)
        shape, patch = pre.properties.preprocessed_shape, self.config.patch_size
        if cloud is not None:       # a contour cloud covers the whole case, whatever the patch: one tile
            patch = [max(p, n) for p, n in zip(patch, shape)]
        tiling = Tiling.over(shape, patch, self.config.mise.tile_step)
        field = VolumeField(data, self.networks, tiling, self.description.has_regions,
                            self.config.augmentation.mirror_axes, self.settings.tta,
                            self.settings.stitching or self.config.mise.stitching,
                            cache_mb=self.settings.tile_cache_mb, cloud=cloud)
        grid = OutputGrid(output_geometry(pre.properties.geometry, self.settings.output_spacing), pre.properties)
        seconds_cloud = time.perf_counter() - started
        settings = self.volume_settings()
        result = predict_volume(field, grid, self.description.num_outputs, settings)
        labels = self.codes_to_labels(result.codes.cpu().numpy())
        probabilities = result.probabilities.cpu().numpy() if result.probabilities is not None else None
        total = time.perf_counter() - started
        stats = {"queries": result.queries, "dense_equivalent": result.dense_queries,
                 "query_fraction": result.queries / max(result.dense_queries, 1), "rounds": result.rounds,
                 "boxes": result.boxes, "refined_structures": result.refined_structures,
                 "aux_hint_lookups": result.hint_lookups,
                 "encoded_tiles": field.encoded_tiles, "members": field.num_members,
                 "points_per_batch": settings.max_points_per_batch,
                 "seconds_point_cloud": seconds_cloud, "seconds_encode": field.encode_seconds,
                 "seconds_mise": total - field.encode_seconds - seconds_cloud,
                 "seconds_total": total, "output_shape": list(grid.geometry.shape),
                 "peak_memory_mb": memory_peak_mb(self.device)}
        return CasePrediction(pre.properties.name, labels, grid.geometry, probabilities, stats)

    def point_cloud(self, pre: PreprocessedImage) -> Optional[torch.Tensor]:
        """The case's contour cloud for a point-cloud encoder (None for an image encoder): as many points
        as a training step draws, picked with a fixed seed, so a case always gives the same answer."""
        if self.config.point_cloud is None:
            return None
        rows = extract_point_cloud(pre.data, pre.properties.preprocessed_spacing, self.config.point_cloud,
                                   pre.properties.name)
        size = self.networks[0].cloud_size() or len(rows)
        pick = np.sort(np.random.default_rng(0).choice(len(rows), size, replace=len(rows) < size))
        return torch.from_numpy(rows[pick]).to(self.device)

    def predict_file(self, image_files: Union[str, Path, Sequence[Union[str, Path]]],
                     output_file: Optional[Union[str, Path]] = None) -> CasePrediction:
        """Predict one case from its channel file(s); with ``output_file`` also write the label map."""
        files = [image_files] if isinstance(image_files, (str, Path)) else list(image_files)
        started = time.perf_counter()
        image, geometry = read_channels(files)
        pre = self.preprocess(image, geometry, Path(files[0]).name.split("_0000")[0].split(".")[0], overwrite_image=True)
        del image       # the raw case is not needed while predicting (400 MB at KiTS23's resolution)
        prediction = self._predict_timed(pre, started)
        if output_file is not None:
            write_segmentation(prediction.labels, prediction.geometry, output_file)
        return prediction

    def predict_array(self, array: np.ndarray, spacing: Sequence[float], direction: Optional[Sequence[float]] = None,
                      origin: Optional[Sequence[float]] = None, name: str = "array") -> CasePrediction:
        """For programs that embed nnocc: ``array`` (z, y, x) or (C, z, y, x), spacing in array order."""
        shape = list(array.shape[-3:])
        geometry = ImageGeometry(shape, [float(s) for s in spacing], list(origin or [0.0, 0.0, 0.0]),
                                 list(direction or IDENTITY))
        return self.predict_case(np.asarray(array), geometry, name)
