import pytest

from nnocc.paths import DataFolders, data_folder, dataset_paths, find_dataset_name
from nnocc.utils.errors import NnoccError


def test_variables_override_default(tmp_path):
    variables = {"nnocc_raw": str(tmp_path / "elsewhere")}
    assert data_folder("nnocc_raw", variables) == (tmp_path / "elsewhere").resolve()
    assert data_folder("nnocc_results", variables).name == "nnocc_results"
    folders = DataFolders.from_variables(variables)
    assert folders.raw == (tmp_path / "elsewhere").resolve() and folders.preprocessed.name == "nnocc_preprocessed"


def test_dataset_id_resolution(data_folders):
    (data_folders.raw / "Dataset023_KiTS2023").mkdir()
    assert find_dataset_name(23, data_folders) == "Dataset023_KiTS2023"
    assert find_dataset_name("023", data_folders) == "Dataset023_KiTS2023"
    assert dataset_paths(23, data_folders).raw == data_folders.raw / "Dataset023_KiTS2023"


def test_missing_and_ambiguous_ids_are_clear(data_folders):
    with pytest.raises(NnoccError, match="no dataset with id 023"):
        find_dataset_name(23, data_folders)
    (data_folders.raw / "Dataset023_A").mkdir()
    (data_folders.raw / "Dataset023_B").mkdir()
    with pytest.raises(NnoccError, match="several datasets have id 023.*Dataset023_A, Dataset023_B"):
        find_dataset_name(23, data_folders)
    with pytest.raises(NnoccError, match="expected a number"):
        find_dataset_name("kits", data_folders)
