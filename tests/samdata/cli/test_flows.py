"""``samdata flows``: run a flow by name with parameters, list flows and deployments, option parsing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from samdata.cli.flows import parse_crons, parse_params
from samdata.cli.main import app
from samdata.errors import ConfigError
from storage import SliceStore

pytestmark = pytest.mark.usefixtures("prefect_server")
runner = CliRunner()


def test_option_parsing(tmp_path: Path) -> None:
    params = tmp_path / "p.json"
    params.write_text('{"store": "s", "ingest": {"window": "brain"}}')
    assert parse_params(f"@{params}", ["cases_per_task=2", "source=data/x"]) == {
        "store": "s",
        "ingest": {"window": "brain"},
        "cases_per_task": 2,
        "source": "data/x",
    }
    assert parse_crons(["nightly-ingest=0 1 * * *"]) == {"nightly-ingest": "0 1 * * *"}
    for bad in (
        lambda: parse_params("[1]", None),
        lambda: parse_params(None, ["novalue"]),
        lambda: parse_crons(["nightly-ingest"]),
    ):
        with pytest.raises(ConfigError):
            bad()


def test_flows_run_and_list(phantoms: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    params = json.dumps(
        {"source": str(phantoms), "store": str(store), "ingest": {"modality": "CT", "min_voxels": 20, "min_pixels": 10}}
    )
    result = runner.invoke(app, ["flows", "run", "ingest", "--params", params, "-p", "cases_per_task=2", "--json"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["added"]) == 4 and len(SliceStore.open(store).case_ids()) == 4
    bad = runner.invoke(app, ["flows", "run", "ingest", "--params", params, "-p", 'ingest={"window": "abdomn"}'])
    assert bad.exit_code == 2 and "abdomn" in bad.output
    unknown = runner.invoke(app, ["flows", "run", "ingset"])
    assert unknown.exit_code == 2 and "valid flows" in unknown.output
    listing = runner.invoke(app, ["flows", "list"])
    assert listing.exit_code == 0 and "nightly-ingest" in listing.output and "0 2 * * *" in listing.output
