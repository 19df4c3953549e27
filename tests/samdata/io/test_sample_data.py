"""Tests of samdata.io.sample_data: seeded CT phantoms and the bundled MNI152 template dataset."""

from __future__ import annotations

import time

import nibabel as nib
import numpy as np
import pytest

from samdata.errors import ConfigError
from samdata.io.layouts import discover
from samdata.io.readers import read_label, read_volume
from samdata.io.sample_data import (
    CONTRASTS,
    PHANTOM_LABELS,
    PHANTOM_ORIENTATIONS,
    mni152_contrast,
    mni152_labels,
    write_mni152,
    write_phantoms,
)

SMALL = (48, 44, 16)


def _arrays(root, case):
    image = read_volume(root / "imagesTr" / f"{case}.nii.gz")
    return image, read_label(root / "labelsTr" / f"{case}.nii.gz", like=image)


def test_phantoms_are_deterministic_per_seed_and_per_case(tmp_path):
    a = write_phantoms(tmp_path / "a", cases=3, seed=11, shape=SMALL)
    b = write_phantoms(tmp_path / "b", cases=2, seed=11, shape=SMALL)
    c = write_phantoms(tmp_path / "c", cases=2, seed=12, shape=SMALL)
    for case in ("phantom_000", "phantom_001"):
        for sub in ("imagesTr", "labelsTr"):
            assert (a / sub / f"{case}.nii.gz").read_bytes() == (b / sub / f"{case}.nii.gz").read_bytes()
        assert not np.array_equal(_arrays(a, case)[0].array, _arrays(c, case)[0].array)


def test_phantoms_are_plausible_ct_in_msd_layout(tmp_path):
    root = write_phantoms(tmp_path / "ct", cases=4, seed=0, shape=SMALL)
    ds = discover(root)
    assert ds.layout == "msd" and ds.modality == "CT" and ds.problems == ()
    assert ds.label_names == PHANTOM_LABELS and len(ds.items) == 4
    for i, item in enumerate(ds.items):
        image, label = _arrays(root, item.case_id)
        assert image.array.dtype == np.int16 and label.array.dtype == np.uint8
        assert "".join(nib.aff2axcodes(image.affine)) == PHANTOM_ORIENTATIONS[i % 4]
        sx, sy, sz = sorted(image.spacing)
        assert 0.7 <= sx <= sy <= 0.9 and 2.0 <= sz <= 5.0
        assert set(np.unique(label.array)) == set(range(7))
        hu, lab = image.array.astype(float), label.array
        assert abs(np.median(hu[lab == 0][:500]) + 1000) < 60  # corner voxels are air
        for value, expected in ((1, 60), (2, 50), (3, 30), (5, 700), (6, 20)):
            voxels = hu[lab == value]
            assert abs(voxels.mean() - expected) < 1 + 60 / np.sqrt(voxels.size), (value, voxels.mean())
        assert 10 < hu[lab == 1].std() < 20  # ~15 HU noise


def test_phantom_default_shapes_vary_and_bad_arguments_raise(tmp_path):
    root = write_phantoms(tmp_path / "d", cases=2, seed=1)
    shapes = [sorted(read_volume(p).array.shape) for p in sorted((root / "imagesTr").iterdir())]
    assert shapes[0] != shapes[1]
    assert all(40 <= s[0] <= 56 and 112 <= s[1] <= s[2] <= 144 for s in shapes)
    with pytest.raises(ConfigError, match="cases=0"):
        write_phantoms(tmp_path / "e", cases=0, seed=1)
    with pytest.raises(ConfigError, match="shape"):
        write_phantoms(tmp_path / "e", cases=1, seed=1, shape=(4, 4, 4))


def test_mni152_labels_rule():
    wm = np.array([0.9, 0.6, 0.5, 0.2, 0.1, 0.0])
    gm = np.array([0.1, 0.7, 0.5, 0.6, 0.2, 0.0])
    brain = np.array([1, 1, 1, 1, 1, 0])
    np.testing.assert_array_equal(mni152_labels(wm, gm, brain), [1, 2, 1, 2, 3, 0])


def test_mni152_contrasts_reorder_the_tissues():
    rng = np.random.default_rng(0)
    wm, gm = np.zeros((6, 5, 4), np.float32), np.zeros((6, 5, 4), np.float32)
    wm[:2], gm[2:4] = 1.0, 1.0  # rows 4-5 of the brain: CSF (the mask's rest)
    brain = np.ones((6, 5, 4), np.uint8)
    brain[:, :, 0] = 0
    t1 = (np.where(wm > 0, 210, np.where(gm > 0, 160, 60)) + rng.normal(0, 2, wm.shape)) * brain  # 0 outside
    order = {}
    for contrast in CONTRASTS:
        image = mni152_contrast(t1, wm, gm, brain, contrast)
        assert image.dtype == np.uint8 and image.shape == wm.shape and not image[:, :, 0].any()
        order[contrast] = [float(image[rows, :, 1:].mean()) for rows in (slice(0, 2), slice(2, 4), slice(4, 6))]
    assert order["t1"][0] > order["t1"][1] > order["t1"][2]  # WM > GM > CSF
    assert order["t2"][2] > order["t2"][1] > order["t2"][0]  # CSF > GM > WM
    assert order["flair"][1] > order["flair"][0] > order["flair"][2]  # GM > WM > CSF
    assert order["t1inv"][2] > order["t1inv"][1] > order["t1inv"][0]
    with pytest.raises(ConfigError, match="unknown MNI152 contrast"):
        mni152_contrast(t1, wm, gm, brain, "dwi")


@pytest.mark.slow
def test_write_mni152_in_another_contrast_keeps_the_labels(tmp_path):
    t1 = _arrays(write_mni152(tmp_path / "t1"), "mni152")[1].array
    root = write_mni152(tmp_path / "t2", "t2")
    image, label = _arrays(root, "mni152_t2")
    assert (
        np.array_equal(label.array, t1) and image.array[label.array == 2].mean() > image.array[label.array == 1].mean()
    )


@pytest.mark.slow
def test_write_mni152_writes_the_template_and_sane_labels(tmp_path):
    start = time.perf_counter()
    root = write_mni152(tmp_path / "mni")
    elapsed = time.perf_counter() - start
    ds = discover(root)
    assert ds.layout == "msd" and ds.modality == "MR" and ds.problems == ()
    assert ds.label_names == {0: "background", 1: "white_matter", 2: "grey_matter", 3: "other_brain"}
    image, label = _arrays(root, "mni152")
    assert image.array.shape == (197, 233, 189) and image.spacing == (1.0, 1.0, 1.0)
    counts = np.bincount(label.array.ravel(), minlength=4)
    assert counts[1] > 100_000 and counts[2] > 100_000 and counts[3] > 10_000
    assert counts[1:].sum() < 0.3 * label.array.size  # the brain is a minority of the box
    assert image.array[label.array == 1].mean() > image.array[label.array == 2].mean()  # T1: WM brighter
    assert elapsed < 30
