"""Typed records of the mixture and prompt-set tables: one reader each, and the one snapshot fallback."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from samdata.errors import ConfigError, RegistryError, ValidationError
from storage import SliceStore
from storage.records import (
    MIXTURE_COLUMNS,
    MixtureRecord,
    PromptSetRecord,
    load_mixture,
    load_prompt_set,
    mixture_view,
    table_names,
)

MIXTURE = {
    "case_id": np.array(["b", "a", "s"]),
    "split": np.array(["val", "train", "train"]),
    "origin": np.array(["real", "real", "synthetic"]),
    "generator": np.array(["", "", "deform"]),
    "n_objects": np.array([2, 3, 1], dtype=np.int32),
    "weight": np.array([0.0, 1.0, 0.5]),
}
PROMPTS = {
    "case_id": np.array(["a", "a"]),
    "z": np.array([1, 2], dtype=np.int32),
    "label": np.array([1, 1], dtype=np.int32),
    "box_x0": np.array([2, 3], dtype=np.int32),
    "n_points": np.array([0, 1], dtype=np.int32),
}


def _mixture_attrs(snapshot_id: str, prompt_set: str | None = "boxes") -> dict:
    return {
        "name": "mix",
        "snapshot_id": snapshot_id,
        "prompt_set": prompt_set,
        "labels": ["liver"],
        "real": 1.0,
        "synthetic": 0.5,
        "generators": {"deform": 1.0},
        "splits": [0.7, 0.15, 0.15],
        "seed": 3,
        "counts": {"train": {"real": 1, "synthetic": 1}},
        "created": "2025-01-01T00:00:00+00:00",
        "warnings": ["val is small"],
    }


@pytest.fixture
def data_and_head(store_path: Path, make_case) -> tuple[str, str]:
    """(snapshot with a case and no tables, head snapshot with the mixture and prompt set committed after)."""
    with SliceStore.open(store_path).writer("data") as writer:
        writer.write_case(make_case("a", 1))
        data = writer.finish()
    with SliceStore.open(store_path).writer("tables") as writer:
        writer.write_table("prompt_sets/boxes", PROMPTS, {"scheme": "box:jitter=0", "seed": 7, "snapshot_id": data})
        writer.write_table("mixtures/mix", MIXTURE, _mixture_attrs(data))
        head = writer.finish()
    return data, head


def test_mixture_record_reads_typed_cases_and_attrs(store_path: Path, data_and_head: tuple[str, str]):
    data, _ = data_and_head
    record = load_mixture(SliceStore.open(store_path), "mix")
    assert isinstance(record, MixtureRecord) and list(record.cases.columns) == list(MIXTURE_COLUMNS)
    assert record.cases["case_id"].tolist() == ["b", "a", "s"] and record.cases["weight"].tolist() == [0.0, 1.0, 0.5]
    assert (record.name, record.snapshot_id, record.prompt_set, record.labels) == ("mix", data, "boxes", ("liver",))
    assert record.splits == (0.7, 0.15, 0.15) and record.seed == 3 and record.warnings == ("val is small",)
    assert record.split_cases("train") == ["a", "s"] and record.split_cases("test") == []
    with pytest.raises(ConfigError, match="unknown split 'training'"):
        record.split_cases("training")


def test_prompt_set_record_reads_frame_scheme_and_seed(store_path: Path, data_and_head: tuple[str, str]):
    data, _ = data_and_head
    record = load_prompt_set(SliceStore.open(store_path), "boxes")
    assert isinstance(record, PromptSetRecord)
    assert (record.name, record.scheme, record.seed, record.snapshot_id) == ("boxes", "box:jitter=0", 7, data)
    assert record.frame["case_id"].tolist() == ["a", "a"] and record.frame["z"].tolist() == [1, 2]
    assert list(record.prompt_columns()) == ["box_x0", "n_points"]
    assert record.prompt_columns(np.array([1]))["box_x0"].tolist() == [3]


def test_missing_tables_list_the_ones_there(store_path: Path, data_and_head: tuple[str, str]):
    store = SliceStore.open(store_path)
    assert table_names(store, "mixtures") == ["mix"] and table_names(store, "prompt_sets") == ["boxes"]
    with pytest.raises(RegistryError, match="unknown mixture 'nope' in store .*; mixtures there: mix"):
        load_mixture(store, "nope")
    with pytest.raises(RegistryError, match="unknown prompt set 'nope' in store .*; prompt sets there: boxes"):
        load_prompt_set(store, "nope")
    empty = store.at(data_and_head[0])
    with pytest.raises(RegistryError, match=r"mixtures there: none \(make one with `samdata mixture`\)"):
        load_mixture(empty, "mix")


def test_mixture_view_falls_back_to_the_head(store_path: Path, data_and_head: tuple[str, str]):
    data, head = data_and_head
    pinned = SliceStore.open(store_path, snapshot=data)
    assert mixture_view(pinned, "mix").snapshot_id == head  # the table came after the data snapshot
    at_head = SliceStore.open(store_path)
    assert mixture_view(at_head, "mix") is at_head
    assert pinned.head().snapshot_id == head and pinned.head().branch == pinned.branch


@pytest.mark.parametrize(("drop", "what"), [(("weight",), "columns"), (("seed", "created"), "attrs")])
def test_malformed_mixture_tables_name_what_is_missing(drop: tuple[str, ...], what: str):
    columns = {k: v for k, v in MIXTURE.items() if k not in drop}
    attrs = {k: v for k, v in _mixture_attrs("S").items() if k not in drop}
    with pytest.raises(ValidationError, match=re.escape(f"mixture table lacks {what} {list(drop)}; has [")):
        MixtureRecord.from_table(columns, attrs)


def test_malformed_prompt_set_tables_name_what_is_missing():
    with pytest.raises(ValidationError, match=r"prompt set table lacks columns \['label'\]"):
        PromptSetRecord.from_table(
            "p", {k: v for k, v in PROMPTS.items() if k != "label"}, {"scheme": "box", "seed": 0, "snapshot_id": "x"}
        )
    with pytest.raises(ValidationError, match=r"prompt set table lacks attrs \['seed'\]"):
        PromptSetRecord.from_table("p", PROMPTS, {"scheme": "box", "snapshot_id": "x"})
