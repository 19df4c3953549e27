"""Batching Dataset items for DataLoader workers: :func:`collate_items` and :class:`PackedBatch`.

A DataLoader worker sends each tensor of a batch through a shared-memory segment of its own, whose
pages are faulted in on both sides; on a CPU machine that transfer, more than the per-item work,
bounds the loader (bench/loader.py, BENCHMARKS.md). Written here, over ``default_collate``, because
no collate in torch stacks a batch into one buffer or keeps a view's expansion: per key the result
is what ``default_collate`` gives, sent as one segment.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import default_collate

SMALL_BYTES = 65536  # a batch tensor up to this size is packed with the others rather than sent alone
_ALIGN = 64  # byte alignment of each tensor in a batch buffer (8 suffices for every dtype; 64 suits SIMD copies)
#: where each key lies in a batch buffer: byte offset, byte count, dtype, shape, and the shape it is expanded to
Layout = dict[str, tuple[int, int, torch.dtype, tuple[int, ...], tuple[int, ...] | None]]


def valid_region(input_size: torch.Tensor, size: int) -> torch.Tensor:
    """(B, size, size) bool, True inside each item's resized slice: rows < input_size[b, 0], cols < input_size[b, 1]."""
    out = np.zeros((len(input_size), size, size), dtype=bool)
    for b, (height, width) in enumerate(input_size.tolist()):
        out[b, :height, :width] = True
    return torch.from_numpy(out)


def _valid_is_derived(valid: Any, input_size: Any) -> bool:
    """Whether an item's ``valid`` is exactly the (size, size) region of its ``input_size`` (see valid_region)."""
    if not (
        isinstance(valid, torch.Tensor)
        and isinstance(input_size, torch.Tensor)
        and valid.dtype == torch.bool
        and valid.device.type == "cpu"
        and valid.ndim == 2
        and input_size.shape == (2,)
    ):
        return False
    height, width = input_size.tolist()
    flat = valid.numpy()
    return int(np.count_nonzero(flat)) == height * width and bool(flat[:height, :width].all())


class PackedBatch(dict):
    """A collated batch that crosses processes as one shared-memory segment.

    A DataLoader worker sends each tensor through a shared-memory segment of its own (created, filled
    and faulted in on both sides); that, more than the per-item work, bounds a CPU loader
    (bench/loader.py). :func:`collate_items` therefore stacks every tensor of the batch into views of
    one uint8 buffer (allocated in shared memory inside a worker, as ``default_collate`` allocates
    each of its outputs there) and the batch pickles as that buffer plus where each key lies in it:
    one segment, no copy. ``valid``, when built from ``input_size`` (``derived_valid``), is rebuilt on
    arrival instead of sent (a worker does not build it at all); a one-channel image expanded to
    three travels as its one channel. A batch whose tensors were replaced after collation, or built
    by hand, pickles its small tensors (≤ :data:`SMALL_BYTES`) packed in one buffer and the others as
    they are. Unpickling gives the same keys, dtypes, shapes and values (tensors as views of one
    buffer)."""

    derived_valid: bool = False
    _buffer: torch.Tensor | None = None
    _layout: Layout | None = None
    _views: dict[str, torch.Tensor] | None = None
    _valid_size: int = 0

    def __reduce__(self) -> tuple[Any, ...]:
        skip = {"valid"} if self.derived_valid else set()
        valid_size = (self._valid_size or int(self["valid"].shape[-1])) if self.derived_valid else 0
        tensors = {k for k, v in self.items() if isinstance(v, torch.Tensor) and k not in skip}
        if (
            self._views is not None
            and tensors == set(self._views)
            and all(self[k] is v for k, v in self._views.items())
        ):
            rest = {k: v for k, v in self.items() if k not in tensors and k not in skip}
            return (_unpack, (rest, self._buffer, self._layout, valid_size))
        small = {k: self[k] for k in tensors if self[k].nbytes <= SMALL_BYTES}
        layout: Layout = {}
        parts, offset = [], 0
        for key, value in small.items():
            raw = value.contiguous().reshape(-1).view(torch.uint8)
            layout[key] = (offset, raw.numel(), value.dtype, tuple(value.shape), None)
            parts += [raw, torch.zeros(-raw.numel() % _ALIGN, dtype=torch.uint8)]
            offset += raw.numel() + parts[-1].numel()
        rest = {k: v for k, v in self.items() if k not in small and k not in skip}
        return (_unpack, (rest, torch.cat(parts) if parts else torch.zeros(0, dtype=torch.uint8), layout, valid_size))


def _unpack(rest: dict[str, Any], buffer: torch.Tensor, layout: Layout, valid_size: int = 0) -> PackedBatch:
    """Rebuild a PackedBatch from its buffer (each tensor a view of it, re-expanded where it was), the
    rest and ``valid``."""
    out = PackedBatch(rest)
    for key, (offset, nbytes, dtype, shape, expand) in layout.items():
        view = buffer[offset : offset + nbytes].view(dtype).view(shape)
        out[key] = view if expand is None else view.expand(-1, *expand)
    if valid_size:
        out["valid"] = valid_region(out["input_size"], valid_size)
        out.derived_valid = True
    return out


def _in_worker() -> bool:
    return torch.utils.data.get_worker_info() is not None


def _batch_buffer(nbytes: int, shared: bool) -> torch.Tensor:
    """A 1-D uint8 tensor of ``nbytes``, in shared memory when ``shared`` (as ``default_collate`` does in a worker)."""
    if not shared:
        return torch.empty(nbytes, dtype=torch.uint8)
    template = torch.empty(0, dtype=torch.uint8)
    return template.new(template._typed_storage()._new_shared(nbytes, device="cpu"))


def collate_items(items: list[dict[str, Any]]) -> PackedBatch:
    """Collate Dataset items into a :class:`PackedBatch`: per key, what ``default_collate`` gives.

    Written here rather than left to ``default_collate`` because, inside a DataLoader worker, that
    puts every tensor of the batch in a shared-memory segment of its own; here every tensor is stacked
    into a view of one buffer, which a worker allocates in shared memory and sends as one segment.
    Two further savings, same values: a tensor every item holds as one slice expanded along dim 0
    (stride 0: a one-channel image from :func:`training.augment.resize_pad`) is stacked from that slice
    and expanded again, (B, 1, ...) → (B, C, ...) as a view (``.contiguous()`` gives an ordinary
    tensor); and ``valid``, when every item's is exactly the region of its ``input_size`` (checked),
    is rebuilt from the stacked sizes rather than sent between processes."""
    first = items[0]
    derived = "valid" in first and all(_valid_is_derived(it["valid"], it.get("input_size")) for it in items)
    batch = PackedBatch()
    plan: list[tuple[str, list[torch.Tensor], tuple[int, ...], tuple[int, ...] | None]] = []  # key, parts, shape
    for key, value in first.items():
        if key == "valid" and derived:
            continue
        values = [it[key] for it in items]
        if not isinstance(value, torch.Tensor):
            collated = default_collate(values)
            if isinstance(collated, torch.Tensor) and collated.device.type == "cpu":
                plan.append((key, [collated], tuple(collated.shape), None))
            else:
                batch[key] = collated
        elif value.device.type != "cpu" or any(v.shape != value.shape or v.dtype != value.dtype for v in values):
            batch[key] = default_collate(values)  # raises default_collate's error for unequal shapes
        elif value.ndim and value.shape[0] > 1 and all(v.stride(0) == 0 for v in values):
            plan.append((key, [v[:1] for v in values], (len(values), 1, *value.shape[1:]), tuple(value.shape)))
        else:
            plan.append((key, values, (len(values), *value.shape), None))
    layout: Layout = {}
    offset = 0
    for key, values, shape, expand in plan:
        nbytes = int(np.prod(shape, dtype=np.int64)) * values[0].element_size()
        layout[key] = (offset, nbytes, values[0].dtype, shape, expand)
        offset += nbytes + (-nbytes % _ALIGN)
    buffer = _batch_buffer(offset, _in_worker())
    views: dict[str, torch.Tensor] = {}
    for key, values, shape, expand in plan:
        start, nbytes, dtype, _, _ = layout[key]
        view = buffer[start : start + nbytes].view(dtype).view(shape)
        if isinstance(first[key], torch.Tensor):
            torch.stack(values, out=view)
        else:  # default_collate's tensor of python numbers
            view.copy_(values[0])
        batch[key] = views[key] = view if expand is None else view.expand(-1, *expand)
    batch._buffer, batch._layout, batch._views = buffer, layout, views
    if derived:
        batch.derived_valid = True
        batch._valid_size = int(first["valid"].shape[-1])
        if not _in_worker():  # a worker only sends the batch, and the receiver rebuilds valid
            batch["valid"] = valid_region(batch["input_size"], batch._valid_size)
    return batch
