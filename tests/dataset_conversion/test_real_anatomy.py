"""CT painted around given label maps: shapes kept, geometry consistent, tissue HU where they belong."""
import json

import numpy as np
import pytest
import SimpleITK as sitk

from nnocc.dataset_conversion import anatomy as A
from nnocc.dataset_conversion.real_anatomy import make_real_anatomy_dataset, paint_native_cases
from nnocc.io.images import read_image
from nnocc.utils.errors import NnoccError

# KiTS23 stores its volumes slice-first: the first index axis runs cranio-caudally
KITS_DIRECTION = (0.0, 0.0, 1.0, 0.0, 1.0, 0.0, -1.0, 0.0, 0.0)


def kits_like_labels(seed: int) -> sitk.Image:
    """Two kidneys (one with a tumour, one with a cyst) in a 40 x 96 x 96 scan of 4 x 3.2 x 3.2 mm."""
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(np.arange(40) * 4.0, np.arange(96) * 3.2, np.arange(96) * 3.2, indexing="ij")
    labels = np.zeros(z.shape, np.uint8)
    for side in (-1, 1):
        cx, cy, cz = 153 + side * 70 + rng.uniform(-5, 5), 190, 80
        labels[((x - cx) / 28) ** 2 + ((y - cy) / 22) ** 2 + ((z - cz) / 50) ** 2 <= 1] = A.LABEL_KIDNEY
    labels[((x - 83) ** 2 + (y - 172) ** 2 + (z - 80) ** 2) <= 15 ** 2] = A.LABEL_TUMOUR
    labels[((x - 240) ** 2 + (y - 190) ** 2 + (z - 100) ** 2) <= 6 ** 2] = A.LABEL_CYST
    # stored slice-first as KiTS23 does: index axes (i, j, k) = (superior-inferior, y, x)
    image = sitk.GetImageFromArray(np.ascontiguousarray(labels.transpose(2, 1, 0)))
    image.SetSpacing((4.0, 3.2, 3.2))
    image.SetDirection(KITS_DIRECTION)
    return image


@pytest.fixture(scope="module")
def kits_labels(tmp_path_factory):
    root = tmp_path_factory.mktemp("kits23") / "dataset"
    for i in range(3):
        (root / f"case_{i:05d}").mkdir(parents=True)
        sitk.WriteImage(kits_like_labels(i), str(root / f"case_{i:05d}" / "segmentation.nii.gz"))
    return root.parent


def test_painted_dataset_keeps_the_shapes_and_puts_tissue_hu_where_it_belongs(kits_labels, tmp_path):
    folder = make_real_anatomy_dataset(kits_labels, tmp_path, 992, num_training=2, num_test=1,
                                       spacing_zyx=(4.0, 2.0, 2.0), margin_mm=10)
    meta = json.loads((folder / "dataset.json").read_text())
    assert meta["numTraining"] == 2 and meta["source_cases"] == ["case_00000", "case_00001", "case_00002"]
    assert meta["labels"] == {"background": 0, "kidney": 1, "tumor": 2, "cyst": 3}
    image, geometry = read_image(folder / "imagesTs" / "case_00002_0000.nii.gz")
    labels, label_geometry = read_image(folder / "labelsTs" / "case_00002.nii.gz")
    assert not geometry.differences(label_geometry) and geometry.spacing == pytest.approx([4.0, 2.0, 2.0])
    source = sitk.GetArrayFromImage(kits_like_labels(2))
    for label, voxel_mm3 in ((A.LABEL_KIDNEY, 16.0), (A.LABEL_TUMOUR, 16.0)):
        painted_volume = (labels == label).sum() * voxel_mm3
        source_volume = (source == label).sum() * 4.0 * 3.2 * 3.2
        assert painted_volume == pytest.approx(source_volume, rel=0.1), label
    kidney, cyst = np.median(image[labels == A.LABEL_KIDNEY]), np.median(image[labels == A.LABEL_CYST])
    assert 90 < kidney < 200 and -10 < cyst < 60     # enhancing parenchyma, water-like cyst
    assert np.median(image[labels == 0]) < kidney
    assert geometry.shape[2] > geometry.shape[1]     # x (left-right) is the long axis of a kidney crop


def test_native_cases_keep_the_scans_resolution_and_bad_labels_are_named(kits_labels, tmp_path):
    images, labels = tmp_path / "imagesTs", tmp_path / "labelsTs"
    paint_native_cases(kits_labels, ["case_00001"], images, labels)
    image, geometry = read_image(images / "case_00001_0000.nii.gz")
    assert sorted(geometry.shape) == [40, 96, 96] and sorted(geometry.spacing) == pytest.approx([3.2, 3.2, 4.0])
    assert image.dtype == np.int16 and image.min() >= -1024
    bad = tmp_path / "bad" / "dataset" / "case_00009"
    bad.mkdir(parents=True)
    sitk.WriteImage(sitk.GetImageFromArray(np.full((4, 8, 8), 7, np.uint8)), str(bad / "segmentation.nii.gz"))
    with pytest.raises(NnoccError, match=r"case_00009/segmentation.nii.gz: expected KiTS labels 0-3"):
        paint_native_cases(tmp_path / "bad", ["case_00009"], images, labels)
    (tmp_path / "bad" / "dataset" / "case_00010").mkdir()
    (tmp_path / "bad" / "dataset" / "case_00010" / "segmentation.nii.gz").write_bytes(b"broken")
    with pytest.raises(NnoccError, match=r"could not paint 2 case\(s\): case_00009: .*; case_00010: "):
        paint_native_cases(tmp_path / "bad", ["case_00009", "case_00010"], images, labels)
    with pytest.raises(NnoccError, match="no label map for case_00400"):
        paint_native_cases(kits_labels, ["case_00400"], images, labels)
