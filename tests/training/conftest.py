"""Shared fixtures of the training tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from pipelines.ingest import ingest
from pipelines.mixtures import MixtureConfig, make_mixture
from samdata.io.sample_data import write_phantoms
from samdata.normalise import IngestConfig


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One torch thread for a module (``pytestmark = pytest.mark.usefixtures("one_thread")``): small models
    on a shared 2-core runner are several times slower with two contending threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Four 32x32x8 CT phantoms (2 train, 2 val cases) in a store with mixture 'mix' (a module may define
    its own ``store``)."""
    root = tmp_path_factory.mktemp("phantoms")
    write_phantoms(root / "src", cases=4, seed=0, shape=(32, 32, 8))
    ingest(root / "src", root / "store", IngestConfig(min_object_voxels=20, min_object_pixels=10))
    make_mixture(root / "store", "mix", MixtureConfig(seed=0, splits=(0.5, 0.5, 0.0)))
    return str(root / "store")
