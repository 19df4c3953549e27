"""Read image and label volumes from any supported format into :class:`samdata.case.Volume`.

Formats: NIfTI (nibabel); NRRD/MetaImage and DICOM series folders (SimpleITK, see
:mod:`samdata.io.itk`); PNG/JPEG/BMP/TIFF (Pillow/tifffile, see :mod:`samdata.io.raster`).
Every volume comes back as ``array`` (X, Y, Z) in nibabel index order with a RAS+ affine.
A folder with several DICOM series reads the largest (``meta["series_uid"]``, ``meta["other_series"]``).
All file I/O of samdata lives in this package.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from samdata.case import Volume
from samdata.errors import CaseNotFoundError, InputFileError, ValidationError
from samdata.files import atomic_write
from samdata.io import itk, raster
from samdata.io.formats import (
    ITK_SUFFIXES,
    NIFTI_SUFFIXES,
    RASTER_SUFFIXES,
    SUPPORTED_TEXT,
    reading,
    suffix_of,
)

AFFINE_ATOL_MM = 1e-3
LABEL_INTEGER_ATOL = 1e-3


_GZ_READ = 1 << 20  # compressed bytes read from a .nii.gz at a time
_GZ_PIECE = 1 << 22  # at most this many bytes inflated per zlib call (the only temporary of the read)
_GZ_SLACK = 1 << 20  # bytes past the declared data a .nii.gz may inflate to before it is refused


#: Maps an (X, Y, k) block of intensities (nibabel's scaling applied) to the stored values, same shape.
SlabTransform = Callable[[np.ndarray], np.ndarray]


def _inflated(path: Path, skip: int, total: int) -> Iterator[bytes]:
    """The ``total`` bytes after the first ``skip`` of a gzip file's uncompressed stream, in pieces of at
    most 4 MB; the stream is read to its end (zlib checks every member's CRC and length; concatenated
    members are followed). InputFileError naming ``path`` if it ends early, or if it inflates more than
    1 MB (or a sixteenth of the data) past the declared data."""
    done = extra = 0
    slack = max(_GZ_SLACK, total // 16)
    inflater = zlib.decompressobj(wbits=31)
    with open(path, "rb") as stream:
        while True:
            if inflater.eof:  # a member ended: the data goes on in the next one, or the file is read
                data = inflater.unused_data or stream.read(_GZ_READ)
                if not data:
                    break
                inflater = zlib.decompressobj(wbits=31)
            else:
                data = inflater.unconsumed_tail or stream.read(_GZ_READ)
            wanted = skip + total - done
            piece = inflater.decompress(data, min(_GZ_PIECE, wanted) if wanted > 0 else _GZ_PIECE)
            if not data and not piece:
                break
            if skip:
                cut = min(skip, len(piece))
                piece, skip = piece[cut:], skip - cut
            take = min(len(piece), total - done)
            if take:
                yield piece if take == len(piece) else piece[:take]
                done += take
            extra += len(piece) - take
            if extra > slack:  # a gzip bomb: the stream goes on far past what the header declares
                raise InputFileError(f"{path}: the gzip stream inflates more than {slack:,} bytes past the "
                                     f"{total:,} its header declares; not a valid NIfTI file (or a gzip bomb)")
    if done < total:
        raise InputFileError(f"{path}: data ends after {done} of {total} bytes (truncated NIfTI file?)")
    if not inflater.eof:
        raise InputFileError(f"{path}: the gzip stream has no end (truncated .gz file?)")


def _lookup_table(dtype: np.dtype, scaled: Callable[[np.ndarray], np.ndarray], transform: SlabTransform
                  ) -> tuple[np.ndarray, np.dtype] | None:
    """``transform(scaled(v))`` for every value ``v`` of a native 8- or 16-bit integer type, indexed by
    the value's bits read as unsigned (and that unsigned type); None for other types. The transform
    is elementwise, so a lookup gives exactly its values, for a 65,536-entry table instead of six
    float32 passes over every voxel (a CT window: 0.10 → 0.03 s for 512x512x100 int16)."""
    if dtype.kind not in "iu" or dtype.itemsize > 2 or not dtype.isnative:
        return None
    unsigned = np.dtype(f"u{dtype.itemsize}")
    every = np.arange(1 << (8 * dtype.itemsize), dtype=unsigned).view(dtype)  # all values, in bit order
    return np.ascontiguousarray(transform(scaled(every.reshape(-1, 1, 1))).reshape(-1)), unsigned


def _gzip_data(img: Any, path: Path, transform: SlabTransform | None = None) -> np.ndarray | None:
    """The voxel array of a gzipped NIfTI, inflated by zlib in 4 MB pieces straight into the result;
    with ``transform``, each block of whole z slices is checked and transformed as it arrives (the
    native array is never whole in memory: a 512x512x100 int16 CT case stored as uint8 peaks at
    26 MB + two 4 MB blocks instead of 52 + 26 MB).

    Why not nibabel's own read: it fills the array with one ``readinto`` that Python's gzip module
    serves through a temporary ``bytes`` of the volume's size (peak twice the volume: 100 MB for a
    512x512x100 int16 case), inflating 8 kB of input per call and computing the CRC in a second pass
    (Python 3.11): 0.65 s for that case against 0.36 s for zlib alone. Header, offset, dtype, byte
    order and scaling all come from nibabel's own proxy; None (use nibabel) for anything but a plain
    proxy on a ``.gz`` file, and, with ``transform``, anything but a 3D Fortran-ordered one."""
    proxy = img.dataobj
    if not str(path).endswith(".gz") or not isinstance(proxy, nib.arrayproxy.ArrayProxy):
        return None
    dtype = img.header.get_data_dtype()
    slope, inter = proxy.slope, proxy.inter

    def scaled(raw: np.ndarray) -> np.ndarray:
        return raw if (slope, inter) == (1.0, 0.0) else nib.volumeutils.apply_read_scaling(raw, slope, inter)

    total = int(np.prod(proxy.shape)) * dtype.itemsize
    if transform is None:
        out = np.empty(proxy.shape, dtype=dtype, order=proxy.order)
        view = memoryview(out.reshape(-1, order="A")).cast("B")
        done = 0
        for piece in _inflated(path, int(proxy.offset), total):
            view[done:done + len(piece)] = piece
            done += len(piece)
        return scaled(out)
    if len(proxy.shape) != 3 or proxy.order != "F" or 0 in proxy.shape:
        return None
    nx, ny, nz = proxy.shape
    slice_bytes = nx * ny * dtype.itemsize
    depth = max(1, min(nz, _GZ_PIECE // slice_bytes))  # whole z slices per block
    blocks = [np.empty((nx, ny, depth), dtype=dtype, order="F") for _ in range(2)]
    views = [memoryview(block.reshape(-1, order="F")).cast("B") for block in blocks]
    result: list[np.ndarray] = []
    bounds = [np.inf, -np.inf]

    table = _lookup_table(dtype, scaled, transform)

    def finish(block: np.ndarray, z: int) -> None:
        """Check, transform and store one block (on the helper thread, while the next one inflates)."""
        if table is not None:  # 8/16-bit integers: one table lookup per voxel; the checks on the raw codes
            lut, unsigned = table
            ends = scaled(np.array([block.min(), block.max()], dtype=dtype)).astype(float)
            bounds[:] = min(bounds[0], float(ends.min())), max(bounds[1], float(ends.max()))
            codes = block.view(unsigned)
            stored = np.empty(block.shape, dtype=lut.dtype, order="F")
            for k in range(block.shape[2]):  # slice by slice: the index array numpy makes is a slice's
                stored[:, :, k] = lut[codes[:, :, k]]
        else:
            values = _check_values(scaled(block), path, as_label=False, constant_ok=True)
            bounds[:] = min(bounds[0], float(values.min())), max(bounds[1], float(values.max()))
            stored = transform(values)
        if not result:
            result.append(np.empty(proxy.shape, dtype=stored.dtype, order="F"))
        result[0][:, :, z:z + block.shape[2]] = stored

    # two blocks: this thread inflates into one while a helper transforms the other (zlib and numpy
    # release the GIL)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="samdata-block") as pool:
        pending: Future[None] | None = None
        current = z = filled = 0
        for data in _inflated(path, int(proxy.offset), total):
            piece, offset = memoryview(data), 0  # slices of a memoryview copy nothing
            while offset < len(piece):
                view = views[current]
                take = min(len(piece) - offset, len(view) - filled)
                view[filled:filled + take] = piece[offset:offset + take]
                filled, offset = filled + take, offset + take
                if filled == len(view) or z * slice_bytes + filled == total:
                    if pending is not None:
                        pending.result()  # the other block is free again, and its errors come out here
                    k = filled // slice_bytes
                    pending = pool.submit(finish, blocks[current][:, :, :k], z)
                    current, z, filled = 1 - current, z + k, 0
        if pending is not None:
            pending.result()
    if bounds[0] == bounds[1]:
        raise InputFileError(f"{path}: empty volume, every voxel is {bounds[0]:g}; expected an image")
    return result[0]


def _read_nifti(path: Path, transform: SlabTransform | None = None) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Read a NIfTI file with nibabel (scaling applied): array, affine, meta (``meta["transformed"]``:
    ``transform`` was applied while reading)."""
    with reading(path, "NIfTI"):
        img = nib.load(path)
        array = _gzip_data(img, path, transform)
        transformed = array is not None and transform is not None
        if array is None:
            array = np.asarray(img.dataobj)
        affine = np.asarray(img.affine, dtype=np.float64)
    header = img.header
    meta = {
        "format": "nifti",
        "qform_code": int(header["qform_code"]),
        "sform_code": int(header["sform_code"]),
    }
    if transformed:
        meta.update(transformed=True, source_dtype=str(header.get_data_dtype()))
    return array, affine, meta


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


def _check_values(array: np.ndarray, path: Path, as_label: bool, constant_ok: bool = False) -> np.ndarray:
    """Refuse non-numeric, NaN/inf and (for images, unless ``constant_ok``: a block of one) all-constant
    data; bool becomes uint8.

    NaN/inf is an InputFileError in an image and a ValidationError in a label map.
    """
    if array.dtype == bool:
        array = array.astype(np.uint8)
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise InputFileError(f"{path}: voxel type {array.dtype} is not a real number type")
    if array.size == 0:
        raise InputFileError(f"{path}: no voxels (shape {array.shape})")
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        bad = int(np.count_nonzero(~np.isfinite(array)))
        error = ValidationError if as_label else InputFileError
        raise error(f"{path}: {bad} voxels are NaN or infinite; expected finite values")
    if not as_label and not constant_ok:
        lo, hi = array.min(), array.max()
        if lo == hi:
            raise InputFileError(f"{path}: empty volume, every voxel is {lo}; expected an image")
    return array


def _load(path: str | Path, as_label: bool, transform: SlabTransform | None = None) -> Volume:
    """Dispatch on the path's suffix (or folder = DICOM) and return a checked (X, Y, Z) Volume,
    ``transform``-ed if given (while reading a .nii.gz, else after the checks)."""
    path = Path(path)
    if not path.exists():
        raise CaseNotFoundError(f"{path}: no such file or folder")
    suffix = suffix_of(path)
    if path.is_dir():
        array, affine, meta = itk.read_dicom_series(path)
    elif suffix in NIFTI_SUFFIXES:
        array, affine, meta = _read_nifti(path, transform)
    elif suffix in ITK_SUFFIXES:
        array, affine, meta = itk.read_itk_file(path)
    elif suffix in RASTER_SUFFIXES:
        array, affine, meta = raster.read_raster(path, as_label)
    else:
        raise InputFileError(f"{path}: unknown extension {suffix!r}; supported: {SUPPORTED_TEXT}")
    meta.setdefault("source_dtype", str(array.dtype))
    meta.setdefault("rgb_to_grey", False)
    array = _as_3d(array, path)
    if not meta.get("transformed"):  # a transformed read checked every block as it came
        array = _check_values(array, path, as_label)
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
                f"{path}: label map has non-integer values (e.g. {array[off].flat[0]!r}); "
                "expected integer label ids"
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


#: The content hash of new cases: BLAKE2b-256, 3.4x faster than SHA-256 on these cores (no SHA
#: instructions: 27 MB in 0.04 s against 0.14 s), written with its name so stores can hold both.
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
        raise ValueError(f"unknown content hash {algorithm!r}; expected {HASH_ALGORITHM!r} or {LEGACY_HASH_ALGORITHM!r}")
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
    if suffix not in NIFTI_SUFFIXES:
        raise InputFileError(f"{path}: cannot write NIfTI to extension {suffix!r}; expected .nii.gz or .nii")
    path.parent.mkdir(parents=True, exist_ok=True)
    img = nib.Nifti1Image(_nifti_dtype(np.asarray(array_xyz)), np.asarray(affine, dtype=np.float64))
    img.header.set_qform(img.affine, code=1)
    img.header.set_sform(img.affine, code=1)
    img.header.set_xyzt_units("mm")
    return atomic_write(path, lambda tmp: nib.save(img, tmp), suffix=suffix)  # nibabel compresses by the name
