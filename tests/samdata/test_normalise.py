"""Tests for samdata.normalise: windows, percentiles, parsing, orientation, resampling."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from samdata.case import Volume
from samdata.errors import ConfigError, RegistryError
from samdata.normalise import (
    MODALITIES,
    MODALITY_ALIASES,
    WINDOWS,
    IngestConfig,
    canonical_modality,
    inverse_ornt,
    normalise_intensity,
    resample,
    resolve_modality,
    resolve_window,
    to_canonical,
)

SHAPE = (24, 20, 10)
LPS = np.array([[-1.0, 0, 0, 10], [0, -1.5, 0, 20], [0, 0, 2.5, -30], [0, 0, 0, 1]])
# axis 0 runs inferior, axis 1 right, axis 2 posterior
PERMUTED = np.array([[0, 1.5, 0, -12], [0, 0, -1.0, 7], [-2.0, 0, 0, 40], [0, 0, 0, 1]])


def _world(affine: np.ndarray, index: tuple[int, ...]) -> np.ndarray:
    """World mm of a voxel index under an affine."""
    return (np.asarray(affine) @ np.array([*index, 1.0]))[:3]


def _centre(vol: Volume) -> np.ndarray:
    """World mm of a volume's grid centre."""
    return _world(vol.affine, tuple((n - 1) / 2 for n in vol.array.shape))


def test_window_registry_values() -> None:
    assert WINDOWS == {
        "abdomen": (40, 400),
        "brain": (40, 80),
        "bone": (400, 1800),
        "lung": (-600, 1500),
        "liver": (60, 150),
        "mediastinum": (50, 350),
    }
    for name, (level, width) in WINDOWS.items():
        assert resolve_window(name) == (f"window:{name}", level, width)


def test_abdomen_window_maps_edges_and_inverts() -> None:
    hu = np.array([-1000.0, -160.0, 40.0, 240.0, 3000.0], dtype=np.float32)
    stored, norm = normalise_intensity(hu, "CT", IngestConfig())
    assert stored.dtype == np.uint8
    assert stored.tolist() == [0, 0, 128, 255, 255]
    assert (norm.method, norm.lo, norm.hi) == ("window:abdomen", -160.0, 240.0)
    assert norm.params == {"level": 40.0, "width": 400.0}
    assert norm.invert(stored[1:4]).tolist() == pytest.approx([-160.0, 40.0 + 200 / 255, 240.0])


def test_explicit_window_applies_to_any_modality() -> None:
    values = np.array([0.0, 50.0, 100.0])
    stored, norm = normalise_intensity(values, "MR", IngestConfig(window=(50.0, 100.0)))
    assert stored.tolist() == [0, 128, 255]
    assert norm.method == "window:custom"
    stored, norm = normalise_intensity(values, "CT", IngestConfig(window="brain"))
    assert norm.method == "window:brain" and (norm.lo, norm.hi) == (0.0, 80.0)


def test_unknown_window_lists_valid_names() -> None:
    with pytest.raises(RegistryError, match="abdomen.*bone") as info:
        resolve_window("soft")
    assert isinstance(info.value, ConfigError) and isinstance(info.value, KeyError)
    assert "'soft'" in str(info.value)


def test_percentiles_of_nonzero_voxels() -> None:
    rng = np.random.default_rng(3)
    array = rng.gamma(2.0, 100.0, size=SHAPE).astype(np.float32)
    array[:, :, :5] = 0.0
    stored, norm = normalise_intensity(array, "MR", IngestConfig())
    lo, hi = np.percentile(array[array != 0], (0.5, 99.5))
    assert (norm.method, norm.params) == ("percentile", {"percentiles": [0.5, 99.5], "nonzero": True})
    assert norm.lo == pytest.approx(lo) and norm.hi == pytest.approx(hi)
    assert stored.min() == 0 and stored.max() == 255
    assert not stored[:, :, :5].any()
    inside = (array >= lo) & (array <= hi)
    assert np.abs(norm.invert(stored)[inside] - array[inside]).max() <= (hi - lo) / 255


def test_percentiles_all_zero_and_constant_images() -> None:
    stored, norm = normalise_intensity(np.zeros(SHAPE), "OTHER", IngestConfig())
    assert not stored.any() and norm.params["nonzero"] is False and norm.hi == norm.lo + 1
    stored, norm = normalise_intensity(np.full(SHAPE, 7.0), "PET", IngestConfig())
    assert not stored.any() and (norm.lo, norm.hi) == (7.0, 8.0)


def test_uint8_kept_unless_disabled() -> None:
    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, size=(24, 20, 1), dtype=np.uint8)
    stored, norm = normalise_intensity(image, "US", IngestConfig())
    assert np.array_equal(stored, image) and norm.method == "none"
    stored, norm = normalise_intensity(image, "US", IngestConfig(keep_uint8=False))
    assert norm.method == "percentile"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"percentiles": (99.5, 0.5)},
        {"percentiles": (0.5, 101.0)},
        {"spacing": (1.0, 0.0, 1.0)},
        {"window": "soft"},
        {"window": (40.0, 0.0)},
        {"modality": "sonar"},
        {"min_object_voxels": -1},
        {"min_object_pixels": 2.5},
        {"image_order": 7},
        {"affine_tolerance": -1.0},
    ],
)
def test_ingest_config_rejects_bad_values(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        IngestConfig(**kwargs)  # type: ignore[arg-type]


def test_modality_names_and_resolution() -> None:
    assert [canonical_modality(m) for m in ("ct", "MRI", "T2", "flair", "PT", "x-ray")] == [
        "CT",
        "MR",
        "MR",
        "MR",
        "PET",
        "XR",
    ]
    assert all(canonical_modality(name) == name for name in MODALITIES)
    assert all(canonical_modality(alias.lower()) == name for alias, name in MODALITY_ALIASES.items())
    with pytest.raises(RegistryError, match="MR"):
        canonical_modality("sonar")
    hu = np.array([-1024.0, 0.0, 300.0])
    assert resolve_modality(hu, "MR", "CT") == "MR"
    assert resolve_modality(hu, None, "t1w") == "MR"
    assert resolve_modality(hu, None, "", None) == "CT"
    assert resolve_modality(np.array([0.0, 900.0]), None) == "OTHER"


@pytest.mark.parametrize(
    ("affine", "canonical_shape"), [(LPS, (24, 20, 10)), (PERMUTED, (20, 10, 24))], ids=["lps", "permuted"]
)
def test_to_canonical_marker_lands_where_ras_says(affine: np.ndarray, canonical_shape: tuple[int, ...]) -> None:
    array = np.zeros(SHAPE, dtype=np.int16)
    marker = (3, 15, 7)
    array[marker] = 1
    vol = Volume(array, affine, "marker.nii.gz", {"modality": "CT"})
    canon = to_canonical(vol)
    assert canon.array.shape == canonical_shape
    assert nib.aff2axcodes(canon.affine) == ("R", "A", "S")
    assert np.allclose(canon.affine[:3, :3], np.diag(np.diag(canon.affine[:3, :3])))
    assert np.all(np.diag(canon.affine)[:3] > 0)
    found = tuple(int(v[0]) for v in np.nonzero(canon.array))
    assert np.allclose(_world(canon.affine, found), _world(affine, marker))
    assert canon.meta == vol.meta and canon.path == vol.path
    assert sorted(canon.spacing) == sorted(vol.spacing)


def test_to_canonical_keeps_2d_slice_axis_and_inverse_ornt_undoes_it() -> None:
    sagittal = np.array([[0, 0, -3.0, 0], [0.8, 0, 0, 0], [0, -0.8, 0, 0], [0, 0, 0, 1]])
    array = np.arange(24 * 20).reshape(24, 20, 1)
    canon = to_canonical(Volume(array, sagittal, "slice.dcm"))
    assert canon.array.shape == (24, 20, 1)
    assert nib.aff2axcodes(canon.affine) == ("A", "S", "R")
    for index in [(0, 0, 0), (23, 19, 0), (5, 11, 0)]:
        found = tuple(int(v[0]) for v in np.nonzero(canon.array == array[index]))
        assert np.allclose(_world(canon.affine, found), _world(sagittal, index))
    ornt = nib.orientations.io_orientation(PERMUTED)
    there = nib.orientations.apply_orientation(array, ornt)
    assert np.array_equal(nib.orientations.apply_orientation(there, inverse_ornt(ornt)), array)


def test_resample_spacing_fov_and_values() -> None:
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    affine[:3, 3] = (-5.0, 3.0, 10.0)
    i, j, k = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in SHAPE), indexing="ij")
    ramp = Volume(3 * i - 2 * j + 5 * k, affine, "ramp.nii.gz")
    out = resample(ramp, (2.0, 2.0, 1.0), order=1)
    assert out.array.shape == (12, 10, 20) and out.array.dtype == np.float32
    assert out.spacing == pytest.approx((2.0, 2.0, 1.0))
    assert np.allclose(_centre(out), _centre(ramp))
    assert np.allclose(np.multiply(out.array.shape, out.spacing), np.multiply(SHAPE, ramp.spacing))
    # order 1 reproduces a linear function wherever samples fall inside the source grid
    for index in [(0, 0, 0), (5, 4, 9), (11, 9, 18)]:
        src = np.linalg.solve(affine, np.append(_world(out.affine, index), 1.0))[:3]
        src = np.clip(src, 0, np.array(SHAPE) - 1)
        assert out.array[index] == pytest.approx(3 * src[0] - 2 * src[1] + 5 * src[2], abs=1e-3)


def test_resample_keeps_dtype_labels_and_2d() -> None:
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 4, size=SHAPE, dtype=np.uint8)
    out = resample(Volume(labels, LPS, "lab.nii.gz"), (0.5, 0.75, 2.5), order=0)
    assert out.array.dtype == np.uint8 and out.array.shape == (48, 40, 10)
    assert set(np.unique(out.array)) <= set(np.unique(labels))
    assert np.array_equal(out.array[::2, ::2, :], labels)
    hu = Volume(rng.integers(-1000, 1000, size=SHAPE, dtype=np.int16), LPS, "ct.nii.gz")
    assert resample(hu, (2.0, 2.0, 2.0), order=3).array.dtype == np.int16
    flat = Volume(rng.random((24, 20, 1), dtype=np.float32), np.eye(4), "img.png")
    out = resample(flat, (2.0, 0.5, 5.0), order=1)
    assert out.array.shape == (12, 40, 1) and out.spacing == pytest.approx((2.0, 0.5, 1.0))


@pytest.mark.parametrize("order", ["C", "F"])
def test_uint8_scaling_in_slabs_equals_one_pass(monkeypatch, order):
    import samdata.normalise as normalise

    monkeypatch.setattr(normalise, "_SLAB_VOXELS", 50)  # several slabs, a short last one
    array = np.asarray(np.random.default_rng(2).normal(40, 300, (9, 7, 11)), dtype=np.float32, order=order)
    reference = np.asarray(array, dtype=np.float32) + np.float32(160)
    reference *= np.float32(255.0 / 400.0)
    reference = np.rint(np.clip(reference, 0, 255)).astype(np.uint8)
    out = normalise._to_uint8(array, -160.0, 240.0)
    assert np.array_equal(out, reference)
    assert out.flags["F_CONTIGUOUS" if order == "F" else "C_CONTIGUOUS"]
