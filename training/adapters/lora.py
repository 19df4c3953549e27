"""``lora``: a low-rank update of q and v in each chosen block's fused qkv projection (A kaiming, B zero)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from training.adapters.blocks import attention, blocks_field, check_blocks, check_positive, insert_each, number_field
from training.adapters.modules import LoRAQKV
from training.models.sam import SamModel


@dataclass(frozen=True)
class LoraParams:
    """Options of ``lora``: rank ``r``; ``alpha`` (the update is scaled by alpha / r; None: alpha = r,
    spelt out on creation so the canonical spec names it); blocks (None: all)."""

    r: int = 4
    alpha: float | None = number_field(None)
    blocks: tuple[int, ...] | None = blocks_field()

    def __post_init__(self) -> None:
        check_positive("lora", "r", self.r, integer=True)
        if self.alpha is None:
            object.__setattr__(self, "alpha", float(self.r))
        check_positive("lora", "alpha", self.alpha)
        check_blocks("lora", self.blocks)


def apply_lora(model: SamModel, params: LoraParams, generator: torch.Generator) -> tuple[tuple[str, int], ...]:
    """Wrap the qkv projection of each chosen block in a :class:`LoRAQKV`; report its trainable weights."""

    def insert(block: nn.Module) -> None:
        attn = attention(block)
        q, v = model.qv_indices(attn)
        attn.qkv = LoRAQKV(attn.qkv, q, v, params.r, float(params.alpha), generator)

    return (("lora", insert_each(model, params.blocks, insert)),)
