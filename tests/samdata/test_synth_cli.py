"""``samdata synth``: train, generate (own generator and medigan package), export-medigan; the LiteMedSAM gate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from samdata.cli.main import app
from samdata.cli.synth import SamGate
from storage import SliceStore
from tests.pipelines.test_synthesize import disc_case

pytestmark = pytest.mark.filterwarnings("ignore:pkg_resources is deprecated:UserWarning")
runner = CliRunner()
TINY_ARGS = ["--size", "32", "--width", "4", "--latent", "8", "--batch-size", "2", "--sample-every", "0"]


def last_json(text: str) -> dict:
    """The JSON object printed last on stdout."""
    return json.loads(text[text.index("{"):])


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "store"
    opened = SliceStore.open(path, create=True)
    with opened.writer("real cases") as writer:
        for i in range(3):
            writer.write_case(disc_case(f"real{i}", i))
    return path


def test_train_generate_export_and_medigan_from_the_command_line(store: Path, tmp_path: Path) -> None:
    gen = tmp_path / "discgen"
    result = runner.invoke(app, ["synth", "train", str(store), "--labels", "blob", "--out", str(gen), "--steps", "2",
                                 *TINY_ARGS, "--json"])
    assert result.exit_code == 0, result.output
    trained = last_json(result.stdout)
    assert trained["steps"] == 2 and (gen / "generator.pt").is_file() and len(trained["checkpoint_hash"]) == 64
    result = runner.invoke(app, ["synth", "generate", str(store), "--generator", str(gen), "--count", "3",
                                 "--model", "tiny", "--min-dice", "0", "--json"])
    assert result.exit_code == 0, result.output
    report = last_json(result.stdout)
    assert report["generator_id"] == "discgen" and report["generated"] == 3
    assert report["accepted"] + report["rejected"] == 3 and report["batches"][0]["frechet"] is not None
    result = runner.invoke(app, ["synth", "export-medigan", str(gen), str(tmp_path / "pkg")])
    assert result.exit_code == 0, result.output
    package = tmp_path / "pkg" / "SAMDATA_DISCGEN"
    assert (package / "metadata.json").is_file()
    result = runner.invoke(app, ["synth", "generate", str(store), "--medigan", "SAMDATA_DISCGEN", "--package",
                                 str(package), "--labels", "blob", "--count", "2", "--model", "none", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "medigan.SAMDATA_DISCGEN seed 0: generated 2" in result.stdout


def test_command_line_errors_name_the_fix(store: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["synth", "generate", str(store), "--count", "2"])
    assert result.exit_code == 2 and "--generator GEN or --medigan MODEL_ID" in result.output
    result = runner.invoke(app, ["synth", "generate", str(store), "--count", "2", "--medigan", "X", "--package",
                                 str(tmp_path)])
    assert result.exit_code == 2 and "--labels" in result.output
    result = runner.invoke(app, ["synth", "generate", str(store), "--count", "2", "--medigan", "X", "--package",
                                 str(tmp_path / "absent"), "--labels", "blob", "--model", "none"])
    assert result.exit_code == 2 and "never downloads" in result.output
    result = runner.invoke(app, ["synth", "train", str(store), "--labels", "liver", "--out", str(tmp_path / "g"),
                                 *TINY_ARGS])
    assert result.exit_code == 2 and "unknown label name" in result.output
    result = runner.invoke(app, ["synth", "generate", "--help"])
    assert "runs when loaded" in result.output


@pytest.mark.slow
def test_litemedsam_gate_on_real_white_matter(tmp_path: Path) -> None:
    from pipelines.ingest import ingest
    from pipelines.synthesize import SliceQuery, load_real_pairs
    from samdata.io.sample_data import write_mni152
    from samdata.normalise import IngestConfig
    from samdata.synth.gate import GateConfig, calibrate, mask_box, run_gate

    ingest(write_mni152(tmp_path / "mni"), tmp_path / "store", IngestConfig(modality="MR"))
    pairs = load_real_pairs(tmp_path / "store", SliceQuery(labels=("white_matter",), slices=(70, 100)))
    gate = SamGate("litemedsam")
    features = gate.features(pairs.images)
    assert features.shape == (2, 256) and np.isfinite(features).all()
    box = np.array([mask_box(m[0]) for m in pairs.masks], np.float32)
    predicted = gate.segment(pairs.images, box)
    dice = [2 * (p & m[0]).sum() / (p.sum() + m[0].sum()) for p, m in zip(predicted, pairs.masks)]
    assert min(dice) > 0.2  # zero-shot LiteMedSAM on white matter: ~0.4 (REFERENCES.md)
    config, ref = calibrate(GateConfig(), pairs.images, pairs.label_map(), (1,), gate.segment, gate.features)
    assert config.min_dice == pytest.approx(0.8 * np.median(ref.real_dice))
    report = run_gate(pairs.images[::-1].copy(), pairs.label_map()[::-1].astype(np.uint8), (1,), config, ref,
                      gate.segment, gate.features)
    assert [v.reasons for v in report.verdicts] == [["memorised"], ["memorised"]]  # real slices are copies
    assert report.frechet == pytest.approx(0.0, abs=1e-3)
