"""``samdata synth``: kinds, generate (--kind, --generator, --medigan), train (cgan, fastgan), export-medigan."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from samdata.case import Case
from samdata.cli.main import app
from storage import SliceStore

pytestmark = pytest.mark.filterwarnings("ignore:pkg_resources is deprecated:UserWarning")
runner = CliRunner()
TINY_GAN = ["--kind", "fastgan", "--size", "32", "--width", "4", "--latent", "8", "--batch-size", "2"]
TINY_CGAN = ["--kind", "cgan", "--size", "64", "--width", "4", "--batch-size", "2"]
OPEN = ["--area-slack", "100", "--component-slack", "100", "--min-distance", "0", "--frechet-max", "0"]


def last_json(text: str) -> dict:
    """The JSON object printed last on stdout."""
    return json.loads(text[text.index("{") :])


@pytest.fixture
def store(tmp_path: Path, mr_disc_case: Callable[..., Case]) -> Path:
    path = tmp_path / "store"
    opened = SliceStore.open(path, create=True)
    with opened.writer("real cases") as writer:
        for i in range(3):
            writer.write_case(mr_disc_case(f"real{i}", i))
    return path


def test_kinds_are_listed_with_their_keys() -> None:
    result = runner.invoke(app, ["synth", "kinds", "--json"])
    assert result.exit_code == 0, result.output
    kinds = last_json(result.stdout)
    assert set(kinds) == {"deform", "labels2image", "cgan", "fastgan"}
    assert kinds["cgan"]["trains"] and not kinds["deform"]["trains"] and "mode" in kinds["labels2image"]["keys"]


def test_generate_deform_and_labels2image_from_the_command_line(store: Path) -> None:
    result = runner.invoke(
        app, ["synth", "generate", str(store), "--kind", "deform", "--labels", "blob", "--count", "4", *OPEN, "--json"]
    )
    assert result.exit_code == 0, result.output
    report = last_json(result.stdout)
    assert report["generator_id"] == "deform" and report["accepted"] == 4 and report["pairs_per_s"] > 0
    result = runner.invoke(
        app,
        [
            "synth",
            "generate",
            str(store),
            "--kind",
            "labels2image:mode=random",
            "--name",
            "l2i_rand",
            "--labels",
            "blob",
            "--count",
            "3",
            *OPEN,
        ],
    )
    assert result.exit_code == 0, result.output
    assert "l2i_rand seed 0: generated 3" in result.stdout
    ids = SliceStore.open(store).case_ids()
    assert sum(c.startswith("syn-deform-0-") for c in ids) == 4 and sum(c.startswith("syn-l2i_rand-") for c in ids) == 3


def test_train_generate_and_export_cgan_and_fastgan(store: Path, tmp_path: Path) -> None:
    for kind, args in (("cgan", TINY_CGAN), ("fastgan", TINY_GAN)):
        gen = tmp_path / f"{kind}gen"
        result = runner.invoke(
            app, ["synth", "train", str(store), "--labels", "blob", "--out", str(gen), "--steps", "2", *args, "--json"]
        )
        assert result.exit_code == 0, result.output
        trained = last_json(result.stdout)
        assert trained["steps"] == 2 and trained["kind"] == kind and len(trained["checkpoint_hash"]) == 64
        result = runner.invoke(
            app, ["synth", "generate", str(store), "--generator", str(gen), "--count", "3", *OPEN, "--json"]
        )
        assert result.exit_code == 0, result.output
        report = last_json(result.stdout)
        assert report["generator_id"] == f"{kind}gen" and report["generated"] == 3
        export = ["synth", "export-medigan", str(gen), str(tmp_path / "pkg")]
        if kind == "cgan":
            result = runner.invoke(app, export)
            assert result.exit_code == 2 and "--store" in result.output
            export += ["--store", str(store)]
        result = runner.invoke(app, export)
        assert result.exit_code == 0, result.output
        package = tmp_path / "pkg" / f"SAMDATA_{kind.upper()}GEN"
        assert (package / "metadata.json").is_file()
        result = runner.invoke(
            app,
            [
                "synth",
                "generate",
                str(store),
                "--medigan",
                package.name,
                "--package",
                str(package),
                "--labels",
                "blob",
                "--count",
                "2",
                *OPEN,
                "--dry-run",
            ],
        )
        assert result.exit_code == 0, result.output
        assert f"medigan.{package.name} seed 0: generated 2" in result.stdout


def test_command_line_errors_name_the_fix(store: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["synth", "generate", str(store), "--count", "2"])
    assert result.exit_code == 2 and "--kind SPEC" in result.output and "--generator GEN" in result.output
    result = runner.invoke(app, ["synth", "generate", str(store), "--count", "2", "--kind", "deform"])
    assert result.exit_code == 2 and "--labels" in result.output
    result = runner.invoke(app, ["synth", "generate", str(store), "--count", "2", "--kind", "cgan", "--labels", "blob"])
    assert result.exit_code == 2 and "needs training first" in result.output
    result = runner.invoke(app, ["synth", "generate", str(store), "--count", "2", "--kind", "warp", "--labels", "blob"])
    assert result.exit_code == 2 and "valid generator kinds" in result.output
    result = runner.invoke(
        app,
        [
            "synth",
            "generate",
            str(store),
            "--count",
            "2",
            "--medigan",
            "X",
            "--package",
            str(tmp_path / "absent"),
            "--labels",
            "blob",
        ],
    )
    assert result.exit_code == 2 and "never downloads" in result.output
    result = runner.invoke(
        app, ["synth", "train", str(store), "--labels", "liver", "--out", str(tmp_path / "g"), *TINY_CGAN]
    )
    assert result.exit_code == 2 and "unknown label name" in result.output
    result = runner.invoke(
        app, ["synth", "train", str(store), "--labels", "blob", "--out", str(tmp_path / "g"), "--kind", "deform"]
    )
    assert result.exit_code == 2 and "needs no training" in result.output
    result = runner.invoke(app, ["synth", "generate", "--help"])
    assert "runs when loaded" in " ".join(result.output.replace("│", " ").split())


@pytest.mark.slow
def test_deform_on_real_white_matter_passes_the_gate_and_keeps_every_label(tmp_path: Path) -> None:
    from pipelines.ingest import ingest
    from pipelines.synthesize import SliceQuery, SynthConfig, build_source, synthesize
    from samdata.io.sample_data import write_mni152
    from samdata.normalise import IngestConfig

    ingest(write_mni152(tmp_path / "mni"), tmp_path / "store", IngestConfig(modality="MR"))
    source, reference = build_source(
        tmp_path / "store", SliceQuery(labels=("white_matter",), slices=(50, 80, 107)), "deform"
    )
    report = synthesize(tmp_path / "store", source, reference, SynthConfig(count=32, seed=0))
    assert report.accepted >= 28 and report.batches[0]["frechet"] < 1.0  # real texture: far below the limit (2)
    case = SliceStore.open(tmp_path / "store").read_case(report.case_ids[0])
    assert case.image.shape == (1, 233, 197) and set(case.meta.label_names.values()) == {
        "background",
        "white_matter",
        "grey_matter",
        "other_brain",
    }
