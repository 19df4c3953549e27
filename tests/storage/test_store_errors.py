"""Bad local paths given to SliceStore.open give clear samdata errors (unknown snapshots, branches and run
names: tests/storage/contract.py, on every backend)."""

from __future__ import annotations

import icechunk
import pytest
import zarr

from samdata.errors import StoreError
from storage import SliceStore


def test_missing_store_and_folders_that_are_not_stores(tmp_path):
    missing = tmp_path / "nothing"
    with pytest.raises(StoreError, match="nothing.*does not exist"):
        SliceStore.open(missing)
    assert not missing.exists()

    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("hello")
    for create in (False, True):
        with pytest.raises(StoreError, match="junk.*exists but is not a samdata store"):
            SliceStore.open(junk, create=create)

    with pytest.raises(StoreError, match="notes.txt.*is a file"):
        SliceStore.open(junk / "notes.txt")

    bare = tmp_path / "bare"
    icechunk.Repository.create(icechunk.local_filesystem_storage(str(bare)))
    session = icechunk.Repository.open(icechunk.local_filesystem_storage(str(bare))).writable_session("main")
    zarr.group(store=session.store).attrs["other"] = 1
    session.commit("someone else's data")
    with pytest.raises(StoreError, match="not a samdata store"):
        SliceStore.open(bare)

    with pytest.raises(StoreError, match="unsupported store url"):
        SliceStore.open("gs://bucket/x")


def test_create_on_empty_folder_and_reopen(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    created = SliceStore.open(empty, create=True)
    assert created.case_ids() == [] and created.url == str(empty)
    again = SliceStore.open(str(empty), create=True)  # an existing store is opened, not reset
    assert again.snapshot_id == created.snapshot_id
