"""One declaration per configuration: frozen pydantic dataclasses whose bad values raise :class:`ConfigError`.

:func:`config` turns a class into a frozen ``pydantic.dataclasses.dataclass`` that refuses unknown fields
and checks each field's type and ``Field``/``Annotated`` constraints, so a config states its limits once,
in its declaration; ``dataclasses.replace``/``asdict`` keep working. Pydantic's ValidationError becomes a
ConfigError naming the class, the field, the value and what was expected (a SamdataError raised by the
class's own ``__post_init__`` is passed on as it is). :func:`model_fields` hands a config's fields to the
pydantic models that restate them (the flows' parameters).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from collections.abc import Callable, Iterable, Mapping
from pathlib import PurePath
from typing import Annotated, Any, Literal, TypeVar

import pydantic
from pydantic import BeforeValidator, ConfigDict, Field
from pydantic.dataclasses import dataclass as pydantic_dataclass

from samdata.errors import ConfigError, SamdataError

T = TypeVar("T")

#: an integer, never a bool, a float or a numeric string
Int = Annotated[int, Field(strict=True)]
#: a finite number (int or float), never a bool or a string
Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
#: an integer >= 0
Count = Annotated[int, Field(strict=True, ge=0)]
#: an integer >= 1
Positive = Annotated[int, Field(strict=True, ge=1)]
#: a finite number >= 0 (a weight, a rate, a tolerance)
Weight = Annotated[float, Field(strict=True, ge=0, allow_inf_nan=False)]
#: true or false only
Flag = Annotated[bool, Field(strict=True)]
#: a torch device name (``auto``: CUDA when present)
Device = Annotated[
    str, Field(pattern=r"^(auto|cpu|cuda(:\d+)?)$", description="auto (CUDA if present), cpu, cuda or cuda:N")
]
#: where a simulated corrective click goes (``samdata.prompts.clicks.CORRECTIVE_MODES``)
ClickMode = Literal["interior", "random"]
#: a path or URL, given as a string or a path (kept as a string)
PathText = Annotated[str, BeforeValidator(lambda v: str(v) if isinstance(v, PurePath) else v)]


def config(cls: type[T] | None = None, /, **options: Any) -> Any:
    """Make ``cls`` a frozen pydantic dataclass that forbids unknown fields and raises ConfigError on a bad
    value; ``options`` go to pydantic's ``ConfigDict``. Use as ``@config`` or ``@config(...)``."""

    def wrap(klass: type[T]) -> type[T]:
        made = pydantic_dataclass(frozen=True, config=ConfigDict(extra="forbid", **options))(klass)
        init = made.__init__

        @functools.wraps(init)
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            try:
                init(self, *args, **kwargs)
            except pydantic.ValidationError as err:
                raise config_error(made, err) from None

        made.__init__ = __init__  # type: ignore[method-assign]
        return made

    return wrap if cls is None else wrap(cls)


def config_error(cls: type, err: pydantic.ValidationError) -> SamdataError:
    """The error of a failed validation of config class ``cls``: the SamdataError that a validator raised,
    else a ConfigError with one ``Class.field=value; expected ...`` part per problem (a field's description
    says what a pattern expects, and follows other problems in parentheses)."""
    name, fields, parts = cls.__name__, getattr(cls, "__pydantic_fields__", {}), []
    for problem in err.errors():
        cause = (problem.get("ctx") or {}).get("error")
        if isinstance(cause, SamdataError):
            return cause
        field = ".".join(str(p) for p in problem["loc"])
        about = getattr(fields.get(field.split(".")[0]), "description", None)
        if problem["type"] == "unexpected_keyword_argument":
            parts.append(f"{name}: unknown field {field!r}")
        elif problem["type"] == "missing_argument":
            parts.append(f"{name}.{field} is required")
        elif problem["type"] == "string_pattern_mismatch" and getattr(fields.get(field), "description", None):
            parts.append(f"{name}.{field}={problem['input']!r}; expected {fields[field].description}")
        else:
            expected = (
                f"expected at least {problem['ctx']['min_length']} item(s)"
                if problem["type"] == "too_short"
                else problem["msg"].replace("Input should be", "expected").replace("Value error, ", "")
            )
            parts.append(f"{name}.{field}={problem['input']!r}; {expected}" + (f" ({about})" if about else ""))
    return ConfigError("; ".join(parts))


def field_names(cls: type) -> tuple[str, ...]:
    """The field names of a config dataclass, in declaration order."""
    return tuple(f.name for f in dataclasses.fields(cls))


def build(cls: Callable[..., T], values: dict[str, Any], where: str) -> T:
    """``cls(**values)``; unknown keys raise a ConfigError naming ``where`` and listing the valid keys."""
    names = field_names(cls)  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ConfigError(f"{where}: unknown {cls.__name__} keys {unknown}; valid keys: {', '.join(sorted(names))}")
    return cls(**values)


def model_fields(cls: type, fields: Iterable[str] | Mapping[str, str] | None = None, **defaults: Any) -> dict[str, Any]:
    """Field definitions for ``pydantic.create_model`` taken from config class ``cls``: its type, limits,
    default and description per field. ``fields``: the names to take (None = all), or a mapping from the
    model's field name to the config's; ``defaults`` replace some defaults."""
    infos = cls.__pydantic_fields__  # type: ignore[attr-defined]
    names = fields if isinstance(fields, Mapping) else {n: n for n in (infos if fields is None else fields)}
    assert set(defaults) <= set(names), f"defaults for fields not taken: {set(defaults) - set(names)}"
    out: dict[str, Any] = {}
    for name, source in names.items():
        info = copy.copy(infos[source])
        if name in defaults:
            info.default, info.default_factory = defaults[name], None
        out[name] = (info.annotation, info)
    return out
