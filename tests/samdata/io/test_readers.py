"""Tests of samdata.io.readers: every format round trip, label checks, bad inputs, hashing, writing."""

from __future__ import annotations

import gzip
import hashlib
import json

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
import tifffile
from PIL import Image

from samdata.errors import CaseNotFoundError, InputFileError, ValidationError
from samdata.io.itk import sitk_from_xyz
from samdata.io.readers import is_legacy_hash, read_label, read_volume, source_hash, write_nifti

SHAPE = (7, 6, 5)


def _affine(flip: bool = True) -> np.ndarray:
    """A non-trivial RAS affine: LPS-style flips (optional), anisotropic spacing, 30 deg rotation, offset."""
    c, s = np.cos(np.pi / 6), np.sin(np.pi / 6)
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    signs = np.array([-1.0, -1.0, 1.0]) if flip else np.ones(3)
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag(signs * [0.8, 0.7, 2.5])
    affine[:3, 3] = [12.5, -30.0, 44.0]
    return affine


def _volume(seed: int = 0) -> np.ndarray:
    """A small (X, Y, Z) int16 volume with distinct values."""
    return np.random.default_rng(seed).integers(-1000, 1000, size=SHAPE).astype(np.int16)


def test_nifti_round_trip_keeps_array_affine_and_writes_atomically(tmp_path):
    array, affine = _volume(), _affine()
    path = write_nifti(array, affine, tmp_path / "sub" / "ct.nii.gz")
    vol = read_volume(path)
    assert vol.array.dtype == np.int16 and vol.array.shape == SHAPE
    np.testing.assert_array_equal(vol.array, array)
    np.testing.assert_allclose(vol.affine, affine, atol=1e-5)
    assert vol.meta["format"] == "nifti" and vol.path == str(path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["ct.nii.gz"]  # no temp file left
    np.testing.assert_allclose(vol.spacing, (0.8, 0.7, 2.5), atol=1e-5)


@pytest.mark.parametrize("suffix", [".mha", ".nrrd", ".nhdr", ".mhd"])
def test_itk_formats_read_like_the_same_nifti(tmp_path, suffix):
    nii = write_nifti(_volume(), _affine(), tmp_path / "ct.nii.gz")
    other = tmp_path / f"ct{suffix}"
    sitk.WriteImage(sitk.ReadImage(str(nii)), str(other))  # ITK's own NIfTI reader, independent of ours
    a, b = read_volume(nii), read_volume(other)
    np.testing.assert_array_equal(a.array, b.array)
    np.testing.assert_allclose(a.affine, b.affine, atol=1e-4)
    assert b.meta["format"] == "itk"


def test_sitk_from_xyz_inverts_reading(tmp_path):
    array, affine = _volume(1).astype(np.float32), _affine(flip=False)
    path = tmp_path / "v.mha"
    sitk.WriteImage(sitk_from_xyz(array, affine), str(path))
    vol = read_volume(path)
    np.testing.assert_array_equal(vol.array, array)
    np.testing.assert_allclose(vol.affine, affine, atol=1e-5)
    assert nib.aff2axcodes(vol.affine) == nib.aff2axcodes(affine)


def test_dicom_series_reads_like_nifti(tmp_path, write_dicom_series):
    array, affine = _volume(2), _affine()
    folder = write_dicom_series(array, affine, tmp_path / "dcm")
    vol = read_volume(folder)
    np.testing.assert_array_equal(vol.array, array)
    np.testing.assert_allclose(vol.affine, affine, atol=1e-3)
    assert vol.meta["format"] == "dicom" and vol.meta["modality"] == "CT"
    assert vol.meta["series_uid"].endswith(".1") and vol.meta["other_series"] == {}
    nii = read_volume(write_nifti(array, affine, tmp_path / "same.nii.gz"))
    np.testing.assert_allclose(vol.affine, nii.affine, atol=1e-3)


def test_dicom_folder_with_two_series_reads_the_largest(tmp_path, write_dicom_series):
    folder = tmp_path / "dcm"
    write_dicom_series(_volume(3), _affine(), folder, series="1")
    write_dicom_series(_volume(4)[:, :, :2], _affine(), folder / "scout", series="2")
    vol = read_volume(folder)
    assert vol.array.shape == SHAPE
    assert vol.meta["series_uid"].endswith(".1")
    assert list(vol.meta["other_series"].values()) == [2]


def test_png_grey_is_x_y_one_with_identity_affine(tmp_path):
    pixels = np.random.default_rng(5).integers(0, 256, size=(9, 12), dtype=np.uint8)  # rows=Y, cols=X
    Image.fromarray(pixels).save(tmp_path / "a.png")
    vol = read_volume(tmp_path / "a.png")
    assert vol.array.shape == (12, 9, 1)
    np.testing.assert_array_equal(vol.array[:, :, 0], pixels.T)
    np.testing.assert_array_equal(vol.affine, np.eye(4))
    assert vol.meta["rgb_to_grey"] is False


def test_rgb_png_and_rgba_are_converted_to_luminance(tmp_path):
    rgb = np.random.default_rng(6).integers(0, 256, size=(8, 10, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 200, np.uint8)])).save(tmp_path / "rgba.png")
    expected = np.rint(rgb.astype(float) @ [0.299, 0.587, 0.114]).T
    for name in ("rgb.png", "rgba.png"):
        vol = read_volume(tmp_path / name)
        assert vol.meta["rgb_to_grey"] is True and vol.array.dtype == np.uint8
        np.testing.assert_array_equal(vol.array[:, :, 0], expected)


def test_tiff_resolution_gives_pixel_spacing_and_rgb_tiff_is_grey(tmp_path):
    pixels = np.arange(6 * 4, dtype=np.uint16).reshape(6, 4) * 100
    tifffile.imwrite(tmp_path / "a.tif", pixels, resolution=(20.0, 40.0), resolutionunit="CENTIMETER")
    vol = read_volume(tmp_path / "a.tif")
    np.testing.assert_array_equal(vol.array[:, :, 0], pixels.T)
    np.testing.assert_allclose(vol.spacing, (0.5, 0.25, 1.0))
    assert vol.meta["spacing_source"] == "tiff_resolution"
    rgb = np.zeros((5, 3, 3), np.uint8)
    rgb[..., 1] = 100
    rgb[0, 0] = 0
    tifffile.imwrite(tmp_path / "rgb.tiff", rgb, photometric="rgb")
    grey = read_volume(tmp_path / "rgb.tiff")
    assert grey.meta["rgb_to_grey"] and grey.array.shape == (3, 5, 1)
    assert grey.array[0, 0, 0] == 0 and (grey.array[1:] == 59).all() and grey.spacing == (1.0, 1.0, 1.0)


def test_tiff_plane_stack_is_a_volume_with_imagej_spacing(tmp_path):
    stack = np.random.default_rng(8).integers(0, 4000, size=(3, 5, 4), dtype=np.uint16)  # (Z, Y, X)
    tifffile.imwrite(
        tmp_path / "stack.tif",
        stack,
        imagej=True,
        resolution=(2.0, 2.0),
        metadata={"axes": "ZYX", "unit": "mm", "spacing": 2.5},
    )
    vol = read_volume(tmp_path / "stack.tif")
    np.testing.assert_array_equal(vol.array, stack.transpose(2, 1, 0))
    np.testing.assert_allclose(vol.spacing, (0.5, 0.5, 2.5))


def test_singleton_trailing_dims_are_squeezed(tmp_path):
    vol = read_volume(write_nifti(_volume()[..., None, None], np.eye(4), tmp_path / "v5d.nii.gz"))
    assert vol.array.shape == SHAPE


def test_label_png_pairs_binarise_255_and_rgb_masks(tmp_path):
    rgb = np.random.default_rng(7).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "img.png")
    image = read_volume(tmp_path / "img.png")
    grey_mask = np.zeros((6, 8), np.uint8)
    grey_mask[2:4, 3:6] = 255
    Image.fromarray(grey_mask).save(tmp_path / "m.png")
    red = np.zeros((6, 8, 3), np.uint8)
    red[..., 0] = grey_mask
    Image.fromarray(red).save(tmp_path / "m_rgb.png")
    for name in ("m.png", "m_rgb.png"):
        label = read_label(tmp_path / name, like=image)
        assert label.array.dtype == np.uint8
        np.testing.assert_array_equal(label.array[:, :, 0], (grey_mask // 255).T)


def test_label_palette_png_keeps_indices_and_jpeg_mask_is_thresholded(tmp_path):
    image = read_volume(write_nifti(_volume()[:, :, :1], np.eye(4), tmp_path / "img.nii.gz"))
    idx = (np.arange(7 * 6).reshape(6, 7) % 3).astype(np.uint8)  # rows=6 (Y), cols=7 (X)
    pal = Image.fromarray(idx, mode="P")
    pal.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * 759)
    pal.save(tmp_path / "pal.png")
    np.testing.assert_array_equal(read_label(tmp_path / "pal.png", like=image).array[:, :, 0], idx.T)
    block = np.zeros((6, 7), np.uint8)
    block[:, 4:] = 255
    Image.fromarray(block).save(tmp_path / "m.jpg", quality=70)
    label = read_label(tmp_path / "m.jpg", like=image)
    assert set(np.unique(label.array)) == {0, 1} and label.array[5:, :, 0].all()


def test_all_background_label_is_allowed(tmp_path):
    image = read_volume(write_nifti(_volume(), _affine(), tmp_path / "img.nii.gz"))
    label = read_label(write_nifti(np.zeros(SHAPE, np.int16), _affine(), tmp_path / "lab.nii.gz"), like=image)
    assert label.array.dtype == np.uint8 and not label.array.any()


def test_label_float_integer_values_are_cast(tmp_path):
    image = read_volume(write_nifti(_volume(), _affine(), tmp_path / "img.nii.gz"))
    lab = (np.arange(np.prod(SHAPE)).reshape(SHAPE) % 4).astype(np.float32)
    label = read_label(write_nifti(lab, _affine(), tmp_path / "lab.nii.gz"), like=image)
    assert label.array.dtype == np.uint8
    np.testing.assert_array_equal(label.array, lab.astype(np.uint8))


@pytest.mark.parametrize(
    ("name", "array", "affine", "needle"),
    [
        ("frac.nii.gz", np.full(SHAPE, 0.5, np.float32), None, "non-integer"),
        ("neg.nii.gz", -np.ones(SHAPE, np.int16), None, "negative"),
        ("shape.nii.gz", np.zeros((7, 6, 4), np.uint8), None, "shape"),
        ("moved.nii.gz", np.zeros(SHAPE, np.uint8), "moved", "affine"),
        ("nan.nii.gz", np.full(SHAPE, np.nan, np.float32), None, "NaN"),
    ],
)
def test_bad_labels_raise_naming_both_files(tmp_path, name, array, affine, needle):
    image = read_volume(write_nifti(_volume(), _affine(), tmp_path / "img.nii.gz"))
    aff = _affine()
    if affine == "moved":
        aff[0, 3] += 0.01
    path = write_nifti(array, aff, tmp_path / name)
    with pytest.raises(ValidationError) as info:
        read_label(path, like=image)
    message = str(info.value)
    assert name in message and needle in message and "\n" not in message
    if needle in ("shape", "affine"):
        assert "img.nii.gz" in message


def test_colour_coded_rgb_mask_is_refused(tmp_path):
    image = read_volume(write_nifti(_volume()[:, :, :1], np.eye(4), tmp_path / "img.nii.gz"))
    rgb = np.zeros((6, 7, 3), np.uint8)
    rgb[0, 0], rgb[1, 1] = (255, 0, 0), (0, 255, 0)
    Image.fromarray(rgb).save(tmp_path / "colours.png")
    with pytest.raises(ValidationError, match="colours.png"):
        read_label(tmp_path / "colours.png", like=image)


def _gz_bytes(tmp_path) -> bytes:
    """A gzipped NIfTI large enough (64 KiB of noise) that its header survives a cut tail."""
    noise = np.random.default_rng(9).integers(-1000, 1000, size=(32, 32, 32), dtype=np.int16)
    return write_nifti(noise, np.eye(4), tmp_path / "good.nii.gz").read_bytes()


def _flip_bytes(data: bytes, start: int, stop: int) -> bytes:
    """Invert the bytes in [start, stop) (a corrupted stretch of a file)."""
    return data[:start] + bytes(255 - x for x in data[start:stop]) + data[stop:]


BAD_FILES = {
    "truncated.nii.gz": lambda tp: _gz_bytes(tp)[: len(_gz_bytes(tp)) // 2],
    "cut_tail.nii.gz": lambda tp: _gz_bytes(tp)[:-30],
    "corrupt.nii.gz": lambda tp: _flip_bytes(_gz_bytes(tp), 40, 200),
    "short.nii": lambda tp: gzip.decompress(_gz_bytes(tp))[:5000],
    "text.nii.gz": lambda tp: gzip.compress(b"not an image at all\n" * 20),
    "text.nii": lambda tp: b"hello, this is text and not NIfTI\n" * 20,
    "text.mha": lambda tp: b"just some words\n",
    "text.nrrd": lambda tp: b"NRRD0004\ntype: banana\n\n",
    "text.png": lambda tp: b"\x89PNG but not really",
    "text.tif": lambda tp: b"II*\x00garbage",
    "text.jpg": lambda tp: json.dumps({"a": 1}).encode(),
    "data.csv": lambda tp: b"a,b\n1,2\n",
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_files_raise_input_file_error_naming_the_file(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(BAD_FILES[name](tmp_path))
    with pytest.raises(InputFileError) as info:
        read_volume(path)
    message = str(info.value)
    assert name in message and "\n" not in message
    if name == "data.csv":
        assert ".nii.gz" in message and ".mha" in message and "DICOM" in message


@pytest.mark.parametrize(
    ("name", "array", "needle"),
    [
        ("nan.nii.gz", np.where(np.arange(210).reshape(SHAPE) == 3, np.nan, 1.0).astype(np.float32), "NaN"),
        ("inf.nii.gz", np.where(np.arange(210).reshape(SHAPE) == 3, np.inf, 1.0), "infinite"),
        ("const.nii.gz", np.full(SHAPE, 7, np.int16), "empty"),
        ("t4d.nii.gz", np.zeros((*SHAPE, 3), np.int16) + np.arange(3, dtype=np.int16), "4D"),
    ],
)
def test_bad_values_raise_input_file_error(tmp_path, name, array, needle):
    path = write_nifti(array, np.eye(4), tmp_path / name)
    with pytest.raises(InputFileError, match=needle) as info:
        read_volume(path)
    assert name in str(info.value)


def test_missing_file_and_folders_without_dicom(tmp_path):
    with pytest.raises(CaseNotFoundError, match="nope.nii.gz"):
        read_volume(tmp_path / "nope.nii.gz")
    (tmp_path / "empty").mkdir()
    (tmp_path / "fake").mkdir()
    (tmp_path / "fake" / "x.dcm").write_bytes(b"DICM? no" * 50)
    for name in ("empty", "fake"):
        with pytest.raises(InputFileError, match=f"{name}: no readable DICOM series"):
            read_volume(tmp_path / name)


def test_source_hash_of_files_and_folders(tmp_path):
    (tmp_path / "d" / "s").mkdir(parents=True)
    (tmp_path / "d" / "b.dcm").write_bytes(b"bbb")
    (tmp_path / "d" / "s" / "a.dcm").write_bytes(b"aaa")
    (tmp_path / "f.nii").write_bytes(b"fff")

    def blake(data: bytes) -> str:
        return "blake2b:" + hashlib.blake2b(data, digest_size=32).hexdigest()

    assert source_hash(tmp_path / "f.nii") == blake(b"fff")
    assert source_hash(tmp_path / "d") == blake(b"bbbaaa")  # b.dcm < s/a.dcm
    assert source_hash(tmp_path / "f.nii", tmp_path / "d") == blake(b"fffbbbaaa")
    # the bare SHA-256 of stores written before the prefix, for idempotent re-ingest into them
    assert (
        source_hash(tmp_path / "f.nii", tmp_path / "d", algorithm="sha256") == hashlib.sha256(b"fffbbbaaa").hexdigest()
    )
    assert is_legacy_hash(hashlib.sha256(b"x").hexdigest()) and not is_legacy_hash(blake(b"x"))
    with pytest.raises(ValueError, match="md5"):
        source_hash(tmp_path / "f.nii", algorithm="md5")
    with pytest.raises(CaseNotFoundError, match="missing"):
        source_hash(tmp_path / "missing")


def test_write_nifti_handles_bool_and_int64_and_refuses_other_suffixes(tmp_path):
    mask = np.zeros(SHAPE, bool)
    mask[1, 2, 3] = True
    out = nib.load(write_nifti(mask, np.eye(4), tmp_path / "m.nii"))
    assert out.get_data_dtype() == np.uint8 and int(out.header["sform_code"]) == 1
    big = write_nifti(np.arange(210, dtype=np.int64).reshape(SHAPE), np.eye(4), tmp_path / "i.nii.gz")
    assert nib.load(big).get_data_dtype() == np.int32
    with pytest.raises(InputFileError, match="x.mha"):
        write_nifti(mask, np.eye(4), tmp_path / "x.mha")


@pytest.mark.parametrize("dtype", [">i2", "<f4", "uint8"])
def test_gzipped_nifti_is_inflated_in_pieces_like_nibabel(tmp_path, monkeypatch, dtype):
    import samdata.io.fast_nifti as fast_nifti

    monkeypatch.setattr(fast_nifti, "_GZ_READ", 97)  # many reads and pieces, pieces ending mid-voxel
    monkeypatch.setattr(fast_nifti, "_GZ_PIECE", 1000)
    array = np.random.default_rng(4).integers(0, 200, (23, 17, 5)).astype(dtype)
    image = nib.Nifti1Image(array, np.diag([0.7, 0.8, 2.0, 1.0]))
    if dtype == ">i2":
        image.header.set_slope_inter(0.5, -3.0)
    nib.save(image, tmp_path / "x.nii.gz")
    expected = np.asarray(nib.load(tmp_path / "x.nii.gz").dataobj)
    volume = read_volume(tmp_path / "x.nii.gz")
    assert volume.array.dtype == expected.dtype and np.array_equal(volume.array, expected)
    raw = (tmp_path / "x.nii.gz").read_bytes()
    (tmp_path / "cut.nii.gz").write_bytes(raw[: len(raw) * 2 // 3])
    with pytest.raises(InputFileError, match="cut.nii.gz"):
        read_volume(tmp_path / "cut.nii.gz")
    # the gzip trailer (CRC-32, then length) is checked although the voxels end before it
    (tmp_path / "crc.nii.gz").write_bytes(raw[:-8] + bytes([raw[-8] ^ 0xFF]) + raw[-7:])
    with pytest.raises(InputFileError, match="crc.nii.gz"):
        read_volume(tmp_path / "crc.nii.gz")
    # concatenated gzip members (as bgzip and `cat a.gz b.gz` write) read as one stream
    plain = gzip.decompress(raw)
    (tmp_path / "members.nii.gz").write_bytes(gzip.compress(plain[:500]) + gzip.compress(plain[500:]))
    assert np.array_equal(read_volume(tmp_path / "members.nii.gz").array, expected)


@pytest.mark.parametrize("dtype", [">i2", "<i2", "<u2", "<f4", "uint8"])
def test_a_transform_applied_while_inflating_equals_one_applied_after(tmp_path, monkeypatch, dtype):
    """read_volume(path, transform) on a .nii.gz transforms blocks of whole z slices as they are
    inflated (here 3 slices per block, the last one short): the same values as transforming the
    whole array (by table lookup for native 8/16-bit integers, scaled or not), the checks of a
    normal read (NaN/inf, a constant image) still made, the file's type recorded; formats read
    whole are transformed after the read."""
    import samdata.io.fast_nifti as fast_nifti
    from samdata.normalise import IngestConfig, planned_window, window_transform

    array = np.random.default_rng(5).integers(0, 200, (23, 17, 11)).astype(dtype)
    image = nib.Nifti1Image(array, np.diag([0.7, 0.8, 2.0, 1.0]))
    if dtype in (">i2", "<i2"):
        image.header.set_slope_inter(0.5, -3.0)
    nib.save(image, tmp_path / "x.nii.gz")
    monkeypatch.setattr(fast_nifti, "_GZ_PIECE", 23 * 17 * np.dtype(dtype).itemsize * 3)
    window = planned_window(IngestConfig(window=(60.0, 100.0)), None)
    transform = window_transform(window)
    plain = read_volume(tmp_path / "x.nii.gz")
    fused = read_volume(tmp_path / "x.nii.gz", transform)
    assert fused.meta["transformed"] and fused.meta["source_dtype"] == str(
        nib.load(tmp_path / "x.nii.gz").get_data_dtype()
    )
    assert fused.array.dtype == np.uint8 and np.array_equal(fused.array, transform(plain.array))
    assert np.isfortran(fused.array) and np.array_equal(fused.affine, plain.affine)
    nib.save(nib.Nifti1Image(array, np.eye(4)), tmp_path / "x.nii")  # not gzipped: transformed after the read
    whole = read_volume(tmp_path / "x.nii", transform)
    assert whole.meta["transformed"] and np.array_equal(whole.array, transform(read_volume(tmp_path / "x.nii").array))
    if dtype == "<f4":
        bad = array.copy()
        bad[4, 5, 9] = np.nan  # in the last block
        nib.save(nib.Nifti1Image(bad, np.eye(4)), tmp_path / "nan.nii.gz")
        with pytest.raises(InputFileError, match="nan.nii.gz: 1 voxels are NaN"):
            read_volume(tmp_path / "nan.nii.gz", transform)
    flat = np.full((23, 17, 11), 7, dtype=dtype)
    nib.save(nib.Nifti1Image(flat, np.eye(4)), tmp_path / "flat.nii.gz")
    with pytest.raises(InputFileError, match="flat.nii.gz: empty volume"):
        read_volume(tmp_path / "flat.nii.gz", transform)
