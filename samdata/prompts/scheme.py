"""A configured prompt scheme (:class:`PromptScheme`), its spec strings, and per-object seeding.

``parse_scheme("points:n=3,neg=1,jitter_px=2")`` gives a frozen scheme; calling it on a (Y, X)
object mask with a ``numpy.random.Generator`` gives a :class:`Prompt`; ``scheme.spec`` is the full
canonical spec (every key, defaults included, so a recorded spec keeps its meaning if defaults
change) and ``parse_scheme(scheme.spec) == scheme``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from samdata.errors import ConfigError
from samdata.prompts.noise import PromptNoise, apply_noise
from samdata.prompts.prompt import Prompt
from samdata.prompts.regions import object_mask
from samdata.prompts.registry import SchemeParams, scheme_entry
from samdata.spec import build_params, format_params, spec_fields, split_spec


@dataclass(frozen=True)
class PromptScheme:
    """A registered scheme ``name`` with its params dataclass (``None`` = defaults) and noise."""

    name: str
    params: SchemeParams | None = None
    noise: PromptNoise = field(default_factory=PromptNoise)

    def __post_init__(self) -> None:
        entry = scheme_entry(self.name)
        if self.params is None:
            object.__setattr__(self, "params", entry.params())
        elif type(self.params) is not entry.params:
            raise ConfigError(
                f"prompt scheme {self.name!r} takes {entry.params.__name__}; got {type(self.params).__name__}"
            )
        if not isinstance(self.noise, PromptNoise):
            raise ConfigError(
                f"prompt scheme {self.name!r}: noise must be PromptNoise; got {type(self.noise).__name__}"
            )

    def __call__(self, mask: np.ndarray, rng: np.random.Generator) -> Prompt:
        """Prompt for one object: ``mask`` (Y, X) bool (nonzero = object), in slice pixel coordinates."""
        obj = object_mask(mask, self.name)
        prompt = scheme_entry(self.name).generate(obj, rng, self.params)
        return apply_noise(prompt, obj, rng, self.noise)

    @property
    def spec(self) -> str:
        """The canonical spec string: every scheme key, then every noise key."""
        return f"{self.name}:" + ",".join([*format_params(self.params), *format_params(self.noise)])


def parse_scheme(spec: str) -> PromptScheme:
    """Parse ``name[:key=value,...]`` (scheme keys plus noise keys) into a :class:`PromptScheme`."""
    name, raw = split_spec(spec)
    entry = scheme_entry(name)
    noise_keys = tuple(spec_fields(PromptNoise))
    scheme_raw = {k: v for k, v in raw.items() if k not in noise_keys}
    noise_raw = {k: v for k, v in raw.items() if k in noise_keys}
    try:
        params = build_params(entry.params, scheme_raw, spec, extra_keys=noise_keys)
        noise = build_params(PromptNoise, noise_raw, spec)
    except ConfigError as err:
        if str(err).startswith("prompt spec"):
            raise
        raise ConfigError(f"prompt spec {spec!r}: {err}") from err
    return PromptScheme(name, params, noise)


def object_rng(seed: int, case_id: str, z: int, label: int) -> np.random.Generator:
    """The generator for one (case, slice, label) object under a prompt-set ``seed``, independent of
    the order objects are visited in (so one object's prompt can be regenerated alone)."""
    if seed < 0 or z < 0 or label < 0:
        raise ConfigError(f"object_rng needs non-negative seed, z and label; got {seed}, {z}, {label}")
    case_key = int.from_bytes(hashlib.sha256(case_id.encode("utf-8")).digest()[:8], "little")
    return np.random.default_rng(np.random.SeedSequence([int(seed), case_key, int(z), int(label)]))
