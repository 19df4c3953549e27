"""The trainer with the real LiteMedSAM (bundled weights): LoRA in the last block + decoder, a few steps."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pipelines.ingest import ingest
from pipelines.mixtures import MixtureConfig, make_mixture
from samdata.io.sample_data import write_phantoms
from samdata.normalise import IngestConfig
from training.config import TrainConfig
from training.run import RunLayout, load_run
from training.train import TrainHooks, train


@pytest.mark.slow
def test_litemedsam_lora_last_block_trains_and_reloads(tmp_path: Path):
    write_phantoms(tmp_path / "src", cases=2, seed=3, shape=(64, 64, 8))
    ingest(tmp_path / "src", tmp_path / "store", IngestConfig(min_object_voxels=50, min_object_pixels=20))
    make_mixture(tmp_path / "store", "mix", MixtureConfig(labels=("liver",), seed=0, splits=(0.5, 0.5, 0.0)))
    messages: list[str] = []
    config = TrainConfig(
        store=str(tmp_path / "store"),
        mixture="mix",
        adapter="lora:r=2,blocks=9+decoder",
        steps=2,
        batch_size=1,
        val_max=1,
        save_every=2,
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two contending threads are several times slower on a shared 2-core runner
    try:
        result = train(config, tmp_path / "run", hooks=TrainHooks(on_message=messages.append))
    finally:
        torch.set_num_threads(threads)
    assert result.step == 2 and 0.0 <= result.val_dice <= 1.0 and result.info["first_adapted_block"] == 9
    assert result.info["base_checkpoint"] == "bundled" and result.info["base_checkpoint_sha256"].startswith("79d8c9dc")
    assert any("activations entering block 9" in m for m in messages)
    size = RunLayout(tmp_path / "run").last.stat().st_size  # trainable weights + 2 AdamW moments, not the base
    assert size < 12 * result.info["trainable"] + 2**20 < 12 * result.info["total"]
    loaded = load_run(tmp_path / "run")
    assert loaded.model.name == "litemedsam" and not loaded.model.training
    assert not loaded.model.mask_decoder.iou_prediction_head.layers[0].weight.requires_grad  # no IoU loss: frozen
    lora = dict(loaded.model.named_parameters())["image_encoder.layers.3.blocks.1.attn.qkv.b_q.weight"]
    assert lora.abs().sum() > 0 and torch.isfinite(lora).all()  # trained away from its zero start
