"""Where one `samdata ingest` run spends its time, stage by stage (wall seconds per case).

Run: ``.venv/bin/python bench/ingest_stages.py SOURCE [--prefetch]`` on a dataset folder (e.g. the
phantoms ``bench/ingest.py`` writes, or ``samdata sample-data phantom DEST --cases 20``). Each stage is
timed by wrapping the pipeline function that does it, in the thread that runs it: stages on helper
threads (the label's read and cleaning, the index rows) overlap the others, so the column does not
add up to the total. The store goes to a temporary folder. CPU seconds (user, system) of the whole
ingest are printed too: above the wall time, the helper threads ran on a second core.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

STAGES = (  # (module, attribute, label): the functions that do each stage
    ("pipelines.ingest", "plan_ingest", "plan: discover + hash every source"),
    ("pipelines.ingest", "prepare_item", "read + prepare one case (the two below and more)"),
    ("pipelines.ingest", "read_volume", "  image: inflate + window (main thread)"),
    ("pipelines.ingest", "_read_clean_label", "  label: inflate + clean (helper thread)"),
    ("pipelines.ingest", "prepare_case", "  prepare_case: orientation, layout, meta"),
    ("storage.casegroup", "write_slice_chunks", "write: encode + store the chunks"),
    ("storage.index", "CaseEntry.from_case", "  index rows (helper thread)"),
    ("storage.writer", "StoreWriter.checkpoint", "checkpoint: index + commit"),
)


def _wrap(owner: Any, name: str, label: str, seconds: dict[str, float]) -> None:
    """Replace ``owner.name`` by a wrapper adding its wall time to ``seconds[label]``."""
    inner = getattr(owner, name)
    raw = owner.__dict__.get(name) if isinstance(owner, type) else None

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            seconds[label] = seconds.get(label, 0.0) + time.perf_counter() - start

    setattr(owner, name, classmethod(lambda cls, *a, **k: timed(*a, **k)) if isinstance(raw, classmethod) else timed)


def main() -> None:
    """Ingest SOURCE into a temporary store with every stage timed; print seconds per case."""
    import importlib

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("--prefetch", action="store_true", help="read the next case while this one is written")
    parser.add_argument("--modality", default="CT")
    parser.add_argument("--window", default="abdomen")
    args = parser.parse_args()
    seconds: dict[str, float] = {}
    for module, attribute, label in STAGES:
        owner: Any = importlib.import_module(module)
        *path, name = attribute.split(".")
        for part in path:
            owner = getattr(owner, part)
        _wrap(owner, name, label, seconds)
    from pipelines.ingest import ClusterConfig, ingest
    from samdata.normalise import IngestConfig

    config = IngestConfig(modality=args.modality, window=args.window)
    before = resource.getrusage(resource.RUSAGE_SELF)
    with tempfile.TemporaryDirectory(prefix="samdata-stages-") as tmp:
        start = time.perf_counter()
        report = ingest(args.source, Path(tmp) / "store", config, cluster=ClusterConfig(prefetch=args.prefetch))
        total = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    cases = max(1, len(report.added) + len(report.updated))
    show: Callable[[str, float], None] = lambda label, value: print(f"{label:<52}{value:9.2f}{value / cases:10.3f}")
    print(f"{'stage':<52}{'s':>9}{'s/case':>10}")
    show("total (wall)", total)
    for _module, _attribute, label in STAGES:
        show(label, seconds.get(label, 0.0))
    show("CPU user (all threads)", after.ru_utime - before.ru_utime)
    show("CPU system (all threads)", after.ru_stime - before.ru_stime)
    print(f"{cases} case(s), {len(report.failed)} failed")


if __name__ == "__main__":
    main()
