"""Every file a user reads is written under a temporary name and renamed."""
import re
from pathlib import Path

import pytest

from nnocc.utils import atomic

PACKAGE = Path(__file__).resolve().parents[2] / "nnocc"
# writes that replace a file in place; appending to a log is allowed, and so is writing into a
# private staging folder that is renamed as a whole (archive.py unpacks a zip that way)
IN_PLACE = re.compile(r"\.write_text\(|\.write_bytes\(|shutil\.copy(file|2)?\(|\bopen\([^)]*['\"]w")
STAGED = {"model_sharing/archive.py", "utils/atomic.py"}


def test_the_package_writes_no_file_in_place():
    found = [f"{p.relative_to(PACKAGE)}:{n}: {line.strip()}"
             for p in PACKAGE.rglob("*.py") if str(p.relative_to(PACKAGE)) not in STAGED
             for n, line in enumerate(p.read_text().splitlines(), 1) if IN_PLACE.search(line)]
    assert found == []


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "summary.txt"
    atomic.atomic_write_text(target, "old")

    def broken_replace(*args):
        raise OSError("disk full")

    monkeypatch.setattr(atomic.os, "replace", broken_replace)
    with pytest.raises(OSError):
        atomic.atomic_write_text(target, "new")
    with pytest.raises(OSError):
        atomic.atomic_copy(target, tmp_path / "copy.txt")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.txt"]


def test_link_or_copy_replaces_the_target(tmp_path):
    (tmp_path / "a").write_text("a")
    (tmp_path / "b").write_text("b")
    assert atomic.link_or_copy(tmp_path / "a", tmp_path / "b") in ("linked", "copied")
    assert (tmp_path / "b").read_text() == "a"
