"""Fixtures of the synth tests: one deform generator over the atlas slices, shared per module."""

from __future__ import annotations

import pytest

from samdata.synth.deform import DeformGenerator
from tests.samdata.synth.pairs_data import atlas


@pytest.fixture(scope="module")
def shapes() -> DeformGenerator:
    return DeformGenerator(atlas())
