"""Spec strings ``name:key=value,...`` for prompt schemes and generators, and the checks every params class uses.

A params class is a frozen dataclass whose fields are int, float or ``Literal[...]`` strings, or a
nested params dataclass. A field's spec key is its name unless ``metadata={"key": ...}`` says
otherwise; a nested dataclass contributes its keys under ``<key>.`` (e.g. ``box.jitter``).
Written here because the grammar is tiny and must give ConfigErrors naming the bad key and value.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any, Literal

from samdata.errors import ConfigError


def check_int(scheme: str, key: str, value: Any, lo: int, hi: int | None = None) -> None:
    """Raise ConfigError unless ``value`` is an int in ``[lo, hi]``."""
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= lo and (hi is None or value <= hi)
    if not ok:
        upper = "" if hi is None else f" and <= {hi}"
        raise ConfigError(f"prompt scheme {scheme!r}: {key}={value!r}; expected an integer >= {lo}{upper}")


def check_float(scheme: str, key: str, value: Any, lo: float, hi: float) -> None:
    """Raise ConfigError unless ``value`` is a finite number in ``[lo, hi]``."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and lo <= value <= hi
    if not ok:
        raise ConfigError(f"prompt scheme {scheme!r}: {key}={value!r}; expected a number in [{lo}, {hi}]")


def check_choice(scheme: str, key: str, value: Any, choices: tuple[str, ...]) -> None:
    """Raise ConfigError unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ConfigError(f"prompt scheme {scheme!r}: {key}={value!r}; expected one of {', '.join(choices)}")


def split_spec(spec: str) -> tuple[str, dict[str, str]]:
    """Split ``name:key=value,...`` into the name and its raw key/value strings (whitespace trimmed)."""
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"spec {spec!r} is empty; expected 'name' or 'name:key=value,...'")
    name, _, rest = spec.strip().partition(":")
    name = name.strip()
    if not name:
        raise ConfigError(f"spec {spec!r} has no scheme name before ':'")
    values: dict[str, str] = {}
    if not rest.strip():
        if ":" in spec:
            raise ConfigError(f"spec {spec!r} has ':' but no key=value after it")
        return name, values
    for item in rest.split(","):
        key, eq, value = (part.strip() for part in item.partition("="))
        if not eq or not key or not value:
            raise ConfigError(f"spec {spec!r}: item {item.strip()!r} is not key=value")
        if key in values:
            raise ConfigError(f"spec {spec!r}: key {key!r} given twice")
        values[key] = value
    return name, values


def spec_fields(cls: type, prefix: str = "") -> dict[str, tuple[tuple[str, ...], Any]]:
    """Map each spec key of params dataclass ``cls`` to (attribute path, type hint)."""
    hints = typing.get_type_hints(cls)
    out: dict[str, tuple[tuple[str, ...], Any]] = {}
    for f in dataclasses.fields(cls):
        key = prefix + f.metadata.get("key", f.name)
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            for sub_key, (path, sub_hint) in spec_fields(hint, key + ".").items():
                out[sub_key] = ((f.name, *path), sub_hint)
        else:
            out[key] = ((f.name,), hint)
    return out


def parse_value(spec: str, key: str, raw: str, hint: Any) -> Any:
    """Convert one raw spec value to the field type ``hint`` (int, float or Literal choices)."""
    if typing.get_origin(hint) is Literal:
        choices = typing.get_args(hint)
        if raw not in choices:
            raise ConfigError(f"spec {spec!r}: {key}={raw!r}; expected one of {', '.join(choices)}")
        return raw
    try:
        value = hint(raw)
    except ValueError as err:
        what = "a number" if hint is float else "an integer"
        raise ConfigError(f"spec {spec!r}: {key}={raw!r} is not {what}") from err
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"spec {spec!r}: {key}={raw!r} is not a finite number")
    return value


def build_params(cls: type, raw: dict[str, str], spec: str, extra_keys: tuple[str, ...] = ()) -> Any:
    """Build params dataclass ``cls`` from raw spec values; unknown keys raise ConfigError."""
    fields = spec_fields(cls)
    unknown = [key for key in raw if key not in fields]
    if unknown:
        valid = ", ".join([*fields, *extra_keys])
        raise ConfigError(f"spec {spec!r}: unknown key(s) {', '.join(unknown)}; valid keys: {valid}")
    nested: dict[str, Any] = {}
    for key, value in raw.items():
        path, hint = fields[key]
        target = nested
        for part in path[:-1]:
            target = target.setdefault(part, {})
        target[path[-1]] = parse_value(spec, key, value, hint)
    return _instantiate(cls, nested)


def _instantiate(cls: type, values: dict[str, Any]) -> Any:
    """Create ``cls`` from a nested dict of field values, recursing into nested dataclass fields."""
    hints = typing.get_type_hints(cls)
    kwargs = {name: _instantiate(hints[name], value) if isinstance(value, dict) else value
              for name, value in values.items()}
    return cls(**kwargs)


def format_params(params: Any) -> list[str]:
    """Every ``key=value`` of a params dataclass instance, in field order (nested keys dotted)."""
    items = []
    for key, (path, _) in spec_fields(type(params)).items():
        value = params
        for part in path:
            value = getattr(value, part)
        items.append(f"{key}={value!r}" if isinstance(value, float) else f"{key}={value}")
    return items
