"""CLI data commands through typer's runner: sample-data, ingest (exit codes), info --json, verify."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from samdata.cli.main import app

runner = CliRunner()


def test_phantom_ingest_info_verify(tmp_path: Path) -> None:
    src, store = tmp_path / "ph", tmp_path / "store"
    res = runner.invoke(app, ["sample-data", "phantom", str(src), "--cases", "2", "--seed", "1"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        app,
        [
            "ingest",
            str(src),
            "--store",
            str(store),
            "--modality",
            "CT",
            "--window",
            "40,400",
            "--min-voxels",
            "20",
            "--min-pixels",
            "5",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert len(report["added"]) == 2 and report["snapshot_id"]
    res = runner.invoke(app, ["info", str(store), "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    for key in ("cases", "slices", "labelled_slices", "objects_per_label", "origins", "snapshots"):
        assert key in info
    assert info["cases"] == 2 and info["origins"] == {"real": 2}
    assert info["snapshots"][0]["id"] == report["snapshot_id"]
    res = runner.invoke(app, ["info", str(store)])
    assert res.exit_code == 0 and "liver" in res.stdout
    res = runner.invoke(app, ["verify", str(store)])
    assert res.exit_code == 0 and "ok" in res.stdout
    res = runner.invoke(app, ["verify", str(store), "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout) == {
        "store": str(store),
        "snapshot_id": report["snapshot_id"],
        "ok": True,
        "problems": [],
    }
    chunk = next(p for p in (store / "chunks").rglob("*") if p.is_file()) if (store / "chunks").is_dir() else None
    if chunk is not None:
        chunk.write_bytes(b"\0" * 16)  # a damaged chunk: exit 1 and the problem in the JSON
        res = runner.invoke(app, ["verify", str(store), "--json"])
        assert res.exit_code == 1 and json.loads(res.stdout)["problems"]


def test_ingest_errors_exit_nonzero(tmp_path: Path) -> None:
    src = tmp_path / "ph"
    runner.invoke(app, ["sample-data", "phantom", str(src), "--cases", "2"])
    bad = next((src / "imagesTr").iterdir())
    bad.write_bytes(b"garbage")
    res = runner.invoke(
        app, ["ingest", str(src), "--store", str(tmp_path / "s"), "--min-voxels", "20", "--min-pixels", "5"]
    )
    assert res.exit_code == 1 and bad.name in res.output
    res = runner.invoke(app, ["ingest", str(src), "--store", str(tmp_path / "s"), "--window", "40;400"])
    assert res.exit_code == 2 and "40;400" in res.output
    res = runner.invoke(app, ["info", str(tmp_path / "nowhere")])
    assert res.exit_code == 2 and "nowhere" in res.output
