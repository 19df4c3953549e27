"""samdata evaluate and predict: a run folder that is not a run is refused with one clear line.

The commands' runs with a model stay in tests/training/ (test_evaluate.py, test_predict.py, test_compare.py,
test_unet.py), where the module fixtures that build those runs live.
"""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from samdata.cli.main import app


def test_cli_evaluate_missing_run_dir_is_a_clear_error(tmp_path: Path):
    missing = tmp_path / "no-such-run"
    result = CliRunner().invoke(app, ["evaluate", str(missing), "--split", "test"])
    assert result.exit_code == 2 and str(missing) in result.output and "not a samdata run directory" in result.output
