"""Fixtures shared across test packages: a Prefect test server, a tiny phantom dataset, an MR-like disc case.

Prefect reads its settings when first imported, so the environment is set here, before any test
module imports ``flows`` (the flow tests and the ``samdata flows`` CLI tests both do). Flows run their
parallel tasks in-process (``SAMDATA_DASK_WORKERS=1``) unless a test gives them a Dask cluster.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from samdata.case import Case, CaseMeta, Geometry, Normalisation, Provenance

os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="samdata-prefect-test-")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
os.environ["SAMDATA_DASK_WORKERS"] = "1"
os.environ.pop("SAMDATA_DASK_ADDRESS", None)

SHAPE = (32, 32, 8)


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[str]:
    """A temporary Prefect API server (SQLite in a temp folder) for the whole session; yields its URL.

    Started by the first test that needs it (tests/flows/ use it throughout), so tests that never run a
    flow do not pay for it."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=300):
        yield str(PREFECT_API_URL.value())


@pytest.fixture
def phantoms(tmp_path: Path) -> Path:
    """Four seeded 32x32x8 CT phantoms in the MSD layout."""
    from samdata.io.sample_data import write_phantoms

    return write_phantoms(tmp_path / "src", cases=4, seed=0, shape=SHAPE)


def _mr_disc_case(case_id: str, seed: int, split: str = "train") -> Case:
    """(4, 40, 36) MR-like case: a bright disc labelled 'blob' (1) on slices 1-2, 'rim' (2) on slice 2."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:40, :36]
    image = rng.integers(10, 50, (4, 40, 36)).astype(np.uint8)
    label = np.zeros((4, 40, 36), np.uint8)
    for z in (1, 2):
        disc = (yy - rng.uniform(15, 25)) ** 2 + (xx - rng.uniform(12, 24)) ** 2 < rng.uniform(30, 70)
        image[z][disc], label[z][disc] = 190, 1
    label[2, 0:3, 0:3] = 2
    spacing = (0.7, 0.8, 3.0)
    affine = tuple(tuple(float(v) for v in row) for row in np.diag([*spacing, 1.0]))
    geometry = Geometry(affine, spacing, affine, (36, 40, 4), ("R", "A", "S"))
    meta = CaseMeta(
        case_id,
        "MR",
        {1: "blob", 2: "rim"},
        geometry,
        Normalisation("percentile", 0.0, 1.0),
        Provenance("real", case_id, f"hash-{case_id}"),
        split,
    )
    return Case(meta, image, label)


@pytest.fixture(scope="session")
def mr_disc_case() -> Callable[..., Case]:
    """The seeded MR disc case factory ``mr_disc_case(case_id, seed, split="train")`` of the synthesis tests."""
    return _mr_disc_case
