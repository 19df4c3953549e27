"""SimpleITK readers (NRRD, MetaImage, DICOM series) and the LPS <-> RAS+ affine conversion.

ITK describes a grid by origin, spacing and a direction matrix in LPS millimetres and its numpy view
is ``(Z, Y, X)``; samdata keeps nibabel's ``(X, Y, Z)`` and a RAS+ 4x4 affine. The conversion is a
handful of lines (flip the first two world axes), written here because neither library exports it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from samdata.errors import InputFileError
from samdata.io.formats import Decoded, Header, Reader, SlabTransform, one_line, reading, squeezed

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_DICOM_TAGS = {"modality": "0008|0060", "series_description": "0008|103e", "study_uid": "0020|000d"}


def affine_from_sitk(image: sitk.Image) -> np.ndarray:
    """The (4, 4) voxel (i, j, k) -> RAS+ mm affine of a 2D, 3D or 4D SimpleITK image."""
    dim = image.GetDimension()
    n = min(dim, 3)
    direction = np.eye(3)
    direction[:n, :n] = np.asarray(image.GetDirection(), dtype=float).reshape(dim, dim)[:n, :n]
    spacing = np.ones(3)
    spacing[:n] = image.GetSpacing()[:n]
    origin = np.zeros(3)
    origin[:n] = image.GetOrigin()[:n]
    lps = np.eye(4)
    lps[:3, :3] = direction * spacing[None, :]
    lps[:3, 3] = origin
    return LPS_TO_RAS @ lps


def array_from_sitk(image: sitk.Image) -> np.ndarray:
    """The voxels of a SimpleITK image in (X, Y, Z[, T/C]) order (ITK's numpy view is reversed)."""
    arr = sitk.GetArrayFromImage(image)
    dim = image.GetDimension()
    order = list(reversed(range(dim)))
    if image.GetNumberOfComponentsPerPixel() > 1:  # vector pixels: component axis stays last
        order.append(dim)
    return np.ascontiguousarray(arr.transpose(order))


def sitk_from_xyz(array_xyz: np.ndarray, affine: np.ndarray) -> sitk.Image:
    """A 3D SimpleITK image from an (X, Y, Z) array and its (4, 4) RAS+ affine (no shear allowed)."""
    lps = LPS_TO_RAS @ np.asarray(affine, dtype=float)
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(array_xyz).transpose(2, 1, 0)))
    image.SetSpacing([float(s) for s in spacing])
    image.SetOrigin([float(v) for v in lps[:3, 3]])
    image.SetDirection([float(v) for v in (lps[:3, :3] / spacing[None, :]).ravel()])
    return image


def read_itk_file(path: Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Read an NRRD/NHDR/MHA/MHD file: (X, Y, Z...) array, RAS+ affine, meta."""
    with reading(path, "NRRD/MetaImage"):
        image = sitk.ReadImage(str(path))
        array = array_from_sitk(image)
    meta = {"format": "itk", "components": image.GetNumberOfComponentsPerPixel()}
    return array, affine_from_sitk(image), meta


def _series_in(folder: Path) -> dict[str, tuple[str, ...]]:
    """Every DICOM series under ``folder`` (itself first, then sub-folders) as uid -> sorted files."""
    found: dict[str, tuple[str, ...]] = {}
    for current, dirs, _files in os.walk(folder):
        dirs.sort()
        for uid in sitk.ImageSeriesReader.GetGDCMSeriesIDs(current):
            files = tuple(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(current, uid))
            if len(files) > len(found.get(uid, ())):
                found[uid] = files
    return found


def largest_series(folder: Path) -> tuple[str, tuple[str, ...], dict[str, tuple[str, ...]]]:
    """The series with most files under ``folder`` (ties: smallest uid): (uid, its files, every series);
    InputFileError naming the folder when it holds none."""
    try:
        series = _series_in(folder)
    except (OSError, RuntimeError) as err:
        raise InputFileError(f"{folder}: cannot list DICOM series: {one_line(err)}") from err
    if not series:
        raise InputFileError(
            f"{folder}: no readable DICOM series in this folder or its sub-folders; "
            "expected the .dcm files of one series (e.g. images/<case>/*.dcm)"
        )
    uid = min(series, key=lambda u: (-len(series[u]), u))
    return uid, series[uid], series


def read_dicom_series(folder: Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Read the largest DICOM series in a folder (GDCM sorts slices by position): array, affine, meta.

    When the folder holds several series the one with most files wins (ties: smallest uid);
    ``meta["series_uid"]`` records it and ``meta["other_series"]`` the others with their file counts.
    """
    uid, _files, series = largest_series(folder)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(list(series[uid]))
    reader.MetaDataDictionaryArrayUpdateOn()
    with reading(folder, "DICOM series"):
        image = reader.Execute()
        array = array_from_sitk(image)
    meta: dict[str, Any] = {
        "format": "dicom",
        "series_uid": uid,
        "n_files": len(series[uid]),
        "other_series": {u: len(f) for u, f in series.items() if u != uid},
    }
    for key, tag in _DICOM_TAGS.items():
        if reader.HasMetaDataKey(0, tag):
            meta[key] = reader.GetMetaData(0, tag).strip()
    return array, affine_from_sitk(image), meta


def _itk_header(reader: sitk.ImageFileReader, path: Path, files: int = 1) -> Header:
    """The Header of a file whose information ``reader`` has read; ``files`` > 1: a series of that many slices."""
    size = tuple(reader.GetSize())
    if files > 1:
        size = (*size[:2], files)
    components = reader.GetNumberOfComponents()
    shape = squeezed(size + ((components,) if components > 1 else ()))
    return Header(str(path), shape, affine_from_sitk(reader), sitk.GetPixelIDValueAsString(reader.GetPixelID()))


class ItkReader(Reader):
    """NRRD and MetaImage files by SimpleITK."""

    endings = (".nrrd", ".nhdr", ".mha", ".mhd")

    def header(self, path: Path) -> Header:
        """SimpleITK's ``ReadImageInformation``."""
        with reading(path, "NRRD/MetaImage"):
            reader = sitk.ImageFileReader()
            reader.SetFileName(str(path))
            reader.ReadImageInformation()
            return _itk_header(reader, path)

    def read(self, path: Path, as_label: bool, transform: SlabTransform | None) -> Decoded:
        """:func:`read_itk_file`."""
        return read_itk_file(path)


class DicomSeriesReader(Reader):
    """A folder of DICOM files by SimpleITK/GDCM: its largest series (:func:`read_dicom_series`)."""

    folder = "a folder holding one DICOM series"
    #: Endings of the files inside such a folder (the folder's own name has none).
    member_endings: tuple[str, ...] = (".dcm",)

    def serves(self, path: Path) -> bool:
        """Every folder."""
        return path.is_dir()

    def header(self, path: Path) -> Header:
        """The first file's information, its slice count the series' file count."""
        with reading(path, "DICOM series"):
            files = largest_series(path)[1]
            reader = sitk.ImageFileReader()
            reader.SetFileName(files[0])
            reader.ReadImageInformation()
            return _itk_header(reader, path, len(files))

    def read(self, path: Path, as_label: bool, transform: SlabTransform | None) -> Decoded:
        """:func:`read_dicom_series`."""
        return read_dicom_series(path)
