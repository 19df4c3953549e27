"""The adapter registry and its spec strings (SimAda-style: any design in any blocks, compared cheaply).

Each kind has its own module with exactly its options as a params dataclass and its apply function (as
micro-sam's ``peft_sam.py`` has one class per method); :data:`ADAPTERS` registers them uniformly. A spec is
parts joined by ``+``, each ``name`` or ``name:key=value,...`` (``serial:blocks=8-9+decoder+refine``); the
kinds and their options are in README.md ("Adapters") and on each params class.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import torch

from samdata.errors import ConfigError, unknown_name
from samdata.spec import build_params, format_params, spec_fields, split_spec
from training.adapters.blocks import listed_blocks
from training.adapters.depth import DepthParams, apply_depth
from training.adapters.lora import LoraParams, apply_lora
from training.adapters.parallel import ParallelParams, apply_parallel
from training.adapters.refine import RefineParams, apply_refine
from training.adapters.serial import SerialParams, apply_serial
from training.adapters.unfreeze import DecoderParams, FullParams, PromptParams, train_decoder, train_full, train_prompt
from training.models.sam import SamModel

AdapterParams = (
    SerialParams | ParallelParams | LoraParams | DepthParams | RefineParams | DecoderParams | PromptParams | FullParams
)


def _no_blocks(params: Any, n: int) -> tuple[int, ...]:
    return ()


def _every_block(params: Any, n: int) -> tuple[int, ...]:
    return tuple(range(n))


@dataclass(frozen=True)
class AdapterKind:
    """A registered adapter design: its params dataclass, the function that puts it into a frozen model
    (returning ``(part, trainable weights)`` pairs for the report), the encoder blocks it trains (given
    their count), and where it goes in a spec (``stage``: encoder adapters first, in the order given,
    then by stage); ``alone``: it cannot be combined with another kind."""

    params: type
    apply: Callable[[SamModel, Any, torch.Generator], tuple[tuple[str, int], ...]]
    summary: str
    stage: int
    blocks: Callable[[Any, int], tuple[int, ...]] = _no_blocks
    alone: bool = False


ADAPTERS: MappingProxyType[str, AdapterKind] = MappingProxyType(
    {
        "serial": AdapterKind(
            SerialParams,
            apply_serial,
            "bottleneck (D→ratio·D, GELU, →D) after attention, residual; Med-SA / SAM-Adapter",
            0,
            listed_blocks,
        ),
        "parallel": AdapterKind(
            ParallelParams,
            apply_parallel,
            "bottleneck (ReLU) beside the MLP, times scale; Med-SA / AdaptFormer",
            0,
            listed_blocks,
        ),
        "lora": AdapterKind(
            LoraParams,
            apply_lora,
            "low-rank update of q and v in the qkv projection; A kaiming, B zero",
            0,
            listed_blocks,
        ),
        "depth": AdapterKind(
            DepthParams,
            apply_depth,
            "attention over the k neighbouring slices' tokens per position before each chosen block; the "
            "input becomes k-slice stacks (clamped at the volume ends); zero output projection; Med-SA's "
            "depth branch, SegmentAnyBone",
            0,
            listed_blocks,
        ),
        "decoder": AdapterKind(
            DecoderParams, train_decoder, "train the mask decoder (alone: decoder-only, encoder frozen)", 3
        ),
        "full": AdapterKind(
            FullParams,
            train_full,
            "train every encoder and decoder weight (full fine-tuning; the U-Net baseline)",
            2,
            _every_block,
            alone=True,
        ),
        "refine": AdapterKind(
            RefineParams,
            apply_refine,
            "small full-resolution CNN after the decoder correcting its "
            "logits from the image (zero-initialised output; HQ-SAM's idea); lr_scale × the run's "
            "learning rate",
            1,
        ),
        "prompt": AdapterKind(
            PromptParams,
            train_prompt,
            "train the prompt encoder (point / box / mask-input embeddings; frozen otherwise)",
            4,
        ),
    }
)
_NAMES: dict[type, str] = {kind.params: name for name, kind in ADAPTERS.items()}


def adapter_kind(name: str) -> AdapterKind:
    """The registry entry of adapter ``name``; unknown names raise a RegistryError listing the valid ones."""
    try:
        return ADAPTERS[name]
    except KeyError as err:
        raise unknown_name("adapter", name, list(ADAPTERS)) from err


def kind_name(params: Any) -> str:
    """The registered name of an adapter params instance (``SerialParams()`` → ``"serial"``)."""
    try:
        return _NAMES[type(params)]
    except KeyError as err:
        raise ConfigError(
            f"{params!r} is not the params of a registered adapter; valid adapters: {', '.join(ADAPTERS)}"
        ) from err


def part_spec(params: Any) -> str:
    """One part as a canonical spec string (every option of its kind spelt out)."""
    opts = format_params(params)
    return kind_name(params) + (":" + ",".join(opts) if opts else "")


@dataclass(frozen=True)
class AdapterConfig:
    """What to train: one params instance per adapter kind, kept in canonical order (encoder adapters
    as given, then the refinement head, full fine-tuning, the mask decoder, the prompt encoder)."""

    parts: tuple[AdapterParams, ...] = ()

    def __post_init__(self) -> None:
        names = [kind_name(p) for p in self.parts]
        if len(set(names)) != len(names):
            raise ConfigError(f"adapters {'+'.join(names)}: each adapter may appear once")
        alone = [n for n in names if ADAPTERS[n].alone]
        if alone and len(names) > 1:
            raise ConfigError(f"adapters {'+'.join(names)}: {alone[0]!r} stands alone (it cannot be combined)")
        object.__setattr__(self, "parts", tuple(sorted(self.parts, key=lambda p: ADAPTERS[kind_name(p)].stage)))

    @property
    def depth(self) -> int:
        """Slices per model input: the ``depth`` part's k, else 1 (the dataset and prediction build such stacks)."""
        return next((p.k for p in self.parts if isinstance(p, DepthParams)), 1)

    @property
    def kinds(self) -> tuple[str, ...]:
        """The adapter kinds of this config, in canonical order."""
        return tuple(kind_name(p) for p in self.parts)

    def to_spec(self) -> str:
        """The canonical spec string; ``parse_adapter(cfg.to_spec()) == cfg``."""
        return "+".join(part_spec(p) for p in self.parts)


def _parse_part(spec: str, text: str) -> AdapterParams:
    name, raw = split_spec(text, what=f"adapter spec {spec!r}: part", list_keys=("blocks",), empty_options=True)
    kind = adapter_kind(name)
    keys = list(spec_fields(kind.params))
    for key in raw:
        if key not in keys:
            raise ConfigError(
                f"adapter spec {spec!r}: {name} takes no option {key!r}; valid: {', '.join(keys) or 'none'}"
            )
    try:
        return build_params(kind.params, raw, spec)
    except ConfigError as err:  # the grammar's messages name the spec, the params' name the adapter
        message = str(err)
        raise ConfigError(
            "adapter " + message if message.startswith(f"spec {spec!r}") else f"adapter spec {spec!r}: {message}"
        ) from err


def parse_adapter(spec: str) -> AdapterConfig:
    """Parse an adapter spec string (see the module docstring) into an AdapterConfig."""
    texts = [t.strip() for t in spec.split("+")]
    if not spec.strip() or not all(texts):
        raise ConfigError(f"adapter spec {spec!r} is empty or has an empty part; valid adapters: {', '.join(ADAPTERS)}")
    parts = tuple(_parse_part(spec, t) for t in texts)
    try:
        return AdapterConfig(parts)
    except ConfigError as err:
        raise ConfigError(f"adapter spec {spec!r}: {err}") from err
