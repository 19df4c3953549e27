"""Batching Dataset items for DataLoader workers: :func:`collate_items` and :class:`PackedBatch`.

A DataLoader worker sends each tensor of a batch through a shared-memory segment of its own, whose
pages are faulted in on both sides; on a CPU machine that transfer, more than the per-item work,
bounds the loader (bench/loader.py, BENCHMARKS.md). Written here, over ``default_collate``, because
no collate in torch keeps a view's expansion or packs small tensors: per key the result is what
``default_collate`` gives, with fewer and smaller segments.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import default_collate

SMALL_BYTES = 65536  # a batch tensor up to this size is packed with the others rather than sent alone


def valid_region(input_size: torch.Tensor, size: int) -> torch.Tensor:
    """(B, size, size) bool, True inside each item's resized slice: rows < input_size[b, 0], cols < input_size[b, 1]."""
    out = np.zeros((len(input_size), size, size), dtype=bool)
    for b, (height, width) in enumerate(input_size.tolist()):
        out[b, :height, :width] = True
    return torch.from_numpy(out)


def _valid_is_derived(valid: Any, input_size: Any) -> bool:
    """Whether an item's ``valid`` is exactly the (size, size) region of its ``input_size`` (see valid_region)."""
    if not (isinstance(valid, torch.Tensor) and isinstance(input_size, torch.Tensor) and valid.dtype == torch.bool
            and valid.device.type == "cpu" and valid.ndim == 2 and input_size.shape == (2,)):
        return False
    height, width = input_size.tolist()
    flat = valid.numpy()
    return int(np.count_nonzero(flat)) == height * width and bool(flat[:height, :width].all())


class PackedBatch(dict):
    """A collated batch that crosses processes in fewer, smaller shared-memory segments.

    A DataLoader worker sends each tensor through its own shared-memory segment whose pages are
    faulted in on both sides; that, more than the per-item work, bounds a CPU loader (bench/loader.py).
    So tensors of at most :data:`SMALL_BYTES` go packed in one uint8 buffer (a loader of copies of one
    uint8 item ran 850 → 1,370 samples/s, 1 worker, 2-core machine); ``valid``, when
    :func:`collate_items` built it from ``input_size`` (``derived_valid``), is rebuilt on arrival
    instead of sent; and a one-channel image expanded to three travels as its one channel (torch
    pickles a view as its storage). Unpickling gives the same keys, dtypes, shapes and values (small
    tensors as views of one buffer)."""

    derived_valid: bool = False

    def __reduce__(self) -> tuple[Any, ...]:
        skip = {"valid"} if self.derived_valid else set()
        small = {k: v for k, v in self.items()
                 if isinstance(v, torch.Tensor) and v.nbytes <= SMALL_BYTES and k not in skip}
        layout: dict[str, tuple[int, int, torch.dtype, tuple[int, ...]]] = {}
        parts, offset = [], 0
        for key, value in small.items():
            raw = value.contiguous().reshape(-1).view(torch.uint8)
            layout[key] = (offset, raw.numel(), value.dtype, tuple(value.shape))
            parts += [raw, torch.zeros(-raw.numel() % 8, dtype=torch.uint8)]  # keep 8-byte alignment
            offset += raw.numel() + parts[-1].numel()
        rest = {k: v for k, v in self.items() if k not in small and k not in skip}
        valid_size = int(self["valid"].shape[-1]) if self.derived_valid else 0
        return (_unpack, (rest, torch.cat(parts) if parts else torch.zeros(0, dtype=torch.uint8), layout, valid_size))


def _unpack(rest: dict[str, Any], buffer: torch.Tensor, layout: dict[str, tuple[int, int, torch.dtype, tuple[int, ...]]],
            valid_size: int = 0) -> PackedBatch:
    """Rebuild a PackedBatch from its packed small tensors (views of ``buffer``), the rest and ``valid``."""
    out = PackedBatch(rest)
    for key, (offset, nbytes, dtype, shape) in layout.items():
        out[key] = buffer[offset:offset + nbytes].view(dtype).reshape(shape)
    if valid_size:
        out["valid"] = valid_region(out["input_size"], valid_size)
        out.derived_valid = True
    return out


def collate_items(items: list[dict[str, Any]]) -> PackedBatch:
    """Collate Dataset items into a :class:`PackedBatch`: per key, what ``default_collate`` gives.

    Written here rather than left to ``default_collate`` because, inside a DataLoader worker, that
    puts every tensor of the batch in a shared-memory segment of its own, the small ones too, though
    :class:`PackedBatch` sends those packed; here only tensors over :data:`SMALL_BYTES` are (still by
    ``default_collate``), the rest are stacked in ordinary memory. Two further savings, same values:
    a tensor every item holds as one slice expanded along dim 0 (stride 0: a one-channel image from
    :func:`training.augment.resize_pad`) is stacked from that slice and expanded again, (B, 1, ...) →
    (B, C, ...) as a view (``.contiguous()`` gives an ordinary tensor); and ``valid``, when every
    item's is exactly the region of its ``input_size`` (checked), is built from the stacked sizes and
    not sent between processes."""
    first = items[0]
    derived = "valid" in first and all(_valid_is_derived(it["valid"], it.get("input_size")) for it in items)
    batch = PackedBatch()
    for key, value in first.items():
        if key == "valid" and derived:
            continue
        values = [it[key] for it in items]
        if not isinstance(value, torch.Tensor):
            batch[key] = default_collate(values)
        elif value.ndim and value.shape[0] > 1 and all(v.stride(0) == 0 and v.shape == value.shape for v in values):
            batch[key] = _collate_tensors([v[:1] for v in values]).expand(-1, *value.shape)
        else:
            batch[key] = _collate_tensors(values)
    if derived:
        batch["valid"] = valid_region(batch["input_size"], int(first["valid"].shape[-1]))
        batch.derived_valid = True
    return batch


def _collate_tensors(values: list[torch.Tensor]) -> torch.Tensor:
    """Stack same-shape tensors: large ones by ``default_collate`` (shared memory in a worker), small ones in place."""
    return default_collate(values) if values[0].nbytes > SMALL_BYTES else torch.stack(values)
