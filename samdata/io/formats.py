"""What every format reader shares: the :class:`Reader` interface, the :class:`Header` a file declares,
the checks of decoded values, and the one place library read errors become InputFileError.

The readers themselves (one class per format) are listed in :mod:`samdata.io.registry`.
"""

from __future__ import annotations

import struct
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from nibabel.filebasedimages import ImageFileError
from PIL import Image

from samdata.errors import InputFileError, SamdataError, ValidationError

#: Maps an (X, Y, k) block of intensities (nibabel's scaling applied) to the stored values, same shape.
SlabTransform = Callable[[np.ndarray], np.ndarray]
#: What a reader decodes: the (X, Y, Z...) array in nibabel index order, its RAS+ (4, 4) affine, and meta.
Decoded = tuple[np.ndarray, np.ndarray, dict[str, Any]]

# Errors the readers' libraries raise on unreadable, truncated or mislabelled files.
_LIBRARY_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # gzip.BadGzipFile, PIL.UnidentifiedImageError, truncated files
    EOFError,  # gzip stream ends early
    zlib.error,
    struct.error,
    ValueError,  # tifffile.TiffFileError, numpy reshape of short data
    RuntimeError,  # SimpleITK / ITK readers
    ImageFileError,  # nibabel
    Image.DecompressionBombError,
    IndexError,
    KeyError,
)


@dataclass(frozen=True)
class Header:
    """A file's declared (X, Y, Z) shape (trailing singleton axes dropped; 2D as Z = 1), affine (None when the
    format has no geometry: PNG/JPEG, TIFF without resolution) and voxel type."""

    path: str
    shape: tuple[int, ...]
    affine: np.ndarray | None
    dtype: str

    @property
    def voxels(self) -> int:
        """Number of voxels the file declares."""
        return int(np.prod(self.shape, dtype=np.int64))


def squeezed(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Trailing singleton axes beyond three dropped; 2D as (X, Y, 1)."""
    shape = tuple(int(s) for s in shape)
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    return shape + (1,) if len(shape) == 2 else shape


class Reader(ABC):
    """One format: the file endings it serves (or a folder), its header read and its decode.

    The first reader of :data:`samdata.io.registry.READERS` that :meth:`serves` a path reads it.
    """

    #: Lower-case file endings this reader serves, two-part ones included (``.nii.gz``).
    endings: ClassVar[tuple[str, ...]] = ()
    #: The folder this reader serves, in words for error messages ("" when it reads files only).
    folder: ClassVar[str] = ""

    def serves(self, path: Path) -> bool:
        """Whether ``path`` (which exists) is a file whose name ends with one of :attr:`endings`."""
        name = path.name.lower()
        return not path.is_dir() and any(name.endswith(e) and len(name) > len(e) for e in self.endings)

    @abstractmethod
    def header(self, path: Path) -> Header:
        """The declared shape, affine and voxel type of ``path``, decoding no voxel."""

    @abstractmethod
    def read(self, path: Path, as_label: bool, transform: SlabTransform | None) -> Decoded:
        """Decode ``path``: array, affine, meta. ``transform`` is applied only by a reader that can do it
        while decoding (then ``meta["transformed"]`` is True; the caller applies it otherwise)."""


def check_values(array: np.ndarray, path: Path, as_label: bool, constant_ok: bool = False) -> np.ndarray:
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


def one_line(text: object, limit: int = 240) -> str:
    """Collapse a library's (often multi-line) message to one line of at most ``limit`` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


@contextmanager
def reading(path: str | Path, what: str) -> Iterator[None]:
    """Turn any library read error inside the block into a one-line InputFileError naming ``path``."""
    try:
        yield
    except SamdataError:
        raise
    except _LIBRARY_ERRORS as err:
        raise InputFileError(
            f"{path}: cannot read as {what}: {type(err).__name__}: {one_line(err)} "
            f"(truncated, corrupted, or not a valid {what} file?)"
        ) from err
