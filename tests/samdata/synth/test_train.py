"""samdata.synth.train: the GAN training loop writes a generator and resumes identically."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from samdata.errors import ConfigError
from samdata.synth.checkpoint import load_generator, read_info
from samdata.synth.train import GanConfig, train_gan
from tests.samdata.synth.pairs_data import TINY, blob_pairs


def test_train_gan_writes_a_generator_and_resumes_identically(tmp_path: Path) -> None:
    pairs = blob_pairs()
    seen: list[int] = []
    straight = train_gan(
        pairs,
        tmp_path / "a",
        GanConfig(steps=4, **TINY),
        generator_id="blob",
        on_step=lambda step, total, m: seen.append(step),
    )
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
