"""``samdata train``: in one process (run, resume, errors) and under torchrun with two CPU processes (gloo)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines.ingest import ingest
from pipelines.mixtures import MixtureConfig, make_mixture
from samdata.cli.main import app
from samdata.io.sample_data import write_phantoms
from samdata.normalise import IngestConfig
from training.run import load_run
from training.train import weights_digest

runner = CliRunner()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Three 32x32x8 CT phantoms in a store with mixture 'mix' (liver only; train and val cases)."""
    root = tmp_path_factory.mktemp("cli")
    write_phantoms(root / "src", cases=3, seed=1, shape=(32, 32, 8))
    ingest(root / "src", root / "store", IngestConfig(min_object_voxels=20, min_object_pixels=10))
    make_mixture(root / "store", "mix", MixtureConfig(labels=("liver",), seed=0, splits=(0.67, 0.33, 0.0)))
    return str(root / "store")


def _train(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["train", *args])
    return result.exit_code, result.output


def test_cli_trains_resumes_and_reports_errors(store: str, tmp_path: Path):
    out = str(tmp_path / "run")
    common = ["--model", "tiny", "--batch-size", "2", "--val-max", "2", "--save-every", "1", "--out", out]
    code, text = _train("--store", store, "--mixture", "mix", "--steps", "1", "--augment", "flip", *common)
    assert code == 0, text
    assert "step 1" in text and "prefix cache memory" in text and "per flip view" in text
    code, text = _train("--steps", "2", "--resume", "--out", out, "--json")  # the rest from config.json
    assert code == 0, text
    record = json.loads(text[text.index("{") :])
    assert record["step"] == 2 and record["resumed"][0]["step"] == 1 and record["model"] == "tiny"
    code, text = _train("--steps", "3", "--resume", "--out", out, "--adapter", "lora:r=2+decoder")
    assert code == 2 and "another model or adapter" in text
    code, text = _train(
        "--store",
        store,
        "--mixture",
        "mix",
        "--adapter",
        "lora:blocks=9",
        "--model",
        "tiny",
        "--out",
        str(tmp_path / "bad"),
    )
    assert code == 2 and "do not exist" in text
    code, text = _train("--store", store, "--mixture", "nope", "--model", "tiny", "--out", str(tmp_path / "bad"))
    assert code == 2 and "unknown mixture 'nope' in store" in text
    code, text = _train("--out", str(tmp_path / "bad"), "--steps", "2")
    assert code == 2 and "needs --store and --mixture" in text


def test_cli_trains_from_a_runs_config_json(store: str, tmp_path: Path):
    """``--config`` with a run's config.json trains that run again (same config, same weights); options given
    explicitly override the file's values."""
    first, again, longer = (tmp_path / name for name in ("first", "again", "longer"))
    code, text = _train(
        "--store",
        store,
        "--mixture",
        "mix",
        "--model",
        "tiny",
        "--steps",
        "1",
        "--batch-size",
        "2",
        "--val-max",
        "2",
        "--seed",
        "3",
        "--device",
        "cpu",
        "--out",
        str(first),
    )
    assert code == 0, text
    code, text = _train("--config", str(first / "config.json"), "--out", str(again))
    assert code == 0, text
    assert json.loads((again / "config.json").read_text()) == json.loads((first / "config.json").read_text())
    assert weights_digest(load_run(again).model) == weights_digest(load_run(first).model)
    code, text = _train("--config", str(first / "config.json"), "--steps", "2", "--out", str(longer))
    assert code == 0, text
    saved = json.loads((longer / "config.json").read_text())
    assert saved["steps"] == 2 and saved["seed"] == 3 and saved["model"] == "tiny"
    (tmp_path / "bad.json").write_text(json.dumps({**saved, "stpes": 2}))
    code, text = _train("--config", str(tmp_path / "bad.json"), "--out", str(tmp_path / "bad"))
    assert code == 2 and "unknown TrainConfig keys ['stpes']" in text


def test_torchrun_two_processes_end_with_equal_weights(store: str, tmp_path: Path):
    """Two gloo processes, an encoder adapter, a trainable prompt encoder and click rounds (several decodes of
    one shared embedding per step, each using only some prompt weights) end with one set of weights."""
    run_dir = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "samdata.cli.main",
        "train",
        "--store",
        store,
        "--mixture",
        "mix",
        "--model",
        "tiny",
        "--adapter",
        "lora:r=2,blocks=3+decoder+prompt",
        "--click-rounds",
        "2",
        "--steps",
        "3",
        "--batch-size",
        "2",
        "--grad-accum",
        "2",
        "--save-every",
        "2",
        "--val-max",
        "2",
        "--device",
        "cpu",
        "--out",
        str(run_dir),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    info = json.loads((run_dir / "run.json").read_text())
    assert info["world_size"] == 2 and info["step"] == 3
    digests = info["rank_weight_sha256"]
    assert len(digests) == 2 and digests[0] == digests[1]
    assert weights_digest(load_run(run_dir).model) == digests[0]
    assert "step 3" in done.stdout + done.stderr
