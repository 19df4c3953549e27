"""The prompt scheme registry: an unknown name lists the valid ones."""

from __future__ import annotations

import pytest

from samdata.errors import ConfigError, RegistryError
from samdata.prompts import PromptScheme, parse_scheme


def test_unknown_scheme_lists_valid_names() -> None:
    valid = "unknown prompt scheme 'boxes'; valid prompt schemes: box, clicks, hybrid, mask, points"
    with pytest.raises(RegistryError, match=valid):
        parse_scheme("boxes:jitter=5")
    with pytest.raises(ConfigError, match="valid prompt schemes"):
        PromptScheme("lasso")
