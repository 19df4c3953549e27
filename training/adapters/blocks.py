"""What the adapter kinds that sit in encoder blocks share: the ``blocks`` option, option checks, insertion."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import field
from typing import Any

from torch import nn

from samdata.errors import ConfigError
from samdata.spec import format_blocks, parse_blocks
from training.adapters.modules import SerialAdapter
from training.models.sam import SamModel


def _number(value: float) -> str:
    return f"{value:g}"


def number_field(default: float | None) -> Any:
    """A float option written in specs as ``%g`` (``lr_scale=5``, not ``5.0``)."""
    return field(default=default, metadata={"format": _number})


def blocks_field() -> Any:
    """The ``blocks`` option: encoder block indices (``0,1,8-9``), None for ``all`` (the default)."""
    return field(default=None, metadata={"parse": parse_blocks, "format": format_blocks})


def check_positive(kind: str, key: str, value: Any, upper: float | None = None, integer: bool = False) -> None:
    """Raise ConfigError unless ``value`` is a number (an int when ``integer``) > 0 and <= ``upper``."""
    number = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not number or not 0 < value <= (float("inf") if upper is None else upper):
        expected = f"0 < {key} <= {upper:g}" if upper is not None else f"{key} > 0"
        raise ConfigError(
            f"adapter {kind!r}: {key}={value!r} out of range (expected {expected}{', an integer' if integer else ''})"
        )


def check_blocks(kind: str, blocks: Any) -> None:
    """Raise ConfigError unless ``blocks`` is None or a sorted tuple of distinct block indices >= 0."""
    ok = blocks is None or (
        isinstance(blocks, tuple)
        and all(isinstance(b, int) and b >= 0 for b in blocks)
        and list(blocks) == sorted(set(blocks))
    )
    if not ok:
        raise ConfigError(f"adapter {kind!r}: blocks={blocks!r}; expected None (all) or sorted distinct indices >= 0")


def listed_blocks(params: Any, n: int) -> tuple[int, ...]:
    """The encoder blocks ``params.blocks`` names, out of ``n`` (None: all of them)."""
    return tuple(range(n)) if params.blocks is None else params.blocks


def attention(block: nn.Module) -> nn.Module:
    """A block's original attention module, under any adapter wrapper."""
    attn = block.attn
    while isinstance(attn, SerialAdapter):
        attn = attn.base
    return attn


def insert_each(model: SamModel, blocks: tuple[int, ...] | None, insert: Callable[[nn.Module], None]) -> int:
    """Call ``insert`` on each chosen encoder block; return how many trainable weights that added."""
    first = next(model.parameters())
    before = sum(p.numel() for p in model.parameters() if p.requires_grad)
    chosen = model.encoder_blocks()
    for i in range(len(chosen)) if blocks is None else blocks:
        insert(chosen[i])
    model.to(first.device, first.dtype)  # new layers are made on the CPU in float32
    return sum(p.numel() for p in model.parameters() if p.requires_grad) - before
