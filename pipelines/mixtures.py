"""Curated mixtures: which cases of a pinned snapshot train, validate and test, and how often each is drawn.

A mixture is the store table ``mixtures/<name>``, one row per case (split, origin, generator, objects,
sampling weight), with attrs naming the snapshot it was read from, so a training run reads exactly that
data; it reads back as :class:`storage.records.MixtureRecord`. Real cases are split by case and synthetic
cases only train, so no generated image stands in for a held-out patient. Cases are ordered by
``sha256(seed, case_id)`` before the split counts are filled, so a new case moves at most a boundary case
instead of reshuffling every split (the counting rules: README.md, "Prompts and mixtures").
"""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.configs import MixtureConfig as MixtureConfig
from pipelines.prompt_sets import check_table_name, select_objects
from samdata.errors import ConfigError, RegistryError, ValidationError
from storage import SliceStore
from storage.records import SPLITS, MixtureRecord, load_prompt_set, table_names
from storage.records import load_mixture as load_mixture
from storage.schema import MIXTURES

UNKNOWN_GENERATOR = "unknown"
OBJECT_KEY: tuple[str, ...] = ("case_id", "z", "label", "x0", "y0", "x1", "y1", "area")


def table_path(name: str) -> str:
    """The store table path of mixture ``name`` (ConfigError for an unsafe name)."""
    return f"{MIXTURES}/{check_table_name('mixture name', name)}"


def split_key(seed: int, case_id: str) -> str:
    """The sort key placing a case in the split order under ``seed`` (independent of other cases)."""
    return hashlib.sha256(f"{int(seed)}:{case_id}".encode()).hexdigest()


def split_counts(n: int, fractions: tuple[float, float, float]) -> tuple[int, int, int]:
    """Cases per split for ``n`` cases by largest remainder (ties to train, then val); train >= 1 if n >= 1, and,
    when there are at least as many cases as splits with a fraction > 0, each of those splits >= 1 (the case
    comes from the split most above its exact share, keeping one in each)."""
    exact = [n * f for f in fractions]
    counts = [math.floor(e) for e in exact]
    order = sorted(range(3), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    if n and counts[0] == 0:
        counts[1 if counts[1] >= counts[2] else 2] -= 1
        counts[0] = 1
    wanted = [i for i in range(3) if fractions[i] > 0 or i == 0]
    if n >= len(wanted):
        for i in wanted:
            if counts[i] == 0:
                donor = max((j for j in wanted if counts[j] > 1), key=lambda j: (counts[j] - exact[j], -j))
                counts[donor] -= 1
                counts[i] = 1
    return counts[0], counts[1], counts[2]


def assign_splits(
    case_ids: list[str], fractions: tuple[float, float, float], seed: int
) -> tuple[dict[str, str], list[str]]:
    """Split real case ids by :func:`split_key` order; returns case → split and warnings for empty splits."""
    ordered = sorted(case_ids, key=lambda cid: split_key(seed, cid))
    n_train, n_val, _ = split_counts(len(ordered), fractions)
    split = {cid: SPLITS[0 if i < n_train else 1 if i < n_train + n_val else 2] for i, cid in enumerate(ordered)}
    warnings = []
    for name, frac in zip(SPLITS[1:], fractions[1:]):
        if frac > 0 and name not in split.values():
            warnings.append(
                f"only {len(ordered)} real case(s): split {name!r} (fraction {frac:g}) is empty, train has {n_train}"
            )
    return split, warnings


def _case_table(source: SliceStore, objects: pd.DataFrame) -> pd.DataFrame:
    """One row per case with objects: case_id, origin, generator (synthetic only), n_objects."""
    per_case = objects.groupby("case_id", sort=True).agg(origin=("origin", "first"), n_objects=("z", "size"))
    frame = per_case.reset_index()
    frame["case_id"] = frame["case_id"].astype(str)
    frame["origin"] = frame["origin"].astype(str)
    frame["generator"] = [
        (source.case_meta(cid).provenance.generator or UNKNOWN_GENERATOR) if origin == "synthetic" else ""
        for cid, origin in zip(frame["case_id"], frame["origin"])
    ]
    return frame


def _synthetic_shares(frame: pd.DataFrame, config: MixtureConfig, where: str) -> dict[str, float]:
    """Effective share of ``synthetic`` per generator (summing to 1); checks generator names."""
    synth = frame[frame["origin"] == "synthetic"]
    counts = synth["generator"].value_counts()
    present = sorted(counts.index.astype(str))
    if config.generators is not None:
        for gen in config.generators:
            if gen not in present:
                raise RegistryError(
                    f"unknown generator {gen!r}: no synthetic case with objects of the chosen labels "
                    f"in store {where} names it; generators there: {', '.join(present) or 'none'}"
                )
        total = sum(config.generators.values())
        shares = {gen: w / total for gen, w in sorted(config.generators.items()) if w > 0}
    else:
        shares = {gen: int(counts[gen]) / len(synth) for gen in present}
    if config.synthetic > 0 and not shares:
        raise ValidationError(
            f"mixture asks synthetic={config.synthetic} but store {where} has no synthetic "
            "cases with objects of the chosen labels; set synthetic to 0 or add synthetic cases"
        )
    return shares if config.synthetic > 0 else {}


def _object_keys(objects: pd.DataFrame, columns: tuple[str, ...]) -> set[tuple[Any, ...]]:
    """The rows of an objects frame as hashable tuples of ``columns``."""
    return set(zip(*(objects[col].astype(str if col == "case_id" else int) for col in columns)))


def _prompt_coverage(
    head: SliceStore, config: MixtureConfig, objects: pd.DataFrame, source: SliceStore
) -> tuple[str | None, list[str]]:
    """Check the prompt set exists; its source snapshot and warnings about objects it lacks or that changed."""
    if config.prompt_set is None:
        return None, []
    prompt_set = load_prompt_set(head, config.prompt_set)
    frame, drawn_from = prompt_set.frame, prompt_set.snapshot_id
    need = _object_keys(objects, OBJECT_KEY[:3])
    missing = need - _object_keys(frame, OBJECT_KEY[:3])
    warnings = []
    if missing:
        warnings.append(
            f"prompt set {config.prompt_set!r} has no prompt for {len(missing)} of the mixture's "
            f"{len(need)} objects (too small for its scheme, or other labels)"
        )
    if drawn_from != source.snapshot_id:
        mixed = objects[objects["case_id"].isin(set(frame["case_id"]))]
        changed = _object_keys(mixed, OBJECT_KEY) - _object_keys(source.at(drawn_from).objects(), OBJECT_KEY)
        if changed:
            warnings.append(
                f"{len(changed)} objects differ between snapshot {drawn_from} (prompt set "
                f"{config.prompt_set!r}) and {source.snapshot_id} (mixture): cases were rewritten"
            )
    return drawn_from, warnings


def make_mixture(
    store_url: str | Path, name: str, config: MixtureConfig, *, snapshot: str | None = None, overwrite: bool = False
) -> MixtureRecord:
    """Split and weight the cases of ``snapshot`` (default: the head) per ``config`` and commit the
    result as table ``mixtures/<name>`` on the head; every check runs before anything is written."""
    path = table_path(name)
    head = SliceStore.open(store_url)
    source = head.at(snapshot) if snapshot is not None else head
    where = f"{source.url!r} at {source.snapshot_id}"
    if not overwrite and path in head.list_tables(MIXTURES):
        raise ConfigError(
            f"mixture {name!r} already exists in store {head.url!r}; choose another name or "
            "pass overwrite=True (--overwrite)"
        )
    objects = select_objects(source.objects(), list(config.labels) if config.labels is not None else None, where)
    frame = _case_table(source, objects)
    real_ids = frame.loc[frame["origin"] == "real", "case_id"].tolist()
    if not real_ids:
        raise ValidationError(
            f"store {where} has no real cases with objects of labels "
            f"{list(config.labels) if config.labels else 'any'}; a mixture needs real cases"
        )
    shares = _synthetic_shares(frame, config, where)
    frame = frame[(frame["origin"] == "real") | frame["generator"].isin(list(shares))].reset_index(drop=True)
    objects = objects[objects["case_id"].isin(frame["case_id"])]
    prompt_snapshot, warnings = _prompt_coverage(head, config, objects, source)
    split, split_warnings = assign_splits(real_ids, config.splits, config.seed)
    frame["split"] = [split.get(cid, "train") for cid in frame["case_id"]]
    real_train = int(((frame["origin"] == "real") & (frame["split"] == "train")).sum())
    per_gen = frame.loc[frame["origin"] == "synthetic", "generator"].value_counts()
    frame["weight"] = [
        (config.real / real_train if sp == "train" else 0.0)
        if origin == "real"
        else config.synthetic * shares[gen] / int(per_gen[gen])
        for origin, sp, gen in zip(frame["origin"], frame["split"], frame["generator"])
    ]
    counts = {
        sp: {
            origin: int(((frame["split"] == sp) & (frame["origin"] == origin)).sum())
            for origin in ("real", "synthetic")
        }
        for sp in SPLITS
    }
    n_all_cases = len(set(source.case_ids()))
    attrs = {
        "name": name,
        "snapshot_id": source.snapshot_id,
        "prompt_set": config.prompt_set,
        "prompt_set_snapshot_id": prompt_snapshot,
        "labels": list(config.labels) if config.labels is not None else None,
        "real": float(config.real),
        "synthetic": float(config.synthetic),
        "generators": shares,
        "splits": list(config.splits),
        "seed": config.seed,
        "counts": counts,
        "objects": {sp: int(frame.loc[frame["split"] == sp, "n_objects"].sum()) for sp in SPLITS},
        "excluded_cases": n_all_cases - len(frame),
        "warnings": split_warnings + warnings,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    columns = {
        "case_id": frame["case_id"].to_numpy(dtype=str),
        "split": frame["split"].to_numpy(dtype=str),
        "origin": frame["origin"].to_numpy(dtype=str),
        "generator": frame["generator"].to_numpy(dtype=str),
        "n_objects": frame["n_objects"].to_numpy(dtype=np.int32),
        "weight": frame["weight"].to_numpy(dtype=np.float64),
    }
    summary = ", ".join(f"{sp} {sum(c.values())}" for sp, c in counts.items())
    with head.writer(f"mixture {name}: real {config.real:g}, synthetic {config.synthetic:g}; {summary}") as writer:
        writer.write_table(path, columns, attrs)
        writer.finish()
    return MixtureRecord.from_table(columns, attrs)


def list_mixtures(store: SliceStore) -> list[dict[str, Any]]:
    """The attrs of every mixture in this snapshot of the store."""
    return [store.read_table(table_path(name))[1] for name in table_names(store, MIXTURES)]


def sample_train_slices(
    store: SliceStore, record: MixtureRecord, n: int, rng: np.random.Generator
) -> list[tuple[str, int]]:
    """``n`` (case_id, z) draws as training sees them: a train case by weight, then one of its slices
    holding the mixture's labels uniformly; ``store`` should be the view at ``record.snapshot_id``."""
    train = record.cases[(record.cases["split"] == "train") & (record.cases["weight"] > 0)]
    if train.empty or n < 1:
        raise ValidationError(
            f"mixture {record.name!r} has {len(train)} train cases with weight > 0; cannot draw {n} samples"
        )
    objects = select_objects(
        store.objects(),
        list(record.labels) if record.labels is not None else None,
        f"{store.url!r} at {store.snapshot_id}",
    )
    slices = objects.drop_duplicates(["case_id", "z"]).groupby("case_id")["z"].apply(list).to_dict()
    weights = train["weight"].to_numpy(dtype=np.float64)
    picks = rng.choice(len(train), size=n, p=weights / weights.sum())
    out = []
    for pick in picks:
        case_id = str(train["case_id"].iloc[pick])
        zs = slices[case_id]
        out.append((case_id, int(zs[int(rng.integers(len(zs)))])))
    return out
