"""``parallel``: a bottleneck beside each chosen block's MLP, scaled (Med-SA, AdaptFormer)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from samdata.spec import parse_value
from training.adapters.blocks import attention, blocks_field, check_blocks, check_positive, insert_each, number_field
from training.adapters.modules import ParallelAdapter
from training.models.sam import SamModel


def _parse_scale(spec: str, key: str, raw: str) -> float | None:
    return None if raw == "learn" else parse_value(spec, key, raw, float)


def _format_scale(scale: float | None) -> str:
    return "learn" if scale is None else f"{scale:g}"


@dataclass(frozen=True)
class ParallelParams:
    """Options of ``parallel``: bottleneck ratio; output scale (None, spelt ``learn``: a learnable scalar
    starting at 1); blocks (None: all)."""

    ratio: float = number_field(0.25)
    scale: float | None = field(default=0.5, metadata={"parse": _parse_scale, "format": _format_scale})
    blocks: tuple[int, ...] | None = blocks_field()

    def __post_init__(self) -> None:
        check_positive("parallel", "ratio", self.ratio, upper=4)
        if self.scale is not None:
            check_positive("parallel", "scale", self.scale)
        check_blocks("parallel", self.blocks)


def apply_parallel(model: SamModel, params: ParallelParams, generator: torch.Generator) -> tuple[tuple[str, int], ...]:
    """Wrap the MLP of each chosen block in a :class:`ParallelAdapter`; report its trainable weights."""

    def insert(block: nn.Module) -> None:
        dim = attention(block).proj.out_features
        block.mlp = ParallelAdapter(block.mlp, dim, params.ratio, params.scale, model.mlp_has_norm, generator)

    return (("parallel", insert_each(model, params.blocks, insert)),)
