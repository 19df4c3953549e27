"""The batches of a training run: which items each step draws, with which generator, and the validation set.

The items of step ``s`` and the generator of their prompts and augmentation are a pure function of
``(seed, s, micro-batch, rank, position)``: there is no sampler state to lose, any number of loader workers
gives the same batches, and a resumed run continues exactly. Training draws train-split objects with the
mixture's weights; validation uses the ``val`` split's fixed prompts, or held-out ``val_slices`` of the
train cases. Items stay uint8 through the loader workers (a quarter of float32's bytes; bench/loader.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch.utils.data import DataLoader, Dataset

from samdata.errors import ValidationError
from samdata.prompts import object_rng
from samdata.spec import parse_slices
from training.adapters import parse_adapter
from training.collate import collate_items
from training.config import TrainConfig
from training.dataset import WORKER_CONTEXT, DatasetConfig, MixtureDataset
from training.loop import Dist


class SeededMixture(MixtureDataset):
    """A MixtureDataset whose training draws (prompt, augmentation) come from a generator given per item."""

    _item_rng: np.random.Generator | None = None

    def item(self, index: int, rng: np.random.Generator) -> dict[str, Any]:
        """Item ``index`` with its training prompt and augmentation drawn from ``rng``."""
        self._item_rng = rng
        try:
            return self[index]
        finally:
            self._item_rng = None

    def _train_rng(self) -> np.random.Generator:
        return self._item_rng if self._item_rng is not None else super()._train_rng()


class KeyedItems(Dataset):
    """Items addressed by ``(index, seed words)``: the generator of each item is part of its key."""

    def __init__(self, dataset: SeededMixture) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        """Number of objects of the wrapped dataset."""
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, tuple[int, ...]]) -> dict[str, Any]:
        """The item ``key[0]`` drawn with ``default_rng(SeedSequence(key[1]))``."""
        return self.dataset.item(key[0], np.random.default_rng(np.random.SeedSequence(list(key[1]))))


class StepSampler:
    """Batch sampler: the micro-batches of steps ``start+1 .. steps`` as lists of KeyedItems keys."""

    def __init__(
        self, candidates: np.ndarray, weights: np.ndarray, config: TrainConfig, ranks: Dist, start: int
    ) -> None:
        self.candidates, self.p = candidates, weights / weights.sum()
        self.config, self.ranks, self.start = config, ranks, start

    def __len__(self) -> int:
        """Micro-batches left."""
        return (self.config.steps - self.start) * self.config.grad_accum

    def keys(self, step: int, micro: int) -> list[tuple[int, tuple[int, ...]]]:
        """This rank's keys of micro-batch ``micro`` of step ``step`` (same on every run and rank count)."""
        cfg, r = self.config, self.ranks
        rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 0, step, micro]))
        picks = rng.choice(len(self.candidates), size=r.world * cfg.batch_size, p=self.p)
        mine = picks[r.rank * cfg.batch_size : (r.rank + 1) * cfg.batch_size]
        return [(int(self.candidates[i]), (cfg.seed, 1, step, micro, r.rank, j)) for j, i in enumerate(mine)]

    def __iter__(self) -> Iterator[list[tuple[int, tuple[int, ...]]]]:
        for step in range(self.start + 1, self.config.steps + 1):
            for micro in range(self.config.grad_accum):
                yield self.keys(step, micro)


def _z_filter(dataset: MixtureDataset, keep: str | None, drop: str | None) -> np.ndarray:
    """Indices of ``dataset``'s items whose z is in ``keep`` (all if None) and not in ``drop``."""
    z = dataset.objects()["z"].to_numpy()
    mask = np.ones(len(z), dtype=bool)
    if keep is not None:
        mask &= np.isin(z, parse_slices(keep))
    if drop is not None:
        mask &= ~np.isin(z, parse_slices(drop))
    return np.flatnonzero(mask)


def _dataset_config(config: TrainConfig, augment: tuple[str, ...]) -> DatasetConfig:
    assert config.size is not None
    return DatasetConfig(
        size=config.size,
        context=config.context,
        depth=parse_adapter(config.adapter).depth,
        min_area=config.min_area,
        augment=augment,
        labels=config.labels,
        scheme=config.scheme,
        dtype="uint8",
    )


@dataclass(frozen=True)
class RunData:
    """The training items and the validation set of a run."""

    train: SeededMixture
    candidates: np.ndarray
    weights: np.ndarray
    val: MixtureDataset | None
    val_indices: np.ndarray
    protocol: str


def _case_weights_kept(train: MixtureDataset, candidates: np.ndarray) -> np.ndarray:
    """Item weights of ``candidates`` rescaled so each case keeps its mixture weight after slice filtering.

    ``sample_weights`` splits a case's weight over all its objects; dropping most of a real volume's
    slices (``train_slices``) would otherwise shrink that case's share against synthetic 2D cases.
    """
    all_weights = train.sample_weights()
    _, case_index = np.unique(train.objects()["case_id"].to_numpy(), return_inverse=True)
    total = np.bincount(case_index, weights=all_weights)
    kept = np.bincount(case_index[candidates], weights=all_weights[candidates], minlength=total.size)
    scale = np.divide(total, kept, out=np.zeros_like(total), where=kept > 0)
    return all_weights[candidates] * scale[case_index[candidates]]


def build_data(config: TrainConfig, snapshot: str | None) -> RunData:
    """Open the mixture's train items (weights, slice filter) and its validation set."""
    train = SeededMixture(
        config.store,
        config.mixture,
        "train",
        _dataset_config(config, config.augment),
        seed=config.seed,
        snapshot=snapshot,
    )
    candidates = _z_filter(train, config.train_slices, config.val_slices)
    weights = _case_weights_kept(train, candidates)
    if not len(candidates) or not weights.sum() > 0:
        raise ValidationError(
            f"mixture {config.mixture!r} of store {config.store!r} has no training samples: {len(train)} train "
            f"objects, {len(candidates)} left after train_slices={config.train_slices!r} and held-out "
            f"val_slices={config.val_slices!r}, total weight {float(weights.sum()):g}; expected at least one "
            "object with weight > 0"
        )
    if config.val_slices is not None:
        val: MixtureDataset | None = SeededMixture(
            config.store,
            config.mixture,
            "train",
            _dataset_config(config, ()),
            seed=config.seed,
            snapshot=train.snapshot_id,
        )
        indices = _z_filter(val, config.val_slices, None)
        protocol = f"held-out slices z in {config.val_slices} of the train split's cases (never trained on)"
    else:
        try:
            val = MixtureDataset(
                config.store,
                config.mixture,
                "val",
                _dataset_config(config, ()),
                seed=config.seed,
                snapshot=train.snapshot_id,
            )
            indices, protocol = np.arange(len(val)), "the mixture's val split with its fixed prompts"
        except ValidationError as err:  # an empty val split: train without validation, and say so
            val, indices, protocol = None, np.zeros(0, dtype=np.int64), f"none ({err})"
    if config.val_max and len(indices) > config.val_max:
        indices = indices[np.unique(np.linspace(0, len(indices) - 1, config.val_max).round().astype(int))]
    return RunData(train, candidates, weights, val, indices, protocol)


def val_batches(data: RunData, config: TrainConfig) -> Iterator[dict[str, Any]]:
    """Collated validation batches of ``batch_size`` items with fixed prompts."""
    assert data.val is not None
    objects = data.val.objects()
    for start in range(0, len(data.val_indices), config.batch_size):
        items = []
        for i in data.val_indices[start : start + config.batch_size].tolist():
            if isinstance(data.val, SeededMixture):
                row = objects.iloc[i]
                items.append(
                    data.val.item(i, object_rng(config.seed, str(row["case_id"]), int(row["z"]), int(row["label"])))
                )
            else:
                items.append(data.val[i])
        yield collate_items(items)


def make_loader(data: RunData, config: TrainConfig, ranks: Dist, start: int) -> DataLoader:
    """The training DataLoader from step ``start + 1`` (workers by forkserver: Icechunk does not survive fork)."""
    return DataLoader(
        KeyedItems(data.train),
        batch_sampler=StepSampler(data.candidates, data.weights, config, ranks, start),
        num_workers=config.num_workers,
        collate_fn=collate_items,
        multiprocessing_context=WORKER_CONTEXT if config.num_workers else None,
    )
