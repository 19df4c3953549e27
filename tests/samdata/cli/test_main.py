"""The entry point: --version, --log-level, exit codes (2 called wrongly, 1 failed), missing extras named."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from samdata.cli.main import app

runner = CliRunner()


def test_version_log_level_and_exit_codes(tmp_path: Path) -> None:
    from importlib.metadata import version

    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.stdout.strip() == f"samdata {version('samdata')}"
    res = runner.invoke(app, ["--log-level", "loud", "info", str(tmp_path)])
    assert res.exit_code == 2 and "--log-level" in res.output
    res = runner.invoke(app, ["--log-level", "debug", "info", str(tmp_path / "nowhere")])
    assert res.exit_code == 2 and "nowhere" in res.output  # a store that does not exist: it cannot start
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "zarr.json").write_text("{not json")
    res = runner.invoke(app, ["info", str(tmp_path / "junk")])
    assert res.exit_code == 1 and "junk" in res.output  # it ran and the store was broken: exit 1
    res = runner.invoke(app, ["prompts", str(tmp_path / "nowhere"), "--scheme", "lasso", "--name", "x"])
    assert res.exit_code == 2 and "lasso" in res.output  # called wrongly: exit 2


def test_commands_say_which_extra_is_missing(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    runner = CliRunner()
    monkeypatch.setitem(sys.modules, "nilearn", None)
    result = runner.invoke(app, ["sample-data", "mni152", str(tmp_path / "mni")])
    assert result.exit_code == 2 and "samdata[sample]" in result.output
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "prefect" else real(name, *a))
    result = runner.invoke(app, ["flows", "list"])
    assert result.exit_code == 2 and "samdata[flows]" in result.output
