"""Small seeded image/mask pairs shared by the synthesis tests: blob discs for the GANs, a labelled atlas.

A plain module rather than conftest fixtures: the tests call these with arguments, and
tests/pipelines/test_synthesize.py uses TINY too.
"""

from __future__ import annotations

import numpy as np

from samdata.synth.pairs import RealPairs

TINY = dict(size=32, width=4, latent=8, batch_size=4, sample_every=0, save_every=2, log_every=1)


def blob_pairs(n: int = 6, height: int = 40, width: int = 36, seed: int = 0) -> RealPairs:
    """Seeded bright discs on a dark background with their masks."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width]
    images = np.zeros((n, height, width), np.uint8)
    masks = np.zeros((n, 1, height, width), bool)
    for i in range(n):
        cy, cx, r = rng.uniform(14, 26), rng.uniform(12, 24), rng.uniform(5, 9)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        images[i] = np.clip(30 + rng.normal(0, 8, (height, width)) + 160 * disc, 0, 255).astype(np.uint8)
        masks[i, 0] = disc
    return RealPairs(
        images,
        masks,
        (3,),
        ("blob",),
        (0.8, 0.9, 2.0),
        "MR",
        tuple((f"case{i}", 0) for i in range(n)),
        "memory://blobs",
        "SNAP",
    )


LUT = np.array([0, 210, 130, 60], dtype=np.uint8)  # background, core, ring, spot


def atlas(n: int = 4, height: int = 72, width: int = 64) -> RealPairs:
    """n slices of one 'case' 10 z apart: a ring around a core that grows with z, a small spot; image = LUT[label]."""
    yy, xx = np.mgrid[:height, :width]
    labels = np.zeros((n, height, width), np.uint8)
    for i in range(n):
        r = np.hypot((yy - 36) / 1.1, xx - 30 - i)
        labels[i][r < 26] = 2
        labels[i][r < 9 + 3 * i] = 1
        labels[i][(yy - 14) ** 2 + (xx - 46 + i) ** 2 < 9] = 3
    images = LUT[labels]
    return RealPairs(
        images,
        (labels == 1)[:, None],
        (1,),
        ("core",),
        (1.0, 1.0, 2.0),
        "MR",
        tuple(("atlas", 10 * i) for i in range(n)),
        full_labels=labels,
        all_labels=((0, "background"), (1, "core"), (2, "ring"), (3, "spot")),
    )
