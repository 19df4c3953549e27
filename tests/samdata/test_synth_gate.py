"""The synthetic-pair quality gate: degenerate masks, memorised copies, image/mask consistency, Fréchet distance."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from samdata.errors import ConfigError, ValidationError
from samdata.synth.gate import (GateConfig, calibrate, count_components, frechet_distance, mask_box, nearest_distance,
                                run_gate, thumbnails)


def threshold_segmenter(images: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """A classical segmenter: pixels brighter than 128 inside the box."""
    out = np.zeros(images.shape, bool)
    for i, (x0, y0, x1, y1) in enumerate(boxes.astype(int)):
        out[i, y0:y1, x0:x1] = images[i, y0:y1, x0:x1] > 128
    return out


def mean_intensity_features(images: np.ndarray) -> np.ndarray:
    """A 4-number description per image (quadrant means), enough for a Fréchet distance."""
    h, w = images.shape[1] // 2, images.shape[2] // 2
    return np.stack([images[:, :h, :w].mean((1, 2)), images[:, :h, w:].mean((1, 2)),
                     images[:, h:, :w].mean((1, 2)), images[:, h:, w:].mean((1, 2))], axis=1) / 255.0


def square_pair(top: int, left: int, side: int, noise_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A bright square on a noisy dark (48, 40) background and its label map (value 1)."""
    rng = np.random.default_rng(noise_seed)
    image = rng.integers(10, 60, (48, 40)).astype(np.uint8)
    label = np.zeros((48, 40), np.uint8)
    label[top:top + side, left:left + side] = 1
    image[label == 1] = 200
    return image, label


@pytest.fixture
def reals() -> tuple[np.ndarray, np.ndarray]:
    pairs = [square_pair(4 + 5 * i, 3 + 4 * i, 12 + i, i) for i in range(5)]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def test_measurements() -> None:
    mask = np.zeros((10, 12), bool)
    mask[2:4, 3:6] = True
    mask[7, 9] = True
    assert mask_box(mask) == (3, 2, 10, 8) and count_components(mask) == 2
    a = np.random.default_rng(0).random((3, 16))
    assert np.allclose(nearest_distance(a, a), 0.0)
    assert np.all(nearest_distance(a, a, exclude_self=True) > 0)
    assert thumbnails(np.full((2, 30, 20), 255, np.uint8)).shape == (2, 64 * 64)


def test_frechet_distance_matches_the_gaussian_closed_form() -> None:
    rng = np.random.default_rng(0)
    real = rng.standard_normal((4000, 3))
    assert frechet_distance(real, real) == pytest.approx(0.0, abs=1e-6)
    shifted = rng.standard_normal((4000, 3)) + np.array([1.0, 2.0, 0.0])
    assert frechet_distance(real, shifted) == pytest.approx(5.0, rel=0.05)
    assert math.isnan(frechet_distance(real, shifted[:1]))
    assert math.isfinite(frechet_distance(rng.random((5, 64)), rng.random((6, 64))))  # singular covariances


def test_calibration_fills_thresholds_from_real_slices(reals: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = reals
    config, ref = calibrate(GateConfig(), images, labels, (1,), threshold_segmenter, mean_intensity_features)
    assert ref.real_dice and min(ref.real_dice) > 0.99
    assert config.min_dice == pytest.approx(0.8 * 1.0)
    assert config.max_components == 1 + 2
    assert config.min_distance == pytest.approx(0.25 * ref.real_nn_distance)
    fixed, _ = calibrate(GateConfig(min_dice=0.3, min_distance=0.01, max_components=1), images, labels, (1,),
                         threshold_segmenter, None)
    assert (fixed.min_dice, fixed.min_distance, fixed.max_components) == (0.3, 0.01, 1)


def test_gate_rejects_each_failure_for_its_reason(reals: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = reals
    config, ref = calibrate(GateConfig(min_area=20, max_area_fraction=0.5), images, labels, (1,),
                            threshold_segmenter, mean_intensity_features)
    good = square_pair(20, 15, 14, 100)
    empty = (good[0], np.zeros_like(good[1]))
    tiny = (good[0], np.where(np.arange(40)[None, :] < 2, 1, 0).astype(np.uint8) * (np.arange(48)[:, None] < 2))
    huge = (good[0], np.ones_like(good[1]))
    scattered = good[0], np.zeros_like(good[1])
    scattered[1][::6, ::6] = 1
    copy = (images[2], labels[2])
    wrong = (good[0], np.roll(good[1], 14, axis=1))  # mask beside the bright square: the segmenter disagrees
    batch = [good, empty, tiny, huge, scattered, copy, wrong]
    report = run_gate(np.stack([b[0] for b in batch]), np.stack([b[1] for b in batch]), (1,), config, ref,
                      threshold_segmenter, mean_intensity_features)
    got = [v.reasons for v in report.verdicts]
    assert got[0] == [] and report.verdicts[0].accepted and report.verdicts[0].scores["dice"] > 0.99
    assert got[1] == ["empty"] and got[2] == ["area"] and got[3] == ["area"]
    assert "components" in got[4]
    assert got[5] == ["memorised"] and report.verdicts[5].scores["distance"] == 0.0
    assert got[6] == ["consistency"]
    assert report.accepted == 1 and report.rejected == 6
    assert report.reasons() == {"empty": 1, "area": 2, "components": 1, "memorised": 1, "consistency": 1}
    summary = report.summary()
    json.dumps(summary)
    assert summary["generated"] == 7 and math.isfinite(report.frechet) and math.isnan(report.frechet_accepted)


def test_image_only_pairs_and_errors(reals: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = reals
    config, ref = calibrate(GateConfig(consistency=False), images, labels, (1,), None, None)
    report = run_gate(np.stack([square_pair(20, 15, 14, 9)[0], images[0]]), None, (1,), config, ref)
    assert [v.reasons for v in report.verdicts] == [[], ["memorised"]]
    assert math.isnan(report.frechet)
    on, ref_on = calibrate(GateConfig(), images, labels, (1,), threshold_segmenter, None)
    with pytest.raises(ConfigError, match="segmenter"):
        run_gate(images, labels, (1,), on, ref_on, None)
    with pytest.raises(ValidationError, match="uint8"):
        run_gate(images.astype(np.float32), labels, (1,), config, ref)
    with pytest.raises(ConfigError, match="min_dice"):
        GateConfig(min_dice=1.5)
