"""Optional dependencies: a missing extra gives one line naming the pip install that adds it."""

from __future__ import annotations

import sys

import pytest

from samdata.errors import ConfigError
from samdata.extras import MissingExtraError, check_installed, require


def test_require_and_check_name_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    assert require("json", "x", "y").dumps([1]) == "[1]"
    check_installed("json", "x", "y")
    for name in ("nilearn", "nilearn.datasets"):  # as if not installed, whatever an earlier test imported
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(MissingExtraError, match=r"pip install 'samdata\[sample\]'") as err:
        require("nilearn.datasets", "sample", "the MNI152 sample data")
    assert isinstance(err.value, ConfigError) and isinstance(err.value, ImportError)
    with pytest.raises(MissingExtraError, match=r"samdata\[flows\]"):
        check_installed("no_such_package_samdata", "flows", "the flows")
