"""Typed dataclasses <-> plain JSON dictionaries.

Fingerprints and plans are dataclasses so that code reads ``plan.patch_size`` rather than
``plan['patch_size']``; this module converts them to and from JSON without pickle.  Unknown keys
are an error (a typo in a hand-edited plan should not be silently ignored); missing keys take the
field's default when it has one.
"""
from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, Dict, List, Type, TypeVar, Union

from nnocc.utils.errors import NnoccError
from nnocc.utils.json_io import load_json, save_json

T = TypeVar("T")


def to_dict(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_dict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    return obj


def differences(before: Any, after: Any, where: str = "") -> List[str]:
    """Where two JSON-like values differ, one ``path: old -> new`` line per leaf."""
    if isinstance(before, dict) and isinstance(after, dict):
        found: List[str] = []
        for key in sorted(set(before) | set(after), key=str):
            found += differences(before.get(key), after.get(key), f"{where}.{key}" if where else str(key))
        return found
    return [] if before == after else [f"{where or 'value'}: {before!r} -> {after!r}"]


def _convert(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any or hint is None:
        return value
    if origin is Union:
        if value is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        return _convert(value, non_none[0], where) if len(non_none) == 1 else value
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where)
    if origin in (list, typing.List):
        if not isinstance(value, list):
            raise NnoccError(f"{where}: expected a list, got {type(value).__name__}")
        return [_convert(v, args[0] if args else Any, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin in (tuple, typing.Tuple):
        return tuple(value)
    if origin in (dict, typing.Dict):
        if not isinstance(value, dict):
            raise NnoccError(f"{where}: expected an object, got {type(value).__name__}")
        value_hint = args[1] if len(args) == 2 else Any
        return {k: _convert(v, value_hint, f"{where}.{k}") for k, v in value.items()}
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool) and value is not None and not isinstance(value, hint):
        raise NnoccError(f"{where}: expected {hint.__name__}, got {value!r}")
    return value


def from_dict(cls: Type[T], data: Dict[str, Any], where: str = "") -> T:
    where = where or cls.__name__
    if not isinstance(data, dict):
        raise NnoccError(f"{where}: expected an object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    names = {f.name for f in fields}
    unknown = sorted(set(data) - names)
    if unknown:
        raise NnoccError(f"{where}: unknown key(s) {', '.join(unknown)}")
    kwargs = {}
    for f in fields:
        if f.name in data:
            kwargs[f.name] = _convert(data[f.name], hints[f.name], f"{where}.{f.name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise NnoccError(f"{where}: missing key {f.name!r}")
    return cls(**kwargs)


class JsonDataclass:
    """Mixin: ``obj.save(path)``, ``Cls.load(path)``, ``obj.to_dict()``, ``Cls.from_dict(d)``."""

    def to_dict(self) -> Dict[str, Any]:
        return to_dict(self)

    @classmethod
    def from_dict(cls: Type[T], data: Dict[str, Any]) -> T:
        return from_dict(cls, data)

    def save(self, path: Union[str, Path]) -> None:
        save_json(self.to_dict(), path)

    @classmethod
    def load(cls: Type[T], path: Union[str, Path]) -> T:
        data = load_json(path)
        try:
            return from_dict(cls, data)
        except NnoccError as e:
            raise NnoccError(f"{path}: {e}") from None
