"""bench/ingest_stages.py: stages found by qualified-name patterns in a profile that covers helper threads."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from bench import ingest_stages


def test_stages_are_matched_by_qualified_name_patterns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        ingest_stages,
        "STAGES",
        {
            "read": ("samdata.io*.read_volume",),
            "write": ("storage.*.write_slice_chunks", "storage.*.Writer.put"),
            "gone": ("pipelines.ingest.renamed_away",),
        },
    )
    cumulative = {
        "samdata.io.readers.read_volume": 1.5,
        "storage.casegroup.write_slice_chunks": 2.0,
        "storage.writer.Writer.put": 0.5,
        "samdata.io.readers.read_label": 9.0,
    }
    seconds, unmatched = ingest_stages.stage_seconds(cumulative)
    assert seconds == {"read": 1.5, "write": 2.5, "gone": 0.0}
    assert unmatched == ["gone"]


def test_thread_profiles_see_helper_threads() -> None:
    with ingest_stages.ThreadProfiles() as profiles, ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(json.dumps, {"a": list(range(1000))}).result()
    assert len(profiles.profiles) >= 2  # this thread's and the pool's
    assert profiles.cumulative()["json.dumps"] > 0
