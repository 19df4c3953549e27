"""Tests of the ``depth`` adapter: spec, zero-init identity, slice stacks in the dataset, the prefix cache, and a
tiny ``samdata train --adapter depth:...`` run that trains, saves, reloads, evaluates and predicts."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from samdata.cli.main import app
from samdata.errors import ConfigError, ValidationError
from samdata.prompts import Prompt
from training.adapters import DepthParams, apply_adapters, parse_adapter, stack_slices
from training.checkpoint import load_checkpoint
from training.compare import CompareConfig, compare_runs
from training.config import TrainConfig
from training.dataset import DatasetConfig, MixtureDataset
from training.models import SamModel, build_model
from training.predict import predict_from_masks, segment_slice, slice_channels
from training.run import RunLayout, load_run
from training.train import train

pytestmark = pytest.mark.usefixtures("one_thread")
BOXES = torch.tensor([[20.0, 20, 90, 80], [10, 30, 60, 110]])


@pytest.fixture(scope="module")
def tiny() -> SamModel:
    return build_model("tiny")


@pytest.fixture(scope="module")
def stacks() -> torch.Tensor:
    """Two stacks of 3 slices (3 channels each): (2, 9, 128, 128) uint8."""
    rng = np.random.default_rng(0)
    return torch.from_numpy(rng.integers(0, 255, size=(2, 9, 128, 128), dtype=np.uint8))


def _depth_model(tiny: SamModel, spec: str = "depth:blocks=1-2") -> SamModel:
    model = copy.deepcopy(tiny)
    apply_adapters(model, parse_adapter(spec), seed=0)
    return model


def test_spec_round_trips_and_bad_options_are_config_errors():
    cfg = parse_adapter("depth:k=5,blocks=2-3+decoder")
    assert cfg.parts[0] == DepthParams(k=5, blocks=(2, 3)) and cfg.depth == 5
    assert cfg.to_spec() == "depth:k=5,ratio=0.25,blocks=2,3+decoder" and parse_adapter(cfg.to_spec()) == cfg
    assert parse_adapter("lora").depth == 1
    for spec, match in (
        ("depth:k=4", "expected an odd number of slices >= 3"),
        ("depth:k=1", "expected an odd number of slices >= 3"),
        ("depth:k=0", r"k=0 out of range"),
        ("depth:k=three", "depth:k=three"),
        ("depth:ratio=9", r"0 < ratio <= 4"),
        ("depth:heads=2", "depth takes no option 'heads'; valid: k, ratio, blocks"),
        ("depth+depth:k=5", "each adapter may appear once"),
        ("depth+full", "stands alone"),
    ):
        with pytest.raises(ConfigError, match=match):
            parse_adapter(spec)


def test_blocks_that_do_not_exist(tiny):
    with pytest.raises(ConfigError, match=r"blocks \[7\] do not exist in tiny"):
        apply_adapters(copy.deepcopy(tiny), parse_adapter("depth:blocks=1,7"))


def test_stack_slices_clamp_at_the_volume_ends():
    assert stack_slices(0, 3, 8) == [0, 0, 1] and stack_slices(7, 5, 8) == [5, 6, 7, 7, 7]
    assert stack_slices(4, 3, 8) == [3, 4, 5] and stack_slices(2, 1, 8) == [2]


def test_starts_as_the_2d_model_on_the_centre_slice(tiny, stacks):
    model = _depth_model(tiny, "depth:k=3,blocks=1-2+serial:blocks=2")
    assert (model.depth, model.depth_last) == (3, 2)
    with torch.no_grad():
        before = tiny(tiny.preprocess(stacks[:, 3:6]), BOXES)
        after = model(model.preprocess(stacks), BOXES)
    torch.testing.assert_close(after[0], before[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(after[1], before[1], rtol=1e-5, atol=1e-5)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".depth_attn." in n or ".adapter." in n for n in trainable)
    with pytest.raises(ValidationError, match=r"depth adapter over k=3 slices: expected \(B, 9, S, S\)"):
        model.encode(model.preprocess(stacks[:, :3]))


def test_neighbours_change_the_output_once_trained(tiny, stacks):
    """A few optimizer steps move the depth weights (and only them) off zero; then the neighbour slices count."""
    model = _depth_model(tiny)
    base = {n: p.detach().clone() for n, p in model.named_parameters()}
    x = model.preprocess(stacks)
    target = torch.zeros(2, 1, model.low_res_size, model.low_res_size)
    target[:, :, 8:20, 8:20] = 1.0
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-2)
    model.train()
    for _ in range(3):
        optimizer.zero_grad()
        logits, _ = model(x, BOXES)
        torch.nn.functional.binary_cross_entropy_with_logits(logits, target).backward()
        optimizer.step()
    model.eval()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, base[n])}
    assert changed and all(".depth_attn." in n for n in changed)
    assert any(n.endswith("depth_attn.proj.weight") for n in changed)
    other = x.clone()
    other[:, :3] = model.preprocess(stacks[:, 6:9].flip(0))  # another slice below, same centre slice
    with torch.no_grad():
        assert not torch.allclose(model(x, BOXES)[0], model(other, BOXES)[0], atol=1e-6)


def test_cached_slice_prefix_plus_suffix_is_the_encoder(tiny, stacks):
    model = _depth_model(tiny, "depth:blocks=2,3+lora:blocks=1")
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
        x = model.preprocess(stacks)
        per_slice = torch.cat([model.encode_prefix(x[:, 3 * j : 3 * j + 3], 1)[:, None] for j in range(3)], dim=1)
        features = per_slice.flatten(0, 1)  # (B·k, ...): slice-major within each stack, as the trainer caches
        torch.testing.assert_close(model.encode_suffix(features, 1), model.encode(x), rtol=1e-5, atol=1e-5)


def test_dataset_yields_clamped_stacks(store: str):
    flat = MixtureDataset(store, "mix", "val", DatasetConfig(size=64, context=True))
    deep = MixtureDataset(store, "mix", "val", DatasetConfig(size=64, context=True, depth=3))
    grey = MixtureDataset(store, "mix", "val", DatasetConfig(size=64, depth=5))
    ends = [i for i, z in enumerate(flat.objects()["z"]) if z == 0] or [0]
    for index in (0, ends[0], len(flat) - 1):
        one, stack, five = flat[index], deep[index], grey[index]
        z = one["z"]
        assert stack["image"].shape == (9, 64, 64) and five["image"].shape == (15, 64, 64)
        assert stack["depth_z"].tolist() == stack_slices(z, 3, int(deep._depth[deep._case_idx[index]]))
        assert torch.equal(stack["image"][3:6], one["image"])  # the centre slice is the 2D item
        assert torch.equal(five["image"][6], five["image"][8]) and torch.equal(five["image"][7], one["image"][1])
        assert torch.equal(stack["mask"], one["mask"]) and torch.equal(stack["box"], one["box"])
    assert "depth_z" not in flat[0]


def test_cli_trains_saves_reloads_evaluates_and_predicts(store: str, tmp_path: Path):
    run_dir = tmp_path / "run"
    args = ["--store", store, "--mixture", "mix", "--model", "tiny", "--adapter", "depth:k=3,blocks=2-3"]
    args += ["--steps", "3", "--batch-size", "2", "--val-max", "4", "--save-every", "3", "--out", str(run_dir)]
    result = CliRunner().invoke(app, ["train", *args])
    assert result.exit_code == 0, result.output
    assert "depth" in result.output and "prefix cache memory" in result.output
    info = json.loads(RunLayout(run_dir).info.read_text())
    assert info["adapter"] == "depth:k=3,ratio=0.25,blocks=2,3" and info["first_adapted_block"] == 2
    hits, lookups = (int(n) for n in re.search(r"(\d+) hits / (\d+)", info["cache"]).groups())
    assert lookups % 3 == 0 and hits > 0  # one lookup per slice of each stack; neighbours are shared
    saved = load_checkpoint(RunLayout(run_dir).last)["trainable"]
    assert any(".depth_attn.proj." in n for n in saved)
    assert any(n.endswith("depth_attn.proj.weight") and v.abs().sum() > 0 for n, v in saved.items())

    loaded = load_run(run_dir)
    assert loaded.model.depth == 3
    weights = dict(loaded.model.named_parameters())
    assert all(torch.equal(weights[n], v) for n, v in saved.items())
    base = build_model("tiny")
    for name, value in base.named_parameters():  # training changed the depth weights only
        assert torch.equal(weights[name], value), name
    assert set(weights) - set(dict(base.named_parameters())) == set(saved)
    assert all(".depth_attn." in n for n in saved)
    item = MixtureDataset(store, "mix", "val", DatasetConfig(size=128, depth=3))[0]
    x, box = loaded.model.preprocess(item["image"][None]), item["box"][None]
    with torch.no_grad():
        assert not torch.allclose(loaded.model(x, box)[0], base(base.preprocess(item["image"][None, 3:6]), box)[0])
    out = tmp_path / "eval"
    result = CliRunner().invoke(app, ["evaluate", str(run_dir), "--split", "val", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["overall"]) >= {"adapted", "zero_shot"} and metrics["settings"]["depth"] == 3

    volume = np.random.default_rng(0).integers(0, 255, size=(5, 32, 32), dtype=np.uint8)
    assert slice_channels(volume, 0, False, 3).shape == (9, 32, 32)
    probs = segment_slice(loaded.model, slice_channels(volume, 0, False, 3), [Prompt(box=(4, 4, 20, 20))])
    assert probs.shape == (1, 32, 32) and np.isfinite(probs).all()
    prompts = np.zeros_like(volume)
    prompts[[0, 4], 5:15, 5:15] = 1
    labels = predict_from_masks(loaded.model, volume, prompts)
    assert labels.shape == volume.shape and not labels[1:4].any()


@pytest.mark.slow
def test_litemedsam_depth_starts_as_the_2d_model():
    """TinyViT blocks take (B, L, D) tokens and stage 3 ends in no downsample: the same identity holds."""
    lite = build_model("litemedsam")
    rng = np.random.default_rng(0)
    stack = torch.from_numpy(rng.integers(0, 255, size=(1, 9, 256, 256), dtype=np.uint8))
    box = torch.tensor([[60.0, 60, 180, 200]])
    with torch.no_grad():
        before = lite(lite.preprocess(stack[:, 3:6]), box)
    apply_adapters(lite, parse_adapter("depth:blocks=1,8-9"))
    with torch.no_grad():
        after = lite(lite.preprocess(stack), box)
    torch.testing.assert_close(after[0], before[0], rtol=1e-4, atol=1e-4)


def test_compare_reads_stacks_for_the_depth_run_and_slices_for_the_others(store: str, tmp_path: Path):
    base = dict(store=store, mixture="mix", model="tiny", steps=2, batch_size=2, save_every=2, val_max=4)
    train(TrainConfig(**base, adapter="depth:blocks=3"), tmp_path / "depth")  # type: ignore[arg-type]
    train(TrainConfig(**base, adapter="decoder"), tmp_path / "flat")  # type: ignore[arg-type]
    result = compare_runs(
        [tmp_path / "depth", tmp_path / "flat"], tmp_path / "out", CompareConfig(split="val", volumes=False)
    )
    rows = {r["name"]: r for r in result.rows}
    assert set(rows) == {"zero-shot tiny", "depth", "flat"}
    assert len({r["objects"] for r in rows.values()}) == 1  # the same objects, through two datasets
    assert all(0 <= r["dice"] <= 1 for r in rows.values())


def test_the_last_depth_block_runs_on_the_centre_slices_alone(tiny: SamModel, stacks: torch.Tensor):
    model = _depth_model(tiny).eval()
    blocks = model.encoder_blocks()
    for block in blocks[1:3]:  # a depth branch that does something, so the neighbours' path matters
        torch.nn.init.normal_(block.depth_attn.proj.weight, std=0.2, generator=torch.Generator().manual_seed(1))
    seen: list[int] = []
    hook = blocks[2].register_forward_hook(lambda _m, args, _out: seen.append(args[0].shape[0]))
    images = model.preprocess(stacks.reshape(-1, 3, 128, 128).float()).reshape(2, 9, 128, 128)
    with torch.no_grad():
        found = model.encode(images)
        hook.remove()
        # the reference: every block on every slice of each stack, the centre slices kept at the end
        steps, starts = model._encoder_steps()
        x = model._unstack(images)
        for i, step in enumerate(steps):
            branch = getattr(blocks[starts.index(i)], "depth_attn", None) if i in starts else None
            x = step(branch(x) if branch is not None else x)
        reference = model._centre(x)
    assert seen == [2]  # block 2 (the last depth block) saw the 2 centre slices, not 6
    assert not torch.allclose(reference, model.encode(model.centre_frames(images).repeat(1, 3, 1, 1)))
    torch.testing.assert_close(found, reference, atol=1e-5, rtol=1e-5)
