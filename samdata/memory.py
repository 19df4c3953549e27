"""Peak memory per stage of a job, and handing freed memory back between stages (Linux; no-ops elsewhere).

:class:`StageMemory` measures each stage's peak resident set: it resets the kernel's high-water mark
(``/proc/self/clear_refs``, value 5) when a stage starts and reads ``VmHWM`` when it ends. Between stages
it calls glibc's ``malloc_trim(0)``: training keeps freed blocks for reuse (:mod:`samdata.malloc`), and
every thread that allocated kept its own arena of them, so without a trim each stage's freed memory stays
resident beside the next stage's (the demo's largest process grew stage by stage that way; BENCHMARKS.md).
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from samdata.malloc import trim

_MB = 1 << 20


def _status(key: str) -> int | None:
    """A ``/proc/self/status`` field in bytes (None where there is no /proc)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def rss() -> int:
    """The process's resident set now, in bytes (0 where unknown)."""
    return _status("VmRSS") or 0


def peak_rss() -> int:
    """The resident high-water mark since the last :func:`reset_peak` (or the process start), in bytes."""
    found = _status("VmHWM")
    if found is not None:
        return found
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, kB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def reset_peak() -> bool:
    """Reset the high-water mark to the current resident set (Linux ``clear_refs``); whether it worked."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


class StageMemory:
    """Peak resident memory (MB) and wall time of each named stage of one process, in order."""

    def __init__(self) -> None:
        self.stages: dict[str, dict[str, float]] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Measure the block as stage ``name`` (freed memory handed back before and after it)."""
        trim()
        resettable = reset_peak()
        started = time.perf_counter()
        try:
            yield
        finally:
            peak = peak_rss() if resettable else rss()
            self.stages[name] = {"peak_mb": round(peak / _MB), "seconds": round(time.perf_counter() - started, 1)}
            trim()

    @property
    def peak_mb(self) -> int:
        """The largest stage peak so far (MB)."""
        return max((s["peak_mb"] for s in self.stages.values()), default=round(rss() / _MB))

    def lines(self) -> list[str]:
        """One line per stage: its peak resident memory and time."""
        return [f"{name}: peak {s['peak_mb']:,.0f} MB, {s['seconds']:.0f} s" for name, s in self.stages.items()]
