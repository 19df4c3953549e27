"""Interactive training with simulated corrective clicks (training.clicks) on the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pipelines.ingest import ingest
from pipelines.mixtures import MixtureConfig, make_mixture
from samdata.errors import ConfigError
from samdata.io.sample_data import write_phantoms
from samdata.normalise import IngestConfig
from training.augment import pixel_frames
from training.checkpoint import load_checkpoint
from training.clicks import ClickRounds, append_clicks, draw_clicks
from training.config import TrainConfig, check_resumable
from training.loop import Segmenter, batch_prompt_tensors
from training.models import build_model
from training.run import RunLayout
from training.train import TrainHooks, train

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Three 32x32x8 CT phantoms (2 train, 1 val case) in a store with mixture 'mix'."""
    root = tmp_path_factory.mktemp("clicks")
    write_phantoms(root / "src", cases=3, seed=2, shape=(32, 32, 8))
    ingest(root / "src", root / "store", IngestConfig(min_object_voxels=20, min_object_pixels=10))
    make_mixture(root / "store", "mix", MixtureConfig(labels=("liver",), seed=0, splits=(0.67, 0.33, 0.0)))
    return str(root / "store")


def _config(store: str, **values: object) -> TrainConfig:
    base = dict(
        store=store,
        mixture="mix",
        model="tiny",
        steps=3,
        batch_size=2,
        save_every=2,
        log_every=1,
        val_max=2,
        click_rounds=2,
    )
    return TrainConfig(**{**base, **values})  # type: ignore[arg-type]


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(RunLayout(run_dir).last)["trainable"]


def _train_rows(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in RunLayout(run_dir).metrics.read_text().splitlines()]
    return [r for r in rows if r["kind"] == "train"]


def test_clicks_land_in_the_error_region():
    truth = np.zeros((3, 24, 24), dtype=bool)
    truth[:, 4:16, 4:16] = True
    pred = truth.copy()
    pred[0, 4:16, 10:16] = False  # item 0: a miss (false negative) on the right half
    pred[1, 18:23, 18:23] = True  # item 1: a false alarm (false positive) only
    for mode in ("interior", "random"):
        xy, labels = draw_clicks(pred, truth, np.random.default_rng(0), mode)
        assert labels.tolist() == [1, 0, -1]  # item 2 is exact: no click
        (x0, y0), (x1, y1) = xy[0].astype(int), xy[1].astype(int)
        assert truth[0, y0, x0] and not pred[0, y0, x0]
        assert pred[1, y1, x1] and not truth[1, y1, x1]
    xy, _ = draw_clicks(pred, truth, np.random.default_rng(0), "interior")
    assert 12 <= xy[0, 0] <= 13 and 7 <= xy[0, 1] <= 12  # deep inside the 6-wide miss (x 10..15), not at its edge
    empty = np.zeros((1, 8, 8), dtype=bool)
    assert draw_clicks(empty, empty, np.random.default_rng(0))[1].tolist() == [-1]


def test_append_clicks_keeps_points_and_padding():
    points = torch.tensor([[[1.0, 2.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]], [[3.0, 4.0], [5.0, 6.0]]])
    labels = torch.tensor([[1, -1], [-1, -1], [0, 1]])
    new_points, new_labels = append_clicks(
        points, labels, torch.tensor([[7.0, 8.0], [9.0, 9.0], [1.0, 1.0]]), torch.tensor([0, -1, 1])
    )
    assert new_labels.tolist() == [[1, 0, -1], [-1, -1, -1], [0, 1, 1]]
    assert new_points[0, :2].tolist() == [[1.0, 2.0], [7.0, 8.0]] and new_points[2, 2].tolist() == [1.0, 1.0]


def test_config_fields_validation_and_resume_refusal(store: str):
    config = _config(store)
    assert (config.click_rounds, config.click_mode, config.click_feed_logits) == (2, "interior", True)
    for bad in (
        dict(click_rounds=-1),
        dict(click_rounds=True),
        dict(click_rounds=1.5),
        dict(click_mode="edge"),
        dict(click_feed_logits="yes"),
        dict(model="unet", labels=("liver",)),
    ):
        with pytest.raises(ConfigError, match="click"):
            _config(store, **bad)
    old = {k: v for k, v in config.to_json().items() if not k.startswith("click_")}  # a config.json from before
    assert TrainConfig.from_json(old).click_rounds == 0 and TrainConfig.from_json(old).click_feed_logits
    for change in (dict(click_rounds=3), dict(click_mode="random"), dict(click_feed_logits=False)):
        with pytest.raises(ConfigError, match="click_"):
            check_resumable(config, config.with_values(change), "run")


def test_round_zero_is_the_plain_decode_and_later_rounds_see_the_clicks(store: str):
    from training.batches import build_data, val_batches

    cfg = _config(store, size=128)
    data = build_data(cfg, None)
    batch = next(val_batches(data, cfg))
    model = build_model("tiny", seed=0).eval()
    segmenter = Segmenter(model, len(model.encoder_blocks()))
    features = model.encode(model.preprocess(pixel_frames(batch["image"])))  # uint8 items
    prompts = batch_prompt_tensors(batch, model.low_res_size, torch.device("cpu"))
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def decode(*args: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        seen.append((args[3], args[4]))
        return segmenter(features, *args)

    with torch.no_grad():
        rounds = ClickRounds(3).run(
            decode,
            prompts,
            model.postprocess,
            batch["mask"][:, 0] > 0.5,
            batch["valid"],
            lambda r: np.random.default_rng(r),
        )
        plain, _ = segmenter(features, *prompts)
    assert len(rounds) == 4 and torch.equal(rounds[0][0], plain)
    assert [int((labels >= 0).sum()) for labels, _ in seen] == [0, 2, 4, 6]  # one click per item and round
    assert not seen[0][1].numel() and torch.equal(seen[2][1], rounds[1][0])  # the last logits are fed back
    rounds = ClickRounds(1, feed_logits=False).run(
        decode,
        prompts,
        model.postprocess,
        batch["mask"][:, 0] > 0.5,
        batch["valid"],
        lambda r: np.random.default_rng(r),
    )
    assert not seen[-1][1].numel()


def test_click_training_is_deterministic_and_differs_from_box_training(store: str, tmp_path: Path):
    for name in ("a", "b"):
        train(_config(store), tmp_path / name)
    first, second = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert all(torch.equal(first[k], second[k]) for k in first)
    rows = _train_rows(tmp_path / "a")
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert all(0 <= r["train_dice_box"] <= 1 and 0 <= r["train_dice_clicks"] <= 1 for r in rows)
    train(_config(store, click_rounds=0), tmp_path / "box")
    box = _weights(tmp_path / "box")
    assert any(not torch.equal(box[k], first[k]) for k in box)
    assert "train_dice_box" not in _train_rows(tmp_path / "box")[0]


def test_click_rounds_zero_trains_exactly_as_without_the_field(store: str, tmp_path: Path):
    config = _config(store, click_rounds=0, click_mode="random", click_feed_logits=False, steps=2)
    defaults = {k: v for k, v in config.to_json().items() if not k.startswith("click_")}
    train(config, tmp_path / "zero")
    train(TrainConfig.from_json(defaults), tmp_path / "absent")
    zero, absent = _weights(tmp_path / "zero"), _weights(tmp_path / "absent")
    assert all(torch.equal(zero[k], absent[k]) for k in zero)


def test_resume_with_clicks_continues_exactly(store: str, tmp_path: Path):
    config = _config(store, steps=4, grad_accum=2, click_mode="random", adapter="decoder+refine:width=4")
    train(config, tmp_path / "whole")

    class Stop(Exception):
        """Interrupts the run after step 3."""

    def stop_at_3(step: int, _: dict) -> None:
        if step == 3:
            raise Stop

    with pytest.raises(Stop):
        train(config, tmp_path / "cut", hooks=TrainHooks(on_step=stop_at_3))
    assert train(config, tmp_path / "cut", resume=True).step == 4
    whole, cut = _weights(tmp_path / "whole"), _weights(tmp_path / "cut")
    for name in whole:
        torch.testing.assert_close(cut[name], whole[name], rtol=1e-6, atol=1e-7)
    assert [r["train_dice_clicks"] for r in _train_rows(tmp_path / "cut")] == pytest.approx(
        [r["train_dice_clicks"] for r in _train_rows(tmp_path / "whole")]
    )
