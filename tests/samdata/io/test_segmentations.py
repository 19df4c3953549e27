"""The output-format registry: every format writes its own endings; bad names, endings and sources are named."""

from __future__ import annotations

import sys
from pathlib import Path

import nibabel as nib
import nrrd
import numpy as np
import pytest

from samdata.errors import ConfigError, RegistryError
from samdata.extras import MissingExtraError
from samdata.io.readers import read_volume, write_nifti
from samdata.io.segmentations import OUTPUT_FORMATS, check_output, segments_for, write_segmentation


@pytest.fixture
def series(tmp_path: Path, write_dicom_series) -> Path:
    return write_dicom_series(np.arange(6 * 5 * 3).reshape(6, 5, 3), np.diag([0.9, 0.9, 2.0, 1.0]), tmp_path / "dcm")


@pytest.mark.parametrize("name", sorted(OUTPUT_FORMATS))
def test_every_format_writes_its_endings_for_a_dicom_source(name: str, series: Path, tmp_path: Path):
    fmt = OUTPUT_FORMATS[name]
    assert fmt.viewer and fmt.endings
    volume = read_volume(series)
    labels = np.zeros(volume.array.shape, np.uint8)
    labels[1:4, 1:3, 1] = 2
    out = write_segmentation(name, labels, volume.affine, tmp_path / f"pred{fmt.endings[0]}", (), volume)
    assert out.is_file() and out.name == f"pred{fmt.endings[0]}"
    with pytest.raises(ConfigError, match=rf"pred.png: --format {name} writes files ending in"):
        check_output(name, series, tmp_path / "pred.png")


def test_unnamed_values_become_label_segments(series: Path, tmp_path: Path):
    volume = read_volume(series)
    labels = np.zeros(volume.array.shape, np.uint8)
    labels[0, 0, 0], labels[1, 1, 1] = 1, 5
    out = write_segmentation("nrrd", labels, volume.affine, tmp_path / "p.seg.nrrd", segments_for({1: "a"}), volume)
    header = nrrd.read_header(str(out))
    assert [header[f"Segment{n}_Name"] for n in range(2)] == ["a", "label 5"] and "Segment2_Name" not in header


def test_the_nifti_output_is_write_nifti_s(tmp_path: Path):
    affine = np.diag([-1.0, 1.5, 2.0, 1.0])
    image = write_nifti(np.arange(24, dtype=np.int16).reshape(2, 3, 4), affine, tmp_path / "img.nii.gz")
    labels = (np.arange(24).reshape(2, 3, 4) % 3).astype(np.uint8)
    out = write_segmentation("nifti", labels, affine, tmp_path / "p.nii.gz", (), read_volume(image))
    written = nib.load(out)
    np.testing.assert_array_equal(np.asarray(written.dataobj), labels)
    assert np.allclose(written.affine, affine) and written.header["qform_code"] == written.header["sform_code"] == 1


def test_bad_formats_sources_and_missing_packages_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    image = write_nifti(np.arange(8, dtype=np.int16).reshape(2, 2, 2), np.eye(4), tmp_path / "ct.nii.gz")
    with pytest.raises(RegistryError, match="unknown output format 'rtstruct'; valid output formats: dicom-seg"):
        check_output("rtstruct", image, tmp_path / "p.dcm")
    with pytest.raises(ConfigError, match=r"ct.nii.gz: --format dicom-seg needs a DICOM series.*'.nii.gz' file"):
        check_output("dicom-seg", image, tmp_path / "p.dcm")
    check_output("nrrd", image, tmp_path / "p.seg.nrrd")
    monkeypatch.setitem(sys.modules, "nrrd", None)  # as if pynrrd were not installed
    with pytest.raises(MissingExtraError, match=r"--format nrrd needs .*'nrrd'.*pip install 'samdata\[seg\]'"):
        check_output("nrrd", image, tmp_path / "p.seg.nrrd")
