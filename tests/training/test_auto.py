"""Tests of prompt-free SAM (``--auto``): the proposer trained beside a run and recorded, the cascade's boxes and
3D runs, prediction that never reads labels (CLI and Python), and evaluate / compare in prompt mode auto."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

import samdata.io.readers
import training.predict
from samdata.cli.main import app
from samdata.errors import CaseNotFoundError, ConfigError, RegistryError
from samdata.io.sample_data import write_phantoms
from storage import SliceStore
from training.auto import auto_segment, frame_of, predict_auto_file, propose, seed_slice, z_runs
from training.auto_eval import AutoModel, evaluate_auto
from training.config import TrainConfig
from training.eval_config import AutoConfig, EvalConfig
from training.eval_report import evaluate_run, open_split
from training.models import build_model
from training.predict import propagate_box
from training.proposer import PROPOSER_DIR, load_proposer, parse_proposer
from training.run import LoadedRun, load_run
from training.train import train
from training.volume_scores import store_values

LABELS = ("liver", "spine")
PROPOSER = "unet:steps=6,lr=0.01,augment=none"

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def sam_run(store: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-step tiny-SAM run with a 6-step U-Net proposer trained beside it (``--proposer``)."""
    out = tmp_path_factory.mktemp("auto") / "run"
    config = TrainConfig(
        store=store,
        mixture="mix",
        model="tiny",
        steps=2,
        batch_size=2,
        labels=LABELS,
        val_max=4,
        device="cpu",
        proposer=PROPOSER,
    )
    train(config, out)
    return out


@pytest.fixture(scope="module")
def scan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new phantom scan with its label folder deleted: nothing to read but the image."""
    source = write_phantoms(tmp_path_factory.mktemp("scan") / "new", cases=1, seed=5, shape=(32, 32, 8))
    shutil.rmtree(source / "labelsTr")
    return sorted((source / "imagesTr").glob("*.nii.gz"))[0]


@pytest.fixture
def no_labels(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every label reader raises: a store's label slices and whole cases, and label files."""

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the auto path read a label")

    monkeypatch.setattr(SliceStore, "read_slice", refuse)
    monkeypatch.setattr(SliceStore, "read_case", refuse)
    monkeypatch.setattr(samdata.io.readers, "read_label", refuse)
    monkeypatch.setattr(training.predict, "read_label", refuse)


def test_train_records_the_proposer_beside_the_run(sam_run: Path, store: str):
    config = json.loads((sam_run / "config.json").read_text())
    assert config["proposer"] == "unet:steps=6,lr=0.01,augment=none,batch_size=0"
    info = json.loads((sam_run / "run.json").read_text())
    entry = info["proposer"]
    assert entry["run_dir"] == PROPOSER_DIR and entry["model"] == "unet" and entry["step"] == 6
    assert entry["labels"] == list(LABELS) == info["label_names"] and entry["spec"] == config["proposer"]
    inner = json.loads((sam_run / PROPOSER_DIR / "config.json").read_text())
    assert (inner["model"], inner["mixture"], inner["seed"], tuple(inner["labels"])) == ("unet", "mix", 0, LABELS)
    assert inner["proposer"] is None and inner["augment"] == [] and inner["lr"] == 0.01
    assert json.loads((sam_run / PROPOSER_DIR / "run.json").read_text())["snapshot_id"] == info["snapshot_id"]
    proposer = load_proposer(load_run(sam_run))
    assert proposer.config.model == "unet" and proposer.model.label_names == LABELS


def test_proposer_specs_and_their_faults(store: str):
    assert parse_proposer("unet")[1].steps == 1200
    assert parse_proposer("unet:augment=flip,affine,steps=3")[1].augment == "flip,affine"
    with pytest.raises(RegistryError, match="valid proposers: unet"):
        parse_proposer("vnet")
    with pytest.raises(ConfigError, match="unknown key"):
        parse_proposer("unet:step=3")
    with pytest.raises(ConfigError, match="steps >= 1"):
        parse_proposer("unet:steps=0")
    with pytest.raises(ConfigError, match="needs no proposer"):
        TrainConfig(store=store, mixture="mix", model="unet", labels=LABELS, proposer="unet")
    run = LoadedRun(build_model("tiny"), TrainConfig(store=store, mixture="mix", model="tiny"), {"run_dir": "old"})
    with pytest.raises(CaseNotFoundError, match="records no proposer"):
        load_proposer(run)


def test_proposals_keep_confident_components_and_group_slices_into_runs():
    probs = np.zeros((1, 5, 20, 20), np.float32)
    probs[0, 0, 2:10, 2:10] = 0.9  # kept
    probs[0, 0, 15:17, 15:17] = 0.95  # 4 pixels: under min_area
    probs[0, 0, 12:18, 2:8] = 0.55  # not confident enough
    probs[0, 1, 4:9, 4:9] = 0.99
    probs[0, 3, 3:11, 3:11] = 0.8
    found = propose(probs, AutoConfig(min_area=5, min_confidence=0.6))[1]
    assert sorted(found) == [0, 1, 3]
    assert found[0].box == (2, 2, 10, 10) and found[0].components == 1 and found[0].area == 64
    assert found[1].confidence == pytest.approx(0.99)
    assert z_runs([0, 1, 3, 8], max_gap=1) == [[0, 1, 3], [8]] and z_runs([0, 1, 3], max_gap=0) == [[0, 1], [3]]
    assert seed_slice([0, 1, 3], found) == 0  # slice 1 is surer, but under half the largest area


def test_given_boxes_carry_the_walk_through_empty_slices(sam_run: Path):
    run = load_run(sam_run)
    image = np.random.default_rng(0).integers(0, 255, (6, 32, 32)).astype(np.uint8)
    counted: list[int] = []
    boxes = {z: (4, 4, 28, 28) for z in range(6)}
    propagate_box(run.model, image, boxes[2], 2, size=128, threshold=1.0, boxes=boxes, advance=counted.append)
    assert len(counted) == 6  # threshold 1: every mask empty, yet each slice with a box was segmented
    counted.clear()
    propagate_box(run.model, image, boxes[2], 2, size=128, threshold=1.0, advance=counted.append)
    assert len(counted) == 1  # without boxes the walk stops at the empty start slice


def test_cli_predict_auto_never_reads_labels(sam_run: Path, store: str, scan: Path, tmp_path: Path, no_labels: None):
    out = tmp_path / "auto.nii.gz"
    result = CliRunner().invoke(
        app, ["predict", str(sam_run), "--image", str(scan), "--auto", "--out", str(out), "--store", store, "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["labels"] == {"1": "liver", "2": "spine"} and report["auto"]["proposer"].endswith(PROPOSER_DIR)
    assert report["auto"]["config"]["boxes"] == "proposer"
    written = nib.load(out)
    assert written.shape == nib.load(scan).shape and np.allclose(written.affine, nib.load(scan).affine)
    assert set(np.unique(np.asarray(written.dataobj))) <= {0, 1, 2}
    runs = [r for found in report["auto"]["labels"].values() for r in found["runs"]]
    assert runs and report["slices"], "the proposer found nothing to box"
    assert all(any(r["first"] <= z <= r["last"] for r in runs) for z in report["slices"])


def test_python_predict_auto_is_the_cascade_on_the_prepared_image(sam_run: Path, store: str, scan: Path, tmp_path):
    run = load_run(sam_run)
    proposer = load_proposer(run)
    config = AutoConfig(boxes="propagate")
    report = predict_auto_file(run, proposer, scan, tmp_path / "p.nii.gz", config=config, store_url=store)
    case = training.predict.prepare_image(run, scan, store)
    direct = auto_segment(
        run.model, proposer.model, case.image, sam_frame=frame_of(run), proposer_frame=frame_of(proposer), config=config
    )
    values, counts = np.unique(direct.labels[direct.labels > 0], return_counts=True)
    assert (
        report.voxels == dict(zip(values.tolist(), counts.tolist())) and report.auto["config"]["boxes"] == "propagate"
    )
    for value, runs in direct.runs.items():  # each run seeded on a slice the proposer boxed
        assert all(seed in direct.proposals[value] and first <= seed <= last for seed, first, last in runs)


def test_evaluate_auto_reads_labels_only_after_predicting(
    sam_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    events: list[str] = []
    read_image, read_slice = SliceStore.read_image, SliceStore.read_slice

    def image_spy(self: SliceStore, case_id: str) -> np.ndarray:
        events.append("image")
        return read_image(self, case_id)

    def label_spy(self: SliceStore, case_id: str, z: int) -> tuple[np.ndarray, np.ndarray]:
        events.append("label")
        return read_slice(self, case_id, z)

    monkeypatch.setattr(SliceStore, "read_image", image_spy)
    monkeypatch.setattr(SliceStore, "read_slice", label_spy)
    run = load_run(sam_run)
    report = evaluate_run(run, tmp_path / "eval", split="val", zero_shot=False, config=EvalConfig(), auto=AutoConfig())
    assert events.count("image") == 2  # the two val cases
    assert "label" in events and events.index("label") > max(i for i, e in enumerate(events) if e == "image")
    written = json.loads(Path(report.json_path).read_text())
    assert written["prompts"]["mode"] == "auto" and written["prompts"]["proposer"].endswith(PROPOSER_DIR)
    assert set(written["overall"]) == {"adapted"} and written["data"]["prompt_set"] is None
    assert set(written["prompts"]["seconds_per_volume"]) == {"adapted"}
    assert len(written["per_object"]) == len(run_objects(run))
    assert "Prompt mode auto" in Path(report.markdown_path).read_text() and Path(report.figure_path).is_file()


def test_auto_3d_scores_are_the_cascade_on_every_slice_of_the_range(sam_run: Path, tmp_path: Path):
    run = load_run(sam_run)
    report = evaluate_run(run, tmp_path / "eval", split="val", zero_shot=False, config=EvalConfig(), auto=AutoConfig())
    section = json.loads(Path(report.json_path).read_text())["volumetric"]
    assert set(section["summaries"]) == {"adapted"} and "--auto" in section["range"]
    summary = json.loads(Path(section["summaries"]["adapted"]).read_text())
    assert len(summary["metric_per_case"]) == len(section["ranges"]) == 2
    # the same cascade again, by hand: its label maps in store values, cut to each case's range
    dataset, indices, _ = open_split(run, "val", None, None)
    cascade = {"adapted": AutoModel(run.model.eval(), frame_of(run), load_proposer(run, None))}
    _, predictions = evaluate_auto(cascade, dataset, EvalConfig(), AutoConfig(), indices=indices)
    store = SliceStore.open(dataset.store_url)
    given = {  # the cascade's label maps in the store's values, by name
        case_id: store_values(found.names, store.case_meta(case_id))[found.labels]
        for case_id, found in predictions["adapted"].items()
    }
    names = {v: n for v, n in store.case_meta(next(iter(given))).label_names.items()}
    assert {names[v] for v in np.unique(next(iter(given.values()))) if v} <= set(LABELS)
    for case_id, (lo, hi) in section["ranges"].items():
        expected = given[case_id][lo : hi + 1]
        written = np.asarray(nib.load(tmp_path / "eval" / "volumes" / "adapted" / f"{case_id}.nii.gz").dataobj)
        assert (written > 0).any()
        for value in (v for v, n in names.items() if n in LABELS):  # every voxel of the range, with or without
            assert (written == value).sum() == (expected == value).sum()  # a reference object on its slice


def test_cli_evaluate_and_compare_in_prompt_mode_auto(sam_run: Path, tmp_path: Path):
    runner = CliRunner()
    result = runner.invoke(app, ["evaluate", str(sam_run), "--split", "val", "--auto", "--out", str(tmp_path / "e")])
    assert result.exit_code == 0, result.output
    assert set(json.loads((tmp_path / "e" / "metrics.json").read_text())["overall"]) == {"zero_shot", "adapted"}
    proposer = sam_run / PROPOSER_DIR
    result = runner.invoke(
        app,
        ["compare", str(sam_run), str(proposer), "--split", "val", "--auto", "--names", "sam,unet", "--no-zero-shot"]
        + ["--out", str(tmp_path / "c"), "--json"],
    )
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.stdout)["rows"]}
    assert set(rows) == {"sam", "unet"} and all(not r["clicks"] for r in rows.values())
    compared = json.loads((tmp_path / "c" / "compare.json").read_text())
    assert compared["prompts"]["mode"] == "auto" and set(compared["prompts"]["proposers"]) == {"sam"}
    assert compared["figures"]["errors"] is None and "Prompt mode auto" in (tmp_path / "c" / "compare.md").read_text()
    assert set(compared["volumetric"]["summaries"]) == {"sam", "unet"} and "--auto" in compared["volumetric"]["range"]


def run_objects(run: LoadedRun) -> list:
    """The val objects of a run's mixture (what an evaluation scores)."""
    return open_split(run, "val", None, None)[0].objects()["z"].tolist()


def test_cli_auto_faults(sam_run: Path, scan: Path, tmp_path: Path):
    runner = CliRunner()
    out = str(tmp_path / "o.nii.gz")
    base = ["predict", str(sam_run), "--image", str(scan), "--out", out]
    result = runner.invoke(app, [*base, "--auto", "--box", "1,1,5,5@1"])
    assert result.exit_code == 2 and "drop --box" in result.output
    result = runner.invoke(app, [*base, "--box", "1,1,5,5@1", "--proposer", str(sam_run)])
    assert result.exit_code == 2 and "add --auto" in result.output
    result = runner.invoke(app, ["predict", str(sam_run / PROPOSER_DIR), "--image", str(scan), "--out", out, "--auto"])
    assert result.exit_code == 2 and "takes no prompt" in result.output
    result = runner.invoke(app, [*base, "--auto", "--proposer", str(sam_run)])
    assert result.exit_code == 2 and "needs a prompt itself" in result.output


def test_resuming_a_finished_run_adds_a_proposer(store: str, tmp_path: Path):
    config = TrainConfig(store=store, mixture="mix", model="tiny", steps=1, batch_size=2, labels=("liver",), val_max=2)
    train(config.with_values({"device": "cpu"}), tmp_path / "run")
    assert "proposer" not in json.loads((tmp_path / "run" / "run.json").read_text())
    spec = "unet:steps=1,augment=none"
    result = train(config.with_values({"device": "cpu", "proposer": spec}), tmp_path / "run", resume=True)
    assert result.step == 1 and result.info["proposer"]["step"] == 1 and result.info["proposer"]["labels"] == ["liver"]
    assert json.loads((tmp_path / "run" / "config.json").read_text())["proposer"].startswith("unet:steps=1,")
