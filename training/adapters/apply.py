"""Putting adapters into a model: freeze the base, insert the layers, report what trains.

Also the hooks the trainer uses on a CPU: :func:`first_adapted_block` tells how much of the encoder
is frozen from the input on (its output can be cached with ``SamModel.encode_prefix``), and
:func:`merge_lora` folds LoRA into plain weights for inference.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from samdata.errors import ConfigError
from training.adapters.modules import DepthAttention, LoRAQKV, ParallelAdapter, RefineHead, SerialAdapter
from training.adapters.registry import ADAPTERS, AdapterConfig, kind_name
from training.models.sam import SamModel

_ADAPTER_TYPES = (DepthAttention, SerialAdapter, ParallelAdapter, LoRAQKV, RefineHead)


@dataclass(frozen=True)
class AdapterReport:
    """What :func:`apply_adapters` did: parameter counts and where the adapters sit."""

    model: str
    spec: str
    trainable: int
    total: int
    per_part: tuple[tuple[str, int], ...]  # (adapter kind or "decoder", trainable params)
    blocks: tuple[int, ...]  # encoder blocks holding at least one adapter
    first_block: int  # first_adapted_block(); == number of blocks when the encoder is all frozen

    @property
    def fraction(self) -> float:
        """Trainable share of all parameters (0..1)."""
        return self.trainable / self.total if self.total else 0.0

    def describe(self) -> str:
        """One line for logs: spec, trainable/total (%), per part, adapted blocks."""
        parts = ", ".join(f"{k} {n:,}" for k, n in self.per_part)
        where = f"blocks {','.join(map(str, self.blocks))}" if self.blocks else "no encoder blocks"
        return (
            f"{self.model} [{self.spec}]: {self.trainable:,} / {self.total:,} trainable "
            f"({100 * self.fraction:.2f}%); {parts}; {where}; frozen prefix ends at block {self.first_block}"
        )


def _block_lists(model: SamModel, cfg: AdapterConfig) -> list[tuple[int, ...]]:
    """The encoder blocks each part of ``cfg`` trains; ConfigError when one does not exist in ``model``."""
    n = len(model.encoder_blocks())
    lists = []
    for part in cfg.parts:
        blocks = ADAPTERS[kind_name(part)].blocks(part, n)
        bad = [b for b in blocks if b >= n]
        if bad:
            raise ConfigError(
                f"adapter spec {cfg.to_spec()!r}: blocks {bad} do not exist in {model.name}'s "
                f"encoder; valid blocks are 0..{n - 1}"
            )
        lists.append(blocks)
    return lists


def first_adapted_block(model: SamModel, cfg: AdapterConfig) -> int:
    """Index of the first encoder block that trains (holds an adapter); the block count if none does."""
    trained = [b for blocks in _block_lists(model, cfg) for b in blocks]
    return min(trained) if trained else len(model.encoder_blocks())


def _count(params: list[nn.Parameter]) -> int:
    return sum(p.numel() for p in params)


def apply_adapters(model: SamModel, cfg: AdapterConfig, *, seed: int = 0) -> AdapterReport:
    """Freeze ``model``, apply each part of ``cfg`` in order (init drawn from ``seed``) and report."""
    if any(isinstance(m, _ADAPTER_TYPES) for m in model.modules()):
        raise ConfigError(f"{model.name} already holds adapters; build a fresh model to apply {cfg.to_spec()!r}")
    lists = _block_lists(model, cfg)
    model.requires_grad_(False)
    generator = torch.Generator().manual_seed(seed)
    per_part: list[tuple[str, int]] = []
    for part in cfg.parts:
        per_part.extend(ADAPTERS[kind_name(part)].apply(model, part, generator))
    model.train(model.training)  # re-apply the frozen batch-norm rule to the new trainable set
    params = list(model.parameters())
    return AdapterReport(
        model=model.name,
        spec=cfg.to_spec(),
        trainable=_count([p for p in params if p.requires_grad]),
        total=_count(params),
        per_part=tuple(per_part),
        blocks=tuple(sorted({i for indices in lists for i in indices})),
        first_block=first_adapted_block(model, cfg),
    )


@torch.no_grad()
def merge_lora(model: nn.Module) -> int:
    """Fold every LoRA into its qkv weight in place (for inference); return how many were merged."""
    merged = 0
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, LoRAQKV):
                setattr(module, name, child.merged())
                merged += 1
    return merged
