"""The one grammar of spec strings: ``name:key=value,...`` specs, index ranges, boxes, lists and pairs.

Prompt schemes, generators and adapters are ``name:key=value,...`` read into a frozen params dataclass
(:func:`split_spec`, :func:`build_params`, :func:`format_params`); the CLI's and configs' small values
(z ranges, boxes, comma lists, windows, spacings, ``KEY=VALUE`` items) are parsed here too, so each
form is written once and every bad input is a ConfigError naming the value and what was expected.
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from collections.abc import Callable, Mapping
from typing import Any, Literal, NamedTuple

from samdata.errors import ConfigError

Box = tuple[int, int, int, int]  # (x0, y0, x1, y1), inclusive-exclusive pixels

_RANGE = re.compile(r"^(\d+)(?:-(\d+)(?::(\d+))?)?$")
_Z_RANGE = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*$")
_BOX = re.compile(r"^\s*(-?\d+)\s*,\s*(-?\d+)\s*,\s*(-?\d+)\s*,\s*(-?\d+)\s*@\s*(-?\d+)\s*$")


# --- checks shared by params dataclasses -------------------------------------------------------------


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


# --- name:key=value,... -------------------------------------------------------------------------------


def split_spec(
    spec: str, *, what: str = "spec", list_keys: tuple[str, ...] = (), empty_options: bool = False
) -> tuple[str, dict[str, str]]:
    """Split ``name:key=value,...`` into the name and its raw key/value strings (whitespace trimmed).

    The value of a key in ``list_keys`` may itself hold commas (``blocks=0,1,8-9``): an item without
    ``=`` right after it continues that value. ``empty_options``: accept ``name:`` with nothing after it.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"{what} {spec!r} is empty; expected 'name' or 'name:key=value,...'")
    name, colon, rest = spec.strip().partition(":")
    name = name.strip()
    if not name:
        raise ConfigError(f"{what} {spec!r} has no scheme name before ':'")
    values: dict[str, str] = {}
    if not rest.strip():
        if colon and not empty_options:
            raise ConfigError(f"{what} {spec!r} has ':' but no key=value after it")
        return name, values
    last = None
    for item in rest.split(","):
        key, eq, value = (part.strip() for part in item.partition("="))
        if not eq and last in list_keys and key:
            values[last] += "," + key
            continue
        if not eq or not key or not value:
            raise ConfigError(f"{what} {spec!r}: item {item.strip()!r} is not key=value")
        if key in values:
            raise ConfigError(f"{what} {spec!r}: key {key!r} given twice")
        values[key] = value
        last = key
    return name, values


class SpecField(NamedTuple):
    """One spec key of a params dataclass: its attribute path, type hint and field metadata.

    Metadata ``parse`` (``(spec, key, raw) -> value``) and ``format`` (``value -> str``) override the
    conversion that the type hint implies (e.g. ``blocks=all``, ``scale=learn``).
    """

    path: tuple[str, ...]
    hint: Any
    meta: Mapping[str, Any]


def spec_fields(cls: type, prefix: str = "") -> dict[str, SpecField]:
    """Map each spec key of params dataclass ``cls`` to its :class:`SpecField`.

    A field's key is its name unless ``metadata={"key": ...}`` says otherwise; a nested params
    dataclass contributes its keys under ``<key>.`` (e.g. ``box.jitter``).
    """
    hints = typing.get_type_hints(cls)
    out: dict[str, SpecField] = {}
    for f in dataclasses.fields(cls):
        key = prefix + f.metadata.get("key", f.name)
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            for sub_key, sub in spec_fields(hint, key + ".").items():
                out[sub_key] = SpecField((f.name, *sub.path), sub.hint, sub.meta)
        else:
            out[key] = SpecField((f.name,), hint, f.metadata)
    return out


def parse_value(spec: str, key: str, raw: str, hint: Any) -> Any:
    """Convert one raw spec value to the field type ``hint`` (int, float or Literal choices)."""
    if typing.get_origin(hint) is Literal:
        choices = typing.get_args(hint)
        if raw not in choices:
            raise ConfigError(f"spec {spec!r}: {key}={raw!r}; expected one of {', '.join(choices)}")
        return raw
    if type(None) in typing.get_args(hint):  # ``float | None``: None is the field's default, never spelt
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
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
        path, hint, meta = fields[key]
        target = nested
        for part in path[:-1]:
            target = target.setdefault(part, {})
        parse = meta.get("parse", None)
        target[path[-1]] = parse(spec, key, value) if parse else parse_value(spec, key, value, hint)
    return _instantiate(cls, nested)


def _instantiate(cls: type, values: dict[str, Any]) -> Any:
    """Create ``cls`` from a nested dict of field values, recursing into nested dataclass fields."""
    hints = typing.get_type_hints(cls)
    kwargs = {
        name: _instantiate(hints[name], value) if isinstance(value, dict) else value for name, value in values.items()
    }
    return cls(**kwargs)


def format_params(params: Any) -> list[str]:
    """Every ``key=value`` of a params dataclass instance, in field order (nested keys dotted)."""
    items = []
    for key, (path, _, meta) in spec_fields(type(params)).items():
        value = params
        for part in path:
            value = getattr(value, part)
        if "format" in meta:
            items.append(f"{key}={meta['format'](value)}")
        else:
            items.append(f"{key}={value!r}" if isinstance(value, float) else f"{key}={value}")
    return items


# --- index ranges -------------------------------------------------------------------------------------


def parse_ranges(text: str, what: str, item: str, expected: str, *, steps: bool = True) -> tuple[int, ...]:
    """Sorted indices of ``"4,8,10-12"`` (ranges inclusive; ``a-b:step`` when ``steps``).

    ``what`` names the whole value and ``item`` one entry in the error messages.
    """
    out: set[int] = set()
    for token in (t.strip() for t in text.split(",")):
        found = _RANGE.match(token)
        if not found or (found.group(3) is not None and not steps):
            raise ConfigError(f"{what}: bad {item} {token!r}; expected {expected}")
        first = int(found.group(1))
        last = int(found.group(2)) if found.group(2) is not None else first
        step = int(found.group(3)) if found.group(3) is not None else 1
        if last < first or step < 1:
            raise ConfigError(f"{what}: empty range {token!r}; expected a <= b" + (" and step >= 1" if steps else ""))
        out.update(range(first, last + 1, step))
    return tuple(sorted(out))


def parse_slices(spec: str) -> tuple[int, ...]:
    """Sorted z indices of a slice spec like ``"50-139:3"`` or ``"4,8,10-12"`` (ranges inclusive)."""
    return parse_ranges(spec, f"slice spec {spec!r}", "item", "z, a-b or a-b:step (inclusive), e.g. 50-139:3")


def parse_blocks(spec: str, key: str, text: str) -> tuple[int, ...] | None:
    """Encoder block indices of ``blocks=0,1,8-9`` in spec ``spec``; None for ``all``."""
    if text == "all":
        return None
    return parse_ranges(text, f"spec {spec!r}: {key}={text!r}", "block", "'all', ints or ranges like 8-11", steps=False)


def format_blocks(blocks: tuple[int, ...] | None) -> str:
    """The spec form of :func:`parse_blocks`' result."""
    return "all" if blocks is None else ",".join(map(str, blocks))


def parse_z_range(text: str) -> tuple[int, int]:
    """Parse an inclusive slice range ``"a-b"`` (canonical z) into (a, b)."""
    found = _Z_RANGE.match(str(text))
    if not found or int(found.group(1)) > int(found.group(2)):
        raise ConfigError(
            f"z range {text!r}: expected 'first-last' canonical slice indices with first <= last, e.g. '30-52'"
        )
    return int(found.group(1)), int(found.group(2))


def parse_box(text: str) -> tuple[Box, int]:
    """Parse ``"x0,y0,x1,y1@z"`` (canonical slice pixels, inclusive-exclusive) into (box, z)."""
    found = _BOX.match(str(text))
    if not found:
        raise ConfigError(f"box {text!r}: expected 'x0,y0,x1,y1@z' in canonical slice pixels, e.g. '40,52,90,110@37'")
    x0, y0, x1, y1, z = (int(v) for v in found.groups())
    return (x0, y0, x1, y1), z


# --- comma lists and KEY=VALUE items --------------------------------------------------------------------


def split_list(text: str) -> tuple[str, ...]:
    """``"a, b"`` → ("a", "b"): the comma-separated items, whitespace trimmed (empty items kept)."""
    return tuple(part.strip() for part in str(text).split(","))


def parse_names(option: str, text: str, example: str = "") -> tuple[str, ...]:
    """Comma-separated names of ``option``; ConfigError on an empty name (``example``: what is expected)."""
    names = split_list(text)
    if any(not name for name in names):
        raise ConfigError(f"{option} {text!r} has an empty name; expected {example or 'comma-separated names'}")
    return names


def parse_list(option: str, text: str | None) -> tuple[str, ...] | None:
    """``"flip,affine"`` → ("flip", "affine"); None when not given; ConfigError on an empty name."""
    if text is None:
        return None
    return parse_names(option, text) if text.strip() else ()


def parse_labels(values: list[str] | None) -> list[str] | None:
    """Label names from repeated and/or comma-separated option values (None when not given)."""
    if not values:
        return None
    return list(parse_names("--labels", ",".join(values), "names like liver,kidney"))


def _numbers(text: str, convert: Callable[[str], Any]) -> tuple[Any, ...]:
    """Comma-separated numbers; ValueError when one does not convert."""
    return tuple(convert(part) for part in str(text).split(","))


def parse_clicks(text: str | None) -> tuple[int, ...]:
    """``"0,1,3,5"`` → click counts (empty when not given)."""
    if not text:
        return ()
    try:
        return _numbers(text, int)
    except ValueError as err:
        raise ConfigError(f"--clicks {text!r}: expected comma-separated integers such as 0,1,3,5") from err


def parse_splits(text: str) -> tuple[float, float, float]:
    """``"0.7,0.15,0.15"`` → (train, val, test) fractions."""
    try:
        values = _numbers(text, float)
    except ValueError as err:
        raise ConfigError(f"--splits {text!r} is not three numbers; expected e.g. 0.7,0.15,0.15") from err
    if len(values) != 3:
        raise ConfigError(f"--splits {text!r} has {len(values)} values; expected train,val,test e.g. 0.7,0.15,0.15")
    return values  # type: ignore[return-value]


def split_assignment(item: str) -> tuple[str, str] | None:
    """``"KEY=VALUE"`` → (key trimmed, value as given); None without ``=``."""
    key, eq, value = item.partition("=")
    return (key.strip(), value) if eq else None


# --- intensity window and voxel spacing -------------------------------------------------------------------


def parse_window(text: str) -> str | tuple[float, float]:
    """Parse a CLI window spec: a preset name ("abdomen") or "level,width" ("40,400")."""
    from samdata.normalise import WINDOWS, resolve_window  # imported here: normalise loads nibabel and scipy

    parts = list(split_list(text))
    expected = f"a preset name ({', '.join(WINDOWS)}) or 'level,width' such as '40,400'"
    if len(parts) == 1:
        try:
            float(parts[0])
        except ValueError:
            if not parts[0]:
                raise ConfigError(f"window {text!r} is empty; expected {expected}") from None
            name = parts[0].lower()
            resolve_window(name)
            return name
        raise ConfigError(f"window {text!r} is a single number; expected {expected}")
    if len(parts) != 2:
        raise ConfigError(f"window {text!r}: expected {expected}")
    try:
        pair = (float(parts[0]), float(parts[1]))
    except ValueError as err:
        raise ConfigError(f"window {text!r}: expected {expected}") from err
    resolve_window(pair)
    return pair


def parse_spacing(text: str) -> tuple[float, float, float]:
    """Parse a CLI spacing spec "X,Y,Z" in mm ("1,1,2.5"); a single number means isotropic."""
    from samdata.normalise import check_spacing  # imported here: normalise loads nibabel and scipy

    try:
        values = _numbers(text, float)
    except ValueError as err:
        raise ConfigError(f"spacing {text!r}: expected 'X,Y,Z' in mm such as '1,1,2.5'") from err
    if len(values) == 1:
        values = values * 3
    return check_spacing(values, f"spacing {text!r}")
