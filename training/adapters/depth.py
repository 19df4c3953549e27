"""``depth``: attention across the k neighbouring slices' token grids inside each chosen block (volumes).

Med-SA's depth branch (SD-Trans) and SegmentAnyBone's depth attention: the encoder reads a stack of k
slices centred on the one to segment (clamped at the volume ends; the dataset and prediction build it),
each slice through the frozen 2D blocks, and in front of each chosen block every token position also
attends along the slice axis (:class:`~training.adapters.modules.DepthAttention`, ``block.depth_attn``,
residual), before the block's own windowed attention mixes the slice's tokens. Its output projection
starts at zero, so the
adapted model starts exactly as the 2D one on the centre slice. After the last depth block only the
centre slice goes on: the last depth block itself runs on the centre slices alone, right after its branch
(``SamModel.depth_last``), so it and later blocks cost what they cost in 2D.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from samdata.errors import ConfigError
from training.adapters.blocks import attention, blocks_field, check_blocks, check_positive, insert_each, number_field
from training.adapters.modules import DepthAttention
from training.models.sam import SamModel


@dataclass(frozen=True)
class DepthParams:
    """Options of ``depth``: slices per stack ``k`` (odd, >= 3: the centre slice and (k-1)/2 either side);
    attention width as a fraction of the block width; blocks (None: all)."""

    k: int = 3
    ratio: float = number_field(0.25)
    blocks: tuple[int, ...] | None = blocks_field()

    def __post_init__(self) -> None:
        check_positive("depth", "k", self.k, integer=True)
        if self.k < 3 or self.k % 2 == 0:
            raise ConfigError(f"adapter 'depth': k={self.k!r}; expected an odd number of slices >= 3 (3, 5, 7, ...)")
        check_positive("depth", "ratio", self.ratio, upper=4)
        check_blocks("depth", self.blocks)


def apply_depth(model: SamModel, params: DepthParams, generator: torch.Generator) -> tuple[tuple[str, int], ...]:
    """Wrap the attention of each chosen block in a :class:`DepthAttention` over ``k`` slices and make the
    model read k-slice stacks (``model.depth``, ``model.depth_last``); report the trainable weights."""

    def insert(block: nn.Module) -> None:
        block.depth_attn = DepthAttention(attention(block).proj.out_features, params.k, params.ratio, generator)

    n = len(model.encoder_blocks())
    chosen = tuple(range(n)) if params.blocks is None else params.blocks
    added = insert_each(model, params.blocks, insert)
    model.depth, model.depth_last = params.k, chosen[-1]
    return (("depth", added),)


def stack_slices(z: int, k: int, count: int) -> list[int]:
    """The ``k`` slice indices of the stack centred on ``z`` in a volume of ``count`` slices, clamped at its ends."""
    half = k // 2
    return [min(max(z + j, 0), count - 1) for j in range(-half, half + 1)]


def stack_channels(channels: Callable[[int], np.ndarray], z: int, k: int, count: int) -> np.ndarray:
    """(3k, Y, X) model channels of the stack of ``k`` slices centred on ``z`` (of ``count``; clamped at the
    ends): ``channels(z')`` gives each slice's (1 or 3, Y, X) channels, a single one repeated three times."""
    parts = [channels(i) for i in stack_slices(z, k, count)]
    return np.concatenate([np.broadcast_to(c, (3, *c.shape[1:])) for c in parts])
