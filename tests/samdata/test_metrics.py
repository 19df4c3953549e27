"""Metrics against hand-computed values: Dice, IoU, NSD and HD95 on a shifted square, MAE, empty masks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from samdata.errors import ConfigError, ValidationError
from samdata.metrics import MetricConfig, diagonal_mm, dice, hd95, iou, mae, object_metrics, surface_dice


def _square(x0: int, y0: int, side: int = 10, shape: tuple[int, int] = (32, 32)) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[y0 : y0 + side, x0 : x0 + side] = True
    return mask


GT = _square(10, 10)
SHIFTED = _square(12, 10)  # the same 10x10 square moved 2 pixels along x


def test_dice_and_iou_of_a_shifted_square():
    # overlap 10 x 8 = 80 pixels of two 100-pixel squares
    assert dice(SHIFTED, GT) == pytest.approx(2 * 80 / 200)
    assert iou(SHIFTED, GT) == pytest.approx(80 / 120)
    assert dice(GT, GT) == iou(GT, GT) == 1.0


def test_hd95_follows_the_spacing_of_the_shifted_axis():
    # x pixels 0.5 mm: the 2-pixel shift is 1 mm, and every boundary pixel is within 1 mm of the other
    # boundary (10 of 36 right-edge pixels are exactly 1 mm away), so the 95th percentile is 1 mm
    assert hd95(SHIFTED, GT, (1.0, 0.5)) == pytest.approx(1.0)
    # x pixels 1 mm (y 0.5 mm): the shift is 2 mm
    assert hd95(SHIFTED, GT, (0.5, 1.0)) == pytest.approx(2.0)
    assert hd95(GT, GT, (1.0, 1.0)) == 0.0


def test_surface_dice_counts_boundary_pixels_within_tolerance():
    spacing = (1.0, 0.5)  # shift 1 mm
    assert surface_dice(SHIFTED, GT, spacing, tolerance_mm=1.0) == pytest.approx(1.0)
    # within 0.5 mm: per side the top and bottom rows of the overlap plus one pixel: 18 of 36
    assert surface_dice(SHIFTED, GT, spacing, tolerance_mm=0.5) == pytest.approx(36 / 72)
    # exactly on the other boundary: the 8 shared pixels of the top and of the bottom row, per side
    assert surface_dice(SHIFTED, GT, spacing, tolerance_mm=0.0) == pytest.approx(32 / 72)


def test_mae_of_probabilities():
    prob = np.zeros((4, 4), dtype=np.float32)
    gt = np.zeros((4, 4), dtype=bool)
    gt[:2, :2] = True  # 4 object pixels
    prob[:2, :2] = 0.75  # error 0.25 on each of them
    prob[3, 3] = 0.5  # one false-alarm pixel, error 0.5
    assert mae(prob, gt) == pytest.approx((4 * 0.25 + 0.5) / 16)


def test_empty_masks_have_defined_values():
    empty = np.zeros((20, 30), dtype=bool)
    obj = _square(2, 2, 5, (20, 30))
    spacing = (2.0, 1.0)  # 20 rows of 2 mm, 30 columns of 1 mm: diagonal sqrt(40^2 + 30^2) = 50 mm
    assert diagonal_mm(empty.shape, spacing) == pytest.approx(50.0)
    both = object_metrics(empty.astype(np.float32), empty, spacing)
    assert both == {"dice": 1.0, "iou": 1.0, "nsd": 1.0, "hd95": 0.0, "mae": 0.0, "gt_area": 0, "pred_area": 0}
    missed = object_metrics(np.zeros((20, 30), np.float32), obj, spacing)
    assert (missed["dice"], missed["iou"], missed["nsd"]) == (0.0, 0.0, 0.0)
    assert missed["hd95"] == pytest.approx(50.0) and missed["mae"] == pytest.approx(25 / 600)
    false_alarm = object_metrics(obj.astype(np.float32), empty, spacing)
    assert (false_alarm["dice"], false_alarm["nsd"], false_alarm["hd95"]) == (0.0, 0.0, pytest.approx(50.0))
    assert all(math.isfinite(v) for v in missed.values())


def test_object_metrics_thresholds_probabilities_and_works_in_3d():
    prob = np.where(SHIFTED, 0.9, 0.1).astype(np.float32)
    scores = object_metrics(prob, GT, (1.0, 0.5), MetricConfig(tolerance_mm=1.0))
    assert scores["dice"] == pytest.approx(0.8) and scores["nsd"] == pytest.approx(1.0)
    assert scores["pred_area"] == 100 and scores["gt_area"] == 100
    assert scores["mae"] == pytest.approx((40 * 0.9 + (1024 - 40) * 0.1) / 1024)  # 40 pixels are wrong
    volume_gt = np.stack([GT, GT])
    volume_pred = np.stack([SHIFTED, SHIFTED])
    assert dice(volume_pred, volume_gt) == pytest.approx(0.8)
    assert hd95(volume_pred, volume_gt, (3.0, 1.0, 0.5)) == pytest.approx(1.0)


def test_bad_inputs_name_the_problem():
    with pytest.raises(ValidationError, match=r"\(32, 32\) and \(4, 4\)"):
        dice(GT, np.zeros((4, 4), bool))
    with pytest.raises(ValidationError, match="spacing"):
        hd95(SHIFTED, GT, (1.0,))
    with pytest.raises(ValidationError, match="spacing"):
        surface_dice(SHIFTED, GT, (1.0, -2.0))
    with pytest.raises(ConfigError, match="tolerance_mm=-1"):
        MetricConfig(tolerance_mm=-1)
    with pytest.raises(ConfigError, match="threshold=1.5"):
        MetricConfig(threshold=1.5)
