"""JSON files a person can read, written atomically (temporary name, then rename)."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Union

import numpy as np

from nnocc.utils.atomic import atomic_write_bytes
from nnocc.utils.errors import NnoccError


def _plain(value: Any) -> Any:
    """numpy scalars/arrays and paths to plain JSON values; NaN/inf to None is left to the caller."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value


def json_safe(value: Any) -> Any:
    """Like _plain, and NaN/inf become None so that strict JSON readers accept the file."""
    value = _plain(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value


def save_json(obj: Any, path: Union[str, Path], sort_keys: bool = False) -> None:
    text = json.dumps(json_safe(obj), indent=2, sort_keys=sort_keys, allow_nan=False)
    atomic_write_bytes(path, (text + "\n").encode("utf-8"))


def load_json(path: Union[str, Path]) -> Any:
    path = Path(path)
    try:
        with open(path, "r", encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise NnoccError(f"{path}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise NnoccError(f"{path}: not valid JSON ({e})") from None
