"""Per-stage peak memory (samdata.memory): each stage's own high-water mark, freed memory handed back."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from samdata.memory import StageMemory, peak_rss, reset_peak, rss, trim

MB = 1 << 20


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/clear_refs and VmHWM")
def test_each_stage_reports_its_own_peak() -> None:
    memory = StageMemory()
    with memory.stage("big"):
        block = np.ones(400 * MB, dtype=np.uint8)  # touched: 400 MB resident
        del block
    with memory.stage("small"):
        block = np.ones(8 * MB, dtype=np.uint8)
        del block
    big, small = memory.stages["big"]["peak_mb"], memory.stages["small"]["peak_mb"]
    assert big - small >= 350, memory.stages  # the second stage does not inherit the first one's peak
    assert memory.peak_mb == big and list(memory.stages) == ["big", "small"]
    assert memory.lines()[0].startswith("big: peak ") and memory.stages["small"]["seconds"] >= 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc and /proc")
def test_high_water_mark_resets_and_trim_runs() -> None:
    block = np.ones(300 * MB, dtype=np.uint8)
    del block
    assert peak_rss() >= rss() + 250 * MB
    assert reset_peak() and peak_rss() < rss() + 50 * MB
    assert isinstance(trim(), bool)
