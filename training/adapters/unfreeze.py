"""The kinds that add no layer but unfreeze part of SAM: ``decoder``, ``prompt`` and ``full`` (no options)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from training.models.sam import SamModel


def _unfreeze(module: nn.Module) -> int:
    module.requires_grad_(True)
    return sum(p.numel() for p in module.parameters())


@dataclass(frozen=True)
class DecoderParams:
    """``decoder`` takes no option."""


@dataclass(frozen=True)
class PromptParams:
    """``prompt`` takes no option."""


@dataclass(frozen=True)
class FullParams:
    """``full`` takes no option."""


def train_decoder(model: SamModel, params: DecoderParams, generator: torch.Generator) -> tuple[tuple[str, int], ...]:
    """Train the mask decoder."""
    return (("decoder", _unfreeze(model.mask_decoder)),)


def train_prompt(model: SamModel, params: PromptParams, generator: torch.Generator) -> tuple[tuple[str, int], ...]:
    """Train the prompt encoder (point / box / mask-input embeddings)."""
    return (("prompt", _unfreeze(model.prompt_encoder)),)


def train_full(model: SamModel, params: FullParams, generator: torch.Generator) -> tuple[tuple[str, int], ...]:
    """Train every weight of the image encoder and the mask decoder (full fine-tuning)."""
    return ("encoder", _unfreeze(model.image_encoder)), ("decoder", _unfreeze(model.mask_decoder))
