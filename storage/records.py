"""Typed records of the store's named tables: a mixture and a prompt set, each with one reader.

``storage.schema`` says where they live (``mixtures/<name>``, ``prompt_sets/<name>``); this module says
what their columns and attrs mean, so the pipelines that write them and training that reads them agree,
including the one rule for a run pinned to a data snapshot older than its mixture (:func:`mixture_view`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from samdata.errors import ConfigError, RegistryError, ValidationError
from storage.schema import MIXTURES, PROMPT_SETS

if TYPE_CHECKING:
    from storage.store import SliceStore

SPLITS: tuple[str, str, str] = ("train", "val", "test")
MIXTURE_COLUMNS: tuple[str, ...] = ("case_id", "split", "origin", "generator", "n_objects", "weight")
MIXTURE_ATTRS: tuple[str, ...] = (
    "name",
    "snapshot_id",
    "real",
    "synthetic",
    "generators",
    "splits",
    "seed",
    "counts",
    "created",
)
PROMPT_KEY_COLUMNS: tuple[str, ...] = ("case_id", "z", "label")
PROMPT_SET_ATTRS: tuple[str, ...] = ("scheme", "seed", "snapshot_id")


def _require(where: str, what: str, have: Any, names: tuple[str, ...]) -> None:
    """Raise ValidationError naming the ``names`` missing from ``have`` (columns or attrs of a table)."""
    missing = [name for name in names if name not in have]
    if missing:
        raise ValidationError(f"{where} lacks {what} {missing}; has {sorted(have)}")


@dataclass(frozen=True, eq=False)
class MixtureRecord:
    """A stored mixture: ``cases`` (case_id, split, origin, generator, n_objects, weight) and its attrs."""

    name: str
    cases: pd.DataFrame
    snapshot_id: str
    prompt_set: str | None
    labels: tuple[str, ...] | None
    real: float
    synthetic: float
    generators: dict[str, float]
    splits: tuple[float, float, float]
    seed: int
    counts: dict[str, dict[str, int]]
    created: str
    warnings: tuple[str, ...] = ()
    attrs: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_table(
        cls, columns: dict[str, np.ndarray], attrs: dict[str, Any], where: str = "mixture table"
    ) -> MixtureRecord:
        """Rebuild a record from the stored table's columns and attrs (ValidationError naming what is missing)."""
        _require(where, "columns", columns, MIXTURE_COLUMNS)
        _require(where, "attrs", attrs, MIXTURE_ATTRS)
        frame = pd.DataFrame(columns)
        for col in ("case_id", "split", "origin", "generator"):
            frame[col] = frame[col].astype(str)
        labels = attrs.get("labels")
        return cls(
            name=attrs["name"],
            cases=frame,
            snapshot_id=attrs["snapshot_id"],
            prompt_set=attrs.get("prompt_set"),
            labels=tuple(labels) if labels is not None else None,
            real=float(attrs["real"]),
            synthetic=float(attrs["synthetic"]),
            generators=dict(attrs["generators"]),
            splits=tuple(attrs["splits"]),  # type: ignore[arg-type]
            seed=int(attrs["seed"]),
            counts=attrs["counts"],
            created=attrs["created"],
            warnings=tuple(attrs.get("warnings", ())),
            attrs=attrs,
        )

    def split_cases(self, split: str) -> list[str]:
        """Sorted case ids of one split (train, val or test)."""
        if split not in SPLITS:
            raise ConfigError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
        return sorted(self.cases.loc[self.cases["split"] == split, "case_id"])


@dataclass(frozen=True, eq=False)
class PromptSetRecord:
    """A stored prompt set: ``frame`` (case_id, z, label and the prompt columns), scheme, seed and source snapshot."""

    name: str
    frame: pd.DataFrame
    scheme: str
    seed: int
    snapshot_id: str
    attrs: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_table(
        cls, name: str, columns: dict[str, np.ndarray], attrs: dict[str, Any], where: str = "prompt set table"
    ) -> PromptSetRecord:
        """Rebuild a record from the stored table's columns and attrs (ValidationError naming what is missing)."""
        _require(where, "columns", columns, PROMPT_KEY_COLUMNS)
        _require(where, "attrs", attrs, PROMPT_SET_ATTRS)
        frame = pd.DataFrame(columns)
        frame["case_id"] = frame["case_id"].astype(str)
        return cls(
            name=name,
            frame=frame,
            scheme=str(attrs["scheme"]),
            seed=int(attrs["seed"]),
            snapshot_id=str(attrs["snapshot_id"]),
            attrs=attrs,
        )

    def prompt_columns(self, rows: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """The prompt columns (all but case_id, z, label), of ``rows`` (positions) or of every row."""
        return {
            col: (self.frame[col].to_numpy() if rows is None else self.frame[col].to_numpy()[rows])
            for col in self.frame.columns
            if col not in PROMPT_KEY_COLUMNS
        }


def table_names(store: SliceStore, folder: str) -> list[str]:
    """Sorted names of the tables directly in ``folder`` (e.g. ``prompt_sets``) of this snapshot."""
    prefix = folder + "/"
    return [path[len(prefix) :] for path in store.list_tables(folder) if path.startswith(prefix)]


def _read(
    store: SliceStore, folder: str, kind: str, name: str, command: str
) -> tuple[dict[str, np.ndarray], dict[str, Any], str]:
    """Columns, attrs and a description of table ``<folder>/<name>``; RegistryError listing the tables of
    ``folder`` there (or the ``command`` that makes one) if it is absent."""
    names = table_names(store, folder)
    if name not in names:
        listing = ", ".join(names) if names else f"none (make one with `{command}`)"
        raise RegistryError(
            f"unknown {kind} {name!r} in store {store.url!r} at {store.snapshot_id}; {kind}s there: {listing}"
        )
    path = f"{folder}/{name}"
    columns, attrs = store.read_table(path)
    return columns, attrs, f"{kind} table {path!r} of store {store.url!r}"


def load_mixture(store: SliceStore, name: str) -> MixtureRecord:
    """Mixture ``name`` of this snapshot; RegistryError listing the mixtures there if it is absent."""
    return MixtureRecord.from_table(*_read(store, MIXTURES, "mixture", name, "samdata mixture"))


def load_prompt_set(store: SliceStore, name: str) -> PromptSetRecord:
    """Prompt set ``name`` of this snapshot; RegistryError listing the prompt sets there if it is absent."""
    return PromptSetRecord.from_table(name, *_read(store, PROMPT_SETS, "prompt set", name, "samdata prompts"))


def mixture_view(store: SliceStore, name: str) -> SliceStore:
    """The view to read mixture ``name`` (and its prompt set) from: ``store`` when its snapshot holds the
    mixture, else the head of its branch. A run pins the data snapshot the mixture was drawn from, and the
    mixture's own table is committed after that snapshot."""
    return store if name in table_names(store, MIXTURES) else store.head()
