"""Transactions across processes on a local folder: a run killed mid-write resumes, forks merge.

The in-process transaction tests (atomic writers, staging runs, publishing) are in the store contract
(tests/storage/contract.py) and run on every backend.
"""

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
    child = subprocess.Popen(
        [sys.executable, "-c", _KILLED_RUN, str(store_path), str(tmp_path / "cases.pkl")],
        stdout=subprocess.PIPE,
        text=True,
    )
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
