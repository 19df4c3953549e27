"""Prompt sets: one seeded simulated prompt per (case, slice, label) object, stored as a store table.

A prompt set is the table ``prompt_sets/<name>``: one row per object with its prompt columns, and attrs
recording the scheme, seed, snapshot and what was skipped. Each object's generator comes from
:func:`samdata.prompts.object_rng` (seed, case, slice, label), so a set does not depend on visiting order
and any row can be regenerated alone (which is how ``mask`` prompts, not stored, come back). It reads back as
:class:`storage.records.PromptSetRecord`. Generation runs in this process, slice by slice: it is cheap next
to ingest, and a Dask graph would cost more than it saves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from samdata.errors import ConfigError, ValidationError
from samdata.prompts import Prompt, PromptScheme, columns_to_prompts, object_rng, parse_scheme, prompts_to_columns
from storage import SliceStore
from storage.records import PROMPT_KEY_COLUMNS, PromptSetRecord, table_names
from storage.records import load_prompt_set as load_prompt_set
from storage.schema import PROMPT_SETS, check_name

MAX_SKIP_EXAMPLES = 20
#: Called after each slice with (slices done, slices in all).
ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class PromptSetReport:
    """What :func:`make_prompt_set` wrote: table path, counts, skips and the snapshots involved."""

    name: str
    table: str
    scheme: str
    seed: int
    source_snapshot_id: str
    snapshot_id: str
    n_objects: int
    n_skipped: int
    skipped_examples: tuple[str, ...]
    labels: tuple[str, ...] | None

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe summary."""
        return asdict(self)


def table_path(name: str) -> str:
    """The store table path of prompt set ``name`` (ConfigError for an unsafe name)."""
    return f"{PROMPT_SETS}/{check_table_name('prompt set name', name)}"


def check_table_name(kind: str, name: str) -> str:
    """``storage.schema.check_name`` with its ValidationError turned into a ConfigError."""
    try:
        return check_name(kind, name)
    except ValidationError as err:
        raise ConfigError(str(err)) from err


def select_objects(objects: pd.DataFrame, labels: list[str] | None, where: str) -> pd.DataFrame:
    """Objects of the index whose ``label_name`` is in ``labels`` (all if None), sorted by case, z, label."""
    if labels is not None:
        known = sorted(set(objects["label_name"].astype(str)))
        unknown = [name for name in labels if name not in known]
        if unknown or not labels:
            raise ConfigError(
                f"unknown label name(s) {unknown or labels} for store {where}; "
                f"expected some of: {', '.join(known) or '(no objects in the store)'}"
            )
        objects = objects[objects["label_name"].isin(labels)]
    return objects.sort_values(list(PROMPT_KEY_COLUMNS), kind="stable").reset_index(drop=True)


def _draw(
    store: SliceStore, objects: pd.DataFrame, scheme: PromptScheme, seed: int, progress: ProgressFn | None
) -> tuple[list[int], list[Prompt], list[str]]:
    """Prompt every object (one slice read per slice); returns kept row numbers, prompts, skip reasons."""
    kept: list[int] = []
    prompts: list[Prompt] = []
    skipped: list[str] = []
    groups = objects.groupby(["case_id", "z"], sort=False)
    for done, ((case_id, z), rows) in enumerate(groups, start=1):
        _, label_map = store.read_slice(str(case_id), int(z))
        for row, label in zip(rows.index, rows["label"].to_numpy()):
            try:
                prompt = scheme(label_map == label, object_rng(seed, str(case_id), int(z), int(label)))
            except ValidationError as err:
                skipped.append(f"{case_id} z={z} label={label}: {err}")
                continue
            kept.append(int(row))
            prompts.append(prompt)
        if progress is not None:
            progress(done, groups.ngroups)
    return kept, prompts, skipped


def make_prompt_set(
    store_url: str | Path,
    scheme_spec: str,
    name: str,
    seed: int,
    *,
    labels: list[str] | None = None,
    overwrite: bool = False,
    progress: ProgressFn | None = None,
) -> PromptSetReport:
    """Draw one prompt per object of the store's head with ``scheme_spec`` and commit it as table
    ``prompt_sets/<name>`` (all inputs are checked before anything is written)."""
    scheme = parse_scheme(scheme_spec)
    path = table_path(name)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigError(f"prompt set seed {seed!r} is invalid; expected an integer >= 0")
    store = SliceStore.open(store_url)
    where = f"{store.url!r} at {store.snapshot_id}"
    if not overwrite and path in store.list_tables(PROMPT_SETS):
        raise ConfigError(
            f"prompt set {name!r} already exists in store {where}; "
            "choose another name or pass overwrite=True (--overwrite)"
        )
    objects = select_objects(store.objects(), labels, where)
    if objects.empty:
        raise ValidationError(f"store {where} has no labelled objects to prompt; ingest labelled cases first")
    kept, prompts, skipped = _draw(store, objects, scheme, int(seed), progress)
    if not prompts:
        raise ValidationError(
            f"prompt scheme {scheme.spec!r} failed on all {len(objects)} objects of store "
            f"{where}; first failure: {skipped[0]}"
        )
    rows = objects.loc[kept]
    columns: dict[str, np.ndarray] = {
        "case_id": rows["case_id"].to_numpy(dtype=str),
        "z": rows["z"].to_numpy(dtype=np.int32),
        "label": rows["label"].to_numpy(dtype=np.int32),
        **prompts_to_columns(prompts),
    }
    attrs = {
        "name": name,
        "scheme": scheme.spec,
        "seed": int(seed),
        "snapshot_id": store.snapshot_id,
        "labels": list(labels) if labels is not None else None,
        "n_objects": len(prompts),
        "n_skipped": len(skipped),
        "skipped_examples": skipped[:MAX_SKIP_EXAMPLES],
        "mask_prompts": scheme.name == "mask",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    with store.writer(f"prompt set {name}: {scheme.spec} seed {seed} ({len(prompts)} objects)") as writer:
        writer.write_table(path, columns, attrs)
        snapshot = writer.finish()
    return PromptSetReport(
        name=name,
        table=path,
        scheme=scheme.spec,
        seed=int(seed),
        source_snapshot_id=store.snapshot_id,
        snapshot_id=snapshot,
        n_objects=len(prompts),
        n_skipped=len(skipped),
        skipped_examples=tuple(skipped[:MAX_SKIP_EXAMPLES]),
        labels=tuple(labels) if labels is not None else None,
    )


def list_prompt_sets(store: SliceStore) -> list[dict[str, Any]]:
    """The attrs of every prompt set in this snapshot (name, scheme, seed, snapshot_id, n_objects, ...)."""
    return [store.read_table(table_path(name))[1] for name in table_names(store, PROMPT_SETS)]


def slice_prompts(frame: pd.DataFrame, case_id: str, z: int) -> dict[int, Prompt]:
    """The stored prompts of one slice of a prompt-set frame, keyed by label value."""
    rows = frame[(frame["case_id"] == case_id) & (frame["z"] == int(z))]
    columns = {col: rows[col].to_numpy() for col in rows.columns if col not in PROMPT_KEY_COLUMNS}
    return dict(zip(rows["label"].astype(int).tolist(), columns_to_prompts(columns)))


def regenerate_prompt(prompt_set: PromptSetRecord, mask: np.ndarray, case_id: str, z: int, label: int) -> Prompt:
    """Recompute one object's prompt (mask prompt included) from a set's scheme and seed; ``mask`` (Y, X) bool."""
    scheme = parse_scheme(prompt_set.scheme)
    return scheme(mask, object_rng(prompt_set.seed, case_id, int(z), int(label)))
