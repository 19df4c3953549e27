"""The readers samdata has, one class per format, and the one lookup that picks the reader of a path.

As in nnU-Net's ``reader_writer_registry.py``: each reader declares the file endings it serves (the DICOM
reader: a folder), and the first in :data:`READERS` that serves a path reads it. The same endings give
the known (possibly two-part) suffixes of file names and the list an unsupported file's error names.
"""

from __future__ import annotations

from pathlib import Path

from samdata.errors import CaseNotFoundError, InputFileError
from samdata.io.formats import Reader
from samdata.io.itk import DicomSeriesReader, ItkReader
from samdata.io.nifti import NiftiReader
from samdata.io.raster import RasterReader

#: Every reader, in the order they are asked; the first that serves a path wins.
READERS: tuple[type[Reader], ...] = (NiftiReader, ItkReader, RasterReader, DicomSeriesReader)
#: The file endings some reader serves, in registry order.
SUPPORTED_SUFFIXES: tuple[str, ...] = tuple(ending for reader in READERS for ending in reader.endings)
#: Endings of the files inside a DICOM series folder (found by the layouts, read as their folder).
DICOM_SUFFIXES: tuple[str, ...] = DicomSeriesReader.member_endings
#: What a path must be to be read, for error messages.
SUPPORTED_TEXT = ", ".join([*SUPPORTED_SUFFIXES, *(f"or {reader.folder}" for reader in READERS if reader.folder)])


def reader_for(path: str | Path) -> Reader:
    """The first reader of :data:`READERS` serving ``path``; CaseNotFoundError when nothing is there,
    InputFileError naming the supported endings when no reader serves it."""
    path = Path(path)
    if not path.exists():
        raise CaseNotFoundError(f"{path}: no such file or folder")
    for kind in READERS:
        reader = kind()
        if reader.serves(path):
            return reader
    raise InputFileError(f"{path}: unknown extension {suffix_of(path)!r}; supported: {SUPPORTED_TEXT}")


def suffix_of(path: str | Path) -> str:
    """The known (possibly two-part) lower-case suffix of a file name, or its last suffix if unknown.

    Written here because medical file names carry two-part suffixes (``.nii.gz``) that
    :attr:`pathlib.Path.suffix` does not see, and every layout needs the same stem rule."""
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
