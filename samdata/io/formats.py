"""File-name suffixes samdata reads, and the one place library read errors become InputFileError.

Suffix matching is written here because medical file names carry two-part suffixes
(``.nii.gz``) that :attr:`pathlib.Path.suffix` does not see, and every layout needs the same stem rule.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from nibabel.filebasedimages import ImageFileError
from PIL import Image

from samdata.errors import InputFileError, SamdataError

NIFTI_SUFFIXES: tuple[str, ...] = (".nii.gz", ".nii")
ITK_SUFFIXES: tuple[str, ...] = (".nrrd", ".nhdr", ".mha", ".mhd")
RASTER_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
DICOM_SUFFIXES: tuple[str, ...] = (".dcm",)
SUPPORTED_SUFFIXES: tuple[str, ...] = NIFTI_SUFFIXES + ITK_SUFFIXES + RASTER_SUFFIXES
SUPPORTED_TEXT = (
    ", ".join(SUPPORTED_SUFFIXES) + ", or a folder holding one DICOM series"
)

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


def suffix_of(path: str | Path) -> str:
    """The known (possibly two-part) lower-case suffix of a file name, or its last suffix if unknown."""
    name = Path(path).name.lower()
    for suffix in SUPPORTED_SUFFIXES + DICOM_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return suffix
    return Path(name).suffix


def stem_of(path: str | Path) -> str:
    """A file name without its known suffix (``liver_3.nii.gz`` -> ``liver_3``); folders keep their name."""
    p = Path(path)
    suffix = suffix_of(p)
    return p.name[: len(p.name) - len(suffix)] if suffix else p.name


def is_supported_file(path: str | Path) -> bool:
    """Whether a file name ends with a suffix :func:`samdata.io.read_volume` reads."""
    return suffix_of(path) in SUPPORTED_SUFFIXES


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
