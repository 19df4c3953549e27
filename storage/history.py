"""Branch history for publishing a staging run: merge base, what each side changed, and clashes.

Icechunk has no merge of two branches, so when ``main`` moved after a run's staging branch was
created, the run is replayed onto ``main`` case by case; this module decides what to replay from
the two Icechunk diffs and refuses when both sides changed the same case or table.
"""

from __future__ import annotations

from dataclasses import dataclass

import icechunk
import zarr

from samdata.errors import StoreError
from storage.schema import CASES, TABLES
from storage.tables import list_table_paths


@dataclass(frozen=True)
class ReplayPlan:
    """What a staging run changed since it left ``main``: case ids and table paths to copy over."""

    base: str
    cases: tuple[str, ...]
    tables: tuple[str, ...]


def ancestors(repo: icechunk.Repository, snapshot_id: str) -> list[str]:
    """Snapshot ids from ``snapshot_id`` back to the repository's first commit."""
    return [s.id for s in repo.ancestry(snapshot_id=snapshot_id)]


def plan_replay(repo: icechunk.Repository, staging_head: str, target_head: str, where: str) -> ReplayPlan:
    """Find the merge base and the run's changed cases/tables; StoreError if they clash with main's."""
    run_line = set(ancestors(repo, staging_head))
    base = next(s for s in ancestors(repo, target_head) if s in run_line)
    run_cases, run_tables = _touched(repo.diff(from_snapshot_id=base, to_snapshot_id=staging_head))
    main_cases, main_tables = _touched(repo.diff(from_snapshot_id=base, to_snapshot_id=target_head))
    staged = _tables_at(repo, staging_head) | _tables_at(repo, target_head)
    run_tables &= staged
    clash = sorted(run_cases & main_cases) + sorted(run_tables & main_tables & staged)
    if clash:
        raise StoreError(
            f"cannot publish to store {where!r}: main moved from {base} to {target_head} since the run "
            f"started and both changed {clash[:10]}; re-run with a new run_name on top of main"
        )
    return ReplayPlan(base, tuple(sorted(run_cases)), tuple(sorted(run_tables)))


def _touched(diff: icechunk.Diff) -> tuple[set[str], set[str]]:
    """Case ids and candidate table paths touched by an Icechunk diff."""
    groups = diff.new_groups | diff.deleted_groups | diff.updated_groups
    arrays = diff.new_arrays | diff.deleted_arrays | diff.updated_arrays | set(diff.updated_chunks)
    cases: set[str] = set()
    tables: set[str] = set()
    for path, is_array in [(p, False) for p in groups] + [(p, True) for p in arrays]:
        parts = path.strip("/").split("/")
        if parts[0] == CASES and len(parts) >= 2:
            cases.add(parts[1])
        elif parts[0] == TABLES and len(parts) >= 2 + is_array:
            tables.add("/".join(parts[1 : len(parts) - is_array]))
    return cases, tables


def _tables_at(repo: icechunk.Repository, snapshot_id: str) -> set[str]:
    """All table paths in a snapshot."""
    root = zarr.open_group(store=repo.readonly_session(snapshot_id=snapshot_id).store, mode="r")
    return set(list_table_paths(root, ""))
