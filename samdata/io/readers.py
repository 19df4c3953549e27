"""Read image and label volumes from any supported format into :class:`samdata.case.Volume`.

Formats: NIfTI (nibabel, see :mod:`samdata.io.nifti`); NRRD/MetaImage and DICOM series folders (SimpleITK,
see :mod:`samdata.io.itk`); PNG/JPEG/BMP/TIFF (Pillow/tifffile, see :mod:`samdata.io.raster`); the reader of
a path is looked up in :mod:`samdata.io.registry`.
Every volume comes back as ``array`` (X, Y, Z) in nibabel index order with a RAS+ affine.
A folder with several DICOM series reads the largest (``meta["series_uid"]``, ``meta["other_series"]``).
All file I/O of samdata lives in this package.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import nibabel as nib
import numpy as np

from samdata.case import Volume
from samdata.errors import CaseNotFoundError, InputFileError, ValidationError
from samdata.files import atomic_write
from samdata.io.formats import SlabTransform, check_values
from samdata.io.nifti import NiftiReader
from samdata.io.registry import reader_for, suffix_of

AFFINE_ATOL_MM = 1e-3
LABEL_INTEGER_ATOL = 1e-3


def _as_3d(array: np.ndarray, path: Path) -> np.ndarray:
    """Squeeze singleton trailing dims beyond three and make 2D arrays (X, Y, 1); refuse 4D data."""
    while array.ndim > 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3:
        raise InputFileError(
            f"{path}: shape {array.shape} is {array.ndim}D (time points, channels or vector "
            "components along extra axes); expected a 2D image or a 3D volume"
        )
    return array


def _load(path: str | Path, as_label: bool, transform: SlabTransform | None = None) -> Volume:
    """Read ``path`` by the reader serving it (:func:`samdata.io.registry.reader_for`) and return a checked
    (X, Y, Z) Volume, ``transform``-ed if given (while reading a .nii.gz, else after the checks)."""
    path = Path(path)
    array, affine, meta = reader_for(path).read(path, as_label, transform)
    meta.setdefault("source_dtype", str(array.dtype))
    meta.setdefault("rgb_to_grey", False)
    array = _as_3d(array, path)
    if not meta.get("transformed"):  # a transformed read checked every block as it came
        array = check_values(array, path, as_label)
        if transform is not None:
            array, meta["transformed"] = transform(array), True
    return Volume(array=array, affine=affine, path=str(path), meta=meta)


def read_volume(path: str | Path, transform: SlabTransform | None = None) -> Volume:
    """Read an image file or DICOM folder as an (X, Y, Z) Volume (native dtype) with a RAS+ affine.

    ``transform`` maps intensities to the stored values (ingest passes a fixed CT window to uint8); a
    .nii.gz is then transformed block by block as it is inflated, so its native array is never whole
    in memory (``meta["transformed"]`` is True and ``meta["source_dtype"]`` names the file's type)."""
    return _load(path, as_label=False, transform=transform)


def _label_dtype(array: np.ndarray, path: Path) -> np.ndarray:
    """Check a label map is integer-valued and non-negative; return it as uint8/uint16."""
    if array.dtype == np.uint8:  # every value is a valid id already: no pass over the map
        return array
    if np.issubdtype(array.dtype, np.floating):
        rounded = np.rint(array)
        off = np.abs(array - rounded) > LABEL_INTEGER_ATOL
        if off.any():
            raise ValidationError(
                f"{path}: label map has non-integer values (e.g. {array[off].flat[0]!r}); expected integer label ids"
            )
        array = rounded
    lo, hi = array.min(), array.max()
    if lo < 0:
        raise ValidationError(f"{path}: label map has negative value {lo}; expected ids >= 0")
    if hi > np.iinfo(np.uint16).max:
        raise ValidationError(f"{path}: label id {hi} exceeds 65535; expected a label map")
    return array.astype(np.uint8 if hi <= 255 else np.uint16, copy=False)


def _affine_text(affine: np.ndarray) -> str:
    """A 4x4 affine on one line, rows separated by ';'."""
    return "; ".join(" ".join(f"{v:.4g}" for v in row) for row in np.asarray(affine))


def read_label(path: str | Path, like: Volume | None) -> Volume:
    """Read a label map for ``like`` as an (X, Y, Z) uint8/uint16 Volume; check its values and grid.

    Float storage of integer ids is cast; an all-background map is allowed. A raster mask with no
    geometry of its own (PNG, or TIFF without resolution) takes the image's affine
    (``meta["affine_from_image"]``). ``like=None`` checks the values only (read beside its image,
    then :func:`match_label_grid`).
    """
    label = _load(path, as_label=True)
    label = Volume(_label_dtype(label.array, Path(path)), label.affine, label.path, dict(label.meta))
    return label if like is None else match_label_grid(label, like)


def match_label_grid(label: Volume, like: Volume) -> Volume:
    """Check a label Volume from :func:`read_label` lies on ``like``'s voxel grid (shape and affine);
    a raster mask without geometry of its own takes the image's affine."""
    path, array, affine, meta = label.path, label.array, label.affine, dict(label.meta)
    if array.shape != like.array.shape:
        raise ValidationError(
            f"label {path} shape {array.shape} != image {like.path} shape {like.array.shape}; "
            "expected the label on the image's voxel grid"
        )
    if meta.get("spacing_source") == "default_1mm":
        affine, meta["affine_from_image"] = np.asarray(like.affine, dtype=np.float64), True
    if not np.allclose(affine, like.affine, rtol=0.0, atol=AFFINE_ATOL_MM):
        raise ValidationError(
            f"label {path} affine [{_affine_text(affine)}] != image {like.path} affine "
            f"[{_affine_text(like.affine)}] (shapes {array.shape} and {like.array.shape}, "
            f"atol {AFFINE_ATOL_MM} mm); expected the same voxel-to-world mapping"
        )
    return Volume(array=array, affine=affine, path=str(path), meta=meta)


def _files_of(path: Path) -> list[Path]:
    """A file itself, or every file under a folder sorted by relative path."""
    if path.is_dir():
        files = (p for p in path.rglob("*") if p.is_file())
        return sorted(files, key=lambda p: p.relative_to(path).as_posix())
    if path.exists():
        return [path]
    raise CaseNotFoundError(f"{path}: no such file or folder to hash")


#: The content hash of new cases: BLAKE2b-256, measured faster than SHA-256 on cores without SHA
#: instructions (BENCHMARKS.md, "Ingest"), written with its name so stores can hold both.
HASH_ALGORITHM = "blake2b"
#: Stores written before the prefix hold bare SHA-256 hex digests.
LEGACY_HASH_ALGORITHM = "sha256"


def source_hash(*paths: str | Path, algorithm: str = HASH_ALGORITHM) -> str:
    """Content hash over the bytes of the given files in order (a folder: its files sorted by path):
    ``"blake2b:<64 hex>"``; ``algorithm="sha256"`` gives the bare hex digest of older stores."""
    if algorithm == HASH_ALGORITHM:
        digest = hashlib.blake2b(digest_size=32)
    elif algorithm == LEGACY_HASH_ALGORITHM:
        digest = hashlib.sha256()
    else:
        raise ValueError(
            f"unknown content hash {algorithm!r}; expected {HASH_ALGORITHM!r} or {LEGACY_HASH_ALGORITHM!r}"
        )
    for path in paths:
        for file in _files_of(Path(path)):
            with open(file, "rb") as fh:
                while block := fh.read(1 << 20):
                    digest.update(block)
    return digest.hexdigest() if algorithm == LEGACY_HASH_ALGORITHM else f"{algorithm}:{digest.hexdigest()}"


def is_legacy_hash(digest: str) -> bool:
    """True for a bare SHA-256 hex digest (the content hash of stores written before the prefix)."""
    return ":" not in digest


def _nifti_dtype(array: np.ndarray) -> np.ndarray:
    """bool -> uint8 and 64-bit integers -> int32 (nibabel refuses int64 without an explicit type)."""
    if array.dtype == bool:
        return array.astype(np.uint8)
    if array.dtype in (np.int64, np.uint64):
        info = np.iinfo(np.int32)
        if array.size and (array.min() < info.min or array.max() > info.max):
            raise ValidationError(f"64-bit integer values {array.min()}..{array.max()} do not fit int32")
        return array.astype(np.int32)
    return array


def write_nifti(array_xyz: np.ndarray, affine: np.ndarray, path: str | Path) -> Path:
    """Write an (X, Y, Z) array and its (4, 4) RAS+ affine as NIfTI (qform = sform, code 1), atomically."""
    path = Path(path)
    suffix = suffix_of(path)
    if suffix not in NiftiReader.endings:
        raise InputFileError(f"{path}: cannot write NIfTI to extension {suffix!r}; expected .nii.gz or .nii")
    path.parent.mkdir(parents=True, exist_ok=True)
    img = nib.Nifti1Image(_nifti_dtype(np.asarray(array_xyz)), np.asarray(affine, dtype=np.float64))
    img.header.set_qform(img.affine, code=1)
    img.header.set_sform(img.affine, code=1)
    img.header.set_xyzt_units("mm")
    return atomic_write(path, lambda tmp: nib.save(img, tmp), suffix=suffix)  # nibabel compresses by the name
