"""Tests of samdata.synth.deform: pairs agree with their label maps, seeded, never folding."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from samdata.errors import ConfigError
from samdata.synth.deform import DeformGenerator, DeformParams, neighbour_pairs
from samdata.synth.pairs import RealPairs
from tests.samdata.synth.pairs_data import LUT, atlas


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
