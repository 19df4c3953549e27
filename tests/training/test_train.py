"""Tests of the trainer on the tiny model: run record, load_run, exact resume, prefix cache and faults."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from samdata.errors import ConfigError, RegistryError, TrainingError, ValidationError
from training.checkpoint import load_checkpoint
from training.config import TrainConfig
from training.loop import warmup_cosine
from training.run import RunLayout, load_run
from training.train import TrainHooks, train

pytestmark = pytest.mark.usefixtures("one_thread")


def _config(store: str, **values: object) -> TrainConfig:
    base = dict(store=store, mixture="mix", model="tiny", steps=4, batch_size=2, save_every=2, log_every=1, val_max=4)
    return TrainConfig(**{**base, **values})  # type: ignore[arg-type]


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(RunLayout(run_dir).last)["trainable"]


class _Stop(Exception):
    """Raised from a hook to interrupt a run, as a crash or Ctrl-C would."""


def test_config_checks_and_slice_specs(store: str):
    assert _config(store, adapter="lora:r=2,blocks=3 + decoder").adapter == "lora:r=2,alpha=2,blocks=3+decoder"
    for bad in (
        dict(steps=0),
        dict(lr=float("nan")),
        dict(cache="gpu"),
        dict(device="tpu"),
        dict(train_slices="9-3"),
        dict(adapter="lora:r=x"),
        dict(size=8),
    ):
        with pytest.raises(ConfigError):
            _config(store, **bad)
    with pytest.raises(RegistryError, match="flip"):
        _config(store, augment=("flop",))
    assert warmup_cosine(0, warmup=2, total=10) == 0.5 and warmup_cosine(2, warmup=2, total=10) == 1.0
    assert warmup_cosine(10, warmup=2, total=10) == pytest.approx(0.0)


def test_run_record_metrics_and_load_run(store: str, tmp_path: Path):
    messages: list[str] = []
    config = _config(store, adapter="lora:r=2,blocks=3+decoder", scheme="hybrid", iou_loss=1.0, eval_every=2)
    result = train(config, tmp_path / "run", hooks=TrainHooks(on_message=messages.append))
    layout = RunLayout(tmp_path / "run")
    info = json.loads(layout.info.read_text())
    assert info["snapshot_id"] == result.info["snapshot_id"] and info["mixture"] == "mix"
    assert info["model"] == "tiny" and info["adapter"] == config.adapter and info["step"] == 4
    assert {"torch", "samdata", "monai", "icechunk"} <= set(info["versions"])
    assert TrainConfig.read(layout.config) == config.with_values({"size": 128})
    rows = [json.loads(line) for line in layout.metrics.read_text().splitlines()]
    assert [r["step"] for r in rows if r["kind"] == "train"] == [1, 2, 3, 4]
    assert [r["step"] for r in rows if r["kind"] == "val"] == [0, 2, 4]
    assert all(r["iou_mse"] > 0 for r in rows if r["kind"] == "train")  # the IoU head trains
    assert list(layout.tensorboard.glob("events.out.tfevents.*"))
    assert any("prefix cache memory" in m and "block 3" in m for m in messages)
    assert result.zero_shot_dice is not None and 0 <= result.val_dice <= 1
    from samdata.files import current_umask

    for written in (layout.info, layout.config, layout.last):  # the user's umask, not mkstemp's 0600
        assert written.stat().st_mode & 0o777 == 0o666 & ~current_umask(), written
    per_object, keys = info["val_object_dice"], info["val_keys"]
    assert len(per_object) == len(keys) == info["val_objects"] > 0
    assert abs(sum(per_object) / len(per_object) - result.val_dice) < 1e-5 and all(len(k) == 3 for k in keys)
    loaded = load_run(tmp_path / "run")
    assert not loaded.model.training and loaded.config.adapter == config.adapter and loaded.info["step"] == 4
    trained = dict(loaded.model.named_parameters())
    for name, value in _weights(tmp_path / "run").items():
        assert torch.equal(trained[name], value), name


def test_resume_continues_exactly(store: str, tmp_path: Path):
    config = _config(
        store, adapter="lora:r=2,blocks=2-3+decoder+refine:width=4", augment=("flip",), grad_accum=2, warmup=1
    )
    train(config, tmp_path / "whole")

    def stop_at_3(step: int, _: dict) -> None:
        if step == 3:
            raise _Stop

    with pytest.raises(_Stop):  # interrupted after step 3; the last checkpoint is step 2's
        train(config, tmp_path / "cut", hooks=TrainHooks(on_step=stop_at_3))
    assert load_checkpoint(RunLayout(tmp_path / "cut").last)["step"] == 2
    result = train(config, tmp_path / "cut", resume=True)
    assert result.step == 4 and result.info["resumed"][0]["step"] == 2
    rows = [json.loads(line) for line in RunLayout(tmp_path / "cut").metrics.read_text().splitlines()]
    assert [r["step"] for r in rows if r["kind"] == "train"] == [1, 2, 3, 4]
    whole, cut = _weights(tmp_path / "whole"), _weights(tmp_path / "cut")
    assert whole.keys() == cut.keys()
    for name in whole:
        torch.testing.assert_close(cut[name], whole[name], rtol=1e-6, atol=1e-7)


def test_refinement_head_trains_at_its_own_learning_rate(store: str, tmp_path: Path):
    config = _config(store, adapter="decoder+refine:width=4,lr_scale=3", steps=1, lr=1e-3)
    train(config, tmp_path / "run")
    state = load_checkpoint(RunLayout(tmp_path / "run").last)
    groups = state["optimizer"]["param_groups"]
    assert [g["initial_lr"] for g in groups] == [pytest.approx(1e-3), pytest.approx(3e-3)]
    assert len(groups[1]["params"]) == sum(1 for k in state["trainable"] if k.startswith("refiner."))
    assert any(
        not torch.equal(v, torch.zeros_like(v)) for k, v in state["trainable"].items() if k.startswith("refiner.out")
    )


def test_prefix_cache_gives_the_same_training(store: str, tmp_path: Path):
    results = {}
    for mode in ("off", "memory", "disk"):
        messages: list[str] = []
        results[mode] = train(
            _config(store, adapter="serial:blocks=3+decoder", cache=mode, steps=3),
            tmp_path / mode,
            hooks=TrainHooks(on_message=messages.append),
        )
    off, memory, disk = (_weights(tmp_path / mode) for mode in ("off", "memory", "disk"))
    for name, value in off.items():
        torch.testing.assert_close(memory[name], value, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(disk[name], value, rtol=0.05, atol=1e-3)  # fp16 cache
    assert "0 hits" in results["off"].info["cache"] and " 0 hits" not in results["memory"].info["cache"]
    cached = list((tmp_path / "disk" / "cache").glob("*.pt"))
    assert cached and cached[0].stat().st_size > 0
    assert torch.load(cached[0], weights_only=True).dtype == torch.float16
    off = train(
        _config(store, augment=("flip", "noise"), steps=1),
        tmp_path / "aug",
        hooks=TrainHooks(on_message=messages.append),
    )
    assert any("prefix cache off: image augmentation flip,noise" in m for m in messages) and off.step == 1


def test_flips_keep_the_prefix_cache_one_entry_per_view(store: str, tmp_path: Path):
    results, messages = {}, []
    for mode in ("off", "memory"):
        results[mode] = train(
            _config(store, adapter="serial:blocks=3+decoder", augment=("flip",), cache=mode, steps=4),
            tmp_path / mode,
            hooks=TrainHooks(on_message=messages.append),
        )
    off, memory = (_weights(tmp_path / mode) for mode in ("off", "memory"))
    for name, value in off.items():
        torch.testing.assert_close(memory[name], value, rtol=1e-4, atol=1e-5)
    assert any("per flip view" in m for m in messages)
    assert " 0 hits" not in results["memory"].info["cache"]


def test_no_training_samples_is_a_clear_error(store: str, tmp_path: Path):
    with pytest.raises(ValidationError, match="no training samples"):
        train(_config(store, train_slices="900-901"), tmp_path / "run")
    with pytest.raises(ValidationError, match="no objects in split 'train'"):
        train(_config(store, labels=("no_such_organ",)), tmp_path / "run2")


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(store: str, tmp_path: Path):
    config = _config(store, lr=1e30, save_every=1, steps=6)
    with pytest.raises(TrainingError, match=r"non-finite .* at step (\d+)") as err:
        train(config, tmp_path / "run")
    state = load_checkpoint(RunLayout(tmp_path / "run").last)
    assert f"step {state['step'] + 1}" in str(err.value) and "is kept" in str(err.value)
    assert all(torch.isfinite(v).all() for v in state["trainable"].values())


def test_resume_with_another_model_or_adapter_is_refused(store: str, tmp_path: Path):
    train(_config(store, steps=1), tmp_path / "run")
    with pytest.raises(ConfigError, match="another model or adapter.*adapter"):
        train(_config(store, steps=2, adapter="lora:r=2+decoder"), tmp_path / "run", resume=True)
    with pytest.raises(ConfigError, match="another model or adapter.*model"):
        train(_config(store, steps=2, model="litemedsam"), tmp_path / "run", resume=True)
    with pytest.raises(ConfigError, match="already holds a run"):
        train(_config(store, steps=2), tmp_path / "run")
    with pytest.raises(ConfigError, match="holds no run"):
        train(_config(store, steps=2), tmp_path / "empty", resume=True)


def test_adapter_blocks_that_do_not_exist(store: str, tmp_path: Path):
    with pytest.raises(ConfigError, match=r"blocks \[7\] do not exist.*0\.\.3"):
        train(_config(store, adapter="lora:blocks=1,7"), tmp_path / "run")
    assert not RunLayout(tmp_path / "run").exists()


def test_slice_filter_keeps_each_case_weight(store: str):
    from training.batches import build_data

    data = build_data(_config(store, train_slices="0-3", size=64), None)
    cases = data.train.objects()["case_id"].to_numpy()
    full = data.train.sample_weights()
    for case_id in np.unique(cases[data.candidates]):
        kept = data.weights[cases[data.candidates] == case_id].sum()
        assert kept == pytest.approx(full[cases == case_id].sum())
