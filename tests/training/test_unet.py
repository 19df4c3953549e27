"""Tests of the U-Net baseline: registry, config rules, training through the same trainer, loading and evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from samdata.errors import ConfigError, ValidationError
from training.adapters import apply_adapters, parse_adapter
from training.config import TrainConfig
from training.eval_report import evaluate_run
from training.evaluate import EvalConfig, evaluate_interactive, evaluate_models
from training.loop import is_promptable
from training.models import UNetModel, build_model
from training.run import load_run
from training.train import train

LABELS = ("liver", "spine")

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def run_dir(store: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 40-step U-Net run on liver and spine (lr 1e-2, batch 4)."""
    out = tmp_path_factory.mktemp("unet-run") / "run"
    config = TrainConfig(
        store=store,
        mixture="mix",
        model="unet",
        labels=LABELS,
        steps=40,
        batch_size=4,
        lr=1e-2,
        save_every=20,
        log_every=10,
        eval_every=40,
        val_max=8,
        device="cpu",
    )
    train(config, out)
    return out


def test_registry_builds_a_prompt_free_unet_with_a_channel_per_label():
    model = build_model("unet", labels=LABELS, seed=1)
    assert isinstance(model, UNetModel) and not is_promptable(model) and model.low_res_size == model.img_size == 256
    frames = model.preprocess(torch.full((2, 3, 64, 64), 255.0))
    assert frames.shape == (2, 3, 256, 256) and float(frames.max()) == 1.0
    logits = model(frames)
    assert logits.shape == (2, 2, 256, 256)
    picked = model.segment(frames, model.channels(["spine", "liver"]))
    assert torch.equal(picked[:, 0], torch.stack([logits[0, 1], logits[1, 0]]))
    with pytest.raises(ValidationError, match="kidney"):
        model.channels(["kidney"])
    same = build_model("unet", labels=LABELS, seed=1)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), same.state_dict().values()))


def test_config_rules_for_the_baseline(store: str):
    config = TrainConfig(store=store, mixture="mix", model="unet", labels=LABELS)
    assert config.adapter == "full"  # the default 'decoder' means every weight for a U-Net
    with pytest.raises(ConfigError, match="labels"):
        TrainConfig(store=store, mixture="mix", model="unet")
    with pytest.raises(ConfigError, match="lora"):
        TrainConfig(store=store, mixture="mix", model="unet", labels=LABELS, adapter="lora:r=4")
    with pytest.raises(ConfigError, match="unknown model|unet"):
        build_model("unet3d")


def test_full_adapter_trains_the_whole_sam_encoder_and_decoder():
    model = build_model("tiny")
    report = apply_adapters(model, parse_adapter("full"), seed=0)
    assert parse_adapter("full").to_spec() == "full" and report.first_block == 0
    assert all(p.requires_grad for p in model.image_encoder.parameters())
    assert all(p.requires_grad for p in model.mask_decoder.parameters())
    assert not any(p.requires_grad for p in model.prompt_encoder.parameters())
    with pytest.raises(ConfigError, match="stands alone"):
        parse_adapter("full+decoder")


def test_full_fine_tuning_trains_the_encoder_stem_too(store: str, tmp_path: Path):
    from training.checkpoint import load_checkpoint
    from training.run import RunLayout

    config = TrainConfig(
        store=store,
        mixture="mix",
        model="tiny",
        adapter="full",
        steps=2,
        batch_size=2,
        save_every=2,
        log_every=1,
        val_max=2,
        lr=1e-3,
        device="cpu",
    )
    train(config, tmp_path / "full")
    trained = load_checkpoint(RunLayout(tmp_path / "full").last)["trainable"]
    base = build_model("tiny").state_dict()
    stem = [k for k in trained if k.startswith("image_encoder.patch_embed.")]
    assert stem and all(not torch.equal(trained[k], base[k]) for k in stem)  # not cached, not frozen
    assert "prefix cache off: full fine-tuning" in (tmp_path / "full" / "log.txt").read_text()


def test_training_learns_and_the_run_loads_and_evaluates(run_dir: Path, store: str, tmp_path: Path):
    info = json.loads((run_dir / "run.json").read_text())
    assert info["model"] == "unet" and info["adapter"] == "full" and info["trainable"] == info["total"] > 1e6
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    val = {r["step"]: r["val_dice"] for r in rows if r["kind"] == "val"}
    assert val[40] > val[0] + 0.2, val  # from random init to a segmenter of the bright phantom organs
    run = load_run(run_dir)
    assert not is_promptable(run.model) and run.model.label_names == LABELS
    report = evaluate_run(run, tmp_path / "eval", split="val")
    assert set(report.overall) == {"adapted"}  # a U-Net has no zero-shot version
    assert report.overall["adapted"]["dice"] == pytest.approx(val[40], abs=0.15)
    assert Path(report.figure_path).is_file()


def test_the_unet_ignores_prompts_and_clicks_do_not_apply(run_dir: Path):
    from training.eval_report import open_split

    run = load_run(run_dir)
    dataset, _indices, _ = open_split(run, "val", None, None)
    rows = evaluate_models({"unet": run.model}, dataset, EvalConfig()).rows
    assert len(rows) == len(dataset) and rows["dice"].notna().all()
    with pytest.raises(ConfigError, match="no prompt"):
        evaluate_interactive(run.model, dataset, (0, 1))


def test_predict_segments_every_slice_without_a_prompt(run_dir: Path, store: str, tmp_path: Path):
    import nibabel as nib
    import nrrd
    import numpy as np
    from typer.testing import CliRunner

    from samdata.cli.main import app
    from samdata.io.sample_data import write_phantoms

    source = write_phantoms(tmp_path / "new", cases=1, seed=5, shape=(32, 32, 8))
    image = sorted((source / "imagesTr").glob("*.nii.gz"))[0]
    out = tmp_path / "pred.nii.gz"
    result = CliRunner().invoke(
        app,
        [
            "predict",
            str(run_dir),
            "--image",
            str(image),
            "--out",
            str(out),
            "--store",
            store,
            "--z-range",
            "2-5",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["labels"] == {"1": "liver", "2": "spine"}
    written = nib.load(out)
    assert written.shape == nib.load(image).shape and np.allclose(written.affine, nib.load(image).affine)
    assert set(printed["slices"]) <= {2, 3, 4, 5} and set(np.unique(np.asarray(written.dataobj))) <= {0, 1, 2}
    refused = CliRunner().invoke(
        app, ["predict", str(run_dir), "--image", str(image), "--out", str(out), "--store", store, "--box", "1,1,9,9@2"]
    )
    assert refused.exit_code != 0 and "takes no prompt" in refused.output
    seg = tmp_path / "pred.seg.nrrd"
    args = ["predict", str(run_dir), "--image", str(image), "--store", store, "--z-range", "2-5"]
    result = CliRunner().invoke(app, [*args, "--out", str(seg), "--format", "nrrd", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["out_format"] == "nrrd" and json.loads(result.stdout)["out"] == str(seg)
    data, header = nrrd.read(str(seg), index_order="F")
    np.testing.assert_array_equal(data, np.asarray(written.dataobj))  # the NIfTI's labels, named and coloured
    assert [header[f"Segment{n}_Name"] for n in range(2)] == ["liver", "spine"] and "Segment2_ID" not in header
