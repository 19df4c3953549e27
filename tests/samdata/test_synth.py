"""samdata.synth: paired generators, DiffAugment, hinge loss, the training loop, sampling and pair conversions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from samdata.errors import ConfigError, RegistryError, ValidationError
from samdata.synth.augment import POLICIES, diff_augment, parse_policy
from samdata.synth.checkpoint import load_generator, read_info
from samdata.synth.losses import d_hinge, g_hinge
from samdata.synth.networks import GENERATORS, NetConfig, build_networks
from samdata.synth.pairs import RealPairs, binary_mask, grey_uint8, to_model, to_store_grid
from samdata.synth.sample import generate_pairs, generate_raw
from samdata.synth.train import GanConfig, train_gan

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
    return RealPairs(images, masks, (3,), ("blob",), (0.8, 0.9, 2.0), "MR",
                     tuple((f"case{i}", 0) for i in range(n)), "memory://blobs", "SNAP")


@pytest.mark.parametrize("arch", sorted(GENERATORS))
def test_every_registered_generator_makes_image_and_masks(arch: str) -> None:
    config = NetConfig(arch=arch, size=32, width=4, latent=8, labels=2)
    g, d = build_networks(config, seed=0)
    out = g(torch.randn(3, 8))
    assert out.shape == (3, 3, 32, 32)
    assert out[:, 0].abs().max() <= 1.0
    assert d(out).shape == (3,)


def test_networks_seeded_and_validated() -> None:
    config = NetConfig(size=32, width=4, latent=8)
    a, b, c = build_networks(config, 1)[0], build_networks(config, 1)[0], build_networks(config, 2)[0]
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), c.state_dict().values()))
    with pytest.raises(RegistryError, match="dcgan, fastgan"):
        NetConfig(arch="stylegan")
    with pytest.raises(ConfigError, match="size=48"):
        NetConfig(size=48)


def test_diff_augment_is_seeded_differentiable_and_keeps_pairs_together() -> None:
    image = -torch.ones(4, 1, 32, 32)
    image[:, :, 8:20, 10:22] = 0.8
    x = torch.cat([image, torch.where(image > 0, 1.0, -1.0)], dim=1).requires_grad_(True)
    for name in POLICIES:
        a = diff_augment(x, (name,), torch.Generator().manual_seed(3))
        b = diff_augment(x, (name,), torch.Generator().manual_seed(3))
        assert a.shape == x.shape and torch.equal(a, b)
        a.sum().backward()
        assert x.grad is not None and x.grad.abs().sum() > 0
        x.grad = None
    moved = diff_augment(x, ("translation", "cutout"), torch.Generator().manual_seed(0)).detach()
    assert torch.equal(moved[:, 1] > 0, moved[:, 0] > 0)  # mask still covers exactly the bright square
    coloured = diff_augment(x, ("color",), torch.Generator().manual_seed(0)).detach()
    assert torch.equal(coloured[:, 1], x[:, 1].detach()) and not torch.equal(coloured[:, 0], x[:, 0].detach())
    assert parse_policy("none") == () and parse_policy("color, cutout") == ("color", "cutout")
    with pytest.raises(RegistryError, match="color, cutout, translation"):
        parse_policy("color,flip")


def test_hinge_losses() -> None:
    assert float(d_hinge(torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0]))) == pytest.approx(0.25 + 0.5)
    assert float(g_hinge(torch.tensor([1.0, 3.0]))) == -2.0


def test_pairs_round_trip_and_foreign_outputs() -> None:
    pairs = blob_pairs()
    x = to_model(pairs.images, pairs.masks, 64)
    assert x.shape == (6, 2, 64, 64) and x.min() >= -1 and x.max() <= 1
    logits = torch.cat([x[:, :1], (x[:, 1:] > 0).float() * 20 - 10], dim=1)
    images, labels = to_store_grid(logits, pairs.grid, pairs.label_values)
    assert images.dtype == np.uint8 and images.shape == pairs.images.shape
    assert set(np.unique(labels)) <= {0, 3}
    overlap = ((labels == 3) & pairs.masks[:, 0]).sum() * 2 / ((labels == 3).sum() + pairs.masks[:, 0].sum())
    assert overlap > 0.9
    assert np.abs(images.astype(int) - pairs.images).mean() < 12
    rgb = np.zeros((5, 4, 3), np.uint8)
    rgb[..., 1] = 100
    assert grey_uint8(rgb).tolist() == [[59] * 4] * 5
    assert grey_uint8(np.full((3, 3), 0.5, np.float32)).max() == 128
    assert binary_mask(np.array([[0, 255], [255, 0]], np.uint8)).tolist() == [[False, True], [True, False]]
    with pytest.raises(ValidationError, match="masks"):
        RealPairs(pairs.images, pairs.masks[:, 0], (3,), ("blob",), (1.0, 1.0, 1.0), "MR")


def test_train_gan_writes_a_generator_and_resumes_identically(tmp_path: Path) -> None:
    pairs = blob_pairs()
    seen: list[int] = []
    straight = train_gan(pairs, tmp_path / "a", GanConfig(steps=4, **TINY), generator_id="blob",
                         on_step=lambda step, total, m: seen.append(step))
    assert seen == [1, 2, 3, 4] and straight.step == 4 and len(straight.checkpoint_hash) == 64
    for name in ("generator.pt", "generator.json", "log.jsonl", "checkpoints/step-000004.pt"):
        assert (tmp_path / "a" / name).is_file(), name
    assert len((tmp_path / "a" / "log.jsonl").read_text().splitlines()) == 4
    info = read_info(tmp_path / "a")
    assert info.grid == (40, 36) and info.label_values == (3,) and info.train_keys[0] == ("case0", 0)
    train_gan(pairs, tmp_path / "b", GanConfig(steps=2, **TINY), generator_id="blob")
    resumed = train_gan(pairs, tmp_path / "b", GanConfig(steps=4, **TINY), generator_id="blob", resume=True)
    assert resumed.step == 4
    g_a, _, _ = load_generator(tmp_path / "a")
    g_b, _, _ = load_generator(tmp_path / "b")
    for (key, a), b in zip(g_a.state_dict().items(), g_b.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), key
    with pytest.raises(ConfigError, match="--resume"):
        train_gan(pairs, tmp_path / "a", GanConfig(steps=4, **TINY), generator_id="blob")
    with pytest.raises(ConfigError, match="lr"):
        train_gan(pairs, tmp_path / "a", GanConfig(steps=6, lr=1e-3, **TINY), generator_id="blob", resume=True)
    with pytest.raises(ConfigError, match="generator id"):
        train_gan(pairs, tmp_path / "c", GanConfig(steps=1, **TINY), generator_id="bad-id")


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
