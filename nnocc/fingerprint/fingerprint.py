"""What a dataset is: spacings, shapes, intensities and structure sizes (``dataset_fingerprint.json``)."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Dict, List, Sequence, Tuple

import numpy as np

from nnocc.fingerprint.cropping import crop_to_nonzero
from nnocc.fingerprint.structures import StructureMeasurement, equivalent_diameter, measure_structure
from nnocc.io.dataset_json import DatasetDescription
from nnocc.io.raw_dataset import RawCase, RawDataset, load_case, load_cases_checked
from nnocc.utils.serialization import JsonDataclass

logger = logging.getLogger(__name__)
SAMPLES_PER_CASE = 10000


@dataclass
class CaseFingerprint:
    name: str
    spacing: List[float]
    shape: List[int]
    cropped_shape: List[int]


@dataclass
class IntensityStatistics:
    """Foreground (labelled voxels) intensities of one channel, pooled over cases."""
    mean: float
    std: float
    median: float
    percentile_00_5: float
    percentile_99_5: float
    min: float
    max: float


@dataclass
class StructureStatistics:
    name: str
    kind: str                        # 'label' or 'region'
    label_values: List[int]
    cases_present: int
    fraction_of_cases: float
    voxel_count_median: float
    volume_mm3_median: float
    volume_mm3_min: float
    volume_mm3_max: float
    components_per_case_median: float
    smallest_component_mm: float     # equivalent diameter of the smallest component over all cases
    component_diameter_p05_mm: float  # robust version (5th percentile), used for planning
    extent_mm_median: List[float]
    surface_area_mm2_median: float


@dataclass
class DatasetFingerprint(JsonDataclass):
    dataset_name: str
    channel_names: List[str]
    cases: List[CaseFingerprint]
    intensities: Dict[str, IntensityStatistics]
    structures: List[StructureStatistics]
    median_spacing: List[float] = field(default_factory=list)
    median_cropped_shape: List[float] = field(default_factory=list)

    @property
    def spacings(self) -> np.ndarray:
        return np.array([c.spacing for c in self.cases], dtype=np.float64)

    @property
    def cropped_shapes(self) -> np.ndarray:
        return np.array([c.cropped_shape for c in self.cases], dtype=np.float64)

    def structure(self, name: str) -> StructureStatistics:
        for s in self.structures:
            if s.name == name:
                return s
        raise KeyError(name)

    def labels(self) -> List[StructureStatistics]:
        return [s for s in self.structures if s.kind == "label"]


@dataclass
class _CaseResult:
    case: CaseFingerprint
    samples: np.ndarray                               # (C, n) foreground intensities
    measurements: Dict[str, StructureMeasurement]


def _median(values: Sequence[float]) -> float:
    return float(np.median(values)) if len(values) else float("nan")


def _structure_masks(label: np.ndarray, description: DatasetDescription) -> Dict[str, Tuple[str, Tuple[int, ...], np.ndarray]]:
    by_value = {v: k for k, v in description.labels.items() if not isinstance(v, list)}
    out: Dict[str, Tuple[str, Tuple[int, ...], np.ndarray]] = {}
    for value in description.foreground_labels:
        out[f"label_{value}"] = (by_value.get(value, f"label_{value}"), (value,), label == value)
    if description.has_regions:
        for name, values in description.regions:
            out[f"region_{name}"] = (name, values, np.isin(label, values))
    return out


def fingerprint_case(job: Tuple[RawCase, DatasetDescription, int]) -> _CaseResult:
    case, description, seed = job
    loaded = load_case(case, description)
    assert loaded.label is not None  # training cases are labelled
    image, label, bbox = crop_to_nonzero(loaded.image, loaded.label)
    assert label is not None
    spacing = loaded.geometry.spacing
    foreground = label > 0
    rng = np.random.default_rng(seed)
    values = image[:, foreground]
    if values.shape[1] > SAMPLES_PER_CASE:
        values = values[:, rng.choice(values.shape[1], SAMPLES_PER_CASE, replace=False)]
    measurements = {key: measure_structure(mask, spacing)
                    for key, (_, _, mask) in _structure_masks(label, description).items()}
    return _CaseResult(CaseFingerprint(case.name, list(map(float, spacing)), list(loaded.geometry.shape),
                                       list(label.shape)), values.astype(np.float32), measurements)


def _intensity_statistics(samples: np.ndarray) -> IntensityStatistics:
    if samples.size == 0:
        return IntensityStatistics(*([float("nan")] * 7))
    p = np.percentile(samples, [50.0, 0.5, 99.5])
    return IntensityStatistics(mean=float(samples.mean()), std=float(samples.std()), median=float(p[0]),
                               percentile_00_5=float(p[1]), percentile_99_5=float(p[2]),
                               min=float(samples.min()), max=float(samples.max()))


def _aggregate_structure(key: str, name: str, values: Tuple[int, ...], per_case: List[StructureMeasurement]
                         ) -> StructureStatistics:
    present = [m for m in per_case if m.voxel_count > 0]
    components = [v for m in present for v in m.component_volumes_mm3]
    diameters = [equivalent_diameter(v) for v in components] or [float("nan")]
    return StructureStatistics(
        name=name, kind=key.split("_")[0], label_values=list(values), cases_present=len(present),
        fraction_of_cases=len(present) / max(len(per_case), 1),
        voxel_count_median=_median([m.voxel_count for m in present]),
        volume_mm3_median=_median([m.volume_mm3 for m in present]),
        volume_mm3_min=float(min((m.volume_mm3 for m in present), default=float("nan"))),
        volume_mm3_max=float(max((m.volume_mm3 for m in present), default=float("nan"))),
        components_per_case_median=_median([len(m.component_volumes_mm3) for m in present]),
        smallest_component_mm=float(np.min(diameters)),
        component_diameter_p05_mm=float(np.percentile(diameters, 5)),
        extent_mm_median=[_median([m.extent_mm[i] for m in present]) for i in range(3)],
        surface_area_mm2_median=_median([m.surface_area_mm2 for m in present]))


def extract_fingerprint(dataset: RawDataset, num_processes: int = 1, seed: int = 1234) -> DatasetFingerprint:
    """Read every training case once (checking it) and summarise; raises DatasetProblems on bad data."""
    cases = dataset.training_cases()
    description = dataset.description
    jobs = [(case, description, seed + i) for i, case in enumerate(cases)]
    results: List[_CaseResult] = load_cases_checked(fingerprint_case, jobs, [c.name for c in cases],
                                                    num_processes, desc="fingerprint")
    samples = np.concatenate([r.samples for r in results], axis=1)
    intensities = {name: _intensity_statistics(samples[c]) for c, name in enumerate(description.channel_list)}
    example_masks = _structure_masks(np.zeros((1, 1, 1), dtype=np.uint8), description)
    structures = [_aggregate_structure(key, name, values, [r.measurements[key] for r in results])
                  for key, (name, values, _) in example_masks.items()]
    fp = DatasetFingerprint(dataset_name=dataset.name, channel_names=description.channel_list,
                            cases=[r.case for r in results], intensities=intensities, structures=structures)
    fp.median_spacing = np.median(fp.spacings, axis=0).tolist()
    fp.median_cropped_shape = np.median(fp.cropped_shapes, axis=0).tolist()
    return fp
