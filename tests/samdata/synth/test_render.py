"""Tests of samdata.synth.render (labels2image): tissue order, random contrasts, skull-stripping, params."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from samdata.errors import ConfigError, RegistryError
from samdata.synth.deform import DeformGenerator
from samdata.synth.render import LabelsToImageGenerator, RenderParams, kmeans_1d
from tests.samdata.synth.pairs_data import atlas


def test_labels2image_near_keeps_the_tissue_order(shapes: DeformGenerator) -> None:
    gen = LabelsToImageGenerator(shapes.reference, RenderParams(mode="near"), shapes=shapes)
    batch = gen.batch(0, list(range(12)))
    deformed = shapes.batch(0, list(range(12)))
    assert np.array_equal(batch.labels, deformed.labels)  # the same shapes as deform draws, new intensities
    assert not np.array_equal(batch.images, deformed.images)
    for image, label in zip(batch.images, batch.labels):
        medians = [np.median(image[label == v]) for v in (1, 2, 3)]
        assert medians[0] > medians[1] > medians[2]
    again = gen.batch(0, [4])
    assert np.array_equal(again.images[0], batch.images[4])
    assert gen.realistic and gen.description == "samdata:labels2image:near"


def test_labels2image_random_draws_every_contrast(shapes: DeformGenerator) -> None:
    gen = LabelsToImageGenerator(shapes.reference, RenderParams(mode="random"), shapes=shapes)
    batch = gen.batch(1, list(range(16)))
    order = [np.median(img[lab == 1]) > np.median(img[lab == 2]) for img, lab in zip(batch.images, batch.labels)]
    assert 0 < sum(order) < 16 and not gen.realistic
    assert batch.images.max() > 200 and batch.images.min() < 30  # rescaled to the full range


def test_labels2image_strip_blacks_out_the_background(shapes: DeformGenerator) -> None:
    plain = LabelsToImageGenerator(shapes.reference, RenderParams(mode="random"), shapes=shapes).batch(2, [0, 1, 2])
    gen = LabelsToImageGenerator(shapes.reference, RenderParams(mode="random", strip=1.0), shapes=shapes)
    batch = gen.batch(2, [0, 1, 2])
    assert np.array_equal(batch.labels, plain.labels)
    for image, label, before in zip(batch.images, batch.labels, plain.images):
        assert (image[label == 0] == 0).all() and (before[label == 0] > 0).any()
        assert image[label > 0].std() > 10  # tissues still drawn with contrast
    half = LabelsToImageGenerator(shapes.reference, RenderParams(mode="random", strip=0.5), shapes=shapes)
    flat = [
        (img[lab == 0] == 0).all()
        for img, lab in zip(*(lambda b: (b.images, b.labels))(half.batch(3, list(range(16)))))
    ]
    assert 0 < sum(flat) < 16
    with pytest.raises(ConfigError, match="strip"):
        RenderParams(strip=1.5)


def test_render_params_and_clusters() -> None:
    centres = kmeans_1d(np.r_[np.full(50, 10.0), np.full(50, 200.0)], 2)
    assert np.allclose(centres, [10.0, 200.0])
    assert len(kmeans_1d(np.zeros(0), 3)) == 3
    with pytest.raises(RegistryError, match="near, random"):
        RenderParams(mode="wild")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="clusters"):
        RenderParams(clusters=0)


def test_smooth_sub_classes_are_regions_not_pixel_noise() -> None:
    real = atlas()
    rng = np.random.default_rng(0)
    ramp = np.linspace(-30, 30, real.images.shape[-1])[None, None]  # a smooth trend inside every tissue
    noisy = np.clip(real.images + ramp + rng.normal(0, 12, real.images.shape), 0, 255).astype(np.uint8)
    shapes = DeformGenerator(replace(real, images=noisy))

    def borders(params: RenderParams) -> int:
        maps = LabelsToImageGenerator(shapes.reference, params, shapes=shapes).sub.maps.numpy()
        return int((maps[:, 1:] != maps[:, :-1]).sum() + (maps[:, :, 1:] != maps[:, :, :-1]).sum())

    assert borders(RenderParams(mode="random", smooth=2.0)) < borders(RenderParams(mode="random")) / 2
    gen = LabelsToImageGenerator(shapes.reference, RenderParams(mode="random", smooth=2.0), shapes=shapes)
    assert np.array_equal(gen.batch(0, [0, 1]).labels, shapes.batch(0, [0, 1]).labels)  # shapes unchanged
    with pytest.raises(ConfigError, match="smooth"):
        RenderParams(smooth=-1.0)
