"""Environment variables are read by the command line alone, once, and passed down."""
import re
from pathlib import Path

import pytest

from nnocc.cli import environment
from nnocc.cli.environment import augmentation_workers, data_folders, torchrun_spec
from nnocc.utils.errors import NnoccError

PACKAGE = Path(__file__).resolve().parents[2] / "nnocc"


def test_no_library_module_reads_the_environment():
    readers = re.compile(r"os\.environ|os\.getenv|getenv\(")
    offenders = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                 if p.parent.name != "cli" and readers.search(p.read_text())]
    assert offenders == []


def test_data_folders_follow_the_variables(tmp_path):
    folders = data_folders({"nnocc_preprocessed": str(tmp_path / "pre")})
    assert folders.preprocessed == (tmp_path / "pre").resolve()
    assert folders.raw.name == "nnocc_raw"


def test_augmentation_workers():
    assert augmentation_workers({}) == 2
    assert augmentation_workers({"nnocc_n_proc_DA": "0"}) == 0
    with pytest.raises(NnoccError, match="nnocc_n_proc_DA='many'"):
        augmentation_workers({"nnocc_n_proc_DA": "many"})


def test_torchrun_variables_become_a_spec():
    assert torchrun_spec({}) is None
    spec = torchrun_spec({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"})
    assert (spec.rank, spec.world_size, spec.local_rank, spec.init_method) == (3, 4, 1, "env://")


def test_low_memory_prediction_tunes_the_allocator_unless_the_user_did(monkeypatch):
    calls = []
    monkeypatch.setattr(environment, "map_large_blocks_separately", lambda: calls.append(1) or True)
    assert environment.prepare_allocator_for_prediction(False, {}) is False and calls == []
    assert environment.prepare_allocator_for_prediction(True, {}) is True and calls == [1]
    assert environment.prepare_allocator_for_prediction(True, {"MALLOC_MMAP_THRESHOLD_": "65536"}) is False
    assert calls == [1]
