"""verify() finds corrupt chunks, index/pixel disagreements and broken metadata."""

from __future__ import annotations

import shutil
from pathlib import Path

import icechunk
import numpy as np
import zarr

from storage import SliceStore


def _tamper(path: Path, edit) -> None:
    """Commit a low-level edit to main with plain Icechunk + Zarr, bypassing the store's writer."""
    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(str(path)))
    session = repo.writable_session("main")
    edit(zarr.open_group(store=session.store, mode="r+"))
    session.commit("tamper")


def test_verify_reports_a_corrupted_chunk_file(store_path, make_case, tmp_path):
    with SliceStore.open(store_path).writer("one") as w:
        w.write_case(make_case("a", 1, depth=3, height=48, width=48))
    assert SliceStore.open(store_path).verify() == []
    copy = tmp_path / "copy"
    shutil.copytree(store_path, copy)
    chunk = max((copy / "chunks").iterdir(), key=lambda p: p.stat().st_size)  # an image slice
    raw = bytearray(chunk.read_bytes())
    raw[:32] = bytes(range(200, 232))
    chunk.write_bytes(bytes(raw))
    problems = SliceStore.open(copy).verify()
    assert len(problems) == 1
    assert problems[0].startswith("case 'a': image chunk z=") and "does not decode" in problems[0]
    assert SliceStore.open(store_path).verify() == []  # the original is untouched


def test_verify_reports_index_mismatch_and_bad_metadata(store_path, make_case):
    with SliceStore.open(store_path).writer("two") as w:
        w.write_case(make_case("a", 1))
        w.write_case(make_case("b", 2))

    def shrink_area(root: zarr.Group) -> None:
        area = root["index/objects/area"]
        values = np.asarray(area[:])
        values[0] += 1
        area[:] = values

    _tamper(store_path, shrink_area)
    problems = SliceStore.open(store_path).verify()
    assert len(problems) == 1 and problems[0].startswith("case 'a': index disagrees with pixels")
    assert "object row 0" in problems[0]

    def break_meta_and_add_stray(root: zarr.Group) -> None:
        root["cases/b"].attrs["meta"] = {"case_id": "b"}
        stray = root.require_group("cases").create_group("stray")
        stray.create_array("image", shape=(2, 4, 4), dtype="uint8", chunks=(2, 4, 4))

    _tamper(store_path, break_meta_and_add_stray)
    problems = SliceStore.open(store_path).verify()
    text = "\n".join(problems)
    assert "case 'b': metadata incomplete or invalid" in text
    assert "case 'stray': stored but missing from the index" in text
    assert "case 'stray': image has chunks (2, 4, 4)" in text
    assert "case 'stray': label array missing" in text
