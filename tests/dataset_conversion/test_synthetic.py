import numpy as np

from nnocc.dataset_conversion.synthetic import CaseSpec, generate_dataset, make_case
from nnocc.io.dataset_json import load_dataset_json
from nnocc.io.raw_dataset import RawDataset


def test_same_seed_same_case_and_different_seeds_differ():
    a = make_case(CaseSpec("a", 7, (24, 64, 64), "ct"))
    b = make_case(CaseSpec("a", 7, (24, 64, 64), "ct"))
    c = make_case(CaseSpec("a", 8, (24, 64, 64), "ct"))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert a[2] == b[2] and a[2] != c[2]


def test_ct_case_is_kits_like():
    image, labels, geometry = make_case(CaseSpec("a", 3, (40, 120, 120), "ct"))
    assert set(np.unique(labels)) == {0, 1, 2, 3}
    spacing = geometry.spacing
    assert spacing[0] != spacing[1] and 2.5 <= spacing[0] <= 5.0
    hu = image[0]
    assert -1030 < np.median(hu[0]) < -900  # air at the image corner slice
    assert 120 < np.median(hu[labels == 1]) < 220  # enhancing kidney
    assert np.median(hu[labels == 3]) < np.median(hu[labels == 2])  # cysts darker than tumours
    cyst = (labels == 3).sum() / (labels == 1).sum()
    assert cyst < 0.1  # the small class is small


def test_mri_case_has_two_positive_channels():
    image, labels, _ = make_case(CaseSpec("a", 3, (24, 64, 64), "mri"))
    assert image.shape[0] == 2 and image.min() >= 0
    # fluid (cyst) bright on the T2-like channel
    assert np.median(image[1][labels == 3]) > np.median(image[1][labels == 1])


def test_generated_dataset_is_valid_nnunet_raw_format(tmp_path):
    folder = generate_dataset(tmp_path, 7, "Tiny", num_training=3, num_test=1, shape=(16, 32, 32), seed=1)
    assert folder.name == "Dataset007_Tiny"
    dataset = RawDataset(folder)
    assert [c.name for c in dataset.training_cases()] == ["case_0000", "case_0001", "case_0002"]
    assert [c.name for c in dataset.test_cases()] == ["case_0003"]
    assert (folder / "labelsTs" / "case_0003.nii.gz").is_file()
    spacings = {tuple(np.round(make_case(CaseSpec("x", s, (16, 32, 32), "ct"))[2].spacing, 3)) for s in range(3)}
    assert len(spacings) == 3


def test_regions_variant_declares_kits_regions(tmp_path):
    folder = generate_dataset(tmp_path, 8, "R", num_training=1, num_test=0, shape=(16, 32, 32), regions=True)
    d = load_dataset_json(folder / "dataset.json")
    assert d.has_regions and d.regions_class_order == [1, 3, 2]
