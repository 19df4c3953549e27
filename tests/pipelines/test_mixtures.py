"""Mixtures: case splits without leakage, synthetic only in train, weights, determinism, pinned snapshots, errors."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from pipelines.mixtures import (
    MixtureConfig,
    assign_splits,
    list_mixtures,
    load_mixture,
    make_mixture,
    sample_train_slices,
    split_counts,
)
from pipelines.prompt_sets import make_prompt_set
from samdata.case import Case, CaseMeta, Geometry, Normalisation, Provenance
from samdata.errors import ConfigError, RegistryError, SnapshotNotFoundError, ValidationError
from storage import SliceStore

EYE = tuple(tuple(float(v) for v in row) for row in np.eye(4))
GENERATORS = {"syn-a0": "pix2pix", "syn-a1": "pix2pix", "syn-a2": "pix2pix", "syn-b0": "fastgan"}


def block_case(case_id: str, generator: str | None = None, names: dict[int, str] | None = None) -> Case:
    """A (2, 12, 12) case with a 4x5 block of label 1 on both slices; synthetic when ``generator`` is set."""
    label = np.zeros((2, 12, 12), np.uint8)
    label[:, 2:6, 3:8] = 1
    origin = "synthetic" if generator else "real"
    meta = CaseMeta(
        case_id,
        "MR",
        names or {1: "tumour"},
        Geometry(EYE, (1.0, 1.0, 1.0), EYE, (12, 12, 2), ("R", "A", "S")),
        Normalisation("percentile", 0.0, 1.0),
        Provenance(origin, case_id, f"h-{case_id}", generator),
    )
    return Case(meta, np.full(label.shape, 90, np.uint8), label)


@pytest.fixture(scope="module")
def base_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ten real cases (one with a different label name) and four synthetic ones from two generators."""
    path = tmp_path_factory.mktemp("base") / "store"
    store = SliceStore.open(path, create=True)
    with store.writer("cases") as writer:
        for i in range(10):
            writer.write_case(block_case(f"real{i:02d}", names={1: "cyst"} if i == 9 else None))
        for case_id, generator in GENERATORS.items():
            writer.write_case(block_case(case_id, generator))
    make_prompt_set(path, "box", "boxes", 0)
    return path


@pytest.fixture
def store_path(base_store: Path, tmp_path: Path) -> Path:
    """A private copy of the base store."""
    return Path(shutil.copytree(base_store, tmp_path / "store"))


def test_mixture_splits_weights_and_record(store_path: Path) -> None:
    config = MixtureConfig(real=0.6, synthetic=0.4, generators={"pix2pix": 3, "fastgan": 1}, prompt_set="boxes", seed=5)
    head = SliceStore.open(store_path).snapshot_id
    record = make_mixture(store_path, "mix", config)
    cases = record.cases
    assert sorted(cases["case_id"]) == sorted(SliceStore.open(store_path).case_ids())
    assert cases["case_id"].is_unique  # no case in two splits
    assert set(cases.loc[cases["origin"] == "synthetic", "split"]) == {"train"}
    assert record.counts == {
        "train": {"real": 7, "synthetic": 4},
        "val": {"real": 2, "synthetic": 0},
        "test": {"real": 1, "synthetic": 0},
    }
    train = cases[cases["split"] == "train"]
    assert math.isclose(train.loc[train["origin"] == "real", "weight"].sum(), 0.6)
    by_gen = cases[cases["origin"] == "synthetic"].groupby("generator")["weight"].sum()
    assert math.isclose(by_gen["pix2pix"], 0.3) and math.isclose(by_gen["fastgan"], 0.1)
    assert (cases.loc[cases["split"] != "train", "weight"] == 0).all()
    assert set(cases.loc[cases["origin"] == "real", "generator"]) == {""}
    assert record.snapshot_id == head and record.prompt_set == "boxes" and record.warnings == ()
    store = SliceStore.open(store_path)
    assert store.info()["mixtures"] == ["mix"] and [m["name"] for m in list_mixtures(store)] == ["mix"]
    loaded = load_mixture(store, "mix")
    assert loaded.cases.equals(cases) and loaded.attrs == record.attrs and loaded.seed == 5
    assert sorted(loaded.split_cases("val") + loaded.split_cases("test")) == sorted(
        cases.loc[cases["split"] != "train", "case_id"]
    )


def test_split_deterministic_by_seed_and_stable_when_cases_arrive(store_path: Path) -> None:
    ids = [f"c{i}" for i in range(12)]
    first, _ = assign_splits(ids, (0.5, 0.25, 0.25), seed=1)
    assert assign_splits(list(reversed(ids)), (0.5, 0.25, 0.25), seed=1)[0] == first
    assert assign_splits(ids, (0.5, 0.25, 0.25), seed=2)[0] != first
    grown, _ = assign_splits([*ids, "c12"], (0.5, 0.25, 0.25), seed=1)
    assert sum(first[c] != grown[c] for c in ids) <= 2
    one = make_mixture(store_path, "one", MixtureConfig(seed=3))
    two = make_mixture(store_path, "two", MixtureConfig(seed=3))
    assert one.cases.equals(two.cases)


@pytest.mark.parametrize(
    ("n", "expected"),
    [(1, (1, 0, 0)), (2, (2, 0, 0)), (3, (1, 1, 1)), (4, (2, 1, 1)), (5, (3, 1, 1)), (10, (7, 2, 1)), (20, (14, 3, 3))],
)
def test_split_counts(n: int, expected: tuple[int, int, int]) -> None:
    assert split_counts(n, (0.7, 0.15, 0.15)) == expected  # with >= 3 cases, every split gets one
    assert sum(split_counts(n, (0.1, 0.45, 0.45))) == n and split_counts(n, (0.1, 0.45, 0.45))[0] >= 1
    assert split_counts(n, (0.8, 0.2, 0.0))[2] == 0 and sum(split_counts(n, (0.8, 0.2, 0.0))) == n


def test_few_real_cases_all_train_with_warning(store_path: Path) -> None:
    record = make_mixture(store_path, "cyst", MixtureConfig(labels=("cyst",), seed=0))
    assert record.cases["case_id"].tolist() == ["real09"] and record.split_cases("train") == ["real09"]
    assert len(record.warnings) == 2 and "split 'val' (fraction 0.15) is empty" in record.warnings[0]
    assert record.attrs["excluded_cases"] == 13


def test_pinned_snapshot_and_weighted_samples(store_path: Path) -> None:
    pinned = SliceStore.open(store_path).snapshot_id
    with SliceStore.open(store_path).writer("late case") as writer:
        writer.write_case(block_case("real99"))
    record = make_mixture(store_path, "old", MixtureConfig(real=1.0, synthetic=1.0, seed=0), snapshot=pinned)
    assert record.snapshot_id == pinned and "real99" not in set(record.cases["case_id"])
    assert record.generators == {"fastgan": 0.25, "pix2pix": 0.75}  # per case when no generator weights
    source = SliceStore.open(store_path, snapshot=pinned)
    draws = sample_train_slices(source, record, 200, np.random.default_rng(0))
    assert draws == sample_train_slices(source, record, 200, np.random.default_rng(0))
    assert {c for c, _ in draws} <= set(record.split_cases("train"))
    synthetic = sum(c.startswith("syn") for c, _ in draws)
    assert 70 < synthetic < 130  # half the weight is synthetic


@pytest.mark.parametrize(
    ("kwargs", "snapshot", "error", "match"),
    [
        ({"prompt_set": "nope"}, None, RegistryError, "unknown prompt set 'nope'.*boxes"),
        ({"labels": ("liver",)}, None, ConfigError, "liver.*expected some of: cyst, tumour"),
        ({"synthetic": 1.0, "generators": {"stylegan": 1.0}}, None, RegistryError, "stylegan.*fastgan, pix2pix"),
        ({}, "ZZZZZZZZZZZZZZZZZZZZ", SnapshotNotFoundError, "ZZZZ"),
        ({}, "not-a-snapshot", SnapshotNotFoundError, "not-a-snapshot"),
        ({"splits": (0.7, 0.2, 0.2)}, None, ConfigError, "sum to 1.1"),
        ({"real": -1.0}, None, ConfigError, "real=-1.0"),
    ],
)
def test_bad_input_writes_nothing(
    store_path: Path, kwargs: dict, snapshot: str | None, error: type[Exception], match: str
) -> None:
    before = SliceStore.open(store_path).snapshot_id
    with pytest.raises(error, match=match):
        make_mixture(store_path, "bad", MixtureConfig(**kwargs), snapshot=snapshot)
    assert SliceStore.open(store_path).snapshot_id == before


def test_no_real_cases_and_missing_synthetic_write_nothing(tmp_path: Path, store_path: Path) -> None:
    only_synthetic = tmp_path / "synthetic-only"
    with SliceStore.open(only_synthetic, create=True).writer("cases") as writer:
        writer.write_case(block_case("syn-x", "pix2pix"))
    before = SliceStore.open(only_synthetic).snapshot_id
    with pytest.raises(ValidationError, match="no real cases"):
        make_mixture(only_synthetic, "m", MixtureConfig(synthetic=1.0))
    assert SliceStore.open(only_synthetic).snapshot_id == before
    with pytest.raises(ValidationError, match="no synthetic cases"):
        make_mixture(store_path, "m", MixtureConfig(synthetic=0.5, labels=("cyst",)))
    make_mixture(store_path, "m", MixtureConfig())
    with pytest.raises(ConfigError, match="already exists"):
        make_mixture(store_path, "m", MixtureConfig())
    with pytest.raises(RegistryError, match="unknown mixture 'x'.*mixtures there: m"):
        load_mixture(SliceStore.open(store_path), "x")
