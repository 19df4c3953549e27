"""Tests of ``compare_runs`` / ``samdata compare``: short tiny-SAM and U-Net runs on one store compared on the
same objects and prompts, the checks that refuse runs of other stores or labels, the figures and the CLI."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from pipelines.ingest import ingest
from pipelines.mixtures import MixtureConfig, make_mixture
from samdata.case import Case, Provenance
from samdata.cli.main import app
from samdata.errors import ConfigError, RegistryError
from samdata.io.sample_data import write_phantoms
from samdata.metrics import METRICS
from samdata.normalise import IngestConfig
from storage import SliceStore
from training.compare import CompareConfig, CompareResult, compare_runs
from training.compare_figures import error_map
from training.config import TrainConfig
from training.eval_report import open_split
from training.evaluate import EvalConfig, aggregate, evaluate_models
from training.run import load_run
from training.train import train

LABELS = ("liver", "spine")
SPLITS = (0.5, 0.25, 0.25)

pytestmark = pytest.mark.usefixtures("one_thread")


def _store(root: Path, cases: int, seed: int, splits: tuple[float, float, float] = SPLITS) -> str:
    """32x32x8 CT phantoms ingested into ``root/store`` with mixture 'real' (liver and spine)."""
    write_phantoms(root / "src", cases=cases, seed=seed, shape=(32, 32, 8))
    ingest(root / "src", root / "store", IngestConfig(min_object_voxels=20, min_object_pixels=10))
    make_mixture(root / "store", "real", MixtureConfig(labels=LABELS, seed=0, splits=splits))
    return str(root / "store")


def _train(store: str, mixture: str, out: Path, **values: object) -> Path:
    """A 2-step run (tiny SAM unless ``model`` says otherwise) in ``out``."""
    base = dict(
        store=store,
        mixture=mixture,
        model="tiny",
        steps=2,
        batch_size=2,
        save_every=2,
        log_every=1,
        val_max=4,
        device="cpu",
    )
    train(TrainConfig(**{**base, **values}), out)  # type: ignore[arg-type]
    return out


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Four phantoms (2 train, 1 val, 1 test case), mixture 'real', then a synthetic copy of a case and mixture
    'synth' (real 0.5, synthetic 0.5): the same test split, a later snapshot."""
    path = _store(tmp_path_factory.mktemp("compare"), cases=4, seed=0)
    source = SliceStore.open(path).read_case("phantom_000")
    copy = Case(
        replace(
            source.meta,
            case_id="synth_000",
            provenance=Provenance("synthetic", "copy of phantom_000", "sha256:synth_000", generator="copy", seed=0),
        ),
        source.image,
        source.label,
    )
    with SliceStore.open(path).writer("a synthetic case") as writer:
        writer.write_case(copy)
    make_mixture(path, "synth", MixtureConfig(real=0.5, synthetic=0.5, labels=LABELS, seed=0, splits=SPLITS))
    return path


@pytest.fixture(scope="module")
def runs(store: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """decoder-only on real data, LoRA + decoder on real + synthetic (both holding slices 2-4 of the train cases
    out), and a U-Net on real data (every train slice)."""
    root = tmp_path_factory.mktemp("runs")
    return {
        "decoder": _train(store, "real", root / "decoder", adapter="decoder", val_slices="2-4"),
        "lora": _train(store, "synth", root / "lora", adapter="lora:r=2,blocks=3+decoder", val_slices="2-4"),
        "unet": _train(store, "real", root / "unet", model="unet", adapter="full", labels=LABELS),
    }


@pytest.fixture(scope="module")
def compared(runs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[CompareResult, list[str]]:
    messages: list[str] = []
    result = compare_runs(
        list(runs.values()),
        tmp_path_factory.mktemp("out"),
        CompareConfig(clicks=(0, 1), batch_slices=4),
        on_message=messages.append,
    )
    return result, messages


def test_rows_kinds_files_and_run_records(compared: tuple[CompareResult, list[str]], runs: dict[str, Path]):
    result, messages = compared
    rows = result.rows
    assert [r["name"] for r in rows] == ["zero-shot tiny", "decoder", "lora", "unet"]
    assert [r["kind"] for r in rows] == ["zero-shot", "adapted", "adapted", "baseline"]
    assert [r["synthetic"] for r in rows] == [False, False, True, False]
    assert [r["adapter"] for r in rows] == [None, "decoder", "lora:r=2,alpha=2,blocks=3+decoder", "full"]
    assert [set(r["clicks"]) for r in rows] == [{0, 1}, {0, 1}, {0, 1}, set()]
    assert len({r["objects"] for r in rows}) == 1 and rows[0]["objects"] > 0  # every model, the same objects
    assert rows[0]["trainable"] == rows[0]["steps"] == rows[0]["train_seconds"] == 0 and rows[0]["total"] > 0
    for row, name in zip(rows[1:], runs):
        info = json.loads((runs[name] / "run.json").read_text())
        assert (row["trainable"], row["total"], row["train_seconds"], row["steps"]) == (
            info["trainable"],
            info["total"],
            info["seconds"],
            2,
        )
    assert rows[3]["trainable"] == rows[3]["total"] and rows[0]["feed_logits"] is True  # tiny SAM: fed back
    for row in rows:
        assert 0 <= row["dice"] <= 1 and row["hd95"] >= 0 and row["dice_sd_over_cases"] is not None
        assert all(0 <= d <= 1 for d in row["clicks"].values())
        assert set(row["click_ceiling"]) == set(row["clicks"])
        if row["clicks"]:  # the ceiling starts at the 0-click Dice and never falls
            assert row["click_ceiling"][0] == pytest.approx(row["clicks"][0])
            assert row["click_ceiling"][0] <= row["click_ceiling"][1] <= 1
    saved = json.loads(result.json_path.read_text())
    assert [r["name"] for r in saved["rows"]] == [r["name"] for r in rows]
    assert saved["rows"][1]["clicks"] == {str(c): d for c, d in rows[1]["clicks"].items()}
    assert saved["rows"][1]["click_ceiling"] == {str(c): d for c, d in rows[1]["click_ceiling"].items()}
    assert saved["data"]["split"] == "test" and saved["data"]["mixture"] == "real"
    assert saved["figures"] == {"scores": "compare.png", "errors": "errors.png"}
    markdown = result.markdown_path.read_text()
    assert "| model | kind | data | Dice ± sd | IoU | NSD | HD95 (mm) | trainable params | train time |" in markdown
    assert "| lora | adapted | real + synthetic |" in markdown and "| unet (no prompts; reference) |" in markdown
    assert "| decoder (ceiling: k largest error regions fixed) |" in markdown
    assert "zero-shot tiny (ceiling" not in markdown
    for figure in (result.figure_path, result.error_figure_path):
        assert figure is not None and figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and figure.stat().st_size > 5000
    assert any(m.startswith("scoring") for m in messages) and any("errors.png" in m for m in messages)


def test_metrics_equal_evaluate_models_on_the_same_items(
    compared: tuple[CompareResult, list[str]], runs: dict[str, Path]
):
    rows = {r["name"]: r for r in compared[0].rows}
    for name in ("decoder", "unet"):  # a SAM at 128² and the U-Net at 256²
        loaded = load_run(runs[name])
        dataset, indices, _ = open_split(loaded, "test", None, None)
        alone = evaluate_models(
            {name: loaded.model}, dataset, EvalConfig(prompt_seed=loaded.config.seed), indices=indices
        )
        overall = aggregate(alone.rows, "model")[2].set_index("model").loc[name]
        assert len(alone.rows) == rows[name]["objects"]
        for metric in METRICS:
            assert rows[name][metric] == pytest.approx(float(overall[metric]), rel=1e-6, abs=1e-9), (name, metric)


def test_runs_of_another_store_other_labels_or_trained_on_the_items_are_refused(
    store: str, runs: dict[str, Path], tmp_path: Path
):
    other = _train(
        _store(tmp_path / "other", cases=2, seed=1, splits=(0.5, 0.5, 0.0)), "real", tmp_path / "elsewhere", steps=1
    )
    with pytest.raises(ConfigError, match="different stores") as err:
        compare_runs([runs["decoder"], other], tmp_path / "out", CompareConfig(clicks=()))
    assert str(runs["decoder"]) in str(err.value) and str(other) in str(err.value)
    liver = _train(store, "real", tmp_path / "liver", steps=1, labels=("liver",))
    with pytest.raises(ConfigError, match=r"different label sets.*\['liver', 'spine'\] vs \['liver'\]") as err:
        compare_runs([runs["decoder"], liver], tmp_path / "out", CompareConfig(clicks=()))
    assert str(liver) in str(err.value)
    with pytest.raises(ConfigError, match=r"trained on \d+ of the \d+ objects compared") as err:
        compare_runs([runs["decoder"], runs["unet"]], tmp_path / "out", CompareConfig(split="train", clicks=()))
    assert str(runs["unet"]) in str(err.value)  # the U-Net trained on slices 2-4 that the decoder run held out
    with pytest.raises(ConfigError, match="2 names"):
        compare_runs([runs["decoder"]], tmp_path / "out", names=["a", "b"])
    for bad in (dict(split="trian"), dict(clicks=(0, -1)), dict(device="tpu"), dict(prompt_seed=-1)):
        with pytest.raises(ConfigError):
            CompareConfig(**bad)  # type: ignore[arg-type]


def test_error_map_says_who_is_right():
    gt = np.zeros((2, 1, 6), dtype=bool)
    gt[0, 0, :3], gt[1, 0, 4] = True, True  # two objects on one slice
    sam, unet = gt.copy(), gt.copy()
    sam[0, 0, 1] = unet[0, 0, 1] = False  # both miss
    sam[0, 0, 2] = False  # only SAM misses
    unet[1, 0, 5] = True  # only the U-Net adds a false alarm
    assert error_map(gt, sam, unet)[0].tolist() == [1, 2, 3, 0, 1, 4]


def test_cli_prints_the_tables_and_refuses_a_folder_that_is_not_a_run(runs: dict[str, Path], tmp_path: Path):
    result = CliRunner().invoke(
        app,
        [
            "compare",
            str(runs["decoder"]),
            str(runs["lora"]),
            "--out",
            str(tmp_path / "cmp"),
            "--split",
            "train",
            "--clicks",
            "0,1",
            "--names",
            "dec,lo",
            "--no-zero-shot",
            "--no-feed-logits",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "dec" in result.stdout and "Dice after corrective clicks" in result.stdout
    saved = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert [r["name"] for r in saved["rows"]] == ["dec", "lo"] and saved["figures"]["errors"] is None
    assert [r["synthetic"] for r in saved["rows"]] == [False, True] and not any(r["feed_logits"] for r in saved["rows"])
    assert "object_rng" in saved["data"]["protocol"] and not (tmp_path / "cmp" / "errors.png").exists()
    bad = CliRunner().invoke(app, ["compare", str(tmp_path), str(runs["decoder"]), "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "not a samdata run directory" in bad.output and str(tmp_path) in bad.output


def test_mirroring_scores_every_model_of_the_table_and_is_recorded(runs: dict[str, Path], tmp_path: Path):
    result = CliRunner().invoke(
        app,
        [
            "compare",
            str(runs["decoder"]),
            str(runs["unet"]),
            "--out",
            str(tmp_path / "cmp"),
            "--clicks",
            "none",
            "--no-zero-shot",
            "--tta",
            "lr",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert saved["settings"]["tta"] == "lr"
    assert (
        "Test-time mirroring `lr`: probabilities averaged over 2 mirrored views"
        in (tmp_path / "cmp" / "compare.md").read_text()
    )
    rows = {r["name"]: r for r in saved["rows"]}
    for name in ("decoder", "unet"):
        loaded = load_run(runs[name])
        dataset, indices, _ = open_split(loaded, "test", None, None)
        config = EvalConfig(prompt_seed=loaded.config.seed, tta="lr")
        alone = aggregate(evaluate_models({name: loaded.model}, dataset, config, indices=indices).rows, "model")[2]
        assert rows[name]["dice"] == pytest.approx(float(alone.set_index("model").loc[name, "dice"]), rel=1e-6)
    with pytest.raises(RegistryError, match="unknown test-time augmentation"):
        CompareConfig(tta="mirror")


def test_fed_back_logits_follow_how_the_run_trained():
    from training.compare import default_feed
    from training.config import TrainConfig

    base = dict(store="s", mixture="m")
    assert not default_feed(TrainConfig(**base))  # LiteMedSAM trained on boxes: its mask input never learnt
    assert default_feed(TrainConfig(**base, click_rounds=3))  # trained with fed-back click rounds
    assert not default_feed(TrainConfig(**base, click_rounds=3), trained=False)  # its zero-shot base model
    assert not default_feed(TrainConfig(**base, click_rounds=3, click_feed_logits=False))
    assert default_feed(TrainConfig(**base, model="tiny"))


def test_every_model_gets_3d_scores_and_the_unet_volume_is_what_predict_writes(
    compared: tuple[CompareResult, list[str]], runs: dict[str, Path], store: str, tmp_path: Path
):
    import nibabel as nib

    from samdata.prepare import to_source_grid
    from training.predict import predict_file

    result, _ = compared
    assert set(result.summaries) == {"zero-shot tiny", "decoder", "lora", "unet"}
    saved = json.loads(result.json_path.read_text())["volumetric"]
    assert saved["summaries"] == result.summaries and set(saved["foreground_mean"]) == set(result.summaries)
    assert "## 3D per case (source grid)" in result.markdown_path.read_text()
    summary = json.loads(Path(result.summaries["unet"]).read_text())
    assert set(summary["mean"]) == {"1", "5"} and summary["samdata"]["label_names"] == {"1": "liver", "5": "spine"}
    (case,) = summary["metric_per_case"]  # the one test case
    case_id = Path(case["prediction_file"]).name.split(".")[0]
    lo, hi = summary["samdata"]["ranges"][case_id]
    source = SliceStore.open(store).case_meta(case_id).provenance.source
    written = predict_file(load_run(runs["unet"]), source, tmp_path / "unet.nii.gz", z_range=(lo, hi))
    predicted = np.asarray(nib.load(written.out).dataobj)
    expected = np.select([predicted == 1, predicted == 2], [1, 5], 0)  # liver, spine by the run's label order
    assert np.array_equal(np.asarray(nib.load(case["prediction_file"]).dataobj), expected)
    reference = np.asarray(nib.load(case["reference_file"]).dataobj)
    stored = SliceStore.open(store).read_case(case_id)  # ingest dropped objects under min_object_voxels/pixels
    ranged = np.zeros_like(stored.label)
    ranged[lo : hi + 1] = np.where(np.isin(stored.label, [1, 5]), stored.label, 0)[lo : hi + 1]
    assert np.array_equal(reference, to_source_grid(ranged, stored.meta))
    assert ranged.any()
