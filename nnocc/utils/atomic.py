"""Files a user reads appear whole or not at all: written under a temporary name, then renamed."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Union

PathLike = Union[str, Path]


def _temporary_in(folder: Path, name: str) -> Path:
    handle, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
    os.close(handle)
    return Path(tmp)


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_in(path.parent, path.name)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_copy(source: PathLike, target: PathLike) -> None:
    """Copy ``source`` to ``target`` (contents and times) so that ``target`` is never half a file."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_in(target.parent, target.name)
    try:
        shutil.copy2(source, tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def link_or_copy(source: PathLike, target: PathLike) -> str:
    """A hard link when source and target share a file system (no bytes copied), else an atomic
    copy; returns which one it was."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
        return "linked"
    except OSError:
        atomic_copy(source, target)
        return "copied"
