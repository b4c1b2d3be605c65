import numpy as np
import pytest

from nnocc.io.dataset_json import parse_dataset_json
from nnocc.utils.errors import NnoccError

LABELS = {"channel_names": {"0": "CT"}, "labels": {"background": 0, "kidney": 1, "tumor": 2, "cyst": 3},
          "numTraining": 3, "file_ending": ".nii.gz"}
REGIONS = dict(LABELS, labels={"background": 0, "kidney_and_masses": [1, 2, 3], "masses": [2, 3], "tumor": 2},
               regions_class_order=[1, 3, 2])


def test_exclusive_labels():
    d = parse_dataset_json(LABELS, "dataset.json")
    assert not d.has_regions
    assert d.output_names == ["background", "kidney", "tumor", "cyst"]
    assert d.evaluation_classes() == [("kidney", (1,)), ("tumor", (2,)), ("cyst", (3,))]
    np.testing.assert_array_equal(d.label_map_to_targets(np.array([0, 3, 1])), [0, 3, 1])


def test_regions_reconstruct_labels_in_class_order():
    d = parse_dataset_json(REGIONS, "dataset.json")
    assert d.has_regions and d.output_names == ["kidney_and_masses", "masses", "tumor"]
    labels = np.array([0, 1, 2, 3])
    masks = d.label_map_to_targets(labels)
    np.testing.assert_array_equal(masks, [[0, 0, 0], [1, 0, 0], [1, 1, 1], [1, 1, 0]])
    np.testing.assert_array_equal(d.regions_to_labels(masks.T), labels)


@pytest.mark.parametrize("change, message", [
    ({"numTraining": "three"}, "numTraining"),
    ({"file_ending": ".png"}, "file_ending"),
    ({"labels": {"kidney": 1}}, "background"),
    ({"labels": {"background": 0, "kidney": 2}}, "consecutive"),
    ({"channel_names": {"1": "CT"}}, "channel_names"),
])
def test_malformed_dataset_json(change, message):
    with pytest.raises(NnoccError, match=message):
        parse_dataset_json(dict(LABELS, **change), "x/dataset.json")


def test_missing_keys_are_named():
    data = dict(LABELS)
    del data["labels"]
    with pytest.raises(NnoccError, match="missing key.*labels"):
        parse_dataset_json(data, "dataset.json")
