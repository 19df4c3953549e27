"""DICOM Segmentation objects (DICOM-SEG) written with highdicom, referencing the source series' instances.

A DICOM-SEG belongs to the series it segments: each frame references a source instance (SOP Instance UID) and
carries its plane position, and the patient, study and frame of reference are the source's. The source
instances' headers are read with pydicom from the files of the series samdata read
(:func:`samdata.io.itk.largest_series`), and each is matched to its slice of the label map by its Image
Position (Patient), so the frames do not depend on the order GDCM sorted the files in. The segmentation is
BINARY (one bit plane per segment and slice), the type OHIF and PACS viewers read.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from samdata.case import Volume
from samdata.errors import ValidationError
from samdata.extras import require
from samdata.files import atomic_write
from samdata.io.formats import one_line, reading
from samdata.io.itk import LPS_TO_RAS, largest_series
from samdata.io.segmentations import EXTRA, Segment

#: How far (in voxels) an instance's position may lie from the voxel grid of the read volume.
POSITION_ATOL_VOXELS = 0.01
SERIES_DESCRIPTION = "samdata prediction"


def _version() -> str:
    """samdata's version, for the Software Versions attribute."""
    try:
        return version("samdata")
    except PackageNotFoundError:
        return "unknown"


def slice_of(dataset: Any, file: str, affine: np.ndarray, shape: tuple[int, ...]) -> int:
    """The slice index k of the (X, Y, Z) volume (RAS+ ``affine``) that a source instance's position is on;
    ValidationError naming ``file`` when it lies off the grid or its plane does not match."""
    position = getattr(dataset, "ImagePositionPatient", None)
    if position is None or len(position) != 3:
        raise ValidationError(f"{file}: no Image Position (Patient); expected one per slice to place the frame")
    if (int(dataset.Columns), int(dataset.Rows)) != tuple(shape[:2]):
        raise ValidationError(
            f"{file}: {dataset.Columns}x{dataset.Rows} (columns x rows) pixels; the read series is "
            f"{shape[0]}x{shape[1]}: expected every instance on the series' grid"
        )
    ras = LPS_TO_RAS[:3, :3] @ np.asarray([float(v) for v in position])
    index = (np.linalg.inv(affine) @ np.append(ras, 1.0))[:3]
    k = int(round(index[2]))
    if not (np.allclose(index, (0.0, 0.0, k), atol=POSITION_ATOL_VOXELS) and 0 <= k < shape[2]):
        raise ValidationError(
            f"{file}: Image Position (Patient) {[float(v) for v in position]} is at voxel "
            f"{np.round(index, 3).tolist()} of the read series (shape {tuple(shape)}); expected (0, 0, k)"
        )
    return k


def source_instances(source: Volume, affine: np.ndarray, shape: tuple[int, ...]) -> list[tuple[Any, int]]:
    """(header dataset, slice index k) of every instance of ``source``'s DICOM series, in slice order; the
    pixels are not read. ValidationError naming the folder when the instances do not cover the slices once."""
    pydicom = require("pydicom", EXTRA, "writing DICOM-SEG")
    folder = Path(source.path)
    uid, files, _ = largest_series(folder)
    if source.meta.get("series_uid", uid) != uid:
        raise ValidationError(
            f"{folder}: its largest DICOM series is now {uid}, not the series {source.meta['series_uid']} "
            "that was segmented; expected the folder unchanged"
        )
    found = []
    for file in files:
        with reading(file, "DICOM"):
            dataset = pydicom.dcmread(file, stop_before_pixels=True)
        found.append((dataset, slice_of(dataset, file, affine, shape)))
    slices = sorted(k for _, k in found)
    if slices != list(range(shape[2])):
        raise ValidationError(
            f"{folder}: series {uid} has {len(files)} instances on slices {slices}; expected one on each of the "
            f"{shape[2]} slices (multi-frame instances are not supported)"
        )
    return sorted(found, key=lambda item: item[1])


def _description(hd: Any, number: int, segment: Segment) -> Any:
    """highdicom's SegmentDescription of one segment: its name, colour, and samdata as the AI algorithm."""
    codes = require("pydicom.sr.codedict", EXTRA, "writing DICOM-SEG").codes
    return hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=segment.name[:64],  # LO: at most 64 characters
        segmented_property_category=codes.SCT.Tissue,
        segmented_property_type=codes.SCT.Tissue,
        algorithm_type="AUTOMATIC",
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name="samdata", family=codes.DCM.ArtificialIntelligence, version=_version()
        ),
        display_color=hd.color.CIELabColor.from_rgb(*segment.colour),
    )


def write_dicom_seg(
    labels_xyz: np.ndarray, affine: np.ndarray, path: Path | str, segments: tuple[Segment, ...], source: Volume
) -> Path:
    """Write an (X, Y, Z) integer label map on the grid of ``source`` (a DICOM series, RAS+ ``affine``) as a
    BINARY DICOM-SEG referencing the series' instances, one segment per entry of ``segments``, atomically."""
    hd = require("highdicom", EXTRA, "writing DICOM-SEG")
    labels = np.asarray(labels_xyz)
    instances = source_instances(source, np.asarray(affine, dtype=np.float64), labels.shape)
    slice_spacing = float(np.linalg.norm(np.asarray(affine)[:3, 2]))
    for dataset, _ in instances:  # Type 2 (may be absent or empty); highdicom reads it for the pixel measures
        if getattr(dataset, "SliceThickness", None) in (None, ""):
            dataset.SliceThickness = slice_spacing
    numbers = np.zeros(int(labels.max(initial=0)) + 1, dtype=np.uint16)  # label value → segment number
    for number, segment in enumerate(segments, start=1):
        if segment.value < numbers.size:
            numbers[segment.value] = number
    frames = np.stack([numbers[labels[:, :, k].T] for _, k in instances])  # (slices, rows, columns)
    try:
        seg = hd.seg.Segmentation(
            source_images=[dataset for dataset, _ in instances],
            pixel_array=frames.astype(np.uint8 if len(segments) < 256 else np.uint16),
            segmentation_type="BINARY",
            segment_descriptions=[_description(hd, n, s) for n, s in enumerate(segments, start=1)],
            series_instance_uid=hd.UID(),
            series_number=1,
            sop_instance_uid=hd.UID(),
            instance_number=1,
            manufacturer="samdata",
            manufacturer_model_name="samdata predict",
            software_versions=_version(),
            device_serial_number="0",
        )
    except (ValueError, TypeError, AttributeError) as err:
        raise ValidationError(
            f"{source.path}: cannot make a DICOM-SEG on this series: {type(err).__name__}: {one_line(err)}"
        ) from err
    seg.SeriesDescription = SERIES_DESCRIPTION
    return atomic_write(path, lambda tmp: seg.save_as(tmp), suffix=".dcm")
