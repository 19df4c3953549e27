"""The torch Dataset over a curated mixture: one item per object (case, slice, label) of a split.

An item is the slice in SAM's model frame as 3 channels (slices ``[z-1, z, z+1]`` with ``context``,
SlideSAM), or with ``depth`` k > 1 (a ``depth`` adapter) the stack of the k slices centred on it, clamped at
the volume ends, as 3k channels (3 per slice: its context channels, or its grey value three times) with
their indices ``depth_z``, the object's mask, its prompt in model pixels, its provenance and ``view`` (the
flips applied: the prefix cache's key). Training prompts are drawn afresh after augmentation; val/test prompts come from
the mixture's prompt set (or ``object_rng``), the same in any process. The store is opened lazily once per
process, which keeps an LRU cache of decoded slices (an epoch revisits a slice once per object on it).
DataLoader workers start by ``forkserver`` or ``spawn``: Icechunk's Tokio runtime does not survive
``fork()`` (a forked worker hangs), so a forked one raises StoreError instead.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import OrderedDict
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
import torch
from pydantic import BeforeValidator
from torch.utils.data import DataLoader, Dataset, Sampler

from samdata.config import Count, Positive, config
from samdata.errors import ConfigError, RegistryError, StoreError, ValidationError
from samdata.prompts import Prompt, columns_to_prompts, frame_shape, object_rng, parse_scheme
from storage import SliceStore
from storage.records import SPLITS, MixtureRecord, PromptSetRecord, load_mixture, load_prompt_set, mixture_view
from training.adapters.depth import stack_channels, stack_slices
from training.augment import Augment, augment_entry, resize_pad, resize_pad_mask
from training.collate import PackedBatch, collate_items  # noqa: F401 (PackedBatch re-exported)

DTYPES: tuple[str, ...] = ("float32", "uint8")
WORKER_CONTEXT = "forkserver"  # start method for DataLoader workers (Icechunk does not survive fork)
DEFAULT_SCHEME = "box:jitter=5"
_NO_BOX = (-1.0, -1.0, -1.0, -1.0)
_opened_in: int | None = None  # pid of the process in which this module last opened a store


def _names(value: Any) -> Any:
    """Label names given as any sequence, each as a string (numbers too)."""
    return tuple(str(v) for v in value) if isinstance(value, list | tuple) else value


@config
class DatasetConfig:
    """How items are made: model ``size``, context channels, object filter, augmentation and prompts.

    ``augment``: names from :data:`training.augment.AUGMENTS` (train split only). ``labels``: label
    names to keep (None = the mixture's labels, else all). ``scheme``: training prompt scheme spec
    (None = the mixture's prompt-set scheme, else ``box:jitter=5``). ``cache_mb``: per-process slice cache.
    ``depth``: slices per item (a ``depth`` adapter's k; 1: the slice alone).
    ``dtype``: ``uint8`` (the default) gives image 0..255 and mask {0, 1} as uint8, a quarter of
    float32's bytes through the DataLoader's workers, which is what bounds throughput on CPU (see
    bench/loader.py); ``float32`` gives image in [0, 1] and mask {0., 1.}. Model inputs take either
    (:func:`training.augment.pixel_frames` widens them on the model's device).
    """

    size: Positive = 256
    context: bool = False
    depth: Positive = 1
    min_area: Count = 10
    augment: tuple[str, ...] = ()
    max_points: Count = 8
    labels: Annotated[tuple[str, ...], BeforeValidator(_names)] | None = None
    scheme: str | None = None
    cache_mb: Count = 512
    dtype: Literal[DTYPES] = "uint8"  # type: ignore[valid-type]

    def __post_init__(self) -> None:
        for name in self.augment:
            augment_entry(name)
        if self.scheme is not None:
            parse_scheme(self.scheme)


class SliceCache:
    """A per-process LRU of decoded slices ``(case_id, z) → (image, label)`` bounded in bytes."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes, self.nbytes, self.hits, self.misses = max_bytes, 0, 0, 0
        self._items: OrderedDict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = OrderedDict()

    def get(self, store: SliceStore, case_id: str, z: int) -> tuple[np.ndarray, np.ndarray]:
        """Slice ``z`` of ``case_id``: ((Y, X) uint8 image, (Y, X) label), from the cache or the store."""
        key = (case_id, z)
        found = self._items.get(key)
        if found is not None:
            self.hits += 1
            self._items.move_to_end(key)
            return found
        self.misses += 1
        found = store.read_slice(case_id, z)
        if found[0].nbytes + found[1].nbytes <= self.max_bytes:
            self._items[key] = found
            self.nbytes += found[0].nbytes + found[1].nbytes
            while self.nbytes > self.max_bytes:
                self.nbytes -= sum(a.nbytes for a in self._items.popitem(last=False)[1])
        return found


def _open(store_url: str, snapshot: str | None) -> SliceStore:
    """Open the store (at ``snapshot`` or the head) and note this process as one running Icechunk."""
    global _opened_in
    store = SliceStore.open(store_url, snapshot=snapshot)
    _opened_in = os.getpid()
    return store


@dataclass(frozen=True)
class _Tables:
    """The mixture and its prompt set (if it names one), and the snapshot they were read at."""

    mixture: MixtureRecord
    prompt_set: PromptSetRecord | None
    snapshot_id: str


def _read_tables(store_url: str, mixture: str, snapshot: str | None) -> tuple[_Tables, SliceStore]:
    """Read mixture ``mixture`` (and its prompt set) at ``snapshot``, else at the branch head
    (:func:`storage.records.mixture_view`)."""
    store = mixture_view(_open(store_url, snapshot), mixture)
    record = load_mixture(store, mixture)
    prompt_set = None
    if record.prompt_set:
        try:
            prompt_set = load_prompt_set(store, record.prompt_set)
        except RegistryError as err:
            raise ValidationError(
                f"mixture {mixture!r} names prompt set {record.prompt_set!r}, which is not in "
                f"store {store.url!r} at {store.snapshot_id}"
            ) from err
    return _Tables(record, prompt_set, store.snapshot_id), store


def _select(store: SliceStore, tables: _Tables, mixture: str, split: str, config: DatasetConfig) -> pd.DataFrame:
    """The objects of ``split``'s cases with area >= min_area and a kept label, sorted (case_id, z, label)."""
    cases, splits = tables.mixture.cases["case_id"], tables.mixture.cases["split"]
    absent = sorted(set(cases) - set(store.case_ids()))
    if absent:
        raise ValidationError(
            f"mixture {mixture!r} lists cases {absent[:5]} that are not in store "
            f"{store.url!r} at snapshot {store.snapshot_id}"
        )
    labels = config.labels if config.labels is not None else tables.mixture.labels
    objects = store.objects()
    keep = objects["case_id"].isin(set(cases[splits == split])) & (objects["area"] >= config.min_area)
    if labels is not None:
        keep &= objects["label_name"].isin(set(labels))
    chosen = objects[keep].sort_values(["case_id", "z", "label"], kind="stable").reset_index(drop=True)
    if chosen.empty:
        raise ValidationError(
            f"mixture {mixture!r} has no objects in split {split!r} with area >= min_area={config.min_area}"
            f"{'' if labels is None else f' and label in {list(labels)}'} (store {store.url!r} at "
            f"{store.snapshot_id}; {int((splits == split).sum())} cases in that split)"
        )
    return chosen


class MixtureDataset(Dataset):
    """Objects of one split of a store mixture as SAM training items (see the module docstring)."""

    def __init__(
        self,
        store_url: str,
        mixture: str,
        split: str,
        config: DatasetConfig,
        *,
        seed: int = 0,
        snapshot: str | None = None,
    ) -> None:
        if split not in SPLITS:
            raise ConfigError(f"split {split!r} for mixture {mixture!r}; expected one of {', '.join(SPLITS)}")
        tables, store = _read_tables(str(store_url), mixture, snapshot)
        data_snapshot = snapshot or tables.mixture.snapshot_id
        store = store if store.snapshot_id == data_snapshot else store.at(data_snapshot)
        self.store_url, self.mixture, self.split, self.config, self.seed = store.url, mixture, split, config, seed
        self.snapshot_id, self.mixture_snapshot_id = store.snapshot_id, tables.snapshot_id
        self.prompt_set: str | None = tables.mixture.prompt_set or None
        self._objects = _select(store, tables, mixture, split, config)
        stored_scheme = tables.prompt_set.scheme if tables.prompt_set is not None else None
        self.scheme_spec = config.scheme or stored_scheme or DEFAULT_SCHEME
        self._train_scheme = parse_scheme(self.scheme_spec)
        self._eval_scheme = parse_scheme(stored_scheme or config.scheme or DEFAULT_SCHEME)
        self._eval_seed = tables.prompt_set.seed if tables.prompt_set is not None else seed
        self._init_items(store, tables)
        self._augment = Augment(config.augment) if config.augment and split == "train" else None
        self._store: SliceStore | None = store
        self._pid = os.getpid()
        self._cache = SliceCache(config.cache_mb * 2**20)
        self._rng: np.random.Generator | None = None

    def _init_items(self, store: SliceStore, tables: _Tables) -> None:
        """Precompute the per-item arrays read by ``__getitem__`` (no pandas on the hot path)."""
        obj = self._objects
        self._cases = sorted(set(obj["case_id"]))
        self._case_idx = np.searchsorted(self._cases, obj["case_id"].to_numpy(dtype=str)).astype(np.int32)
        self._z = obj["z"].to_numpy(dtype=np.int64)
        self._label = obj["label"].to_numpy(dtype=np.int64)
        self._label_name = obj["label_name"].astype(str).tolist()
        cases = tables.mixture.cases
        row = {c: k for k, c in enumerate(cases["case_id"].tolist())}
        origin, weight = cases["origin"].tolist(), cases["weight"].to_numpy(dtype=np.float64)
        self._origin = [origin[row[c]] for c in self._cases]
        self._case_weight = np.array([weight[row[c]] for c in self._cases], dtype=np.float64)
        slices = store.slices()
        depth = slices[slices["case_id"].isin(set(self._cases))].groupby("case_id").size()
        self._depth = depth.reindex(self._cases).to_numpy(dtype=np.int64)
        self._fixed: list[Prompt | None] = [None] * len(obj)
        if self.split != "train" and tables.prompt_set is not None and self._eval_scheme.name != "mask":
            self._fixed = _stored_prompts(obj, tables.prompt_set)

    def __len__(self) -> int:
        return len(self._z)

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the open store, cache or generator: each process opens its own."""
        return {k: v for k, v in self.__dict__.items() if k not in ("_store", "_cache", "_rng", "_pid")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._store, self._pid, self._rng = None, -1, None
        self._cache = SliceCache(self.config.cache_mb * 2**20)

    def _reader(self) -> SliceStore:
        """This process's store view at the dataset's snapshot (opened on first use in each process)."""
        if self._store is None or self._pid != os.getpid():
            if _opened_in is not None and _opened_in != os.getpid():
                raise StoreError(
                    f"process {os.getpid()} was forked from {_opened_in} after it opened store "
                    f"{self.store_url!r}; Icechunk does not survive fork(), reads would hang: start "
                    f"DataLoader workers by {WORKER_CONTEXT!r} or 'spawn' (see mixture_loader)"
                )
            self._store = _open(self.store_url, self.snapshot_id)
            self._cache = SliceCache(self.config.cache_mb * 2**20)
            self._pid, self._rng = os.getpid(), None
        return self._store

    def _train_rng(self) -> np.random.Generator:
        """This process's generator for training draws, seeded from (seed, torch.initial_seed())."""
        if self._rng is None:
            self._rng = np.random.default_rng(np.random.SeedSequence([self.seed, torch.initial_seed()]))
        return self._rng

    def objects(self) -> pd.DataFrame:
        """The object rows this dataset samples, in item order (store index columns)."""
        return self._objects.copy()

    def sample_weights(self) -> np.ndarray:
        """(N,) float64 item weights: each case's mixture weight split evenly over its items."""
        counts = np.bincount(self._case_idx, minlength=len(self._cases)).astype(np.float64)
        return self._case_weight[self._case_idx] / counts[self._case_idx]

    def _slices(self, case_id: str, z: int, depth: int) -> tuple[np.ndarray, np.ndarray]:
        """((C, Y, X) uint8 channels, (Y, X) label of slice z): C = 3 with context, else 1; with ``config.depth``
        k > 1, the 3k channels of the stack of k slices centred on z (:func:`training.adapters.stack_channels`)."""
        store = self._reader()
        label = self._cache.get(store, case_id, z)[1]
        if self.config.depth > 1:
            return stack_channels(
                partial(self._channels, store, case_id, depth=depth), z, self.config.depth, depth
            ), label
        return self._channels(store, case_id, z, depth), label

    def _channels(self, store: SliceStore, case_id: str, z: int, depth: int) -> np.ndarray:
        """(C, Y, X) uint8 channels of slice z: ``[z-1, z, z+1]`` (edges repeated) with context, else (1, Y, X)."""
        image = self._cache.get(store, case_id, z)[0]
        if not self.config.context:
            return image[None]
        below = self._cache.get(store, case_id, max(z - 1, 0))[0]
        above = self._cache.get(store, case_id, min(z + 1, depth - 1))[0]
        return np.stack([below, image, above])

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Item ``index``: image, mask, prompt (model frame), valid region, provenance and geometry."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"item {index} out of range for {len(self)} objects of split {self.split!r}")
        index = int(index) % len(self)
        case = int(self._case_idx[index])
        case_id, z, value = self._cases[case], int(self._z[index]), int(self._label[index])
        image, label = self._slices(case_id, z, int(self._depth[case]))
        view = 0
        if self.split == "train" and self._augment is not None:
            image, label, view = self._augmented(image, label, value, self._train_rng())
        mask = label == value
        if self.split == "train":
            prompt = self._train_scheme(mask, self._train_rng())
        elif (prompt := self._fixed[index]) is None:  # type: ignore[assignment]
            prompt = self._eval_scheme(mask, object_rng(self._eval_seed, case_id, z, value))
        item = self._frame(image, mask, prompt)
        if self.config.depth > 1:
            item["depth_z"] = torch.tensor(stack_slices(z, self.config.depth, int(self._depth[case])))
        item.update(
            case_id=case_id, z=z, label=value, label_name=self._label_name[index], origin=self._origin[case], view=view
        )
        return item

    def _augmented(
        self, image: np.ndarray, label: np.ndarray, value: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """Augment image and label together, redrawing (up to 8 times) while the object vanishes; with the
        view drawn (see :meth:`training.augment.Augment.apply`; 0 when every draw lost the object)."""
        assert self._augment is not None
        for _ in range(8):
            out_image, out_label, view = self._augment.apply(image, label, rng)
            if (out_label == value).any():
                return out_image, out_label, view
        return image, label, 0

    def _frame(self, image: np.ndarray, mask: np.ndarray, prompt: Prompt) -> dict[str, Any]:
        """Resize and pad image and mask to the model frame and map the prompt into it."""
        size, max_points = self.config.size, self.config.max_points
        height, width = mask.shape
        new_h, new_w = frame_shape((height, width), size)
        # to_frame maps exactly; at scale 1 (the slice already fills the frame) it is the identity
        framed = prompt if (new_h, new_w) == (height, width) else prompt.to_frame((height, width), size)
        if framed.n_points > max_points:
            raise ValidationError(
                f"prompt scheme {self.scheme_spec!r} gave {framed.n_points} points; "
                f"DatasetConfig.max_points={max_points} holds fewer"
            )
        points = np.zeros((max_points, 2), dtype=np.float32)
        labels = np.full(max_points, -1, dtype=np.int64)
        points[: framed.n_points] = framed.points
        labels[: framed.n_points] = framed.point_labels
        valid = np.zeros((size, size), dtype=bool)
        valid[:new_h, :new_w] = True
        sizes = torch.from_numpy(
            np.array([(height, width), (new_h, new_w), (size - new_h, size - new_w)], dtype=np.int64)
        )  # original_size, input_size, pad: views of one array
        item: dict[str, Any] = {
            "image": resize_pad(image, size, channels=max(3, len(image)), dtype=getattr(torch, self.config.dtype)),
            "mask": resize_pad_mask(mask, size, np.dtype(self.config.dtype).type),
            "box": torch.from_numpy(np.array(framed.box if framed.box is not None else _NO_BOX, dtype=np.float32)),
            "has_box": framed.box is not None,
            "points": torch.from_numpy(points),
            "point_labels": torch.from_numpy(labels),
            "valid": torch.from_numpy(valid),
            "scale": size / max(height, width),
            "original_size": sizes[0],
            "input_size": sizes[1],
            "pad": sizes[2],
        }
        if framed.mask is not None:
            item["mask_prompt"] = torch.from_numpy(framed.mask[None].astype(np.float32))
        return item


def mixture_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    num_workers: int = 0,
    sampler: Sampler | None = None,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
) -> DataLoader:
    """A DataLoader whose workers start by forkserver and persist across epochs, with packed batches."""
    if num_workers > 0:  # the server imports this module once (no store opened), workers fork from it
        multiprocessing.get_context(WORKER_CONTEXT).set_forkserver_preload([__name__])
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate_items,
        multiprocessing_context=WORKER_CONTEXT if num_workers > 0 else None,
        persistent_workers=num_workers > 0,
        generator=generator,
    )


def _stored_prompts(objects: pd.DataFrame, prompt_set: PromptSetRecord) -> list[Prompt | None]:
    """The prompt-set prompt of each object row (None where the prompt set has no row for it)."""
    frame = prompt_set.frame
    keys = zip(frame["case_id"].tolist(), frame["z"].tolist(), frame["label"].tolist())
    row_of = {(c, int(z), int(lab)): i for i, (c, z, lab) in enumerate(keys)}
    rows = [
        row_of.get((c, int(z), int(lab)), -1)
        for c, z, lab in zip(objects["case_id"].tolist(), objects["z"].tolist(), objects["label"].tolist())
    ]
    found = np.array([r for r in rows if r >= 0], dtype=np.int64)
    prompts = iter(columns_to_prompts(prompt_set.prompt_columns(found)))
    return [next(prompts) if r >= 0 else None for r in rows]
