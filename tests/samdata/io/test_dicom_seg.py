"""DICOM-SEG by highdicom: read back by highdicom, it references every source instance and holds their pixels."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from samdata.errors import ValidationError
from samdata.io.dicom_seg import SERIES_DESCRIPTION, write_dicom_seg
from samdata.io.readers import read_volume
from samdata.io.segmentations import SLICER_COLOURS, segments_for
from tests.samdata.conftest import oblique_affine

SHAPE = (12, 10, 6)  # (X, Y, Z): columns, rows, slices


@pytest.fixture
def series(tmp_path: Path, write_dicom_series) -> Path:
    """A 6-slice CT series whose file s1_00k.dcm holds slice k (the writer names files by slice)."""
    image = np.random.default_rng(0).integers(-500, 500, SHAPE)
    return write_dicom_series(image, oblique_affine(np.pi / 7, (20.0, -15.0, 30.0)), tmp_path / "series")


def _labels() -> np.ndarray:
    labels = np.zeros(SHAPE, dtype=np.uint8)
    labels[2:7, 3:8, 1:4] = 1
    labels[8:11, 1:3, 3:5] = 2
    return labels


def test_dicom_seg_references_every_instance_and_holds_each_slice(series: Path, tmp_path: Path):
    volume, labels = read_volume(series), _labels()
    segments = segments_for({1: "liver", 2: "spine"})
    out = write_dicom_seg(labels, volume.affine, tmp_path / "pred.dcm", segments, volume)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pred.dcm", "series"]  # no temporary file left

    seg = hd.seg.segread(out)
    sources = {f.name: pydicom.dcmread(f) for f in sorted(series.glob("*.dcm"))}
    uids = [ds.SOPInstanceUID for ds in sources.values()]
    assert {uid for _, _, uid in seg.get_source_image_uids()} == set(uids)
    assert seg.StudyInstanceUID == sources["s1_000.dcm"].StudyInstanceUID
    assert seg.FrameOfReferenceUID == sources["s1_000.dcm"].FrameOfReferenceUID
    assert seg.SeriesDescription == SERIES_DESCRIPTION and seg.segmentation_type.value == "BINARY"
    assert seg.get_segment_numbers() == [1, 2]
    for number, (value, name) in enumerate(((1, "liver"), (2, "spine")), start=1):
        description = seg.get_segment_description(number)
        assert description.segment_label == name
        lab = hd.color.CIELabColor.from_dicom_value(description.RecommendedDisplayCIELabValue)
        assert lab.to_rgb() == SLICER_COLOURS[value - 1]
    pixels = seg.get_pixels_by_source_instance(uids, combine_segments=True)  # (instances, rows, columns)
    for n, name in enumerate(sources):
        k = int(name[3:6])
        np.testing.assert_array_equal(pixels[n], labels[:, :, k].T, err_msg=name)


def test_an_empty_prediction_is_still_a_segmentation(series: Path, tmp_path: Path):
    volume = read_volume(series)
    out = write_dicom_seg(np.zeros(SHAPE, np.uint8), volume.affine, tmp_path / "e.dcm", segments_for({1: "x"}), volume)
    seg = hd.seg.segread(out)
    uids = [pydicom.dcmread(f).SOPInstanceUID for f in sorted(series.glob("*.dcm"))]
    assert not seg.get_pixels_by_source_instance(uids, combine_segments=True).any()


def test_instances_off_the_grid_or_missing_are_named(series: Path, tmp_path: Path):
    volume, segments = read_volume(series), segments_for({1: "a", 2: "b"})
    moved = volume.affine.copy()
    moved[0, 3] += 3.0  # the grid 3 mm off the instances' positions
    with pytest.raises(ValidationError, match=r"s1_000.dcm: .*Image Position \(Patient\).*expected \(0, 0, k\)"):
        write_dicom_seg(_labels(), moved, tmp_path / "p.dcm", segments, volume)
    (series / "s1_003.dcm").unlink()  # the folder changed since it was read
    with pytest.raises(ValidationError, match=r"series.*5 instances on slices \[0, 1, 2, 4, 5\]"):
        write_dicom_seg(_labels(), volume.affine, tmp_path / "p.dcm", segments, volume)
    assert not (tmp_path / "p.dcm").exists()
