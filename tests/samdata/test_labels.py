"""Tests for samdata.labels: dtype choice, value checks, small-object removal."""

from __future__ import annotations

import numpy as np
import pytest

from samdata.errors import ValidationError
from samdata.labels import as_label_array, clean_labels, label_boxes, label_dtype

ZYX = (10, 20, 24)


@pytest.mark.parametrize(("max_label", "dtype"), [(0, np.uint8), (255, np.uint8), (256, np.uint16), (65535, np.uint16)])
def test_label_dtype(max_label: int, dtype: type) -> None:
    assert label_dtype(max_label) == np.dtype(dtype)


@pytest.mark.parametrize("max_label", [65536, -1])
def test_label_dtype_errors(max_label: int) -> None:
    with pytest.raises(ValidationError, match=str(max_label)):
        label_dtype(max_label)


def test_as_label_array_casts_integer_valued_floats_and_bools() -> None:
    floats = np.array([[0.0, 1.0], [2.0, 300.0]], dtype=np.float32)
    out = as_label_array(floats, path="seg.nii.gz")
    assert out.dtype == np.uint16 and out.tolist() == [[0, 1], [2, 300]]
    assert as_label_array(np.array([True, False]), path="seg.png").dtype == np.uint8
    assert as_label_array(np.array([0, 3], dtype=np.int64), path="seg.nrrd").dtype == np.uint8


@pytest.mark.parametrize(
    ("values", "match"),
    [
        (np.array([0.0, 0.5]), "non-integer value 0.5"),
        (np.array([0.0, np.nan]), "non-finite"),
        (np.array([0, -2]), "negative value -2"),
        (np.array([0, 70000]), "70000 exceeds 65535"),
        (np.array([1 + 1j]), "not numeric"),
    ],
)
def test_as_label_array_errors_name_the_file(values: np.ndarray, match: str) -> None:
    with pytest.raises(ValidationError, match=match) as info:
        as_label_array(values, path="/data/seg_007.nii.gz")
    assert "/data/seg_007.nii.gz" in str(info.value)


def _scene() -> np.ndarray:
    """Label 1: a big block plus a 27-voxel cube; label 2: a big block with a 9-pixel tab on z=9."""
    label = np.zeros(ZYX, dtype=np.uint8)
    label[1:9, 2:14, 2:14] = 1  # 8 * 12 * 12 = 1152 voxels, 144 px per slice
    label[5:8, 16:19, 1:4] = 1  # 27 voxels, its own component
    label[2:9, 4:16, 14:24] = 2  # 7 * 12 * 10 = 840 ...
    label[2:9, 16:19, 18:24] = 2  # ... + 126 = 966 < 1000, would be dropped in 3D
    label[2:9, 0:4, 14:20] = 2  # ... + 168 = 1134 voxels
    label[9, 5:8, 20:23] = 2  # 9 px on slice 9, attached in 3D
    return label


def test_clean_labels_drops_small_3d_then_small_2d_components() -> None:
    label = _scene()
    before = label.copy()
    cleaned, dropped = clean_labels(label, min_object_voxels=1000, min_object_pixels=100)
    assert np.array_equal(label, before)  # input untouched
    assert dropped == {"1": 27, "2": 9}
    assert cleaned.dtype == label.dtype
    assert not cleaned[5:8, 16:19, 1:4].any()
    assert not cleaned[9].any()
    assert np.array_equal(cleaned[1:9, 2:14, 2:14], before[1:9, 2:14, 2:14])
    assert (cleaned == 2).sum() == (before == 2).sum() - 9


def test_clean_labels_uses_26_connectivity_and_per_label_components() -> None:
    label = np.zeros(ZYX, dtype=np.uint16)
    label[0:5, 0:10, 0:12] = 300  # 600 voxels
    label[5:10, 10:20, 12:24] = 300  # 600 voxels touching the first only at a corner edge
    label[0:5, 10:20, 0:12] = 7  # 600 voxels of another value next to the first block
    cleaned, dropped = clean_labels(label, min_object_voxels=1000, min_object_pixels=0)
    assert dropped == {"7": 600}
    assert (cleaned == 300).sum() == 1200 and cleaned.dtype == np.uint16


def test_clean_labels_2d_image_skips_3d_rule() -> None:
    label = np.zeros((1, 20, 24), dtype=np.uint8)
    label[0, 0:10, 0:15] = 1  # 150 px: kept although < 1000
    label[0, 12:19, 17:24] = 1  # 49 px: dropped by the 2D rule
    cleaned, dropped = clean_labels(label, min_object_voxels=1000, min_object_pixels=100)
    assert dropped == {"1": 49} and (cleaned == 1).sum() == 150


def test_clean_labels_thresholds_off_and_bad_input() -> None:
    label = _scene()
    cleaned, dropped = clean_labels(label, min_object_voxels=0, min_object_pixels=1)
    assert dropped == {} and np.array_equal(cleaned, label) and cleaned is not label
    with pytest.raises(ValidationError, match="integer"):
        clean_labels(label.astype(np.float32), min_object_voxels=10, min_object_pixels=10)
    with pytest.raises(ValidationError, match=r"\(Z, Y, X\)"):
        clean_labels(label[0], min_object_voxels=10, min_object_pixels=10)


def test_clean_labels_with_more_components_than_uint16_ids() -> None:
    """Components are numbered in 16 bits when they fit; 90,000 one-pixel specks (scipy refuses the
    narrow type) take the 32-bit path and are all dropped, the one large object kept."""
    label = np.zeros((1, 600, 640), dtype=np.uint8)
    label[0, ::2, ::2] = 1  # isolated pixels (8-connectivity never joins pixels two apart)
    label[0, :, 601:] = 1  # one 600 x 39 block, apart from the specks
    cleaned, dropped = clean_labels(label, min_object_voxels=1, min_object_pixels=2)
    assert dropped == {"1": 300 * 300}  # the specks at x = 600 touch the block and stay with it
    assert cleaned[0, :, :600].sum() == 0 and (cleaned[0, :, 601:] == 1).all()


def test_label_boxes_equal_find_objects_over_the_whole_map() -> None:
    from scipy import ndimage

    rng = np.random.default_rng(2)
    label = np.zeros((9, 30, 40), dtype=np.uint8)
    label[2:5, 10:14, 20:31] = 3
    label[6, 25, 5] = 1
    label[3:8, 4:6, 33:39] = 5
    label[4, 12, 22] = 1  # inside label 3's box
    assert label_boxes(label) == ndimage.find_objects(label)
    noise = (rng.random((5, 16, 16)) < 0.05).astype(np.uint16) * rng.integers(1, 300, (5, 16, 16)).astype(np.uint16)
    assert label_boxes(noise) == ndimage.find_objects(noise)
    assert label_boxes(np.zeros((3, 4, 5), np.uint8)) == []
