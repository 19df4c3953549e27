"""CLI curation commands through typer's runner: prompts, mixture, show (both modes), info listing, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from samdata.case import Case, CaseMeta, Geometry, Normalisation, Provenance
from samdata.cli.main import app
from storage import SliceStore

runner = CliRunner()
EYE = tuple(tuple(float(v) for v in row) for row in np.eye(4))


def disc_case(case_id: str, radius: int, generator: str | None = None) -> Case:
    """A (2, 32, 32) case with a disc of 'lesion' (label 1) and a bar of 'vessel' (label 2) on slice 1."""
    yy, xx = np.mgrid[:32, :32]
    label = np.zeros((2, 32, 32), np.uint8)
    label[:, (yy - 14) ** 2 + (xx - 12) ** 2 <= radius**2] = 1
    label[1, 26:29, 4:28] = 2
    image = (60 + 3 * xx + 2 * yy).astype(np.uint8)[None].repeat(2, axis=0)
    meta = CaseMeta(
        case_id,
        "CT",
        {1: "lesion", 2: "vessel"},
        Geometry(EYE, (1.0, 1.0, 1.0), EYE, (32, 32, 2), ("R", "A", "S")),
        Normalisation("window:custom", -100.0, 300.0),
        Provenance("synthetic" if generator else "real", case_id, f"h-{case_id}", generator),
    )
    return Case(meta, image, label)


@pytest.fixture
def store(tmp_path: Path) -> str:
    """Four real cases and one synthetic ('fastgan') case."""
    path = tmp_path / "store"
    with SliceStore.open(path, create=True).writer("cases") as writer:
        for i in range(4):
            writer.write_case(disc_case(f"pt{i}", 4 + i))
        writer.write_case(disc_case("gan0", 5, "fastgan"))
    return str(path)


def invoke(*args: str) -> object:
    """Run the CLI with string arguments."""
    return runner.invoke(app, list(args))


def test_prompts_mixture_show_and_info(store: str, tmp_path: Path) -> None:
    res = invoke(
        "prompts",
        store,
        "--scheme",
        "hybrid:box=0.5,points=0,box+points=0.5,points.neg=1",
        "--name",
        "hyb",
        "--seed",
        "4",
        "--json",
    )
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["n_objects"] == 15 and report["n_skipped"] == 0 and report["seed"] == 4
    res = invoke("prompts", store, "--scheme", "points:n=3", "--name", "pts", "--labels", "vessel")
    assert res.exit_code == 0 and "prompt set pts: 5 objects" in " ".join(res.stdout.split())
    res = invoke(
        "mixture",
        store,
        "--name",
        "mix",
        "--real",
        "0.75",
        "--synthetic",
        "0.25",
        "--generator",
        "fastgan=1",
        "--labels",
        "lesion,vessel",
        "--splits",
        "0.5,0.25,0.25",
        "--prompts",
        "hyb",
        "--seed",
        "1",
        "--json",
    )
    assert res.exit_code == 0, res.output
    attrs = json.loads(res.stdout)
    assert attrs["counts"]["train"] == {"real": 2, "synthetic": 1} and attrs["prompt_set"] == "hyb"
    res = invoke("mixture", store, "--name", "plain", "--seed", "1")
    assert res.exit_code == 0 and "train" in res.stdout and "test" in res.stdout
    info = json.loads(invoke("info", store, "--json").stdout)
    assert info["prompt_sets"] == ["hyb", "pts"]
    assert info["mixtures"] == ["mix", "plain"]

    one = tmp_path / "one.png"
    res = invoke("show", store, "--case", "pt3", "--slice", "1", "--prompts", "hyb", "--out", str(one))
    assert res.exit_code == 0, res.output
    grid = tmp_path / "grid.png"
    res = invoke("show", store, "--mixture", "mix", "--grid", "6", "--cols", "3", "--seed", "2", "--out", str(grid))
    assert res.exit_code == 0, res.output
    assert "6 train samples" in " ".join(res.stdout.split())
    pixels = np.asarray(Image.open(grid).convert("RGB"))
    assert pixels.shape[1] > pixels.shape[0] > 300 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 100


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["prompts", "{store}", "--scheme", "lasso", "--name", "x"], "unknown prompt scheme 'lasso'"),
        (["prompts", "{store}", "--scheme", "box", "--name", "x", "--labels", "liver"], "liver"),
        (["mixture", "{store}", "--name", "m", "--splits", "0.7,0.3"], "--splits '0.7,0.3' has 2 values"),
        (["mixture", "{store}", "--name", "m", "--synthetic", "1", "--generator", "fastgan"], "not GEN=W"),
        (["mixture", "{store}", "--name", "m", "--synthetic", "1", "--generator", "vae=1"], "unknown generator"),
        (["mixture", "{store}", "--name", "m", "--prompts", "none"], "unknown prompt set 'none'"),
        (["mixture", "{store}", "--name", "m", "--snapshot", "0000000000000000000A"], "not found"),
        (["show", "{store}", "--out", "{tmp}/x.png"], "give --case and --slice"),
        (["show", "{store}", "--case", "pt0", "--slice", "9", "--out", "{tmp}/x.png"], "z=9"),
        (["show", "{store}", "--mixture", "nope", "--out", "{tmp}/x.png"], "unknown mixture 'nope'"),
    ],
)
def test_errors_exit_2_with_one_line(store: str, tmp_path: Path, args: list[str], match: str) -> None:
    before = SliceStore.open(store).snapshot_id
    res = invoke(*(a.format(store=store, tmp=tmp_path) for a in args))
    assert res.exit_code == 2, res.output
    assert match in " ".join(res.output.split())
    assert SliceStore.open(store).snapshot_id == before
