"""Prompt sets: one commit, listed in info, deterministic per object, regenerable, bad inputs write nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipelines.prompt_sets import list_prompt_sets, load_prompt_set, make_prompt_set, regenerate_prompt, slice_prompts
from samdata.case import Case, CaseMeta, Geometry, Normalisation, Provenance
from samdata.errors import ConfigError, RegistryError, ValidationError
from storage import SliceStore

EYE = tuple(tuple(float(v) for v in row) for row in np.eye(4))


def two_label_case(case_id: str, seed: int, origin: str = "real", generator: str | None = None) -> Case:
    """A (3, 20, 24) case: a seeded 'liver' block on z 0-1, a 'kidney' blob on z 1 and a 1-pixel kidney on z 2."""
    rng = np.random.default_rng(seed)
    label = np.zeros((3, 20, 24), np.uint8)
    y, x = rng.integers(0, 8, size=2)
    label[0:2, y : y + 6, x : x + 8] = 1
    label[1, 14:19, 16:22] = 2
    label[2, 3, 3] = 2
    meta = CaseMeta(
        case_id,
        "CT",
        {1: "liver", 2: "kidney"},
        Geometry(EYE, (1.0, 1.0, 1.0), EYE, (24, 20, 3), ("R", "A", "S")),
        Normalisation("none", 0.0, 255.0),
        Provenance(origin, f"/src/{case_id}", f"h-{case_id}", generator),
    )
    return Case(meta, rng.integers(0, 256, label.shape, dtype=np.uint8), label)


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    """Three real cases and one synthetic case (generator 'pix2pix') in a fresh store."""
    path = tmp_path / "store"
    with SliceStore.open(path, create=True).writer("cases") as writer:
        for i in range(3):
            writer.write_case(two_label_case(f"case{i}", i))
        writer.write_case(two_label_case("syn0", 9, "synthetic", "pix2pix"))
    return path


def test_prompt_set_one_commit_listed_and_regenerable(store_path: Path) -> None:
    before = SliceStore.open(store_path)
    report = make_prompt_set(store_path, "points:n=2,neg=1", "pts", 7)
    store = SliceStore.open(store_path)
    assert store.snapshot_id == report.snapshot_id and report.source_snapshot_id == before.snapshot_id
    assert [s.id for s in store.snapshots()[1:]] == [s.id for s in before.snapshots()]  # exactly one commit
    assert store.info()["prompt_sets"] == ["pts"]
    objects = before.objects()
    assert report.n_skipped == int((objects["area"] < 2).sum()) == 4  # the 1-pixel kidneys
    assert report.n_objects == len(objects) - 4 and "needs at least 2 pixels" in report.skipped_examples[0]
    record = load_prompt_set(store, "pts")
    frame, attrs = record.frame, record.attrs
    assert record.name == "pts" and len(frame) == attrs["n_objects"] == report.n_objects
    assert record.scheme == attrs["scheme"] == report.scheme and report.scheme.startswith("points:n=2,neg=1,")
    assert record.seed == 7 and record.snapshot_id == before.snapshot_id and attrs["created"]
    assert [d["name"] for d in list_prompt_sets(store)] == ["pts"]
    for case_id, z in {(str(c), int(z)) for c, z in zip(frame["case_id"], frame["z"])}:
        _, label_map = store.read_slice(case_id, z)
        for label, prompt in slice_prompts(frame, case_id, z).items():
            assert prompt == regenerate_prompt(record, label_map == label, case_id, z, label)
            xs, ys = prompt.points[:, 0].astype(int), prompt.points[:, 1].astype(int)
            assert (label_map[ys, xs] == label).tolist() == [True, True, False]


def test_same_seed_same_prompts_independent_of_selection(store_path: Path) -> None:
    make_prompt_set(store_path, "hybrid:points.n=2", "a", 1)
    make_prompt_set(store_path, "hybrid:points.n=2", "b", 1)
    make_prompt_set(store_path, "hybrid:points.n=2", "c", 2)
    make_prompt_set(store_path, "hybrid:points.n=2", "liver", 1, labels=["liver"])
    store = SliceStore.open(store_path)
    a, b, c, liver = (load_prompt_set(store, n).frame for n in ("a", "b", "c", "liver"))
    assert a.equals(b) and not a.equals(c)
    assert set(liver["label"]) == {1}
    from_all = a[a["label"] == 1].drop(columns=[k for k in a.columns if k not in liver.columns])
    assert from_all.reset_index(drop=True).equals(liver[from_all.columns].reset_index(drop=True))


def test_mask_scheme_is_recorded_for_regeneration(store_path: Path) -> None:
    make_prompt_set(store_path, "mask:op=dilate,px=1,size=0", "masks", 0)
    store = SliceStore.open(store_path)
    record = load_prompt_set(store, "masks")
    frame = record.frame
    assert record.attrs["mask_prompts"] and (frame["box_x0"] == -1).all() and (frame["n_points"] == 0).all()
    row = frame.iloc[0]
    _, label_map = store.read_slice(row["case_id"], int(row["z"]))
    prompt = regenerate_prompt(record, label_map == row["label"], row["case_id"], int(row["z"]), int(row["label"]))
    assert prompt.mask is not None and prompt.mask.sum() > (label_map == row["label"]).sum()


@pytest.mark.parametrize(
    ("spec", "name", "seed", "labels", "error", "match"),
    [
        ("boxes", "x", 0, None, RegistryError, "valid prompt schemes"),
        ("box:jitter", "x", 0, None, ConfigError, "not key=value"),
        ("box:wobble=2", "x", 0, None, ConfigError, "wobble"),
        ("box", "x", -1, None, ConfigError, "seed"),
        ("box", "../x", 0, None, ConfigError, "invalid prompt set name"),
        ("box", "x", 0, ["spleen"], ConfigError, "spleen.*expected some of: kidney, liver"),
        ("points:n=1000", "x", 0, None, ValidationError, "failed on all"),
        ("box", "taken", 0, None, ConfigError, "already exists"),
    ],
)
def test_bad_input_writes_nothing(
    store_path: Path, spec: str, name: str, seed: int, labels: list[str] | None, error: type[Exception], match: str
) -> None:
    make_prompt_set(store_path, "box", "taken", 0)
    before = SliceStore.open(store_path).snapshot_id
    with pytest.raises(error, match=match):
        make_prompt_set(store_path, spec, name, seed, labels=labels)
    assert SliceStore.open(store_path).snapshot_id == before


def test_overwrite_replaces_and_missing_names_listed(store_path: Path) -> None:
    make_prompt_set(store_path, "box:jitter=0", "set", 0)
    make_prompt_set(store_path, "points", "set", 0, overwrite=True)
    store = SliceStore.open(store_path)
    record = load_prompt_set(store, "set")
    assert record.scheme.startswith("points:") and (record.frame["n_points"] == 1).all()
    with pytest.raises(RegistryError, match="unknown prompt set 'nope'.*prompt sets there: set"):
        load_prompt_set(store, "nope")
