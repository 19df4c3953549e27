"""Transactions on the slice store: StoreWriter (the single committer) and CaseWriter (a worker's fork).

Without ``run_name`` a writer's work goes to its branch in one commit at ``finish()`` (or at each
explicit ``checkpoint()``). With ``run_name`` it commits checkpoints to ``staging.<run_name>``,
which a re-run with the same name resumes, and ``finish()`` publishes the run to the branch at once:
a fast-forward (``Repository.reset_branch`` guarded by the old head) when the branch has not moved
since staging began, else a replay of the run's cases and tables on top of it (refused with
StoreError when both sides changed the same case or table). Icechunk's ``Session.fork`` /
``merge`` carry the parallel writes; forks only touch ``/cases/<id>`` and bring their index rows
back, and the committer rewrites the global index before every commit.
"""

from __future__ import annotations

import uuid
from types import TracebackType
from typing import Any

import icechunk
import numpy as np
import zarr

from samdata.case import Case
from samdata.errors import StoreError
from storage.casegroup import case_group, delete_case_group, read_case_group, write_case_group
from storage.history import ancestors, plan_replay
from storage.index import CaseEntry, columns_from_entries, entries_from_columns, read_index, write_index
from storage.location import icechunk_message
from storage.schema import staging_branch
from storage.tables import read_table_group, write_table_group

_ICECHUNK_ERRORS = (icechunk.IcechunkError, icechunk.ConflictError, icechunk.RebaseFailedError)


class CaseWriter:
    """A picklable fork of a writer: ``write_case`` in a worker process, then send it back to merge."""

    def __init__(self, session: icechunk.ForkSession, token: str, generation: int, url: str) -> None:
        self._session, self._token, self._generation, self._url = session, token, generation, url
        self._entries: dict[str, CaseEntry] = {}
        self._root: zarr.Group | None = None

    def __getstate__(self) -> dict[str, Any]:
        """Pickle the fork session and the index rows, not the open Zarr group."""
        return {k: v for k, v in self.__dict__.items() if k != "_root"} | {"_root": None}

    def write_case(self, case: Case) -> CaseWriter:
        """Write a case's pixels and metadata into this fork, keep its index rows; returns self to send back."""
        if self._root is None:
            self._root = zarr.open_group(store=self._session.store, mode="r+")
        self._entries[case.meta.case_id] = write_case_group(self._root, case)
        return self

    def case_ids(self) -> list[str]:
        """Ids of the cases written into this fork."""
        return sorted(self._entries)


class StoreWriter:
    """A transaction on a store branch; use as a context manager (an exception discards its work)."""

    def __init__(
        self, repo: icechunk.Repository, url: str, branch: str, message: str, *, run_name: str | None = None
    ) -> None:
        self._repo, self._url, self._target, self._message = repo, url, branch, message
        self._run_name = run_name
        self._branch = staging_branch(run_name) if run_name is not None else branch
        try:
            if run_name is not None:
                self._start_staging()
            self._open_session()
        except _ICECHUNK_ERRORS as err:
            raise StoreError(
                f"cannot start writer on branch {self._branch!r} of store {url!r}: {icechunk_message(err)}"
            ) from err
        self._entries = entries_from_columns(read_index(self._root))
        self._dirty = False
        self._generation = 0
        self._forks: set[str] = set()
        self._result: str | None = None
        self._closed = False

    def _start_staging(self) -> None:
        """Create the staging branch at the target's head, or move an idle one (no own commits) up to it."""
        head = self._repo.lookup_branch(self._target)
        if self._branch not in self._repo.list_branches():
            self._repo.create_branch(self._branch, head)
            return
        staged = self._repo.lookup_branch(self._branch)
        if staged != head and staged in ancestors(self._repo, head):
            self._repo.reset_branch(self._branch, head, from_snapshot_id=staged)

    def _open_session(self) -> None:
        """Start a fresh writable session at the head of the writer's branch."""
        self._session = self._repo.writable_session(self._branch)
        self._root = zarr.open_group(store=self._session.store, mode="r+")

    def __enter__(self) -> StoreWriter:
        """Enter the transaction."""
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Finish on a clean exit; on an exception drop uncommitted work (main stays as it was)."""
        if exc_type is not None:
            self.abort()
        elif self._result is None and not self._closed:
            self.finish()

    def _check_open(self) -> None:
        """Raise StoreError if the writer has finished or been aborted."""
        if self._result is not None or self._closed:
            raise StoreError(
                f"writer {self._message!r} on store {self._url!r} is already "
                f"{'finished' if self._result is not None else 'aborted'}"
            )

    @property
    def branch(self) -> str:
        """The branch this writer commits to (``staging.<run_name>`` for a resumable run)."""
        return self._branch

    def write_case(self, case: Case) -> None:
        """Write or replace a case: pixels, metadata and its index rows."""
        self._check_open()
        self._entries[case.meta.case_id] = write_case_group(self._root, case)
        self._dirty = True

    def delete_case(self, case_id: str) -> None:
        """Remove a case and its index rows; CaseNotFoundError if absent."""
        self._check_open()
        delete_case_group(self._root, case_id, self._url)
        self._entries.pop(case_id, None)
        self._dirty = True

    def write_table(self, path: str, columns: dict[str, np.ndarray], attrs: dict[str, Any]) -> None:
        """Write or replace the table at ``path`` (1-D equal-length numeric or str columns, JSON attrs)."""
        self._check_open()
        write_table_group(self._root, path, columns, attrs)

    def done_case_ids(self) -> set[str]:
        """Ids of all cases this writer would publish now (its branch head plus its own writes)."""
        return set(self._entries)

    def source_hashes(self) -> dict[str, str]:
        """Source content hash → case id over :meth:`done_case_ids`, for idempotent resumed ingest."""
        return {e.source_hash: cid for cid, e in sorted(self._entries.items())}

    def fork(self) -> CaseWriter:
        """A picklable CaseWriter for another process; needs no uncommitted writes here (checkpoint first)."""
        self._check_open()
        if self._dirty or self._session.has_uncommitted_changes:
            raise StoreError(
                f"writer on branch {self._branch!r} of store {self._url!r} has uncommitted writes; "
                "call checkpoint() before fork() (use run_name=... to keep checkpoints off main)"
            )
        token = uuid.uuid4().hex
        self._forks.add(token)
        return CaseWriter(self._session.fork(), token, self._generation, self._url)

    def merge(self, forks: list[CaseWriter]) -> None:
        """Fold returned CaseWriters (from this writer, since its last commit) into this transaction."""
        self._check_open()
        seen: dict[str, str] = {}
        for fork in forks:
            if fork._generation != self._generation or fork._token not in self._forks:
                raise StoreError(
                    f"fork with cases {fork.case_ids()} was not made by this writer since its "
                    f"last commit on branch {self._branch!r} of {self._url!r}; rewrite those cases"
                )
            for cid in fork._entries:
                if cid in seen:
                    raise StoreError(f"case {cid!r} was written by two forks; expected each case in one fork")
                seen[cid] = fork._token
        try:
            self._session.merge(*[fork._session for fork in forks])
        except _ICECHUNK_ERRORS as err:
            raise StoreError(f"cannot merge forks into writer on {self._url!r}: {icechunk_message(err)}") from err
        for fork in forks:
            self._entries.update(fork._entries)
            self._forks.discard(fork._token)
        self._dirty = self._dirty or bool(seen)

    def checkpoint(self, message: str) -> str:
        """Commit the work so far to the writer's branch (staging for a run) and return the snapshot id."""
        self._check_open()
        if self._dirty:
            write_index(self._root, columns_from_entries(self._entries))
            self._dirty = False
        if not self._session.has_uncommitted_changes:
            return self._session.snapshot_id
        try:
            snapshot = self._session.commit(message, metadata={"run_name": self._run_name or ""})
        except _ICECHUNK_ERRORS as err:
            raise StoreError(
                f"commit {message!r} to branch {self._branch!r} of store {self._url!r} failed "
                f"(another writer may have committed to it since this one started): {icechunk_message(err)}"
            ) from err
        self._generation += 1
        self._forks.clear()
        self._open_session()
        return snapshot

    def finish(self) -> str:
        """Commit what is left and publish to the branch; returns the branch's new snapshot id."""
        if self._result is not None:
            return self._result
        head = self.checkpoint(self._message)
        if self._run_name is not None:
            head = self._publish()
        self._result = head
        return head

    def abort(self) -> None:
        """Drop uncommitted work; committed checkpoints stay on the staging branch for a resume."""
        if self._result is None and not self._closed:
            self._session.discard_changes()
            self._closed = True

    def _publish(self) -> str:
        """Move the target branch to the staging head (fast-forward or replay) and drop staging."""
        repo, staging, where = self._repo, self._branch, self._url
        staged = repo.lookup_branch(staging)
        for _ in range(3):
            target = repo.lookup_branch(self._target)
            if target == staged:
                break
            if target in ancestors(repo, staged):
                try:
                    repo.reset_branch(self._target, staged, from_snapshot_id=target)
                    break
                except _ICECHUNK_ERRORS:
                    continue  # the target moved between lookup and reset: look again
            staged = self._replay(staged, target)
            break
        else:
            raise StoreError(f"branch {self._target!r} of store {where!r} kept moving; could not publish {staging!r}")
        repo.delete_branch(staging)
        return staged

    def _replay(self, staged: str, target: str) -> str:
        """Copy the run's changed cases and tables onto the moved target branch in one commit."""
        plan = plan_replay(self._repo, staged, target, self._url)
        source = zarr.open_group(store=self._repo.readonly_session(snapshot_id=staged).store, mode="r")
        message = f"{self._message} (replayed from {self._branch} {staged} onto {target})"
        replay = StoreWriter(self._repo, self._url, self._target, message)
        staged_cases = set(entries_from_columns(read_index(source)))
        for cid in plan.cases:
            if cid in staged_cases:
                replay.write_case(read_case_group(case_group(source, cid, self._url)))
            elif cid in replay.done_case_ids():
                replay.delete_case(cid)
        for path in plan.tables:
            replay.write_table(path, *read_table_group(source, path, self._url))
        return replay.finish()
