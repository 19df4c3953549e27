"""Optional dependencies: a missing extra gives one line naming the pip install that adds it."""

from __future__ import annotations

import sys

import pytest
from typer.testing import CliRunner

from samdata.cli.main import app
from samdata.errors import ConfigError
from samdata.extras import MissingExtraError, check_installed, require


def test_require_and_check_name_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    assert require("json", "x", "y").dumps([1]) == "[1]"
    check_installed("json", "x", "y")
    monkeypatch.setitem(sys.modules, "nilearn", None)  # as if not installed
    with pytest.raises(MissingExtraError, match=r"pip install 'samdata\[sample\]'") as err:
        require("nilearn.datasets", "sample", "the MNI152 sample data")
    assert isinstance(err.value, ConfigError) and isinstance(err.value, ImportError)
    with pytest.raises(MissingExtraError, match=r"samdata\[flows\]"):
        check_installed("no_such_package_samdata", "flows", "the flows")


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
