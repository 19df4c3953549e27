"""``samdata export nnunet`` through typer's runner: the dataset written, its summary, JSON output, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from pipelines.mixtures import MixtureConfig, make_mixture
from samdata.cli.main import app
from storage import SliceStore
from tests.pipelines.test_nnunet import real_case

runner = CliRunner()


def test_export_nnunet(tmp_path: Path) -> None:
    store = tmp_path / "store"
    with SliceStore.open(store, create=True).writer("cases") as writer:
        for i in range(3):
            writer.write_case(real_case(f"ct{i}", i))
    make_mixture(store, "m", MixtureConfig(splits=(0.67, 0.0, 0.33), seed=0))
    raw = tmp_path / "raw"
    args = ["export", "nnunet", str(store), str(raw), "--mixture", "m", "--dataset-id", "12", "--name", "Ct"]
    res = runner.invoke(app, [*args, "--no-synthetic", "--train-slices", "1-4"])
    assert res.exit_code == 0, res.output
    assert "2 training and 1 test cases" in res.stdout and "nnUNetv2_plan_and_preprocess -d 12" in res.stdout
    dataset = json.loads((raw / "Dataset012_Ct" / "dataset.json").read_text())
    assert dataset["labels"] == {"background": 0, "liver": 1, "kidney": 2, "ignore": 3}
    assert dataset["samdata"]["train_slices"] == "1-4" and dataset["samdata"]["synthetic"] is False

    res = runner.invoke(app, args)  # the folder is there: called wrongly
    assert res.exit_code == 2 and "--overwrite" in res.output
    res = runner.invoke(app, [*args, "--overwrite", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["folder"] == str(raw / "Dataset012_Ct")
    res = runner.invoke(app, [*args[:4], "--mixture", "m", "--name", "no spaces"])
    assert res.exit_code == 2 and "name" in res.output
