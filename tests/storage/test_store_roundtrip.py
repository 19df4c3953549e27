"""Round trips through the slice store: pixels, metadata, index, tables, snapshots, pickling."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pandas as pd
import pytest

from samdata.case import slice_objects
from samdata.errors import CaseNotFoundError, StoreError, ValidationError
from storage import SliceStore, SnapshotInfo
from storage.schema import image_codec, label_codec


def test_case_round_trip_pixels_meta_and_index(store_path, make_case):
    a, b = make_case("a", 1), make_case("b", 2, depth=3, height=20, width=16, label_dtype=np.uint16,
                                         split="val", origin="synthetic")
    with SliceStore.open(store_path).writer("add a and b") as w:
        w.write_case(b)
        w.write_case(a)
    store = SliceStore.open(store_path)
    assert store.case_ids() == ["a", "b"]
    for case in (a, b):
        got = store.read_case(case.meta.case_id)
        assert got.meta == case.meta
        np.testing.assert_array_equal(got.image, case.image)
        np.testing.assert_array_equal(got.label, case.label)
        assert got.image.dtype == np.uint8 and got.label.dtype == case.label.dtype
        for z in range(case.image.shape[0]):
            image, label = store.read_slice(case.meta.case_id, z)
            np.testing.assert_array_equal(image, case.image[z])
            np.testing.assert_array_equal(label, case.label[z])
        assert store.case_meta(case.meta.case_id) == case.meta

    objects = store.objects()
    assert list(objects.columns) == ["case_id", "z", "label", "label_name", "x0", "y0", "x1", "y1", "area",
                                     "split", "origin", "modality"]
    expected = [(r.case_id, r.z, r.label, r.x0, r.y0, r.x1, r.y1, r.area)
                for case in (a, b) for r in slice_objects(case.meta.case_id, case.label)]
    got_rows = list(objects[["case_id", "z", "label", "x0", "y0", "x1", "y1", "area"]].itertuples(index=False))
    assert [tuple(int(v) if not isinstance(v, str) else v for v in row) for row in got_rows] == expected
    assert set(objects.loc[objects.label == 2, "label_name"]) == {"kidney"}
    assert set(objects.loc[objects.case_id == "b", "split"]) == {"val"}
    assert set(objects.loc[objects.case_id == "b", "origin"]) == {"synthetic"}

    slices = store.slices()
    assert list(slices.columns) == ["case_id", "z", "n_objects", "labelled", "split", "origin", "height", "width"]
    assert len(slices) == 5 + 3
    row = slices[(slices.case_id == "a") & (slices.z == 2)].iloc[0]
    assert (row.n_objects, bool(row.labelled), row.height, row.width) == (2, True, 24, 32)
    assert not slices[(slices.case_id == "a") & (slices.z == 0)].labelled.iloc[0]
    assert store.source_hashes() == {"sha256:a-1": "a", "sha256:b-2": "b"}

    info = store.info()
    json.dumps(info)
    assert (info["cases"], info["slices"], info["labelled_slices"]) == (2, 8, 3 + 1)
    assert info["objects_per_label"] == {"kidney": 2, "liver": 4}
    assert info["origins"] == {"real": 1, "synthetic": 1}
    assert info["prompt_sets"] == [] and info["mixtures"] == []
    assert store.verify() == []


def test_chunks_are_one_slice_with_blosc_zstd(store_path, make_case):
    with SliceStore.open(store_path).writer("one") as w:
        w.write_case(make_case("a", 1))
    store = SliceStore.open(store_path)
    root = store._root
    image, label = root["cases/a/image"], root["cases/a/label"]
    assert image.chunks == (1, 24, 32) and label.chunks == (1, 24, 32)
    assert image.compressors[0].to_dict() == image_codec().to_dict()
    assert label.compressors[0].to_dict() == label_codec().to_dict()
    assert root["cases/a"].attrs["meta"] == make_case("a", 1).meta.to_json()


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_slice_chunks_are_the_bytes_zarr_writes(tmp_path, dtype):
    """write_slice_chunks (the writer's batched path) stores exactly the chunk objects that
    ``arr[:] = data`` would, for every codec of the layout; a shape or dtype mismatch is refused."""
    import zarr

    from storage.casegroup import write_slice_chunks

    rng = np.random.default_rng(0)
    data = rng.integers(0, 40, (4, 9, 11)).astype(dtype)
    data[2] = 0  # an all-zero slice is stored too, not left to the fill value
    root = zarr.open_group(store=zarr.storage.MemoryStore(), mode="w")
    for codec in (image_codec(), label_codec()):
        ours = root.create_array("ours", shape=data.shape, dtype=dtype, chunks=(1, 9, 11), compressors=codec,
                                 fill_value=0, overwrite=True)
        theirs = root.create_array("theirs", shape=data.shape, dtype=dtype, chunks=(1, 9, 11), compressors=codec,
                                   fill_value=0, overwrite=True, config={"write_empty_chunks": True})
        write_slice_chunks(ours, data, codec)
        theirs[:] = data
        store = root.store
        for z in range(4):
            key = ours.metadata.encode_chunk_key((z, 0, 0))
            mine = zarr.core.sync.sync(store.get(f"ours/{key}", zarr.core.buffer.default_buffer_prototype()))
            zarrs = zarr.core.sync.sync(store.get(f"theirs/{key}", zarr.core.buffer.default_buffer_prototype()))
            assert mine is not None and mine.to_bytes() == zarrs.to_bytes()
        np.testing.assert_array_equal(ours[:], data)
        with pytest.raises(ValidationError, match="slice by slice"):
            write_slice_chunks(ours, data[:, :, :5].copy(), codec)


def test_snapshots_are_listed_and_reopen_exactly(store_path, make_case):
    store = SliceStore.open(store_path)
    with store.writer("first") as w:
        w.write_case(make_case("a", 1))
    first = SliceStore.open(store_path)
    seen_first = (first.case_ids(), first.objects(), first.read_slice("a", 2))
    with first.writer("second") as w:
        w.write_case(make_case("a", 7))  # replace a
        w.write_case(make_case("b", 2))
    with SliceStore.open(store_path).writer("third") as w:
        w.delete_case("b")
    latest = SliceStore.open(store_path)
    snaps = latest.snapshots()
    assert all(isinstance(s, SnapshotInfo) for s in snaps)
    assert [s.message for s in snaps[:4]] == ["third", "second", "first", "create samdata store"]
    assert snaps[0].id == latest.snapshot_id and snaps[2].id == first.snapshot_id
    assert [s.written_at for s in snaps] == sorted((s.written_at for s in snaps), reverse=True)
    assert latest.case_ids() == ["a"]
    assert not np.array_equal(latest.read_slice("a", 2)[0], seen_first[2][0])

    again = SliceStore.open(store_path, snapshot=first.snapshot_id)
    assert again.snapshot_id == first.snapshot_id
    assert again.case_ids() == seen_first[0]
    pd.testing.assert_frame_equal(again.objects(), seen_first[1])
    for got, before in zip(again.read_slice("a", 2), seen_first[2]):
        np.testing.assert_array_equal(got, before)
    second = latest.at(snaps[1].id)
    assert second.case_ids() == ["a", "b"]


def test_overwrite_delete_and_missing_cases(store_path, make_case):
    store = SliceStore.open(store_path)
    with store.writer("add") as w:
        w.write_case(make_case("a", 1))
        w.write_case(make_case("a", 2, depth=3))  # same id again in one transaction: replaced
        with pytest.raises(CaseNotFoundError, match="'zz'"):
            w.delete_case("zz")
    store = SliceStore.open(store_path)
    assert store.read_case("a").image.shape == (3, 24, 32)
    assert store.slices().shape[0] == 3
    with pytest.raises(CaseNotFoundError, match="'nope'"):
        store.case_meta("nope")
    with pytest.raises(CaseNotFoundError, match="z=3"):
        store.read_slice("a", 3)
    with pytest.raises(CaseNotFoundError):
        store.read_case("../a")
    with store.writer("rm") as w:
        w.delete_case("a")
    store = SliceStore.open(store_path)
    assert store.case_ids() == [] and store.objects().empty and store.verify() == []


def test_tables_round_trip(store_path):
    columns = {"case_id": np.array(["a", "b", "b"]), "z": np.array([0, 3, 4], dtype=np.int32),
               "x": np.array([0.5, 1.5, 2.5]), "ok": np.array([True, False, True])}
    with SliceStore.open(store_path).writer("tables") as w:
        w.write_table("prompt_sets/boxes-v1", columns, {"seed": 3, "scheme": "box"})
        w.write_table("mixtures/m1", {"n": np.arange(0)}, {})
        w.write_table("prompt_sets/boxes-v1", columns, {"seed": 4, "scheme": "box"})  # replaced
        with pytest.raises(ValidationError, match="differ in length"):
            w.write_table("bad", {"a": np.arange(2), "b": np.arange(3)}, {})
        with pytest.raises(ValidationError, match="1-D"):
            w.write_table("bad", {"a": np.zeros((2, 2))}, {})
        with pytest.raises(ValidationError, match="table path"):
            w.write_table("../up", {"a": np.arange(2)}, {})
        with pytest.raises(ValidationError, match="JSON"):
            w.write_table("bad", {"a": np.arange(2)}, {"x": object()})
    store = SliceStore.open(store_path)
    got, attrs = store.read_table("prompt_sets/boxes-v1")
    assert attrs == {"seed": 4, "scheme": "box"}
    assert list(got) == list(columns)
    for name, col in columns.items():
        np.testing.assert_array_equal(got[name], col)
    assert got["z"].dtype == np.int32 and got["ok"].dtype == bool
    assert store.read_table("mixtures/m1")[0]["n"].shape == (0,)
    assert store.list_tables("") == ["mixtures/m1", "prompt_sets/boxes-v1"]
    assert store.list_tables("prompt_sets") == ["prompt_sets/boxes-v1"]
    assert store.list_tables("nothing") == []
    assert store.info()["prompt_sets"] == ["boxes-v1"]
    with pytest.raises(StoreError, match="'prompt_sets/none'"):
        store.read_table("prompt_sets/none")
    with pytest.raises(StoreError, match="folder of tables"):
        store.read_table("prompt_sets")


def test_store_pickles_to_the_same_snapshot(store_path, make_case):
    with SliceStore.open(store_path).writer("one") as w:
        w.write_case(make_case("a", 1))
    store = SliceStore.open(store_path)
    clone = pickle.loads(pickle.dumps(store))
    assert clone.snapshot_id == store.snapshot_id and clone.url == store.url
    np.testing.assert_array_equal(clone.read_slice("a", 1)[1], store.read_slice("a", 1)[1])


def test_rejects_unstorable_cases(store_path, make_case):
    case = make_case("a", 1)
    with SliceStore.open(store_path).writer("bad") as w:
        with pytest.raises(ValidationError, match="case id"):
            w.write_case(type(case)(meta=make_case("a/b", 1).meta, image=case.image, label=case.label))
        with pytest.raises(ValidationError, match="label dtype"):
            w.write_case(type(case)(meta=case.meta, image=case.image, label=case.label.astype(np.int32)))
    assert SliceStore.open(store_path).case_ids() == []
