"""Generators driven by label maps: fields, registration morphs, ``deform`` and ``labels2image``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from samdata.errors import ConfigError, RegistryError
from samdata.synth import fields
from samdata.synth.deform import DeformGenerator, DeformParams, neighbour_pairs
from samdata.synth.morph import label_levels, register
from samdata.synth.pairs import RealPairs
from samdata.synth.render import LabelsToImageGenerator, RenderParams, kmeans_1d
from tests.samdata.synth.pairs_data import LUT, atlas


@pytest.fixture(scope="module")
def shapes() -> DeformGenerator:
    return DeformGenerator(atlas())


def test_fields_identity_affine_and_folding() -> None:
    coords = fields.identity(5, 7, 2)
    image = torch.arange(35, dtype=torch.float32).view(1, 1, 5, 7).expand(2, 1, 5, 7)
    assert torch.allclose(fields.warp(image, coords), image, atol=1e-4)
    assert torch.allclose(fields.jacobian_det(coords), torch.ones(2, 4, 6))
    labels = torch.randint(0, 3, (2, 5, 7))
    assert torch.equal(fields.warp_labels(labels, coords, 3), labels)
    mirrored = coords.clone()
    mirrored[..., 0] = 6 - mirrored[..., 0]  # a reflection: orientation reversed, determinant -1
    assert torch.all(fields.jacobian_det(mirrored) < 0)
    rng = np.random.default_rng(0)
    matrix = torch.from_numpy(fields.affine_matrix(rng, 0.0, 0.0, 0.0, (1.0, 1.0)))[None]
    assert torch.allclose(fields.apply_affine(coords[:1], matrix), coords[:1])
    control = fields.control_field(rng, (40, 50), (0.5, 2.0), 4.0, 10.0)  # 25 x 80 mm: 4 x 9 points
    assert control.shape == (2, 9, 4) and np.abs(control[0]).max() <= 8.0 and np.abs(control[1]).max() <= 2.0


def test_registration_moves_one_slice_onto_the_other() -> None:
    ref = atlas()
    a, b = ref.full_labels[0], ref.full_labels[3]
    u = register(b, a, label_levels(ref.images, ref.full_labels, (0, 1, 2, 3)))
    coords = fields.identity(*a.shape) + torch.from_numpy(u).permute(1, 2, 0)[None]
    warped = fields.warp_labels(torch.from_numpy(a.astype(np.int64))[None], coords, 4)[0].numpy()

    def dice(x: np.ndarray, y: np.ndarray) -> float:
        return 2 * (x & y).sum() / (x.sum() + y.sum())

    assert dice(a == 1, b == 1) < 0.75 < dice(warped == 1, b == 1)
    assert fields.jacobian_det(coords).min() > 0


def test_deform_pairs_agree_with_their_label_maps(shapes: DeformGenerator) -> None:
    batch = shapes.batch(0, list(range(24)))
    assert batch.images.shape == batch.labels.shape == (24, 72, 64) and batch.images.dtype == np.uint8
    assert set(np.unique(batch.labels)) <= {0, 1, 2, 3}
    # image = LUT[label] before the warp, and still wherever a pixel's 3 x 3 neighbours share its label (only
    # boundary pixels blend two tissues): image and label went through the same coordinates
    interior = ndimage.maximum_filter(batch.labels, size=(1, 3, 3)) == ndimage.minimum_filter(
        batch.labels, size=(1, 3, 3)
    )
    assert interior.mean() > 0.8 and (batch.images == LUT[batch.labels])[interior].mean() > 0.995
    ops = {r["op"] for r in batch.recipes}
    assert ops == {"deform", "morph"}
    for recipe, parents in zip(batch.recipes, batch.parents):
        assert all(p in shapes.reference.keys for p in parents)
        if recipe["op"] == "morph":
            assert 0.1 <= recipe["t"] <= 0.9 and len(parents) == 2 and recipe["to"][1] - recipe["from"][1] == 10


def test_deform_is_seeded_per_sample_and_never_folds(shapes: DeformGenerator) -> None:
    whole = shapes.batch(3, list(range(8)))
    alone = shapes.batch(3, [5])
    assert np.array_equal(whole.images[5], alone.images[0]) and np.array_equal(whole.labels[5], alone.labels[0])
    assert not np.array_equal(shapes.batch(4, [5]).images[0], alone.images[0])
    many = shapes.batch(0, list(range(64)))
    assert many.min_jacobian.min() > 0  # default fields and morphs: no fold
    wild = DeformGenerator(atlas(), DeformParams(max_mm=30.0, control_mm=6.0))
    assert wild.batch(0, list(range(16))).min_jacobian.min() <= 0  # a field that folds is seen (the gate drops it)


def test_neighbours_and_params() -> None:
    keys = (("a", 30), ("a", 10), ("b", 10), ("a", 90), ("a", 20))
    assert neighbour_pairs(keys, 40) == [(1, 4), (4, 0)]
    with pytest.raises(ConfigError, match="morph"):
        DeformParams(morph=1.5)
    with pytest.raises(ConfigError, match="t range"):
        DeformParams(t_min=0.6, t_max=0.4)
    one = RealPairs(
        *(lambda r: (r.images[:1], r.masks[:1], r.label_values, r.label_names, r.spacing, r.modality, r.keys[:1]))(
            atlas()
        ),
        full_labels=atlas().full_labels[:1],
        all_labels=atlas().all_labels,
    )
    single = DeformGenerator(one).batch(0, list(range(4)))  # one slice: no morphs, still pairs
    assert {r["op"] for r in single.recipes} == {"deform"}


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
