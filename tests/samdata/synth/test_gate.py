"""The synthetic-pair quality gate: label ranges, folding, tissue order, memorised copies, batch Fréchet distance."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from samdata.errors import ConfigError, ValidationError
from samdata.synth.gate import GateConfig, calibrate, count_components, mask_box, run_gate
from samdata.synth.quality import FEATURES, frechet_distance, image_features, nearest_distance, thumbnails


def brain_pair(shift: int, seed: int, side: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """A textured two-tissue 'slice': a bright core (label 1) in a mid ring (label 2) on black, with fine detail."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:side, :side]
    r = np.hypot(yy - side / 2 - shift, xx - side / 2 + shift)
    label = np.where(r < 18 + seed % 3, 1, np.where(r < 34, 2, 0)).astype(np.uint8)
    base = np.array([0.0, 200.0, 120.0])[label]
    texture = 12 * np.sin(xx / 1.5 + seed) * np.cos(yy / 1.7) * (label > 0)
    image = np.clip(base + texture + rng.normal(0, 3, label.shape) * (label > 0), 0, 255).astype(np.uint8)
    return image, label


@pytest.fixture
def reals() -> tuple[np.ndarray, np.ndarray]:
    pairs = [brain_pair(3 * i - 6, i) for i in range(5)]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def test_measurements() -> None:
    mask = np.zeros((10, 12), bool)
    mask[2:4, 3:6] = True
    mask[7, 9] = True
    assert mask_box(mask) == (3, 2, 10, 8) and count_components(mask) == 2 and count_components(mask, 2) == 1
    a = np.random.default_rng(0).random((3, 16))
    assert np.allclose(nearest_distance(a, a), 0.0)
    assert np.all(nearest_distance(a, a, exclude_self=True) > 0)
    assert thumbnails(np.full((2, 30, 20), 255, np.uint8)).shape == (2, 64 * 64)


def test_frechet_distance_of_standardised_diagonal_gaussians() -> None:
    rng = np.random.default_rng(0)
    real = rng.standard_normal((4000, 3))  # means near 0: the spread floor (a tenth of the mean) does not bite
    assert frechet_distance(real, real) == pytest.approx(0.0, abs=1e-9)
    shifted = real + np.array([1.0, 2.0, 0.0])  # means shifted, spreads equal
    spread = real.std(0)
    assert frechet_distance(real, shifted) == pytest.approx(((1 / spread[0]) ** 2 + (2 / spread[1]) ** 2) / 3)
    wider = real * 2  # spreads doubled: (2 - 1)^2 per feature
    assert frechet_distance(real, wider) == pytest.approx(1.0, rel=0.02)
    assert math.isnan(frechet_distance(real[:0], shifted))
    assert math.isfinite(frechet_distance(real[:1], shifted[:1]))  # one real slice: spread floored, still defined


def test_features_see_blur_that_a_thumbnail_hides(reals: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = reals
    x = torch.from_numpy(images.astype(np.float32))[:, None]
    low = F.interpolate(F.interpolate(x, size=(32, 32), mode="area"), size=images.shape[1:], mode="bilinear")
    blurred = low[:, 0].round().clamp(0, 255).to(torch.uint8).numpy()
    sharp, soft = image_features(images, labels), image_features(blurred, labels)
    detail = FEATURES.index("detail_1")
    assert sharp.shape == (5, len(FEATURES)) and np.all(soft[:, detail] < 0.6 * sharp[:, detail])
    assert frechet_distance(sharp, soft) > 10 * frechet_distance(sharp[:3], sharp[2:])


def test_calibration_records_the_real_ranges(reals: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = reals
    config, ref = calibrate(GateConfig(), images, labels)
    assert set(ref.labels) == {1, 2} and ref.labels[1].max_components == 1
    assert ref.labels[1].median > ref.labels[2].median  # the bright core above the ring
    assert ref.labels[1].min_area == min(int((lab == 1).sum()) for lab in labels)
    assert config.min_distance == pytest.approx(0.1 * ref.nn_distance)
    fixed, _ = calibrate(GateConfig(min_distance=0.01), images, labels)
    assert fixed.min_distance == 0.01
    json.dumps(ref.describe())


def test_gate_rejects_each_failure_for_its_reason(reals: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = reals
    config, ref = calibrate(GateConfig(frechet_max=None), images, labels)
    good = brain_pair(1, 7)
    empty = (good[0], np.zeros_like(good[1]))
    huge = (good[0], np.where(good[1] > 0, 1, 1).astype(np.uint8))  # label 1 everywhere: area far above real
    scattered = (good[0], good[1].copy())
    scattered[1][(np.arange(96)[:, None] % 12 < 4) & (np.arange(96)[None, :] % 12 < 4) & (good[1] == 2)] = 1
    copy = (images[2], labels[2])
    swapped = (np.where(good[1] == 1, 120, np.where(good[1] == 2, 200, 0)).astype(np.uint8), good[1])  # tissues flip
    batch = [good, empty, huge, scattered, copy, swapped, good]
    jacobians = np.array([0.5, 0.5, 0.5, 0.5, 1.0, 0.5, -0.1])
    report = run_gate(
        np.stack([b[0] for b in batch]), np.stack([b[1] for b in batch]), config, ref, jacobians=jacobians
    )
    got = [v.reasons for v in report.verdicts]
    assert got[0] == [] and report.verdicts[0].accepted and report.verdicts[0].scores["min_jacobian"] == 0.5
    assert got[1] == ["empty"] and got[2] == ["area"] and "components" in got[3]
    assert got[4] == ["memorised"] and report.verdicts[4].scores["distance"] == 0.0
    assert got[5] == ["intensity_order"] and got[6] == ["folding"]
    assert report.accepted == 1 and report.rejected == 6 and not report.batch_rejected
    assert report.reasons() == {
        "empty": 1,
        "area": 1,
        "components": 1,
        "folding": 1,
        "intensity_order": 1,
        "memorised": 1,
    }
    unreal = run_gate(np.stack([swapped[0]]), np.stack([swapped[1]]), config, ref, realistic=False)
    assert unreal.verdicts[0].accepted  # a random-contrast source is not held to the real tissue order
    summary = report.summary()
    json.dumps(summary)
    assert summary["generated"] == 7 and math.isfinite(report.frechet)


def test_frechet_rejects_a_blurry_batch_and_keeps_a_sharp_one(reals: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = reals
    config, ref = calibrate(GateConfig(), images, labels)
    fresh = [brain_pair(2 * i - 3, 10 + i) for i in range(6)]
    sharp = np.stack([p[0] for p in fresh])
    maps = np.stack([p[1] for p in fresh])
    x = torch.from_numpy(sharp.astype(np.float32))[:, None]
    blurry = (
        F.interpolate(F.interpolate(x, size=(32, 32), mode="area"), size=sharp.shape[1:], mode="bilinear")[:, 0]
        .round()
        .to(torch.uint8)
        .numpy()
    )
    kept = run_gate(sharp, maps, config, ref)
    assert kept.accepted == 6 and kept.frechet < config.frechet_max
    dropped = run_gate(blurry, maps, config, ref)
    assert dropped.batch_rejected and dropped.accepted == 0 and dropped.reasons() == {"frechet": 6}
    assert math.isnan(dropped.frechet_accepted) and dropped.frechet > config.frechet_max
    report_only = run_gate(blurry, maps, GateConfig(frechet_max=None, min_distance=0.0), ref)
    assert report_only.accepted == 6 and report_only.frechet == pytest.approx(dropped.frechet)


def test_image_only_pairs_and_errors(reals: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = reals
    config, ref = calibrate(GateConfig(frechet_max=None), images, labels)
    report = run_gate(np.stack([brain_pair(1, 9)[0], images[0]]), None, config, ref)
    assert [v.reasons for v in report.verdicts] == [[], ["memorised"]]
    with pytest.raises(ValidationError, match="uint8"):
        run_gate(images.astype(np.float32), labels, config, ref)
    with pytest.raises(ValidationError, match="shaped like"):
        run_gate(images, labels[:, :10], config, ref)
    with pytest.raises(ConfigError, match="frechet_max"):
        GateConfig(frechet_max=0)
    with pytest.raises(ConfigError, match="area_slack"):
        GateConfig(area_slack=-1)
