"""One Prefect test server for every flow test, a private PREFECT_HOME, and a tiny phantom dataset.

Prefect reads its settings when first imported, so the environment is set here, before any test
module imports ``flows``. Flows run their parallel tasks in-process (``SAMDATA_DASK_WORKERS=1``)
unless a test gives them a Dask cluster.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="samdata-prefect-test-")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
os.environ["SAMDATA_DASK_WORKERS"] = "1"
os.environ.pop("SAMDATA_DASK_ADDRESS", None)

SHAPE = (32, 32, 8)


@pytest.fixture(scope="session", autouse=True)
def prefect_server() -> Iterator[str]:
    """A temporary Prefect API server (SQLite in a temp folder) for the whole session; yields its URL."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=300):
        yield str(PREFECT_API_URL.value())


@pytest.fixture
def phantoms(tmp_path: Path) -> Path:
    """Four seeded 32x32x8 CT phantoms in the MSD layout."""
    from samdata.io.sample_data import write_phantoms

    return write_phantoms(tmp_path / "src", cases=4, seed=0, shape=SHAPE)
