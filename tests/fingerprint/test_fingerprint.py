import numpy as np
import pytest

from nnocc.fingerprint.fingerprint import DatasetFingerprint, extract_fingerprint
from nnocc.fingerprint.structures import measure_structure
from nnocc.io.images import ImageGeometry, write_image, write_segmentation
from nnocc.io.raw_dataset import RawDataset
from nnocc.utils.json_io import save_json


def sphere(shape, spacing, centre_mm, radius_mm):
    grid = np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, spacing)], indexing="ij")
    return sum((g - c) ** 2 for g, c in zip(grid, centre_mm)) <= radius_mm ** 2


def test_sphere_measurements_at_anisotropic_spacing():
    spacing = (2.0, 0.5, 0.5)
    mask = sphere((40, 120, 120), spacing, (40, 30, 30), 12.0) | sphere((40, 120, 120), spacing, (40, 30, 52), 4.0)
    m = measure_structure(mask, spacing)
    big, small = 4 / 3 * np.pi * 12 ** 3, 4 / 3 * np.pi * 4 ** 3
    assert len(m.component_volumes_mm3) == 2
    assert sorted(m.component_volumes_mm3)[1] == pytest.approx(big, rel=0.03)
    assert sorted(m.component_volumes_mm3)[0] == pytest.approx(small, rel=0.1)
    assert m.surface_area_mm2 == pytest.approx(4 * np.pi * (12 ** 2 + 4 ** 2), rel=0.06)
    assert m.extent_mm[1] == pytest.approx(24, abs=1.0)


def _write_phantom_dataset(folder, n_cases):
    geometry = ImageGeometry([20, 40, 40], [2.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0, 0, 0, 1, 0, 0, 0, 1])
    for i in range(n_cases):
        labels = sphere((20, 40, 40), (2.0, 1.0, 1.0), (20, 20, 20), 8.0).astype(np.uint8)
        if i == 0:
            labels[sphere((20, 40, 40), (2.0, 1.0, 1.0), (20, 20, 34), 3.0)] = 2
        image = np.where(labels > 0, 100.0 + 10 * i, -1000.0).astype(np.float32)
        write_image(image, geometry, folder / "imagesTr" / f"c{i}_0000.nii.gz")
        write_segmentation(labels, geometry, folder / "labelsTr" / f"c{i}.nii.gz")
    save_json({"channel_names": {"0": "CT"}, "labels": {"background": 0, "organ": 1, "lesion": 2},
               "numTraining": n_cases, "file_ending": ".nii.gz"}, folder / "dataset.json")


def test_fingerprint_of_phantom_dataset_round_trips(tmp_path):
    folder = tmp_path / "Dataset009_Phantom"
    _write_phantom_dataset(folder, 3)
    fp = extract_fingerprint(RawDataset(folder), num_processes=1)
    assert [c.name for c in fp.cases] == ["c0", "c1", "c2"]
    assert fp.median_spacing == [2.0, 1.0, 1.0]
    ct = fp.intensities["CT"]
    assert 100 <= ct.min and ct.max <= 120 and ct.percentile_99_5 <= 120
    lesion = fp.structure("lesion")
    assert lesion.cases_present == 1 and lesion.fraction_of_cases == pytest.approx(1 / 3)
    assert lesion.smallest_component_mm == pytest.approx(6.0, rel=0.25)
    organ = fp.structure("organ")
    assert organ.fraction_of_cases == 1.0 and organ.components_per_case_median == 1
    fp.save(tmp_path / "fp.json")
    assert DatasetFingerprint.load(tmp_path / "fp.json") == fp


def test_single_voxel_structure_is_measured():
    mask = np.zeros((5, 5, 5), bool)
    mask[2, 2, 2] = True
    m = measure_structure(mask, (1.0, 1.0, 1.0))
    assert m.voxel_count == 1 and 0 < m.surface_area_mm2 < 6
