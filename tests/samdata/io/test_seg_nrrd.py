"""3D Slicer .seg.nrrd: read back by pynrrd and by SimpleITK, its voxels sit where the NIfTI output's do."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import nrrd
import numpy as np
import pytest
import SimpleITK as sitk

from samdata.errors import ValidationError
from samdata.io.readers import write_nifti
from samdata.io.seg_nrrd import EMPTY_EXTENT, label_dtype, write_seg_nrrd
from samdata.io.segmentations import SLICER_COLOURS, segments_for
from tests.samdata.conftest import oblique_affine

SHAPE = (9, 7, 5)


def _labels() -> np.ndarray:
    labels = np.zeros(SHAPE, dtype=np.uint8)
    labels[1:4, 2:5, 1:3] = 1
    labels[6:8, 0:2, 4] = 3
    return labels


def _corners(shape: tuple[int, ...]) -> np.ndarray:
    """The 8 outer corners of a voxel grid in (continuous) voxel index coordinates, (8, 3)."""
    return np.array([[a - 0.5, b - 0.5, c - 0.5] for a in (0, shape[0]) for b in (0, shape[1]) for c in (0, shape[2])])


def test_seg_nrrd_reads_back_with_slicer_fields_and_the_nifti_geometry(tmp_path: Path):
    labels, affine = _labels(), oblique_affine(np.pi / 5, (12.5, -30.0, 44.0))
    segments = segments_for({1: "white_matter", 3: "lesion", 4: "absent"})
    path = write_seg_nrrd(labels, affine, tmp_path / "pred.seg.nrrd", segments)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pred.seg.nrrd"]  # no temporary file left

    data, header = nrrd.read(str(path), index_order="F")  # pynrrd: (X, Y, Z)
    np.testing.assert_array_equal(data, labels)
    assert data.dtype == np.uint8 and header["space"] == "left-posterior-superior"
    assert header["kinds"] == ["domain"] * 3 and header["encoding"] == "gzip"
    fields = {f"Segment{n}_{k}": header[f"Segment{n}_{k}"] for n in range(3) for k in ("Name", "LabelValue", "Layer")}
    assert fields == {
        "Segment0_Name": "white_matter",
        "Segment0_LabelValue": "1",
        "Segment0_Layer": "0",
        "Segment1_Name": "lesion",
        "Segment1_LabelValue": "3",
        "Segment1_Layer": "0",
        "Segment2_Name": "absent",
        "Segment2_LabelValue": "4",
        "Segment2_Layer": "0",
    }
    assert [header[f"Segment{n}_ID"] for n in range(3)] == ["Segment_1", "Segment_3", "Segment_4"]
    for n, value in enumerate((1, 3, 4)):
        colour = [float(c) for c in header[f"Segment{n}_Color"].split()]
        np.testing.assert_allclose(colour, np.asarray(SLICER_COLOURS[value - 1]) / 255, atol=1e-5)
    assert header["Segment0_Extent"] == "1 3 2 4 1 2" and header["Segment1_Extent"] == "6 7 0 1 4 4"
    assert header["Segment2_Extent"] == EMPTY_EXTENT
    assert header["Segmentation_SourceRepresentation"] == "Binary labelmap"
    assert header["Segmentation_MasterRepresentation"] == "Binary labelmap"

    nifti = nib.load(write_nifti(labels, affine, tmp_path / "pred.nii.gz"))
    corners = _corners(SHAPE)
    ras_nifti = nib.affines.apply_affine(nifti.affine, corners)
    lps = header["space origin"] + corners @ header["space directions"]  # pynrrd: one direction per row
    np.testing.assert_allclose(lps * [-1, -1, 1], ras_nifti, atol=1e-4)

    image = sitk.ReadImage(str(path))  # ITK's own NRRD reader, independent of pynrrd
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image).transpose(2, 1, 0), labels)
    itk_lps = np.array([image.TransformContinuousIndexToPhysicalPoint(c.tolist()) for c in corners])
    np.testing.assert_allclose(itk_lps * [-1, -1, 1], ras_nifti, atol=1e-4)
    assert image.GetMetaData("Segment1_Name") == "lesion"


def test_label_maps_keep_the_narrowest_type_and_refuse_what_is_not_one():
    assert label_dtype(np.array([0, 300], dtype=np.int64)).dtype == np.uint16
    assert label_dtype(np.array([0, 3], dtype=np.int32)).dtype == np.uint8
    with pytest.raises(ValidationError, match="-1..2"):
        label_dtype(np.array([-1, 2]))
