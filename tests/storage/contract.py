"""The store's contract, one suite for every backend: round trips, snapshots, tables, transactions, errors.

``StoreContract`` holds the tests; a backend's test module subclasses it once and provides the fixture
``store_path``: the address of a freshly created, empty store (a folder, or ``s3://bucket/prefix`` with
the S3 settings in the environment). zarr-python's ``StoreTests`` is the model. The tests chosen are the
ones that exercise the store's reads, writes and commits; tests of the local folder itself (plain
Icechunk tampering, subprocesses killed mid-run) stay in the local-only modules.
"""

from __future__ import annotations

import json
import pickle

import numpy as np
import pandas as pd
import pytest

from samdata.case import slice_objects
from samdata.errors import CaseNotFoundError, SnapshotNotFoundError, StoreError, ValidationError
from storage import SliceStore, SnapshotInfo
from storage.schema import image_codec, label_codec


class StoreContract:
    """Tests every store backend passes; subclasses provide ``store_path`` (a fresh, empty store)."""

    def test_case_round_trip_pixels_meta_and_index(self, store_path, make_case):
        a, b = (
            make_case("a", 1),
            make_case("b", 2, depth=3, height=20, width=16, label_dtype=np.uint16, split="val", origin="synthetic"),
        )
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
        assert list(objects.columns) == [
            "case_id",
            "z",
            "label",
            "label_name",
            "x0",
            "y0",
            "x1",
            "y1",
            "area",
            "split",
            "origin",
            "modality",
        ]
        expected = [
            (r.case_id, r.z, r.label, r.x0, r.y0, r.x1, r.y1, r.area)
            for case in (a, b)
            for r in slice_objects(case.meta.case_id, case.label)
        ]
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

    def test_chunks_are_one_slice_with_blosc_zstd(self, store_path, make_case):
        with SliceStore.open(store_path).writer("one") as w:
            w.write_case(make_case("a", 1))
        store = SliceStore.open(store_path)
        root = store._root
        image, label = root["cases/a/image"], root["cases/a/label"]
        assert image.chunks == (1, 24, 32) and label.chunks == (1, 24, 32)
        assert image.compressors[0].to_dict() == image_codec().to_dict()
        assert label.compressors[0].to_dict() == label_codec().to_dict()
        assert root["cases/a"].attrs["meta"] == make_case("a", 1).meta.to_json()

    def test_snapshots_are_listed_and_reopen_exactly(self, store_path, make_case):
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

    def test_overwrite_delete_and_missing_cases(self, store_path, make_case):
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

    def test_tables_round_trip(self, store_path):
        columns = {
            "case_id": np.array(["a", "b", "b"]),
            "z": np.array([0, 3, 4], dtype=np.int32),
            "x": np.array([0.5, 1.5, 2.5]),
            "ok": np.array([True, False, True]),
        }
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

    def test_store_pickles_to_the_same_snapshot(self, store_path, make_case):
        with SliceStore.open(store_path).writer("one") as w:
            w.write_case(make_case("a", 1))
        store = SliceStore.open(store_path)
        clone = pickle.loads(pickle.dumps(store))
        assert clone.snapshot_id == store.snapshot_id and clone.url == store.url
        np.testing.assert_array_equal(clone.read_slice("a", 1)[1], store.read_slice("a", 1)[1])

    def test_rejects_unstorable_cases(self, store_path, make_case):
        case = make_case("a", 1)
        with SliceStore.open(store_path).writer("bad") as w:
            with pytest.raises(ValidationError, match="case id"):
                w.write_case(type(case)(meta=make_case("a/b", 1).meta, image=case.image, label=case.label))
            with pytest.raises(ValidationError, match="label dtype"):
                w.write_case(type(case)(meta=case.meta, image=case.image, label=case.label.astype(np.int32)))
        assert SliceStore.open(store_path).case_ids() == []

    def test_exception_inside_writer_leaves_main_unchanged(self, store_path, make_case):
        store = SliceStore.open(store_path)
        before = store.snapshot_id
        with pytest.raises(RuntimeError, match="boom"):
            with store.writer("doomed") as w:
                w.write_case(make_case("a", 1))
                w.write_table("mixtures/m", {"x": np.arange(3)}, {})
                raise RuntimeError("boom")
        with pytest.raises(RuntimeError, match="boom"):
            with store.writer("doomed run", run_name="r1") as w:
                w.write_case(make_case("b", 2))
                raise RuntimeError("boom")
        after = SliceStore.open(store_path)
        assert after.snapshot_id == before
        assert after.case_ids() == [] and after.list_tables("") == []
        with pytest.raises(StoreError, match="aborted"):
            w.write_case(make_case("c", 3))

    def test_staging_run_resumes_and_publishes_all_at_once(self, store_path, make_case):
        store = SliceStore.open(store_path)
        before = store.snapshot_id
        w = store.writer("ingest", run_name="nightly")
        assert w.branch == "staging.nightly"
        w.write_case(make_case("a", 1))
        w.write_case(make_case("b", 2))
        checkpoint = w.checkpoint("two cases")
        w.write_case(make_case("lost", 9))  # not checkpointed: lost when the process dies
        del w  # the run dies without finish()

        assert SliceStore.open(store_path).snapshot_id == before  # main untouched
        staged = SliceStore.open(store_path, branch="staging.nightly")
        assert staged.snapshot_id == checkpoint and staged.case_ids() == ["a", "b"]

        w = SliceStore.open(store_path).writer("ingest", run_name="nightly")
        assert w.done_case_ids() == {"a", "b"}
        assert w.source_hashes()["sha256:a-1"] == "a"
        w.write_case(make_case("c", 3))
        published = w.finish()
        assert w.finish() == published

        main = SliceStore.open(store_path)
        assert main.snapshot_id == published
        assert main.case_ids() == ["a", "b", "c"]
        assert [s.message for s in main.snapshots()[:2]] == ["ingest", "two cases"]
        assert main.verify() == []
        assert "staging.nightly" not in main._repo.list_branches()
        with pytest.raises(StoreError, match="finished"):
            w.write_case(make_case("d", 4))

    def test_publish_replays_when_main_moved_and_refuses_clashes(self, store_path, make_case):
        run = SliceStore.open(store_path).writer("run", run_name="late")
        run.write_case(make_case("a", 1))
        run.write_table("prompt_sets/p", {"x": np.arange(2)}, {"v": 1})
        run.checkpoint("cp")
        with SliceStore.open(store_path).writer("meanwhile") as w:
            w.write_case(make_case("m", 5))
        run.write_case(make_case("b", 2))
        head = run.finish()
        main = SliceStore.open(store_path)
        assert main.snapshot_id == head
        assert main.case_ids() == ["a", "b", "m"]
        assert main.read_table("prompt_sets/p")[1] == {"v": 1}
        assert main.snapshots()[0].message.startswith("run (replayed from staging.late")
        assert main.verify() == []

        clash = SliceStore.open(store_path).writer("clash", run_name="clash")
        clash.write_case(make_case("m", 6))
        clash.checkpoint("cp")
        with SliceStore.open(store_path).writer("other") as w:
            w.write_case(make_case("m", 7))
        with pytest.raises(StoreError, match=r"both changed \['m'\]"):
            clash.finish()
        np.testing.assert_array_equal(SliceStore.open(store_path).read_case("m").image, make_case("m", 7).image)

    def test_two_forks_writing_one_case_are_refused(self, store_path, make_case):
        w = SliceStore.open(store_path).writer("dup")
        f1, f2 = w.fork(), w.fork()
        f1.write_case(make_case("a", 1))
        f2.write_case(make_case("a", 2))
        with pytest.raises(StoreError, match="two forks"):
            w.merge([f1, f2])

    def test_idle_staging_branch_follows_main(self, store_path, make_case):
        SliceStore.open(store_path).writer("idle", run_name="idle")  # creates staging, never writes
        with SliceStore.open(store_path).writer("meanwhile") as w:
            w.write_case(make_case("m", 1))
        resumed = SliceStore.open(store_path).writer("idle", run_name="idle")
        assert resumed.done_case_ids() == {"m"}
        resumed.write_case(make_case("n", 2))
        head = resumed.finish()
        main = SliceStore.open(store_path)
        assert main.snapshot_id == head and main.case_ids() == ["m", "n"]
        assert main.snapshots()[1].message == "meanwhile"  # a fast-forward, not a replay

    def test_unknown_snapshots_and_branches(self, store_path):
        with pytest.raises(SnapshotNotFoundError, match="'nope'.*expected 20 characters"):
            SliceStore.open(store_path, snapshot="nope")
        with pytest.raises(SnapshotNotFoundError, match="ZZZZZZZZZZZZZZZZZZZZ"):
            SliceStore.open(store_path, snapshot="ZZZZZZZZZZZZZZZZZZZZ")
        with pytest.raises(SnapshotNotFoundError, match="branch 'dev'"):
            SliceStore.open(store_path, branch="dev")
        with pytest.raises(LookupError):  # SnapshotNotFoundError is also a LookupError
            SliceStore.open(store_path).at("00000000000000000000")

    def test_bad_run_names_are_rejected(self, store_path):
        store = SliceStore.open(store_path)
        for bad in ("a/b", "", ".hidden", "x" * 300):
            with pytest.raises(ValidationError, match="run name"):
                store.writer("m", run_name=bad)
