"""glibc's malloc thresholds, set for the work a process does (Linux; a no-op elsewhere).

By default glibc's mmap threshold rises to the size of the largest block freed (up to 32 MB), and the two
workloads of samdata want opposite settings, so each front end chooses (no library module sets them on
import): training (:func:`keep_freed_memory`) keeps the tens of MB CPU torch frees per layer instead of
re-faulting them on every forward pass; ingest (:func:`return_large_blocks`) hands freed volumes back at
once, where helper threads would otherwise keep them resident (BENCHMARKS.md, "Ingest" and "Memory").
"""

from __future__ import annotations

import ctypes
import os
import sys

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8  # glibc's mallopt parameter numbers
_ENV = "MALLOC_MMAP_THRESHOLD_"


def _libc() -> ctypes.CDLL | None:
    """glibc, where there is one."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def _mallopt(*settings: tuple[int, int]) -> bool:
    """Apply ``(parameter, value)`` pairs with glibc's mallopt; whether every one was applied."""
    libc = _libc()
    return libc is not None and all(bool(libc.mallopt(parameter, value)) for parameter, value in settings)


def trim() -> bool:
    """Return freed heap memory of every malloc arena to the system (glibc ``malloc_trim``)."""
    libc = _libc()
    return libc is not None and bool(libc.malloc_trim(0))


KEEP_LIMIT = 128 << 20  #: blocks under this size are kept for reuse by :func:`keep_freed_memory`


def keep_freed_memory(limit: int = KEEP_LIMIT, arenas: int = 1) -> bool:
    """Let glibc keep freed blocks under ``limit`` bytes for reuse instead of unmapping them, and the
    heap's free top up to ``4 * limit``, in at most ``arenas`` heap arenas (torch's worker threads
    would otherwise each keep their own freed blocks: a lower training peak, no slower).

    On LiteMedSAM's CPU encoder the default and a 64 MB limit re-fault tens-of-MB activations every
    forward pass and were measured slower than 128 MB and up. A 1 GB limit was as fast, but it also kept
    every freed evaluation batch, so a job's process grew stage by stage; 128 MB keeps the per-layer
    buffers and hands larger ones back (BENCHMARKS.md, "Memory of the demo's process").
    Returns whether it was applied.
    """
    return _mallopt((_M_MMAP_THRESHOLD, limit), (_M_TRIM_THRESHOLD, 4 * limit), (_M_ARENA_MAX, arenas))


def return_large_blocks(threshold: int = 4 << 20, arenas: int = 1) -> bool:
    """Serve every block of ``threshold`` bytes or more with its own mmap, so a freed volume goes back
    to the system at once; slice-sized temporaries (a 512x512 slice is 0.25-1 MB) stay in the heap,
    where a fixed 128 kB threshold would page-fault each one in (Dask's nanny default: several times the
    system time). ``arenas``: the most heap arenas glibc makes (one per thread by default, each keeping its
    own freed blocks, so the ingest's reader threads then hold more at peak; BENCHMARKS.md, "Ingest"). Not
    applied where ``MALLOC_MMAP_THRESHOLD_`` is set (the
    flows set it for training, which wants the opposite, in their own process and its children).
    Returns whether it was applied."""
    return not os.environ.get(_ENV) and _mallopt((_M_MMAP_THRESHOLD, threshold), (_M_ARENA_MAX, arenas))
