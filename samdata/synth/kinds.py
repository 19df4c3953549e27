"""The registry of synthetic pair generators: what each kind is, how it is configured, built or trained.

``deform`` and ``labels2image`` need no training and are built from a spec string (``deform:morph=0.7``;
keys are the fields of their params dataclass); ``cgan`` and ``fastgan`` train, are configured by their
config dataclass, written to a folder GEN and opened again by :func:`open_trained` (what each kind draws:
README.md, "Synthetic pairs"). Unknown names raise a RegistryError listing the valid ones.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from samdata.errors import ConfigError, unknown_name
from samdata.spec import build_params, format_params, split_spec
from samdata.synth.checkpoint import check_generator_id, read_info
from samdata.synth.pairs import RealPairs
from samdata.synth.source import PairSource


@dataclass(frozen=True)
class Kind:
    """One generator kind: a summary, whether it trains, its params/config class and how to make a source."""

    summary: str
    trains: bool
    params: type
    build: Callable[..., PairSource] | None = None
    train: Callable[..., Any] | None = None
    open: Callable[..., PairSource] | None = None


def _deform(reference: RealPairs, params: Any, generator_id: str) -> PairSource:
    from samdata.synth.deform import DeformGenerator

    return DeformGenerator(reference, params, generator_id=generator_id)


def _labels2image(reference: RealPairs, params: Any, generator_id: str) -> PairSource:
    from samdata.synth.render import LabelsToImageGenerator

    return LabelsToImageGenerator(reference, params, generator_id=generator_id)


def _train_cgan(pairs: RealPairs, gen_dir: Path, config: Any, **kw: Any) -> Any:
    from samdata.synth.cgan import train_cgan

    return train_cgan(pairs, gen_dir, config, **kw)


def _open_cgan(gen_dir: Path, reference: RealPairs, device: str) -> PairSource:
    from samdata.synth.cgan import CganSource

    return CganSource(gen_dir, reference, device)


def _train_fastgan(pairs: RealPairs, gen_dir: Path, config: Any, **kw: Any) -> Any:
    from samdata.synth.train import train_gan

    return train_gan(pairs, gen_dir, config, **kw)


def _open_fastgan(gen_dir: Path, reference: RealPairs, device: str) -> PairSource:
    from samdata.device import resolve_device
    from samdata.synth.sample import GanSource

    return GanSource(gen_dir, resolve_device(device))


def _kinds() -> MappingProxyType[str, Kind]:
    from samdata.synth.cgan import CganConfig
    from samdata.synth.deform import DeformParams
    from samdata.synth.render import RenderParams
    from samdata.synth.train import GanConfig

    return MappingProxyType(
        {
            "deform": Kind(
                "real slices deformed smoothly and morphed between neighbours (no training)",
                False,
                DeformParams,
                build=_deform,
            ),
            "labels2image": Kind(
                "deformed label maps rendered with new intensities, SynthSeg-style (no training)",
                False,
                RenderParams,
                build=_labels2image,
            ),
            "cgan": Kind(
                "deformed label maps painted by a mask-conditioned GAN (pix2pix) trained on the real pairs",
                True,
                CganConfig,
                train=_train_cgan,
                open=_open_cgan,
            ),
            "fastgan": Kind(
                "image and mask drawn together from noise by a few-shot GAN (a baseline)",
                True,
                GanConfig,
                train=_train_fastgan,
                open=_open_fastgan,
            ),
        }
    )


KINDS: MappingProxyType[str, Kind] = _kinds()


def kind_entry(name: str) -> Kind:
    """The registry entry of ``name``."""
    try:
        return KINDS[name]
    except KeyError as err:
        raise unknown_name("generator kind", name, tuple(KINDS)) from err


def parse_kind(spec: str) -> tuple[str, Any]:
    """``kind[:key=value,...]`` of a kind without training → (kind, its params dataclass)."""
    name, raw = split_spec(spec)
    entry = kind_entry(name)
    if entry.trains:
        raise ConfigError(
            f"generator kind {name!r} needs training first: `samdata synth train STORE --kind {name} "
            "--labels ... --out GEN`, then generate with --generator GEN"
        )
    return name, build_params(entry.params, raw, spec)


def describe(params: Any) -> str:
    """``key=value,...`` of a params dataclass (every field), for logs and reports."""
    return ",".join(format_params(params))


def build_source(spec: str, reference: RealPairs, *, generator_id: str | None = None) -> PairSource:
    """A generator without training from ``spec`` over ``reference`` (generator id defaults to the kind)."""
    name, params = parse_kind(spec)
    return KINDS[name].build(reference, params, check_generator_id(generator_id or name))  # type: ignore[misc]


def train_kind(
    kind: str,
    pairs: RealPairs,
    gen_dir: Path | str,
    config: Any,
    *,
    generator_id: str,
    resume: bool = False,
    on_step: Any = None,
) -> Any:
    """Train a generator of a training ``kind`` with its ``config`` into ``gen_dir``."""
    entry = kind_entry(kind)
    if not entry.trains:
        raise ConfigError(f"generator kind {kind!r} needs no training; generate with --kind {kind}")
    if not isinstance(config, entry.params):
        raise ConfigError(f"generator kind {kind!r} takes a {entry.params.__name__}; got {type(config).__name__}")
    return entry.train(
        pairs,
        Path(gen_dir),
        config,
        generator_id=generator_id,
        resume=resume,  # type: ignore[misc]
        on_step=on_step,
    )


def open_trained(gen_dir: Path | str, reference: RealPairs, device: str = "cpu") -> PairSource:
    """The trained generator in folder ``gen_dir`` as a pair source over ``reference`` (the slices it learnt)."""
    info = read_info(Path(gen_dir))
    return kind_entry(info.kind).open(Path(gen_dir), reference, device)  # type: ignore[misc]


def config_fields(kind: str) -> tuple[str, ...]:
    """Field names of a kind's params/config class (CLI help)."""
    return tuple(f.name for f in dataclasses.fields(kind_entry(kind).params))
