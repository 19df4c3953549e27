"""Atomic writes keep the user's umask (not mkstemp's 0600) and leave nothing behind on failure."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from samdata.files import atomic_write, current_umask, write_json


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o077])
def test_atomic_files_get_the_umask_permissions(tmp_path: Path, mask: int) -> None:
    old = os.umask(mask)
    try:
        assert current_umask() == mask
        path = write_json(tmp_path / "run.json", {"a": 1})
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask and path.read_text() == '{\n  "a": 1\n}\n'
    finally:
        os.umask(old)


def test_a_failed_write_keeps_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = write_json(tmp_path / "x.json", {"v": 1})

    def broken(tmp: str) -> None:
        Path(tmp).write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(path, broken)
    assert path.read_text().strip().endswith("}") and sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]


def test_run_files_and_masks_follow_the_umask(tmp_path: Path) -> None:
    import numpy as np

    from samdata.io.readers import write_nifti

    old = os.umask(0o022)
    try:
        nifti = write_nifti(np.zeros((4, 4, 2), np.uint8), np.eye(4), tmp_path / "m.nii.gz")
        assert stat.S_IMODE(nifti.stat().st_mode) == 0o644 and nifti.read_bytes()[:2] == b"\x1f\x8b"  # gzipped
    finally:
        os.umask(old)
