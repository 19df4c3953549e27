"""Shared fixtures for samdata tests: a writer of small, real DICOM series (SimpleITK, one file per slice)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from samdata.io.itk import sitk_from_xyz

DicomWriter = Callable[..., Path]


def _write_dicom_series(array_xyz: np.ndarray, affine: np.ndarray, folder: Path, series: str = "1") -> Path:
    """Write an (X, Y, Z) int16 array as CT slices, tagged as in SimpleITK's 'Dicom Series From Array'."""
    folder.mkdir(parents=True, exist_ok=True)
    image = sitk_from_xyz(array_xyz.astype(np.int16), affine)
    d = image.GetDirection()
    tags = {
        "0008|0008": "DERIVED\\SECONDARY",
        "0008|0060": "CT",
        "0008|103e": f"samdata test series {series}",
        "0020|000d": "1.2.826.0.1.3680043.2.1125.1",
        "0020|000e": f"1.2.826.0.1.3680043.2.1125.1.{series}",
        "0020|0052": "1.2.826.0.1.3680043.2.1125.2",  # frame of reference (DICOM-SEG needs it)
        "0020|0037": "\\".join(str(v) for v in (d[0], d[3], d[6], d[1], d[4], d[7])),
        "0028|1053": "1",
        "0028|1052": "0",
    }
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(image.GetDepth()):
        plane = image[:, :, k]
        for tag, value in tags.items():
            plane.SetMetaData(tag, value)
        plane.SetMetaData("0008|0018", f"1.2.826.0.1.3680043.2.1125.1.{series}.{k + 1}")
        position = image.TransformIndexToPhysicalPoint((0, 0, k))
        plane.SetMetaData("0020|0032", "\\".join(str(v) for v in position))
        plane.SetMetaData("0020|0013", str(k + 1))
        writer.SetFileName(str(folder / f"s{series}_{k:03d}.dcm"))
        writer.Execute(plane)
    return folder


def oblique_affine(angle: float, offset: tuple[float, float, float]) -> np.ndarray:
    """A RAS+ affine rotated by ``angle`` (radians) about z, with LPS-style flips of x and y and voxels of
    0.8 x 0.7 x 2.5 mm, its first voxel at ``offset``."""
    c, s = np.cos(angle), np.sin(angle)
    affine = np.eye(4)
    affine[:3, :3] = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ np.diag([-0.8, -0.7, 2.5])
    affine[:3, 3] = offset
    return affine


@pytest.fixture
def write_dicom_series() -> DicomWriter:
    """The DICOM series writer: ``write_dicom_series(array_xyz, affine, folder, series="1") -> folder``."""
    return _write_dicom_series
