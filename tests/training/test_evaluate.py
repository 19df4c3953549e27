"""Tests of evaluation: per-object scores with shared embeddings, aggregation, report files, interactive clicks, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from pipelines.mixtures import MixtureConfig, make_mixture
from pipelines.prompt_sets import make_prompt_set
from samdata.case import Case, CaseMeta, Geometry, Normalisation, Provenance
from samdata.cli.main import app
from samdata.errors import ConfigError
from samdata.files import write_json
from samdata.io.readers import write_nifti
from samdata.metrics import METRICS
from samdata.prompts import Prompt
from storage import SliceStore
from training.checkpoint import save_checkpoint, trainable_state
from training.config import TrainConfig
from training.dataset import DatasetConfig, MixtureDataset
from training.eval_report import ADAPTED, ZERO_SHOT, evaluate_run
from training.evaluate import (
    EvalConfig,
    EvalResult,
    SliceBatch,
    aggregate,
    evaluate_interactive,
    evaluate_models,
    predict_objects,
    region_ceiling,
)
from training.models import SamModel, build_model
from training.predict import model_input, to_probabilities
from training.run import LoadedRun, RunLayout, build_run_model
from training.tta import TTA_VIEWS, flip_frames, unflip

ADAPTER = "lora:r=2,alpha=2+refine:width=4+decoder"  # every evaluation path decodes through the refinement head
SPACING = (0.8, 1.0, 2.5)  # X, Y, Z mm


def _case(case_id: str, seed: int) -> Case:
    """5x40x48 CT-like case: a disc 'tumour' growing then shrinking over slices 1-3, and a 'kidney' block."""
    rng = np.random.default_rng(seed)
    depth, height, width = 5, 40, 48
    image = rng.integers(0, 40, (depth, height, width), dtype=np.uint8)
    label = np.zeros(image.shape, dtype=np.uint8)
    yy, xx = np.mgrid[:height, :width]
    cy, cx = int(rng.integers(12, 28)), int(rng.integers(12, 30))
    for z, radius in ((1, 5), (2, 8), (3, 5)):
        label[z][(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = 1
        label[z, 2:8, 36:44] = 2
    image[label == 1], image[label == 2] = 200, 120
    eye = tuple(tuple(float(v) for v in row) for row in np.eye(4))
    meta = CaseMeta(
        case_id,
        "CT",
        {1: "tumour", 2: "kidney"},
        Geometry(eye, SPACING, eye, (width, height, depth), ("R", "A", "S")),
        Normalisation("window:abdomen", -160.0, 240.0, {"level": 40.0, "width": 400.0}),
        Provenance("real", f"/data/{case_id}.nii.gz", f"sha256:{case_id}"),
    )
    return Case(meta, image, label)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """8 cases (4 train, 2 val, 2 test), a box prompt set and mixture 'mix'."""
    path = tmp_path_factory.mktemp("evaluate") / "store"
    with SliceStore.open(path, create=True).writer("cases") as writer:
        for i in range(8):
            writer.write_case(_case(f"case{i}", i))
    make_prompt_set(path, "box:jitter=2", "boxes", seed=3)
    make_mixture(path, "mix", MixtureConfig(splits=(0.5, 0.25, 0.25), prompt_set="boxes", seed=0))
    return str(path)


@pytest.fixture(scope="module")
def test_set(store: str) -> MixtureDataset:
    return MixtureDataset(store, "mix", "test", DatasetConfig(size=128))


def _adapted(config: TrainConfig) -> SamModel:
    """The run's model (tiny, LoRA + decoder) with its trainable weights moved by a seeded step (as if trained)."""
    model, _ = build_run_model(config)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=generator) * 0.05)
    return model.eval()


@pytest.fixture(scope="module")
def run(store: str) -> LoadedRun:
    snapshot = SliceStore.open(store).read_table("mixtures/mix")[1]["snapshot_id"]
    config = TrainConfig(store=store, mixture="mix", model="tiny", adapter=ADAPTER, size=128, bf16=False)
    return LoadedRun(
        _adapted(config),
        config,
        {
            "store_url": store,
            "snapshot_id": snapshot,
            "mixture": "mix",
            "model": "tiny",
            "adapter": config.adapter,
            "step": 3,
        },
    )


@pytest.fixture(scope="module")
def result(test_set: MixtureDataset, run: LoadedRun) -> EvalResult:
    return evaluate_models({ZERO_SHOT: build_model("tiny"), ADAPTED: run.model}, test_set, EvalConfig())


def test_rows_cover_every_object_and_model(test_set: MixtureDataset, result: EvalResult):
    rows = result.rows
    assert len(rows) == 2 * len(test_set) and result.models == (ZERO_SHOT, ADAPTED)
    assert set(rows["case_id"]) == set(test_set.objects()["case_id"]) and len(set(rows["case_id"])) == 2
    for m in ("dice", "iou", "nsd", "mae"):
        assert rows[m].between(0.0, 1.0).all(), m
    assert (rows["hd95"] >= 0).all() and np.isfinite(rows[list(METRICS)].to_numpy()).all()
    zs, ad = (rows[rows["model"] == m].reset_index(drop=True) for m in (ZERO_SHOT, ADAPTED))
    assert (zs["item"] == ad["item"]).all() and (zs["gt_area"] == ad["gt_area"]).all()
    assert not np.array_equal(zs["pred_area"], ad["pred_area"])  # different weights, different masks
    gt_areas = test_set.objects()["area"].to_numpy()
    assert (zs["gt_area"].to_numpy() == gt_areas).all()  # scored on the stored slice grid


def test_one_shared_embedding_per_slice_matches_one_forward_per_object(test_set: MixtureDataset):
    model = build_model("tiny")
    first_case = 6  # the first test case's 3 slices x 2 labels
    found = predict_objects({"m": model}, test_set, list(range(first_case)), EvalConfig(batch_slices=2))
    assert len(found) == first_case
    for index in range(first_case):
        item = test_set[index]
        with torch.no_grad():
            low_res, _ = model(model_input(model, item["image"][None]), boxes=item["box"][None])
        single = to_probabilities(
            model, low_res, tuple(item["input_size"].tolist()), tuple(item["original_size"].tolist())
        )[0]
        piece, i, probs = found[(item["case_id"], item["z"], item["label"])]
        assert piece.items[i]["label"] == item["label"]
        np.testing.assert_allclose(probs["m"], single, atol=1e-4)


def test_mirroring_averages_the_plain_decode_and_the_mirrored_one_brought_back(test_set: MixtureDataset):
    model = build_model("tiny")
    found = predict_objects({"m": model}, test_set, [0, 1], EvalConfig(batch_slices=2, tta="lr"))
    for index in (0, 1):
        item = test_set[index]
        size, original = tuple(item["input_size"].tolist()), tuple(item["original_size"].tolist())
        box = Prompt(tuple(int(v) for v in item["box"].tolist()))
        views = []
        for view in TTA_VIEWS["lr"]:
            seen = model_input(model, flip_frames(item["image"][None], [size], view))
            mirrored = box.mirrored(size, x=view[0]).box if view[0] else box.box
            with torch.no_grad():
                low_res, _ = model(seen, boxes=torch.tensor([mirrored], dtype=torch.float32))
            views.append(unflip(to_probabilities(model, low_res, size, original)[0], view))
        np.testing.assert_allclose(
            found[(item["case_id"], item["z"], item["label"])][2]["m"], (views[0] + views[1]) / 2, atol=1e-4
        )


def test_mask_prompts_are_mirrored_with_their_frame():
    rng = np.random.default_rng(0)
    mask = torch.from_numpy((rng.random((2, 1, 32, 32)) > 0.5).astype(np.float32))
    mask[..., 24:, :] = 0  # the frame's padding rows (content 96 x 128 of 128)
    items = [
        {
            "mask_prompt": mask[i],
            "image": torch.zeros(3, 128, 128),
            "input_size": torch.tensor([96, 128]),
            "original_size": torch.tensor([48, 64]),
        }
        for i in range(2)
    ]
    piece = SliceBatch(
        "c", 0, [0, 1], items, np.zeros((48, 64), np.uint8), np.zeros((48, 64), np.uint8), (1.0, 1.0), ["a", "b"]
    )
    plain, left_right, up_down = (
        piece.mask_inputs(64, view) for view in ((False, False), (True, False), (False, True))
    )
    torch.testing.assert_close(left_right, plain.flip(-1))  # the content spans the full width
    torch.testing.assert_close(up_down[..., :48, :], plain[..., :48, :].flip(-2))  # rows 0..95 of 128: 48 of 64
    torch.testing.assert_close(up_down[..., 48:, :], plain[..., 48:, :])  # the padding stays


def test_evaluate_with_mirroring_records_it_and_the_cli_refuses_an_unknown_mode(
    run: LoadedRun, run_dir: Path, tmp_path: Path
):
    report = evaluate_run(
        run, tmp_path / "eval", split="test", zero_shot=False, config=EvalConfig(figure_objects=1, tta="flip")
    )
    data = json.loads(Path(report.json_path).read_text())
    assert data["settings"]["tta"] == "flip"
    assert (
        "Test-time mirroring `flip`: probabilities averaged over 4 mirrored views"
        in Path(report.markdown_path).read_text()
    )
    plain = evaluate_run(run, tmp_path / "plain", split="test", zero_shot=False, config=EvalConfig(figure_objects=1))
    assert plain.overall[ADAPTED]["dice"] != pytest.approx(report.overall[ADAPTED]["dice"], abs=1e-6)
    assert "mirroring" not in Path(plain.markdown_path).read_text()
    for command in (
        ["evaluate", str(run_dir), "--split", "test"],
        [
            "predict",
            str(run_dir),
            "--image",
            str(tmp_path / "none.nii.gz"),
            "--box",
            "1,1,5,5@0",
            "--out",
            str(tmp_path / "o.nii.gz"),
        ],
    ):
        result = CliRunner().invoke(app, [*command, "--tta", "mirror"])
        assert result.exit_code == 2 and "unknown test-time augmentation 'mirror'" in result.output, result.output
        assert "flip, lr, none" in result.output


def test_aggregate_means_slices_per_structure_before_the_overall_mean():
    rows = pd.DataFrame(
        {
            "model": ["m"] * 4,
            "case_id": ["a", "a", "a", "b"],
            "z": [0, 1, 2, 0],
            "label": [1] * 4,
            "label_name": ["liver"] * 4,
            "dice": [1.0, 1.0, 0.4, 0.2],
        }
    )
    per_case, per_label, overall = aggregate(rows, "model", ("dice",))
    assert per_case["dice"].tolist() == pytest.approx([0.8, 0.2]) and per_case["n_slices"].tolist() == [3, 1]
    assert per_label["dice"].tolist() == pytest.approx([0.5])
    assert overall["dice"].tolist() == pytest.approx([0.5])  # not the object mean 0.65


def test_evaluate_run_writes_json_markdown_and_figure(run: LoadedRun, tmp_path: Path):
    report = evaluate_run(run, tmp_path / "eval", split="test", config=EvalConfig(clicks=(0, 1), figure_objects=2))
    data = json.loads(Path(report.json_path).read_text())
    assert data["models"] == [ZERO_SHOT, ADAPTED] and set(data["overall"]) == {ZERO_SHOT, ADAPTED}
    assert set(data["overall"][ADAPTED]) == set(METRICS)
    assert data["data"]["split"] == "test" and data["data"]["prompt_set"] == "boxes" and data["data"]["cases"] == 2
    first = data["per_case_label"][0]
    assert {ZERO_SHOT, ADAPTED, "n_slices", "case_id", "label_name"} <= set(first)
    assert len(data["per_object"]) == data["data"]["objects"]
    assert set(data["interactive"]["dice"][ADAPTED]) == {"0", "1"} == set(data["interactive"]["ceiling"][ADAPTED])
    assert data["interactive"]["ceiling"][ADAPTED]["0"] == pytest.approx(data["interactive"]["dice"][ADAPTED]["0"])
    assert "HD95 = the slice diagonal" in data["empty_masks"]
    markdown = Path(report.markdown_path).read_text()
    assert "| metric | zero_shot | adapted | adapted - zero-shot |" in markdown
    assert "## Per case and label" in markdown and "## Interactive" in markdown
    assert f"| {ADAPTED} (ceiling: k largest error regions fixed) |" in markdown
    figure = Path(report.figure_path)
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and figure.stat().st_size > 10_000
    assert report.overall == data["overall"]


def test_no_zero_shot_scores_the_run_alone(run: LoadedRun, tmp_path: Path):
    report = evaluate_run(run, tmp_path, split="val", zero_shot=False, config=EvalConfig(figure_objects=1))
    data = json.loads(Path(report.json_path).read_text())
    assert data["models"] == [ADAPTED] and data["data"]["split"] == "val"
    assert "adapted - zero-shot" not in Path(report.markdown_path).read_text()


def test_train_split_means_held_out_slices_with_seeded_fixed_prompts(run: LoadedRun, tmp_path: Path):
    with pytest.raises(ConfigError, match="needs held-out slices"):
        evaluate_run(run, tmp_path, split="train")
    first = evaluate_run(
        run, tmp_path / "a", split="train", slices="2", zero_shot=False, config=EvalConfig(figure_objects=1)
    )
    data = json.loads(Path(first.json_path).read_text())
    assert {row["z"] for row in data["per_object"]} == {2} and data["data"]["cases"] == 4
    assert "object_rng" in data["data"]["protocol"]
    again = evaluate_run(
        run, tmp_path / "b", split="train", slices="2", zero_shot=False, config=EvalConfig(figure_objects=1)
    )
    assert again.overall == first.overall  # the same prompts every time
    with pytest.raises(ConfigError, match="fixed prompts"):
        evaluate_models({"m": run.model}, MixtureDataset(run.config.store, "mix", "train", DatasetConfig(size=128)))


def test_interactive_clicks_land_in_the_error_of_the_previous_prediction(test_set: MixtureDataset):
    first_case = list(range(6))  # 3 slices x 2 labels
    result = evaluate_interactive(
        build_model("tiny"), test_set, clicks=(0, 1, 3), seed=5, keep_masks=True, indices=first_case
    )
    rows = result.rows
    assert set(result.summary) == {0, 1, 3} and all(0.0 <= d <= 1.0 for d in result.summary.values())
    assert rows["dice"].between(0.0, 1.0).all() and sorted(set(rows["clicks"])) == [0, 1, 2, 3]
    assert len(rows) == 4 * len(first_case) and len(result.masks) == len(first_case)
    store = SliceStore.open(test_set.store_url, snapshot=test_set.snapshot_id)
    checked = 0
    for row in rows[rows["clicks"] > 0].itertuples():
        gt = store.read_slice(row.case_id, row.z)[1] == row.label
        before = result.masks[(row.case_id, row.z, row.label)][row.clicks - 1]
        x, y = int(row.click_x), int(row.click_y)
        error = gt ^ before
        if error.any():
            assert error[y, x], (row, "click outside the error region")
            assert row.click_label == int(gt[y, x])  # positive in a miss, negative in a false alarm
            checked += 1
        else:
            assert gt[y, x] and row.click_label == 1
    assert checked > 0
    assert set(result.ceiling) == {0, 1, 3} and result.ceiling[0] == pytest.approx(result.summary[0])
    assert result.ceiling[0] <= result.ceiling[1] <= result.ceiling[3] <= 1.0  # more regions fixed: never worse
    for row in rows.itertuples():  # each row's ceiling: its own 0-click mask with that many regions fixed
        gt = store.read_slice(row.case_id, row.z)[1] == row.label
        first = result.masks[(row.case_id, row.z, row.label)][0]
        assert row.ceiling_dice == region_ceiling(gt, first, (row.clicks,))[0]
    again = evaluate_interactive(build_model("tiny"), test_set, clicks=(0, 1), seed=5, indices=first_case).rows
    pd.testing.assert_frame_equal(again, rows[rows["clicks"] <= 1].reset_index(drop=True))  # reproducible
    plain = evaluate_interactive(
        build_model("tiny"), test_set, clicks=(0, 1), seed=5, indices=first_case, config=EvalConfig(feed_logits=False)
    ).rows
    start, later = plain["clicks"] == 0, plain["clicks"] == 1
    assert plain.loc[start, "dice"].tolist() == again.loc[start, "dice"].tolist()  # the same start
    assert plain.loc[later, "dice"].tolist() != again.loc[later, "dice"].tolist()  # fed-back logits matter


def test_clicks_with_mirroring_start_from_the_mirrored_box_score_and_answer_the_averaged_mask(test_set: MixtureDataset):
    model, first_case = build_model("tiny"), list(range(6))
    config = EvalConfig(tta="lr")
    result = evaluate_interactive(
        model, test_set, clicks=(0, 1, 2), seed=5, keep_masks=True, indices=first_case, config=config
    )
    boxes = evaluate_models({"m": model}, test_set, config, indices=first_case).rows
    start = result.rows[result.rows["clicks"] == 0].set_index(["case_id", "z", "label"])["dice"]
    np.testing.assert_allclose(
        start.sort_index().to_numpy(),
        boxes.set_index(["case_id", "z", "label"])["dice"].sort_index().to_numpy(),
        atol=1e-6,
    )
    plain = evaluate_interactive(model, test_set, clicks=(0, 1, 2), seed=5, indices=first_case)
    assert not np.allclose(plain.rows["dice"].to_numpy(), result.rows["dice"].to_numpy())
    store = SliceStore.open(test_set.store_url, snapshot=test_set.snapshot_id)
    checked = 0
    for row in result.rows[result.rows["clicks"] > 0].itertuples():  # each click answers the averaged mask
        gt = store.read_slice(row.case_id, row.z)[1] == row.label
        error = gt ^ result.masks[(row.case_id, row.z, row.label)][row.clicks - 1]
        if error.any():
            x, y = int(row.click_x), int(row.click_y)
            assert error[y, x] and row.click_label == int(gt[y, x])
            checked += 1
    assert checked > 0


def test_region_ceiling_fixes_the_largest_error_regions_first():
    gt = np.zeros((12, 12), dtype=bool)
    gt[2:10, 2:10] = True  # 64 pixels
    pred = gt.copy()
    pred[2:10, 2:5] = False  # a 24-pixel miss
    pred[0, 11] = pred[11, 0] = True  # two 1-pixel false alarms
    pred[11, 10:12] = True  # a 2-pixel false alarm (8-connected to nothing else)
    values = region_ceiling(gt, pred, (0, 1, 2, 4, 10))
    assert values[0] == pytest.approx(2 * 40 / (44 + 64))  # 40 of 64 found, 4 false alarms
    assert values[1] == pytest.approx(2 * 64 / (68 + 64))  # the miss fixed first (largest)
    assert values[2] == pytest.approx(2 * 64 / (66 + 64))  # then the 2-pixel alarm
    assert values[3] == values[4] == 1.0
    diagonal = np.zeros((4, 4), dtype=bool)
    diagonal[[0, 1, 2], [0, 1, 2]] = True  # one 8-connected region, not three
    assert region_ceiling(np.zeros((4, 4), dtype=bool), diagonal, (1,)) == [1.0]
    assert region_ceiling(gt, gt, (0, 3)) == [1.0, 1.0]


def test_config_errors_name_the_value(test_set: MixtureDataset):
    with pytest.raises(ConfigError, match="batch_slices=0"):
        EvalConfig(batch_slices=0)
    with pytest.raises(ConfigError, match="-1"):
        EvalConfig(clicks=(0, -1))
    with pytest.raises(ConfigError, match="tolerance_mm"):
        EvalConfig(tolerance_mm=float("nan"))
    with pytest.raises(ConfigError, match="at least one click count"):
        evaluate_interactive(build_model("tiny"), test_set, clicks=())


def _write_run(root: Path, run: LoadedRun) -> Path:
    """A run directory as training leaves it: config.json, run.json and checkpoints/last.pt."""
    layout = RunLayout(root)
    write_json(layout.config, run.config.to_json())
    write_json(layout.info, dict(run.info))
    save_checkpoint(
        layout.last,
        {"step": 3, "model": run.config.model, "adapter": run.config.adapter, "trainable": trainable_state(run.model)},
    )
    return root


@pytest.fixture(scope="module")
def run_dir(run: LoadedRun, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_run(tmp_path_factory.mktemp("runs") / "run", run)


def test_cli_evaluate_loads_the_run_and_reports(result: EvalResult, run_dir: Path, store: str):
    invoked = CliRunner().invoke(
        app, ["evaluate", str(run_dir), "--store", store, "--split", "test", "--figure-objects", "1", "--json"]
    )
    assert invoked.exit_code == 0, invoked.output
    printed = json.loads(invoked.stdout)
    assert set(printed["overall"]) == {ZERO_SHOT, ADAPTED}
    assert Path(printed["json"]).parent == run_dir / "eval" / "test" and Path(printed["figure"]).is_file()
    overall = aggregate(result.rows, "model")[2].set_index("model")
    for name in (ZERO_SHOT, ADAPTED):  # the loaded run is the same model
        assert printed["overall"][name] == pytest.approx(overall.loc[name, list(METRICS)].to_dict())


def test_cli_predict_writes_a_mask_on_the_image_grid(run_dir: Path, tmp_path: Path):
    affine = np.array([[-0.8, 0, 0, 10], [0, 1.0, 0, -5], [0, 0, 2.5, 0], [0, 0, 0, 1]])  # LAS
    hu = np.full((48, 40, 6), -900, dtype=np.int16)
    hu[10:30, 12:28, 1:5] = 80
    write_nifti(hu, affine, tmp_path / "ct.nii.gz")
    out = tmp_path / "mask.nii.gz"
    result = CliRunner().invoke(
        app,
        [
            "predict",
            str(run_dir),
            "--image",
            str(tmp_path / "ct.nii.gz"),
            "--box",
            "18,12,38,28@2",
            "--z-range",
            "1-4",
            "--out",
            str(out),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["canonical_shape"] == [6, 40, 48] and printed["normalisation"]["method"] == "window:abdomen"
    written = nib.load(out)
    assert written.shape == (48, 40, 6) and np.allclose(written.affine, affine)
    assert set(printed["slices"]) <= {1, 2, 3, 4} and 2 in printed["slices"]


def test_progress_stages_count_every_slice(test_set: MixtureDataset, run: LoadedRun):
    """evaluate_models / evaluate_interactive report one stage each over the evaluated slices."""
    from training.evaluate import _Slices

    seen: dict[str, list] = {}

    def stages(description: str, total: int):
        seen[description] = [total, 0]

        def advance(n: int = 1) -> None:
            seen[description][1] += n

        return advance

    model = run.model
    evaluate_models({"m": model}, test_set, EvalConfig(batch_slices=2), stages=stages)
    evaluate_interactive(model, test_set, (0, 1), config=EvalConfig(batch_slices=2), stages=stages)
    slices = len(_Slices(test_set, 0)._todo(None))
    assert seen == {"scoring m": [slices, slices], f"clicks {model.name}": [slices, slices]} and slices > 1


def test_evaluate_run_scores_each_test_case_in_3d_on_its_source_grid(run: LoadedRun, tmp_path: Path):
    report = evaluate_run(run, tmp_path, split="test", config=EvalConfig(figure_objects=1, tolerance_mm=1.0))
    assert set(report.summaries) == {ZERO_SHOT, ADAPTED}
    summary = json.loads(Path(report.summaries[ADAPTED]).read_text())
    assert list(summary)[:3] == ["metric_per_case", "mean", "foreground_mean"]
    assert summary["samdata"]["label_names"] == {"1": "tumour", "2": "kidney"}
    assert set(summary["mean"]) == {"1", "2"} and len(summary["metric_per_case"]) == 2  # two test cases
    for case in summary["metric_per_case"]:
        pred, ref = (nib.load(case[key]) for key in ("prediction_file", "reference_file"))
        assert pred.shape == ref.shape == (48, 40, 5) and np.allclose(pred.affine, np.eye(4))
        p, g = np.asarray(pred.dataobj), np.asarray(ref.dataobj)
        assert set(np.unique(g)) == {0, 1, 2} and not g[..., [0, 4]].any()  # the case's range: slices 1-3
        for label, scores in case["metrics"].items():
            a, b = p == int(label), g == int(label)
            assert scores["Dice"] == pytest.approx(2 * (a & b).sum() / (a.sum() + b.sum()))
            assert scores["n_ref"] == int(b.sum()) and scores["n_pred"] == int(a.sum())
    data = json.loads(Path(report.json_path).read_text())
    volumetric = data["volumetric"]
    assert volumetric["summaries"] == report.summaries and volumetric["ranges"] == {"case4": [1, 3], "case7": [1, 3]}
    assert volumetric["foreground_mean"][ADAPTED]["Dice"] == pytest.approx(summary["foreground_mean"]["Dice"])
    assert report.volumes == volumetric["foreground_mean"]
    assert "## 3D per case (source grid)" in Path(report.markdown_path).read_text()
    quiet = evaluate_run(run, tmp_path / "off", zero_shot=False, config=EvalConfig(figure_objects=1, volumes=False))
    assert quiet.summaries == {} and json.loads(Path(quiet.json_path).read_text())["volumetric"] is None
    assert not (tmp_path / "off" / "volumes").exists()
    strided = evaluate_run(run, tmp_path / "gaps", split="test", slices="1,3", zero_shot=False)
    assert json.loads(Path(strided.json_path).read_text())["volumetric"]["gaps"] == ["case4", "case7"]
    assert "leaves gaps in the range of case4, case7" in Path(strided.markdown_path).read_text()


def test_slice_maps_keep_the_most_probable_object(test_set: MixtureDataset, run: LoadedRun):
    """A case's 3D prediction is the slices the per-object scores judged: each object's mask where it wins."""
    from training.volume_scores import SliceMaps

    maps = SliceMaps()
    rows = evaluate_models({"m": run.model}, test_set, EvalConfig(), sink=maps).rows
    for row in rows.to_dict("records"):
        found = maps.maps["m"][row["case_id"]][row["z"]] == row["label"]
        assert found.sum() <= row["pred_area"]  # an overlapping, more probable object may take pixels
    assert set(maps.maps["m"]) == set(rows["case_id"])
