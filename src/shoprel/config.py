"""Typed configs from YAML: dataclass fields are the schema, an unknown key is an error."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


def from_dict(cls: type[T], values: dict[str, Any], where: str = "config") -> T:
    """Build dataclass ``cls`` from ``values``; nested dataclass fields take nested mappings."""
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(fields))
    if unknown:
        moved = getattr(cls, "MOVED_KEYS", {})
        hints = "".join(f"; {k} is now {moved[k]}" for k in unknown if k in moved)
        raise ValueError(
            f"{where}: unknown key(s) {unknown}; expected some of {sorted(fields)}{hints}"
        )
    kwargs = {}
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
        kwargs[name] = value
    return cls(**kwargs)


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
        return yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        at = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ValueError(f"{path}{at}: not valid YAML ({problem})") from None
