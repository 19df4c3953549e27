"""Adapters for parameter-efficient fine-tuning of SAM-shaped models: one registry (``ADAPTERS``) of kinds,
each with its own params dataclass and apply function, spec strings parsed by :func:`parse_adapter`,
applied by :func:`apply_adapters`."""

from training.adapters.apply import AdapterReport, apply_adapters, first_adapted_block, merge_lora
from training.adapters.depth import DepthParams, stack_channels, stack_slices
from training.adapters.lora import LoraParams
from training.adapters.modules import Bottleneck, DepthAttention, LoRAQKV, ParallelAdapter, RefineHead, SerialAdapter
from training.adapters.parallel import ParallelParams
from training.adapters.refine import RefineParams
from training.adapters.registry import (
    ADAPTERS,
    AdapterConfig,
    AdapterKind,
    AdapterParams,
    adapter_kind,
    kind_name,
    parse_adapter,
)
from training.adapters.serial import SerialParams
from training.adapters.unfreeze import DecoderParams, FullParams, PromptParams

__all__ = [
    "ADAPTERS",
    "AdapterConfig",
    "AdapterKind",
    "AdapterParams",
    "AdapterReport",
    "Bottleneck",
    "DecoderParams",
    "DepthAttention",
    "DepthParams",
    "FullParams",
    "LoRAQKV",
    "LoraParams",
    "ParallelAdapter",
    "ParallelParams",
    "PromptParams",
    "RefineHead",
    "RefineParams",
    "SerialAdapter",
    "SerialParams",
    "adapter_kind",
    "apply_adapters",
    "first_adapted_block",
    "kind_name",
    "merge_lora",
    "parse_adapter",
    "stack_channels",
    "stack_slices",
]
