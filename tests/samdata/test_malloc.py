"""glibc malloc settings per workload (samdata.malloc), each checked in a fresh interpreter."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

CODE = """
import sys
from samdata.malloc import keep_freed_memory, return_large_blocks
print(return_large_blocks(), keep_freed_memory())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_ingest_setting_applies_unless_the_environment_chose_one() -> None:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_MMAP_THRESHOLD_"}
    fresh = subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True, text=True, check=True)
    assert fresh.stdout.split() == ["True", "True"]
    # the flows set the training value in the environment: ingest inside them leaves it alone
    chosen = subprocess.run(
        [sys.executable, "-c", CODE],
        env={**env, "MALLOC_MMAP_THRESHOLD_": str(1 << 30)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert chosen.stdout.split() == ["False", "True"]
