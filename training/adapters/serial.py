"""``serial``: a bottleneck after each chosen block's attention, with a residual (Med-SA, SAM-Adapter)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from training.adapters.blocks import attention, blocks_field, check_blocks, check_positive, insert_each, number_field
from training.adapters.modules import SerialAdapter
from training.models.sam import SamModel


@dataclass(frozen=True)
class SerialParams:
    """Options of ``serial``: bottleneck width as a fraction of the block width; blocks (None: all)."""

    ratio: float = number_field(0.25)
    blocks: tuple[int, ...] | None = blocks_field()

    def __post_init__(self) -> None:
        check_positive("serial", "ratio", self.ratio, upper=4)
        check_blocks("serial", self.blocks)


def apply_serial(model: SamModel, params: SerialParams, generator: torch.Generator) -> tuple[tuple[str, int], ...]:
    """Wrap the attention of each chosen block in a :class:`SerialAdapter`; report its trainable weights."""

    def insert(block: nn.Module) -> None:
        block.attn = SerialAdapter(block.attn, attention(block).proj.out_features, params.ratio, generator)

    return (("serial", insert_each(model, params.blocks, insert)),)
