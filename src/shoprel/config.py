"""Typed configs from YAML: dataclass fields are the schema, an unknown key is an error."""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


def from_dict(cls: type[T], values: dict[str, Any], where: str = "config") -> T:
    """Build dataclass ``cls`` from ``values``; nested dataclass fields take nested mappings."""
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(map(str, set(values) - set(fields)))
    if unknown:
        moved = getattr(cls, "MOVED_KEYS", {})
        hints = "".join(f"; {k} is now {moved[k]}" for k in unknown if k in moved)
        raise ValueError(
            f"{where}: unknown key(s) {unknown}; expected some of {sorted(fields)}{hints}"
        )
    hints, kwargs = field_hints(cls), {}
    for name, value in values.items():
        default = cls.__dataclass_fields__[name].default_factory  # type: ignore[attr-defined]
        nested = default() if callable(default) else None
        if dataclasses.is_dataclass(nested) and not isinstance(value, type(nested)):
            value = {} if value is None else value  # an empty section: the defaults
            if not isinstance(value, dict):
                raise ValueError(
                    f"{where}.{name}: expected a mapping of keys, got {type(value).__name__} "
                    f"{value!r}"
                )
            value = from_dict(type(nested), factory_values(nested) | value, f"{where}.{name}")
        kwargs[name] = checked(value, hints.get(name, Any), f"{where}.{name}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as error:  # a field's own check: say which file and section
        raise ValueError(f"{where}: {error}") from None


def field_hints(cls: type) -> dict[str, Any]:
    """The resolved type hints of a dataclass (none where a hint cannot be resolved at run time)."""
    try:
        return typing.get_type_hints(cls)
    except (NameError, TypeError):
        return {}


def checked(value: Any, hint: Any, where: str) -> Any:
    """``value`` as a field typed ``hint`` takes it, or a ValueError naming ``where``: numbers
    that YAML read as text (``2e-5``) become floats, paths become ``Path``, one value where a list
    is expected becomes a list of one; ``None`` only where the hint allows it."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any or dataclasses.is_dataclass(hint) or isinstance(hint, TypeVar):
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return checked(value, arg, where)
            except ValueError as error:
                errors.append(str(error))
        raise ValueError(errors[0] if len(errors) == 1 else f"{where}: got {value!r}")
    if origin is typing.Literal:
        if value in args:
            return value
        raise ValueError(f"{where}: expected one of {list(args)}, got {value!r}")
    if origin in (list, tuple) or hint in (list, tuple):
        items = [value] if isinstance(value, str | int | float | Path) else value
        if not isinstance(items, list | tuple):
            raise ValueError(f"{where}: expected a list, got {_kind(value)}")
        item = args[0] if args and (origin is list or args[-1] is Ellipsis) else Any
        found = [checked(v, item, f"{where}[{i}]") for i, v in enumerate(items)]
        return tuple(found) if isinstance(items, tuple) else found  # as given: digests hold
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected a mapping, got {_kind(value)}")
        return value
    return _scalar(value, hint, where)


def _scalar(value: Any, hint: Any, where: str) -> Any:
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ValueError(f"{where}: expected true or false, got {_kind(value)}")
    if hint in (int, float):
        if isinstance(value, bool):
            raise ValueError(f"{where}: expected a number, got {value!r}")
        if hint is int and isinstance(value, int):
            return value
        if hint is float and isinstance(value, int | float):
            return value  # an int stays one: settings digests of earlier runs hold
        if hint is float and isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ValueError(
            f"{where}: expected {'a whole number' if hint is int else 'a number'}, "
            f"got {_kind(value)}"
        )
    if hint is str:
        if isinstance(value, str | Path):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise ValueError(f"{where}: expected text, got {_kind(value)}")
    if hint is Path:
        if isinstance(value, str | Path):
            return Path(value)
        raise ValueError(f"{where}: expected a path, got {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    return "nothing (an empty value)" if value is None else f"{type(value).__name__} {value!r}"


def factory_values(instance: Any) -> dict[str, Any]:
    """The fields a default factory set apart from the class defaults (``ExportConfig(int8=True)``
    gives ``{"int8": True}``): a section in a file changes only the keys it names."""
    plain = type(instance)()
    return {
        f.name: getattr(instance, f.name)
        for f in dataclasses.fields(instance)
        if f.init and getattr(instance, f.name) != getattr(plain, f.name)
    }


def load_config(cls: type[T], path: str | Path | None, overrides: dict[str, Any]) -> T:
    """Defaults, then the YAML file (if any), then the overrides that are not ``None``."""
    values: dict[str, Any] = {}
    if path is not None:
        values = read_yaml(path)
        if not isinstance(values, dict):
            raise ValueError(f"{path}: expected a mapping of config keys")
    values |= {k: v for k, v in overrides.items() if v is not None}
    return from_dict(cls, values, str(path or "config"))


def read_yaml(path: str | Path) -> Any:
    """A YAML file's content ({} when empty); a syntax error names the file, line and column."""
    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 text (byte {error.start})") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        at = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ValueError(f"{path}{at}: not valid YAML ({problem})") from None
