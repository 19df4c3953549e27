"""Transactions: atomic writers, resumable staging runs, publishing, parallel forks across processes."""

from __future__ import annotations

import multiprocessing
import pickle
import signal
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

from samdata.errors import StoreError
from storage import CaseWriter, SliceStore


def test_exception_inside_writer_leaves_main_unchanged(store_path, make_case):
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


def test_staging_run_resumes_and_publishes_all_at_once(store_path, make_case):
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


_KILLED_RUN = """
import pickle, sys, time
from storage import SliceStore
cases = pickle.load(open(sys.argv[2], "rb"))
w = SliceStore.open(sys.argv[1]).writer("ingest", run_name="killed")
for case in cases[:2]:
    w.write_case(case)
w.checkpoint("first two")
w.write_case(cases[2])
print("checkpointed", flush=True)
time.sleep(600)
"""


def test_sigkill_leaves_main_and_the_rerun_does_the_rest(store_path, make_case, tmp_path):
    cases = [make_case(cid, seed) for seed, cid in enumerate("abc")]
    (tmp_path / "cases.pkl").write_bytes(pickle.dumps(cases))
    before = SliceStore.open(store_path).snapshot_id
    child = subprocess.Popen([sys.executable, "-c", _KILLED_RUN, str(store_path), str(tmp_path / "cases.pkl")],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert "checkpointed" in (line.strip() for line in child.stdout)  # stops reading at the marker
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    assert SliceStore.open(store_path).snapshot_id == before
    with SliceStore.open(store_path).writer("ingest", run_name="killed") as w:
        todo = [case for case in cases if case.meta.case_id not in w.done_case_ids()]
        assert [case.meta.case_id for case in todo] == ["c"]
        for case in todo:
            w.write_case(case)
    main = SliceStore.open(store_path)
    assert main.case_ids() == ["a", "b", "c"] and main.verify() == []


def test_publish_replays_when_main_moved_and_refuses_clashes(store_path, make_case):
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


def test_fork_merge_across_processes(store_path, make_case):
    store = SliceStore.open(store_path)
    with store.writer("seed") as w:
        w.write_case(make_case("old", 0))
    w = store.writer("parallel", run_name="par")
    cases = [make_case("p0", 10), make_case("p1", 11), make_case("p2", 12)]
    forks = [w.fork() for _ in cases]
    # spawn, not fork: a forked child would inherit Icechunk's running I/O threads
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        returned = list(pool.map(CaseWriter.write_case, forks, cases))
    assert [f.case_ids() for f in returned] == [["p0"], ["p1"], ["p2"]]
    assert SliceStore.open(store_path).case_ids() == ["old"]  # nothing visible before the commit
    w.merge(returned)
    with pytest.raises(StoreError, match="uncommitted"):
        w.fork()
    w.checkpoint("batch 1")
    stale = CaseWriter.__new__(CaseWriter)
    stale.__dict__.update(returned[0].__dict__)
    with pytest.raises(StoreError, match="not made by this writer"):
        w.merge([stale])
    late = w.fork()
    late.write_case(make_case("p3", 13))  # a fork may also be written in this process
    w.merge([late])
    w.finish()
    main = SliceStore.open(store_path)
    assert main.case_ids() == ["old", "p0", "p1", "p2", "p3"]
    for cid, seed in (("p0", 10), ("p2", 12), ("p3", 13)):
        np.testing.assert_array_equal(main.read_case(cid).label, make_case(cid, seed).label)
    assert main.verify() == []


def test_two_forks_writing_one_case_are_refused(store_path, make_case):
    w = SliceStore.open(store_path).writer("dup")
    f1, f2 = w.fork(), w.fork()
    f1.write_case(make_case("a", 1))
    f2.write_case(make_case("a", 2))
    with pytest.raises(StoreError, match="two forks"):
        w.merge([f1, f2])


def test_idle_staging_branch_follows_main(store_path, make_case):
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
