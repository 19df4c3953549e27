"""``refine``: a small full-resolution CNN after the mask decoder correcting its logits from the image."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from training.adapters.blocks import check_positive, number_field
from training.adapters.modules import RefineHead
from training.models.sam import SamModel


@dataclass(frozen=True)
class RefineParams:
    """Options of ``refine``: channels of the head's first level; its learning rate as a multiple of the run's."""

    width: int = 16
    lr_scale: float = number_field(5.0)

    def __post_init__(self) -> None:
        check_positive("refine", "width", self.width, integer=True)
        check_positive("refine", "lr_scale", self.lr_scale)


def apply_refine(model: SamModel, params: RefineParams, generator: torch.Generator) -> tuple[tuple[str, int], ...]:
    """Give ``model`` a zero-initialised :class:`RefineHead` (``model.refiner``); report its weights."""
    first = next(model.parameters())
    model.refiner = RefineHead(params.width, generator, params.lr_scale).to(first.device, first.dtype)
    return (("refine", sum(p.numel() for p in model.refiner.parameters())),)
