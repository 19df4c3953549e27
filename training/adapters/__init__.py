"""Adapters for parameter-efficient fine-tuning of SAM-shaped models: one registry (``ADAPTERS``),
spec strings parsed by :func:`parse_adapter`, inserted by :func:`apply_adapters`."""

from training.adapters.apply import AdapterReport, apply_adapters, first_adapted_block, merge_lora
from training.adapters.modules import Bottleneck, LoRAQKV, ParallelAdapter, RefineHead, SerialAdapter
from training.adapters.registry import ADAPTERS, AdapterConfig, AdapterKind, AdapterPart, parse_adapter

__all__ = [
    "ADAPTERS",
    "AdapterConfig",
    "AdapterKind",
    "AdapterPart",
    "AdapterReport",
    "Bottleneck",
    "LoRAQKV",
    "ParallelAdapter",
    "RefineHead",
    "SerialAdapter",
    "apply_adapters",
    "first_adapted_block",
    "merge_lora",
    "parse_adapter",
]
