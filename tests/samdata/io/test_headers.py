"""Headers before pixels: declared shapes and grids checked, voxel budgets, gzip streams that inflate too far."""

from __future__ import annotations

import gzip
import struct
import zlib
from dataclasses import replace
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from samdata.errors import InputFileError, ValidationError
from samdata.io.headers import check_budget, check_pair, read_header
from samdata.io.itk import sitk_from_xyz
from samdata.io.readers import read_volume


def declared_nifti(path: Path, shape: tuple[int, ...], dtype: type = np.int16, data: bytes = b"") -> Path:
    """A .nii.gz whose header declares ``shape`` but which holds only ``data`` after it (a forged header)."""
    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(dtype)
    header.set_sform(np.diag([0.8, 0.8, 2.0, 1.0]), 1)
    header.set_qform(np.diag([0.8, 0.8, 2.0, 1.0]), 1)
    with gzip.open(path, "wb") as f:
        block = header.binaryblock
        f.write(block + b"\0" * (352 - len(block)) + data)
    return path


def png_declaring(path: Path, width: int, height: int) -> Path:
    """A PNG whose IHDR declares ``width`` x ``height`` grey pixels, with almost no pixel data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )
    return path


def test_headers_of_every_format_without_decoding(tmp_path: Path, write_dicom_series) -> None:
    huge = read_header(declared_nifti(tmp_path / "huge.nii.gz", (2048, 2048, 1024)))
    assert huge.shape == (2048, 2048, 1024) and huge.voxels == 2048 * 2048 * 1024 and huge.dtype == "int16"
    assert np.allclose(np.diag(huge.affine), [0.8, 0.8, 2.0, 1.0])
    flat = read_header(declared_nifti(tmp_path / "flat.nii.gz", (30, 20, 1, 1)))
    assert flat.shape == (30, 20, 1)
    import SimpleITK as sitk

    sitk.WriteImage(
        sitk_from_xyz(np.zeros((12, 10, 4), np.int16), np.diag([1.5, 1.5, 3.0, 1.0])), str(tmp_path / "vol.nrrd")
    )
    nrrd = read_header(tmp_path / "vol.nrrd")
    assert nrrd.shape == (12, 10, 4) and np.allclose(np.abs(np.diag(nrrd.affine)), [1.5, 1.5, 3.0, 1.0])
    series = write_dicom_series(np.zeros((8, 6, 5)), np.eye(4), tmp_path / "dicom")
    assert read_header(series).shape == (8, 6, 5)
    big = read_header(png_declaring(tmp_path / "big.png", 10_000, 8_000))  # 80 M pixels declared, none stored
    assert big.shape == (10_000, 8_000, 1) and big.affine is None
    with pytest.raises(ValidationError, match="over the voxel budget of 1,000,000"):
        check_budget(big, 1_000_000)
    with pytest.raises(ValidationError, match=r"bomb\.png: declares more than .* decompression-bomb"):
        read_header(png_declaring(tmp_path / "bomb.png", 100_000, 90_000))
    Image.fromarray(np.zeros((7, 9), np.uint8)).save(tmp_path / "small.png")
    assert read_header(tmp_path / "small.png").shape == (9, 7, 1)


def test_budget_and_pair_checks_name_the_file_and_the_budget(tmp_path: Path) -> None:
    image = read_header(declared_nifti(tmp_path / "img.nii.gz", (2048, 2048, 1024)))
    with pytest.raises(
        ValidationError,
        match=r"img\.nii\.gz: declares shape 2048 x 2048 x 1024 = 4,294,967,296 "
        r"voxels, over the voxel budget of 536,870,912",
    ):
        check_budget(image, 1 << 29)
    check_budget(image, 1 << 33)
    label = read_header(declared_nifti(tmp_path / "lab.nii.gz", (16, 16, 4), np.uint8))
    with pytest.raises(ValidationError, match=r"declares shape \(16, 16, 4\) != image"):
        check_pair(image, label, 1e-3)
    same = read_header(declared_nifti(tmp_path / "same.nii.gz", (2048, 2048, 1024), np.uint8))
    check_pair(image, same, 1e-3)  # the same grid declared: fine
    shifted = replace(same, affine=same.affine + np.array([[0, 0, 0, 5.0]] * 3 + [[0, 0, 0, 0]]))
    with pytest.raises(ValidationError, match="another voxel-to-world affine"):
        check_pair(image, shifted, 1e-3)
    check_pair(image, replace(same, affine=None), 1e-3)  # a PNG mask has no geometry: shape only


def test_a_gzip_stream_that_inflates_far_past_its_header_is_refused(tmp_path: Path) -> None:
    fine = declared_nifti(tmp_path / "fine.nii.gz", (4, 4, 4), np.uint8, bytes(range(64)))
    assert read_volume(fine).array.shape == (4, 4, 4)
    bomb = declared_nifti(tmp_path / "bomb.nii.gz", (4, 4, 4), np.uint8, bytes(range(64)) + b"\0" * (8 << 20))
    with pytest.raises(
        InputFileError,
        match=r"bomb\.nii\.gz: the gzip stream inflates more than 1,048,576 bytes "
        r"past the 64",
    ):
        read_volume(bomb)
