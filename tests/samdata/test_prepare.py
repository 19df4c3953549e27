"""Tests for samdata.prepare: Volume → Case, validation errors, and the way back to the source grid."""

from __future__ import annotations

from dataclasses import replace

import nibabel as nib
import numpy as np
import pytest

from samdata.case import Case, CaseMeta, Provenance, Volume
from samdata.errors import ValidationError
from samdata.normalise import IngestConfig, normalise_intensity, to_canonical
from samdata.prepare import invert_intensity, prepare_case, to_source_grid, zyx_in_place

SHAPE = (24, 20, 10)
LPS = np.array([[-1.0, 0, 0, 10], [0, -1.5, 0, 20], [0, 0, 2.5, -30], [0, 0, 0, 1]])
PERMUTED = np.array([[0, 1.5, 0, -12], [0, 0, -1.0, 7], [-2.0, 0, 0, 40], [0, 0, 0, 1]])
PROVENANCE = Provenance(origin="real", source="/data/ct_001.nii.gz", source_hash="sha256:ab12")
NO_CLEANING = IngestConfig(min_object_voxels=0, min_object_pixels=0)


def ct_pair(affine: np.ndarray = LPS, seed: int = 0) -> tuple[Volume, Volume]:
    """A CT-like int16 volume (air around a body) and a label volume with two organs and a speck."""
    rng = np.random.default_rng(seed)
    image = np.full(SHAPE, -1000, dtype=np.int16)
    image[2:22, 2:18, :] = rng.integers(-100, 200, size=(20, 16, 10), dtype=np.int16)
    label = np.zeros(SHAPE, dtype=np.uint8)
    label[3:15, 3:13, 1:9] = 1
    label[15:21, 5:17, 2:8] = 3
    label[22, 18, 9] = 2
    return Volume(image, affine, "/data/ct_001.nii.gz"), Volume(label, affine, "/data/ct_001_seg.nii.gz")


def _prepare(image: Volume, label: Volume | None, config: IngestConfig = NO_CLEANING, **kwargs: object) -> Case:
    """prepare_case with the test's fixed ids and provenance."""
    return prepare_case(
        image,
        label,
        case_id="ct_001",
        config=config,
        label_names={1: "liver", 3: "spleen"},
        provenance=PROVENANCE,
        **kwargs,  # type: ignore[arg-type]
    )


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two boolean masks."""
    return 2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def test_prepare_case_shapes_dtypes_and_meta() -> None:
    image, label = ct_pair()
    case = _prepare(image, label, config=IngestConfig(min_object_voxels=100, min_object_pixels=10), split="val")
    assert case.image.shape == case.label.shape == (10, 20, 24)
    assert case.image.dtype == np.uint8 and case.label.dtype == np.uint8
    assert case.image.flags.c_contiguous and case.label.flags.c_contiguous
    canonical = to_canonical(image)
    expected, _ = normalise_intensity(canonical.array, "CT", NO_CLEANING)
    for z in (0, 4, 9):
        assert np.array_equal(case.image[z], expected[:, :, z].T)
    meta = case.meta
    assert (meta.case_id, meta.modality, meta.split, meta.provenance) == ("ct_001", "CT", "val", PROVENANCE)
    assert meta.label_names == {1: "liver", 2: "label_2", 3: "spleen"}
    assert (meta.normalisation.method, meta.normalisation.lo, meta.normalisation.hi) == ("window:abdomen", -160, 240)
    geometry = meta.geometry
    assert nib.aff2axcodes(np.array(geometry.affine)) == ("R", "A", "S")
    assert np.allclose(geometry.affine, canonical.affine) and geometry.spacing == (1.0, 1.5, 2.5)
    assert np.allclose(geometry.source_affine, LPS) and geometry.source_shape == SHAPE
    assert geometry.source_axcodes == ("L", "P", "S") and geometry.resampled is False
    assert not (case.label == 2).any()  # the 1-voxel speck is cleaned away; its name stays
    assert set(np.unique(case.label)) == {0, 1, 3}
    assert CaseMeta.from_json(meta.to_json()) == meta


def test_prepare_case_leaves_its_inputs_untouched() -> None:
    """The plain path copies what it rearranges or cleans (ingest's in-place path: tests/pipelines)."""
    image, label = ct_pair()
    fortran = Volume(np.asfortranarray(label.array), LPS, label.path)
    kept_image, kept_label = image.array.copy(), fortran.array.copy()
    case = _prepare(image, fortran, config=IngestConfig(min_object_voxels=100, min_object_pixels=10))
    assert not (case.label == 2).any()  # the speck is cleaned away in the copy
    assert np.array_equal(image.array, kept_image) and np.array_equal(fortran.array, kept_label)
    assert not np.shares_memory(case.label, fortran.array) and not np.shares_memory(case.image, image.array)


@pytest.mark.parametrize("flips", [(), (0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2)])
def test_zyx_in_place_undoes_flips_in_the_arrays_own_memory(flips: tuple[int, ...]) -> None:
    volume = np.asfortranarray(np.random.default_rng(1).integers(0, 255, (6, 5, 7), dtype=np.uint8))
    view = np.flip(volume, flips) if flips else volume
    expected = np.ascontiguousarray(view.transpose(2, 1, 0))
    got = zyx_in_place(view)
    assert got is not None and got.flags.c_contiguous and np.shares_memory(got, volume)
    assert np.array_equal(got, expected)
    assert zyx_in_place(np.asfortranarray(volume).transpose(1, 0, 2)) is None  # a permutation: copy
    frozen = np.asfortranarray(volume)
    frozen.flags.writeable = False
    assert zyx_in_place(frozen) is None


def test_prepare_case_without_label_and_with_large_label_values() -> None:
    image, label = ct_pair(PERMUTED)
    case = _prepare(image, None)
    assert case.label.dtype == np.uint8 and not case.label.any() and case.image.shape == (24, 10, 20)
    assert case.meta.label_names == {1: "liver", 3: "spleen"}
    big = Volume(label.array.astype(np.int32) * 300, label.affine, label.path)
    case = _prepare(image, big)
    assert case.label.dtype == np.uint16 and set(np.unique(case.label)) == {0, 300, 600, 900}
    assert case.meta.label_names[900] == "label_900"


def test_prepare_case_modality_precedence_and_2d_image() -> None:
    image, label = ct_pair()
    assert _prepare(image, label, modality="CT", config=replace(NO_CLEANING, modality="MR")).meta.modality == "MR"
    mr = _prepare(replace(image, array=image.array + 1000), label, modality="T2")
    assert mr.meta.modality == "MR" and mr.meta.normalisation.method == "percentile"
    from_meta = _prepare(replace(image, meta={"modality": "PT", "rgb_to_grey": True}), label)
    assert from_meta.meta.modality == "PET" and from_meta.meta.normalisation.params["rgb_to_grey"] is True
    flat_image = Volume(image.array[:, :, 4:5], LPS, "/data/xray.png")
    flat_label = Volume((label.array[:, :, 4:5] == 1).astype(np.uint8), LPS, "/data/xray_mask.png")
    case = _prepare(flat_image, flat_label, config=IngestConfig())
    assert case.image.shape == (1, 20, 24) and "rgb_to_grey" not in case.meta.normalisation.params
    assert (case.label == 1).sum() == 120  # < min_object_voxels, kept: the 3D rule skips 2D images
    assert np.array_equal(to_source_grid(case.label, case.meta), flat_label.array)
    sagittal = np.array([[0, 0, -3.0, 0], [0.8, 0, 0, 0], [0, -0.8, 0, 0], [0, 0, 0, 1]])
    case = _prepare(replace(flat_image, affine=sagittal), replace(flat_label, affine=sagittal))
    assert case.image.shape == (1, 20, 24)
    assert np.array_equal(to_source_grid(case.label, case.meta), flat_label.array)


def _label_with(label: Volume, **changes: object) -> Volume:
    """A copy of the label volume with some fields replaced."""
    return replace(label, **changes)  # type: ignore[arg-type]


def _float_label(label: Volume, value: float) -> Volume:
    """The label as float32 with one voxel set to `value`."""
    array = label.array.astype(np.float32)
    array[0, 0, 0] = value
    return _label_with(label, array=array)


@pytest.mark.parametrize(
    ("make", "match", "culprit"),
    [
        (lambda im, lb: (im, _label_with(lb, array=lb.array[:, :, :9])), "label shape .* differs from image", 1),
        (lambda im, lb: (im, _label_with(lb, affine=LPS + np.diag([0, 0, 0.01, 0]))), "affine .* by 0.01", 1),
        (lambda im, lb: (im, _float_label(lb, 0.5)), "non-integer value 0.5", 1),
        (lambda im, lb: (im, _float_label(lb, np.nan)), "1 non-finite", 1),
        (lambda im, lb: (im, _label_with(lb, array=lb.array.astype(np.int16) - 1)), "negative value -1", 1),
        (lambda im, lb: (im, _float_label(lb, 70000.0)), "exceeds 65535", 1),
        (lambda im, lb: (replace(im, array=np.where(im.array > 0, np.inf, im.array)), lb), "non-finite", 0),
        (lambda im, lb: (replace(im, array=im.array[:, :, 0]), lb), r"expected a non-empty \(X, Y, Z\)", 0),
        (lambda im, lb: (replace(im, affine=np.diag([1.0, 1.0, 0.0, 1.0])), lb), "not an invertible", 0),
    ],
    ids=["shape", "affine", "non-integer", "nan", "negative", "too-large", "image-inf", "image-2d", "singular"],
)
def test_prepare_case_validation_errors_name_the_file(make: object, match: str, culprit: int) -> None:
    volumes = make(*ct_pair())  # type: ignore[operator]
    with pytest.raises(ValidationError, match=match) as info:
        _prepare(*volumes)
    assert volumes[culprit].path in str(info.value)


def test_prepare_case_accepts_affines_within_tolerance() -> None:
    image, label = ct_pair()
    case = _prepare(image, _label_with(label, affine=LPS + 5e-4))
    assert case.label.any()
    with pytest.raises(ValidationError, match="case id"):
        prepare_case(image, label, case_id="a/b", config=NO_CLEANING, label_names={}, provenance=PROVENANCE)


@pytest.mark.parametrize("affine", [LPS, PERMUTED], ids=["lps", "permuted"])
def test_to_source_grid_round_trip_is_exact_without_resampling(affine: np.ndarray) -> None:
    image, label = ct_pair(affine)
    case = _prepare(image, label)
    back = to_source_grid(case.label, case.meta)
    assert back.dtype == case.label.dtype and back.shape == SHAPE
    assert np.array_equal(back, label.array)


def _sphere_pair(affine: np.ndarray, shape: tuple[int, int, int] = (40, 36, 16)) -> tuple[Volume, Volume]:
    """An air-filled image and a label ball of radius 12 mm at the grid centre."""
    grid = np.indices(shape, dtype=float)
    world = np.einsum("ij,jxyz->ixyz", affine[:3, :3], grid - (np.array(shape) / 2)[:, None, None, None])
    ball = (np.sqrt((world**2).sum(axis=0)) < 12.0).astype(np.uint8)
    return Volume(np.full(shape, -1000, np.int16), affine, "/data/ball.nii.gz"), Volume(
        ball, affine, "/data/ball_seg.nii"
    )


@pytest.mark.parametrize("affine", [LPS, PERMUTED], ids=["lps", "permuted"])
@pytest.mark.parametrize(
    ("spacing", "scene"),
    [((0.8, 0.8, 1.2), ct_pair), ((1.6, 1.6, 2.0), _sphere_pair), ((1.3, 1.7, 3.1), _sphere_pair)],
    ids=["finer", "coarser", "anisotropic"],
)
def test_to_source_grid_after_resampling(
    affine: np.ndarray, spacing: tuple[float, float, float], scene: object
) -> None:
    image, label = scene(affine)  # type: ignore[operator]
    case = _prepare(image, label, config=replace(NO_CLEANING, spacing=spacing))
    assert case.meta.geometry.resampled is True
    assert case.meta.geometry.spacing == pytest.approx(spacing)
    back = to_source_grid(case.label, case.meta)
    assert back.shape == label.array.shape and back.dtype == np.uint8
    for value in set(np.unique(label.array)) - {0, 2}:  # 2 is a 1-voxel speck, too small to survive
        assert _dice(back == value, label.array == value) > 0.95
        shift = affine[:3, :3] @ (np.argwhere(back == value).mean(0) - np.argwhere(label.array == value).mean(0))
        assert np.linalg.norm(shift) < 1.0  # mm: no half-voxel drift or flipped axis
    with pytest.raises(ValidationError, match="mask shape"):
        to_source_grid(case.label[:-1], case.meta)


def test_resampling_to_the_same_spacing_is_a_no_op() -> None:
    image, label = ct_pair()
    case = _prepare(image, label, config=replace(NO_CLEANING, spacing=(1.0, 1.5, 2.5)))
    assert case.meta.geometry.resampled is False
    assert np.array_equal(to_source_grid(case.label, case.meta), label.array)


def test_invert_intensity_recovers_windowed_values() -> None:
    image, label = ct_pair()
    case = _prepare(image, label)
    restored = to_source_grid(invert_intensity(case.image, case.meta), case.meta)
    assert restored.dtype == np.float32
    inside = (image.array >= -160) & (image.array <= 240)
    assert np.abs(restored[inside] - image.array[inside]).max() <= 400 / 255 / 2 + 1e-3
    assert np.all(restored[image.array < -160] == -160)
