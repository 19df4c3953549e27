"""Every flow test runs against the session's Prefect test server (tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _prefect(prefect_server: str) -> str:
    """Start (once) and use the Prefect test server."""
    return prefect_server
