"""Tests of the per-case 3D scores and nnU-Net's summary.json shape: hand-computed cubes and voxels, anisotropic
spacing, empty masks, one-slice cases."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from monai.metrics import compute_dice
from scipy import ndimage

from samdata.errors import ValidationError
from samdata.metrics import diagonal_mm
from samdata.volume_metrics import CASE_METRICS, case_scores, label_scores, summary


def _cube(shape: tuple[int, ...], lo: tuple[int, ...], hi: tuple[int, ...]) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[tuple(slice(a, b) for a, b in zip(lo, hi))] = True
    return mask


def test_shifted_cubes_count_overlap_as_nnunet_and_monai_do():
    ref = _cube((12, 12, 12), (2, 2, 2), (8, 8, 8))  # 216 voxels
    pred = _cube((12, 12, 12), (2, 2, 3), (8, 8, 9))  # shifted one voxel along the last axis
    scores = label_scores(pred, ref, (1.0, 1.0, 1.0), 2.0)
    assert (scores["TP"], scores["FP"], scores["FN"]) == (180, 36, 36) and scores["TN"] == 12**3 - 252
    assert (scores["n_pred"], scores["n_ref"]) == (216, 216)
    assert scores["Dice"] == pytest.approx(360 / 432) and scores["IoU"] == pytest.approx(180 / 252)
    monai = compute_dice(torch.from_numpy(pred[None, None]).float(), torch.from_numpy(ref[None, None]).float())
    assert scores["Dice"] == pytest.approx(float(monai[0, 0]))
    assert list(scores) == list(CASE_METRICS)


def test_nested_cubes_surface_distances_by_hand():
    """A 4-cube inside a 6-cube, 1 mm voxels: every inner boundary voxel lies 1 mm from the outer surface; of
    the outer boundary's 152 voxels, 96 face voxels lie 1 mm, 48 edge voxels sqrt 2 and 8 corners sqrt 3 from
    the inner one."""
    ref = _cube((12, 12, 12), (3, 3, 3), (9, 9, 9))
    pred = _cube((12, 12, 12), (4, 4, 4), (8, 8, 8))
    scores = label_scores(pred, ref, (1.0, 1.0, 1.0), 1.0)
    assert scores["Dice"] == pytest.approx(2 * 64 / (64 + 216))
    assert scores["NSD"] == pytest.approx((56 + 96) / (56 + 152))  # 56 inner + 96 outer voxels within 1 mm
    outer = np.sort([1.0] * 96 + [math.sqrt(2)] * 48 + [math.sqrt(3)] * 8)
    assert scores["HD95"] == pytest.approx(np.percentile(outer, 95), abs=1e-5)  # max of the directed 95th
    assert label_scores(pred, ref, (1.0, 1.0, 1.0), 1.5)["NSD"] == pytest.approx((56 + 96 + 48) / 208)


def test_single_voxels_apart_take_the_spacing_of_their_axis():
    ref = _cube((6, 8, 8), (2, 2, 2), (3, 3, 3))
    spacing = (2.5, 1.0, 0.8)  # anisotropic, in the array's axis order
    along_first = _cube((6, 8, 8), (4, 2, 2), (5, 3, 3))  # 2 voxels along axis 0: 5 mm
    along_last = _cube((6, 8, 8), (2, 2, 5), (3, 3, 6))  # 3 voxels along axis 2: 2.4 mm
    assert label_scores(along_first, ref, spacing, 1.0)["HD95"] == pytest.approx(5.0)
    assert label_scores(along_last, ref, spacing, 1.0)["HD95"] == pytest.approx(2.4)
    assert label_scores(along_last, ref, spacing, 2.4)["NSD"] == pytest.approx(1.0)
    assert label_scores(along_first, ref, spacing, 4.9)["NSD"] == 0.0
    assert label_scores(along_first, ref, spacing, 1.0)["Dice"] == 0.0


def _brute_force_hd95(pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...]) -> float:
    """Symmetric HD95 between the 6-connected boundaries, every pair of boundary voxels measured."""
    cross = ndimage.generate_binary_structure(3, 1)
    a = np.argwhere(pred & ~ndimage.binary_erosion(pred, cross)) * spacing
    b = np.argwhere(ref & ~ndimage.binary_erosion(ref, cross)) * spacing
    d = np.linalg.norm(a[:, None] - b[None], axis=-1)
    return max(np.percentile(d.min(1), 95), np.percentile(d.min(0), 95))


def test_anisotropic_cubes_match_every_pair_measured():
    ref = _cube((10, 14, 14), (2, 3, 3), (7, 10, 11))
    pred = _cube((10, 14, 14), (3, 4, 2), (8, 12, 10))
    spacing = (3.0, 0.7, 1.2)
    assert label_scores(pred, ref, spacing, 1.0)["HD95"] == pytest.approx(
        _brute_force_hd95(pred, ref, spacing), abs=1e-4
    )


def test_empty_masks_follow_nnunet():
    empty = np.zeros((5, 6, 7), dtype=bool)
    some = _cube((5, 6, 7), (1, 1, 1), (3, 3, 3))
    both = label_scores(empty, empty, (1.0, 2.0, 3.0), 1.0)
    assert all(math.isnan(both[m]) for m in ("Dice", "IoU", "NSD", "HD95")) and both["TN"] == 5 * 6 * 7
    for pred, ref in ((some, empty), (empty, some)):  # a false alarm, a miss
        one = label_scores(pred, ref, (1.0, 2.0, 3.0), 1.0)
        assert (one["Dice"], one["IoU"], one["NSD"]) == (0.0, 0.0, 0.0)
        assert one["HD95"] == pytest.approx(diagonal_mm((5, 6, 7), (1.0, 2.0, 3.0)))


def test_a_one_slice_case_is_scored_in_2d():
    ref = np.zeros((9, 9, 1), dtype=np.uint8)  # (X, Y, 1), as a PNG's source grid
    ref[2:7, 2:7] = 1
    pred = np.zeros_like(ref)
    pred[2:7, 3:8] = 1  # shifted one pixel along Y
    scores = case_scores(pred, ref, [1], (0.5, 2.0, 1.0), 1.0)["1"]
    assert scores["HD95"] == pytest.approx(2.0)  # one pixel along Y; in 3D every pixel would be boundary
    assert 0 < scores["NSD"] < 1
    with pytest.raises(ValidationError, match="one shape"):
        case_scores(pred, ref[:8], [1], (0.5, 2.0, 1.0), 1.0)


def test_summary_has_nnunet_keys_and_means_skip_cases_empty_in_both():
    ref = np.zeros((4, 6, 6), dtype=np.uint8)
    ref[1:3, 1:3, 1:3] = 1
    good = case_scores(ref, ref, [1, 2], (1.0, 1.0, 1.0), 1.0)  # label 2 in neither: NaN
    pred = ref.copy()
    pred[3, 4:6, 4:6] = 2  # a false alarm of label 2
    bad = case_scores(pred, ref, [1, 2], (1.0, 1.0, 1.0), 1.0)
    cases = [
        {"metrics": good, "prediction_file": "/p/a.nii.gz", "reference_file": "/r/a.nii.gz"},
        {"metrics": bad, "prediction_file": "/p/b.nii.gz", "reference_file": "/r/b.nii.gz"},
    ]
    found = summary(cases)
    assert list(found) == ["metric_per_case", "mean", "foreground_mean"]
    assert set(found["metric_per_case"][0]) == {"metrics", "prediction_file", "reference_file"}
    assert set(found["mean"]) == {"1", "2"} and set(found["mean"]["1"]) == set(CASE_METRICS)
    assert found["mean"]["1"]["Dice"] == 1.0
    assert found["mean"]["2"]["Dice"] == 0.0  # case a (NaN) does not count
    assert found["mean"]["2"]["FP"] == 2.0  # the counts are defined in both cases: (0 + 4) / 2
    assert found["foreground_mean"]["Dice"] == 0.5  # the mean of the label means
    assert math.isnan(json.loads(json.dumps(found))["metric_per_case"][0]["metrics"]["2"]["Dice"])  # NaN, as nnU-Net


def test_a_label_empty_everywhere_has_no_mean():
    empty = np.zeros((3, 4, 4), dtype=np.uint8)
    found = summary([{"metrics": case_scores(empty, empty, [1], (1.0, 1.0, 1.0), 1.0)}])
    assert math.isnan(found["mean"]["1"]["Dice"]) and math.isnan(found["foreground_mean"]["Dice"])
