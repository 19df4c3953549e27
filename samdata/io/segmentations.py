"""The formats a predicted label map is written in, one registry: NIfTI, 3D Slicer's ``.seg.nrrd``, DICOM-SEG.

Each format names the file endings it writes, what it needs of the source image (DICOM-SEG references the
instances of a DICOM series) and the optional package it needs; :func:`check_output` checks all three before
any work is done, :func:`write_segmentation` writes. The label map always lies on the source image's own
grid: (X, Y, Z) with its RAS+ affine, as :func:`samdata.io.readers.write_nifti` takes it. Segments carry a
display name and colour, shared by the formats that store them (NRRD, DICOM-SEG).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from samdata.case import Volume
from samdata.errors import ConfigError, unknown_name
from samdata.extras import check_installed
from samdata.io.itk import DicomSeriesReader
from samdata.io.readers import write_nifti
from samdata.io.registry import reader_for, suffix_of

#: The first colours of 3D Slicer's GenericAnatomyColors table (tissue, bone, skin, connective tissue, blood,
#: organ, mass, muscle, foreign object), RGB in [0, 1]; label value v takes colour (v - 1) mod 9.
SLICER_COLOURS: tuple[tuple[int, int, int], ...] = (
    (128, 174, 128),
    (241, 214, 145),
    (177, 122, 101),
    (111, 184, 210),
    (216, 101, 79),
    (221, 130, 101),
    (144, 238, 144),
    (192, 104, 88),
    (220, 245, 20),
)


@dataclass(frozen=True)
class Segment:
    """One label of a written label map: its value in the map, display name and colour (RGB, 0-255)."""

    value: int
    name: str
    colour: tuple[int, int, int]


def segments_for(names: dict[int, str]) -> tuple[Segment, ...]:
    """Segments of label values → names (value order), coloured from :data:`SLICER_COLOURS` by value."""
    return tuple(
        Segment(int(v), str(names[v]), SLICER_COLOURS[(int(v) - 1) % len(SLICER_COLOURS)]) for v in sorted(names)
    )


#: writer(labels (X, Y, Z) integer, RAS+ (4, 4) affine, out path, segments, source volume) → written path
Writer = Callable[[np.ndarray, np.ndarray, Path, tuple[Segment, ...], Volume], Path]


def _nifti(labels: np.ndarray, affine: np.ndarray, out: Path, segments: tuple[Segment, ...], source: Volume) -> Path:
    """NIfTI keeps values only (names and colours have no place in it)."""
    return write_nifti(labels, affine, out)


def _nrrd(labels: np.ndarray, affine: np.ndarray, out: Path, segments: tuple[Segment, ...], source: Volume) -> Path:
    from samdata.io.seg_nrrd import write_seg_nrrd

    return write_seg_nrrd(labels, affine, out, segments)


def _dicom_seg(
    labels: np.ndarray, affine: np.ndarray, out: Path, segments: tuple[Segment, ...], source: Volume
) -> Path:
    from samdata.io.dicom_seg import write_dicom_seg

    return write_dicom_seg(labels, affine, out, segments, source)


@dataclass(frozen=True)
class OutputFormat:
    """A label-map file format: the endings it writes, the viewer it is for, its optional package and extra."""

    endings: tuple[str, ...]
    viewer: str
    write: Writer
    module: str | None = None  # the optional package it needs (None: a core dependency)
    needs_dicom: bool = False  # the source must be a DICOM series (its instances are referenced)


EXTRA = "seg"  # the optional extra of pyproject.toml that holds pynrrd, pydicom and highdicom
OUTPUT_FORMATS: dict[str, OutputFormat] = {
    "nifti": OutputFormat((".nii.gz", ".nii"), "any NIfTI viewer (ITK-SNAP, 3D Slicer, FSLeyes)", _nifti),
    "nrrd": OutputFormat((".seg.nrrd",), "3D Slicer (a segmentation with named, coloured segments)", _nrrd, "nrrd"),
    "dicom-seg": OutputFormat(
        (".dcm",), "OHIF, PACS and other DICOM viewers", _dicom_seg, "highdicom", needs_dicom=True
    ),
}


def output_format(name: str) -> OutputFormat:
    """The registered format ``name``; RegistryError listing the valid ones."""
    try:
        return OUTPUT_FORMATS[name]
    except KeyError:
        raise unknown_name("output format", name, tuple(OUTPUT_FORMATS)) from None


def check_output(name: str, image: Path | str, out: Path | str) -> OutputFormat:
    """Check before any work that format ``name`` can write ``out`` for source ``image``: a known format, an
    ending it writes, its optional package installed, a DICOM series source where it references one."""
    fmt = output_format(name)
    if not str(out).lower().endswith(fmt.endings):
        raise ConfigError(
            f"{out}: --format {name} writes files ending in {' or '.join(fmt.endings)}; rename the output"
        )
    if fmt.module is not None:
        check_installed(fmt.module, EXTRA, f"--format {name}")
    if fmt.needs_dicom and not isinstance(reader_for(image), DicomSeriesReader):
        raise ConfigError(
            f"{image}: --format {name} needs a DICOM series source (a folder of .dcm files, whose instances "
            f"the segmentation references); this image is a {suffix_of(image)!r} file: use --format nifti or nrrd"
        )
    return fmt


def write_segmentation(
    name: str,
    labels_xyz: np.ndarray,
    affine: np.ndarray,
    out: Path | str,
    segments: tuple[Segment, ...],
    source: Volume,
) -> Path:
    """Write an (X, Y, Z) integer label map on ``source``'s grid (RAS+ ``affine``) as format ``name``;
    ``segments`` names and colours its values (a non-zero value without one is written as ``label <value>``)."""
    fmt = check_output(name, source.path, out)
    labels_xyz = np.asarray(labels_xyz)
    named = {s.value for s in segments}
    unnamed = {int(v): f"label {int(v)}" for v in np.unique(labels_xyz) if v != 0 and int(v) not in named}
    segments = tuple(sorted((*segments, *segments_for(unnamed)), key=lambda s: s.value))
    return fmt.write(labels_xyz, np.asarray(affine, dtype=np.float64), Path(out), segments, source)
