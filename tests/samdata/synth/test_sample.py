"""samdata.synth.sample: seeded generation, the sample grid, and pairs on the store grid at larger sizes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from samdata.synth.checkpoint import load_generator
from samdata.synth.sample import generate_pairs, generate_raw
from samdata.synth.train import GanConfig, train_gan
from tests.samdata.synth.pairs_data import TINY, blob_pairs


def test_sample_grid_png_and_seeded_generation(tmp_path: Path) -> None:
    config = GanConfig(steps=1, **{**TINY, "sample_every": 1})
    result = train_gan(blob_pairs(), tmp_path / "g", config, generator_id="blob")
    assert result.samples and result.samples[0].read_bytes()[:4] == b"\x89PNG"
    generator, info, digest = load_generator(tmp_path / "g")
    assert digest == result.checkpoint_hash
    images, labels = generate_pairs(generator, info, 7, range(5))
    assert images.shape == (5, 40, 36) and images.dtype == np.uint8 and labels.shape == (5, 40, 36)
    again, _ = generate_pairs(generator, info, 7, [3])
    assert np.array_equal(again[0], images[3])  # sample k does not depend on its batch
    assert not torch.equal(generate_raw(generator, 8, [3]), generate_raw(generator, 7, [3]))
    assert json.loads((tmp_path / "g" / "generator.json").read_text())["gan"]["seed"] == 0


@pytest.mark.parametrize("size", [64, 128, 256])
def test_larger_sizes_train_a_step_and_generate_store_grid_pairs(tmp_path: Path, size: int) -> None:
    """64-128 px is the CPU setting, 256 px the GPU one: every size trains (one step here) and samples."""
    settings = {**TINY, "size": size, "batch_size": 2}
    result = train_gan(blob_pairs(n=3), tmp_path / f"g{size}", GanConfig(steps=1, **settings), generator_id="blob")
    assert result.step == 1
    generator, info, _ = load_generator(tmp_path / f"g{size}")
    assert info.net.size == size
    raw = generator(torch.randn(2, info.net.latent))
    assert raw.shape == (2, 1 + len(info.label_values), size, size)
