"""Where one `samdata ingest` run spends its time, stage by stage (wall seconds per case).

Run: ``.venv/bin/python bench/ingest_stages.py SOURCE [--prefetch]`` on a dataset folder (e.g. the
phantoms ``bench/ingest.py`` writes, or ``samdata sample-data phantom DEST --cases 20``). The ingest runs
under cProfile, one profiler per thread (the helper threads it starts included); a stage's time is the
cumulative wall time of the functions named for it in :data:`STAGES`, summed over threads. Stages on
helper threads (the label's read and cleaning, the index rows) overlap the others, so the column does
not add up to the total; the profiler's own cost per Python call makes every figure a little larger than
in an unprofiled run. The store goes to a temporary folder. CPU seconds (user, system) of the whole
ingest are printed too: above the wall time, the helper threads ran on a second core.
"""

from __future__ import annotations

import argparse
import cProfile
import resource
import sys
import tempfile
import threading
import time
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: this checkout's packages

#: stage label → the functions that do it, as ``module.qualname`` patterns (fnmatch: ``*`` matches any
#: text, dots included). After a function is renamed or moved, update its name here: a stage that matches
#: nothing is reported, and ``--names WORD`` lists the profiled names containing WORD. One stage's patterns
#: should not match both a function and its callee (their times would add up twice).
STAGES: dict[str, tuple[str, ...]] = {
    "plan: discover + hash every source": ("pipelines.ingest*.plan_ingest",),
    "read + prepare one case (the two below and more)": ("pipelines.ingest*.prepare_item",),
    "  image: inflate + window (main thread)": ("samdata.io*.read_volume",),
    "  label: inflate + clean (helper thread)": ("pipelines.ingest*._read_clean_label",),
    "  prepare: orientation, layout, meta": (
        "samdata.prepare*.canonical_case",
        "pipelines.ingest*.stored_arrays",
        "samdata.prepare*.assemble_case",
    ),
    "write: encode + store the chunks": ("storage.*.write_slice_chunks",),
    "  index rows (helper thread)": ("storage.*.CaseEntry.from_case",),
    "checkpoint: index + commit": ("storage.*.StoreWriter.checkpoint",),
}


class ThreadProfiles:
    """cProfile in this thread and in every thread started while it is on (cProfile sees one thread)."""

    def __init__(self) -> None:
        self.profiles: list[cProfile.Profile] = []
        self._lock = threading.Lock()
        self._own: cProfile.Profile | None = None

    def _start(self, *_: Any) -> None:
        """Profile the calling thread from now on (replaces this hook there)."""
        profile = cProfile.Profile()
        with self._lock:
            self.profiles.append(profile)
        profile.enable()

    def __enter__(self) -> ThreadProfiles:
        self._start()
        self._own = self.profiles[0]
        threading.setprofile(self._start)
        return self

    def __exit__(self, *exc: object) -> None:
        threading.setprofile(None)  # type: ignore[arg-type]
        if self._own is not None:
            self._own.disable()  # this thread's; the helper threads' stopped with their threads

    def cumulative(self) -> dict[str, float]:
        """Cumulative wall seconds per ``module.qualname`` of every profiled Python function, over threads."""
        modules = {
            str(Path(m.__file__).resolve()): name
            for name, m in list(sys.modules.items())
            if getattr(m, "__file__", None)
        }
        seconds: dict[str, float] = {}
        for profile in self.profiles:
            for entry in profile.getstats():
                code = entry.code
                if isinstance(code, str):  # a builtin
                    continue
                module = modules.get(str(Path(code.co_filename).resolve()), code.co_filename)
                name = f"{module}.{code.co_qualname}"
                seconds[name] = seconds.get(name, 0.0) + entry.totaltime
        return seconds


def stage_seconds(cumulative: dict[str, float]) -> tuple[dict[str, float], list[str]]:
    """Seconds per stage of :data:`STAGES`, and the stages whose patterns matched no profiled function."""
    seconds: dict[str, float] = {}
    unmatched = []
    for label, patterns in STAGES.items():
        names = [n for n in cumulative if any(fnmatchcase(n, p) for p in patterns)]
        seconds[label] = sum(cumulative[n] for n in names)
        if not names:
            unmatched.append(label)
    return seconds, unmatched


def main() -> None:
    """Ingest SOURCE into a temporary store under the profiler; print seconds per stage and per case."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("--prefetch", action="store_true", help="read the next case while this one is written")
    parser.add_argument("--modality", default="CT")
    parser.add_argument("--window", default="abdomen")
    parser.add_argument("--names", metavar="WORD", help="also list the profiled functions whose name contains WORD")
    args = parser.parse_args()
    from pipelines.ingest import ClusterConfig, ingest
    from samdata.normalise import IngestConfig

    config = IngestConfig(modality=args.modality, window=args.window)
    before = resource.getrusage(resource.RUSAGE_SELF)
    with tempfile.TemporaryDirectory(prefix="samdata-stages-") as tmp:
        with ThreadProfiles() as profiles:
            start = time.perf_counter()
            report = ingest(args.source, Path(tmp) / "store", config, cluster=ClusterConfig(prefetch=args.prefetch))
            total = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    cumulative = profiles.cumulative()
    seconds, unmatched = stage_seconds(cumulative)
    cases = max(1, len(report.added) + len(report.updated))

    def show(label: str, value: float) -> None:
        print(f"{label:<52}{value:9.2f}{value / cases:10.3f}")

    print(f"{'stage':<52}{'s':>9}{'s/case':>10}")
    show("total (wall)", total)
    for label, value in seconds.items():
        show(label, value)
    show("CPU user (all threads)", after.ru_utime - before.ru_utime)
    show("CPU system (all threads)", after.ru_stime - before.ru_stime)
    print(f"{cases} case(s), {len(report.failed)} failed")
    for label in unmatched:
        print(
            f"stage {label.strip()!r}: no profiled function matches {STAGES[label]}; update STAGES "
            f"(--names WORD lists the profiled names)",
            file=sys.stderr,
        )
    if args.names:
        for name, value in sorted(cumulative.items(), key=lambda item: -item[1]):
            if args.names.lower() in name.lower():
                print(f"{name:<90}{value:9.2f}")


if __name__ == "__main__":
    main()
