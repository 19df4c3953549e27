"""SliceStore: a read view of one snapshot of the slice store, and the door to its writers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import icechunk
import numpy as np
import pandas as pd
import zarr

from samdata.case import Case, CaseMeta
from samdata.errors import CaseNotFoundError, SnapshotNotFoundError, StoreError
from storage.casegroup import case_group, read_case_group, read_case_meta
from storage.index import IndexColumns, empty_columns, objects_frame, read_index, slices_frame, write_index
from storage.location import Location, S3Options, icechunk_message, locate, open_repository
from storage.records import table_names
from storage.schema import CASES, IMAGE, INDEX, LABEL, LAYOUT_VERSION, MIXTURES, PROMPT_SETS, ROOT_MARKER, TABLES
from storage.tables import list_table_paths, read_table_group

if TYPE_CHECKING:
    from storage.writer import StoreWriter

_SNAPSHOT_ID = re.compile(r"^[0-9A-Z]{20}$")


@dataclass(frozen=True)
class SnapshotInfo:
    """One commit of the store: Icechunk snapshot id, commit message and UTC time."""

    id: str
    message: str
    written_at: datetime


class SliceStore:
    """A read-only view of one snapshot; ``writer()`` starts a transaction on its branch."""

    def __init__(
        self, repo: icechunk.Repository, loc: Location, branch: str, session: icechunk.Session, s3: S3Options | None
    ) -> None:
        self._repo, self._loc, self.branch, self._session, self._s3 = repo, loc, branch, session, s3
        self._root = zarr.open_group(store=session.store, mode="r")
        if self._root.attrs.get(ROOT_MARKER) is None:
            raise StoreError(
                f"{loc.url!r} is an Icechunk repository but not a samdata store "
                f"(root attribute {ROOT_MARKER!r} missing)"
            )
        self._arrays: dict[str, tuple[zarr.Array, zarr.Array]] = {}
        self._index: IndexColumns | None = None

    @classmethod
    def open(
        cls,
        url: str | Path,
        *,
        snapshot: str | None = None,
        branch: str = "main",
        create: bool = False,
        s3: S3Options | None = None,
    ) -> SliceStore:
        """Open the store at a folder or ``s3://bucket/prefix``, at a branch head or a snapshot id."""
        loc = locate(url, s3)
        repo, created = open_repository(loc, create=create)
        if created or (create and branch == "main" and _is_blank(repo)):
            _initialise(repo)
        return cls(repo, loc, branch, _session(repo, loc.url, snapshot=snapshot, branch=branch), s3)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle as (repository, address, snapshot): workers reopen the same snapshot."""
        return (_reopen, (self._repo, self._loc.url, self._s3, self.branch, self.snapshot_id))

    @property
    def url(self) -> str:
        """The canonical address of the store (absolute folder or s3://bucket/prefix)."""
        return self._loc.url

    @property
    def snapshot_id(self) -> str:
        """The Icechunk snapshot id this view reads."""
        return self._session.snapshot_id

    def at(self, snapshot: str) -> SliceStore:
        """Another view of the same store at ``snapshot`` (no reconnect)."""
        return SliceStore(
            self._repo,
            self._loc,
            self.branch,
            _session(self._repo, self.url, snapshot=snapshot, branch=self.branch),
            self._s3,
        )

    def head(self) -> SliceStore:
        """Another view of the same store at the current head of this view's branch (no reconnect)."""
        return SliceStore(
            self._repo,
            self._loc,
            self.branch,
            _session(self._repo, self.url, snapshot=None, branch=self.branch),
            self._s3,
        )

    # --- index -------------------------------------------------------------------------------
    def _columns(self) -> IndexColumns:
        """The index columns of this snapshot (read once, cached)."""
        if self._index is None:
            try:
                self._index = read_index(self._root)
            except (KeyError, ValueError, RuntimeError) as err:
                raise StoreError(f"index of store {self.url!r} at {self.snapshot_id} is unreadable: {err}") from err
        return self._index

    def case_ids(self) -> list[str]:
        """Sorted ids of the cases in this snapshot."""
        return [str(c) for c in self._columns()["cases"]["case_id"]]

    def source_hashes(self) -> dict[str, str]:
        """Map of provenance source content hash → case id, for idempotent ingest."""
        cases = self._columns()["cases"]
        return {str(h): str(c) for h, c in zip(cases["source_hash"], cases["case_id"])}

    def objects(self) -> pd.DataFrame:
        """Index of objects (case_id, z, label, label_name, x0, y0, x1, y1, area, split, origin, modality)."""
        return objects_frame(self._columns())

    def slices(self) -> pd.DataFrame:
        """Index of slices (case_id, z, n_objects, labelled, split, origin, height, width)."""
        return slices_frame(self._columns())

    # --- pixels and metadata -----------------------------------------------------------------
    def _group(self, case_id: str) -> zarr.Group:
        """The group of a case in this snapshot."""
        return case_group(self._root, case_id, f"{self.url}@{self.snapshot_id}")

    def case_meta(self, case_id: str) -> CaseMeta:
        """The metadata of a case; CaseNotFoundError if absent."""
        return read_case_meta(self._group(case_id))

    def read_slice(self, case_id: str, z: int) -> tuple[np.ndarray, np.ndarray]:
        """Slice ``z`` of a case: ((Y, X) uint8 image, (Y, X) uint8|uint16 label)."""
        arrays = self._arrays.get(case_id)
        if arrays is None:
            group = self._group(case_id)
            arrays = self._arrays[case_id] = (group[IMAGE], group[LABEL])  # type: ignore[assignment]
        image, label = arrays
        depth = image.shape[0]
        if not 0 <= int(z) < depth:
            raise CaseNotFoundError(
                f"slice z={z} not in case {case_id!r} of store {self.url!r}; expected 0 <= z < {depth}"
            )
        return np.asarray(image[int(z)]), np.asarray(label[int(z)])

    def read_image(self, case_id: str) -> np.ndarray:
        """The (Z, Y, X) uint8 image of a case, without its label map (prediction reads no labels)."""
        return np.asarray(self._group(case_id)[IMAGE][...])

    def read_case(self, case_id: str) -> Case:
        """The whole case: metadata, (Z, Y, X) uint8 image and label map."""
        return read_case_group(self._group(case_id))

    # --- history -----------------------------------------------------------------------------
    def snapshots(self) -> list[SnapshotInfo]:
        """The commits leading to this view's snapshot, newest first."""
        return [SnapshotInfo(s.id, s.message, s.written_at) for s in self._repo.ancestry(snapshot_id=self.snapshot_id)]

    def info(self) -> dict[str, Any]:
        """A JSON-safe summary: counts, objects per label name, origins, snapshots, table names, and the names on
        disk of cases whose ids were derived from them."""
        cases, slices = self._columns()["cases"], self._columns()["slices"]
        objects = self.objects()
        origins = pd.Series(np.asarray(cases["origin"], dtype=object)).value_counts()
        return {
            "url": self.url,
            "snapshot_id": self.snapshot_id,
            "cases": len(cases["case_id"]),
            "slices": len(slices["z"]),
            "labelled_slices": int((slices["n_objects"] > 0).sum()),
            "objects_per_label": {str(k): int(v) for k, v in objects["label_name"].value_counts().sort_index().items()},
            "origins": {str(k): int(v) for k, v in origins.sort_index().items()},
            "snapshots": [
                {"id": s.id, "message": s.message, "written_at": s.written_at.isoformat()} for s in self.snapshots()
            ],
            "prompt_sets": table_names(self, PROMPT_SETS),
            "mixtures": table_names(self, MIXTURES),
            "case_names": self.case_names(),
        }

    def case_names(self) -> dict[str, str]:
        """Case id → the name on disk, for the cases whose id was derived from a free-form name."""
        names = {}
        for case_id in self.case_ids():
            name = self.case_meta(case_id).provenance.name
            if name:
                names[case_id] = name
        return names

    def verify(self) -> list[str]:
        """Check every chunk, the index against the pixels, metadata and shapes; [] if all is well."""
        from storage.verify import verify_root

        return verify_root(self._root, f"{self.url}@{self.snapshot_id}")

    # --- tables ------------------------------------------------------------------------------
    def read_table(self, path: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """A table's 1-D columns and its attrs; StoreError if the table is absent."""
        return read_table_group(self._root, path, f"{self.url}@{self.snapshot_id}")

    def list_tables(self, prefix: str = "") -> list[str]:
        """Sorted paths of the tables at or below ``prefix``."""
        return list_table_paths(self._root, prefix)

    # --- writing -----------------------------------------------------------------------------
    def writer(self, message: str, *, run_name: str | None = None) -> StoreWriter:
        """Start a transaction at the head of this store's branch (not this view's snapshot).

        With ``run_name`` it checkpoints to ``staging.<run_name>`` and is resumable; see storage.writer.
        """
        from storage.writer import StoreWriter

        return StoreWriter(self._repo, self.url, self.branch, message, run_name=run_name)


def _session(repo: icechunk.Repository, url: str, *, snapshot: str | None, branch: str) -> icechunk.Session:
    """A read-only session at ``snapshot`` or at the head of ``branch``."""
    try:
        if snapshot is not None:
            if not _SNAPSHOT_ID.match(snapshot):
                raise SnapshotNotFoundError(
                    f"snapshot {snapshot!r} is not a snapshot id of store {url!r} (expected 20 characters of 0-9 A-Z)"
                )
            return repo.readonly_session(snapshot_id=snapshot)
        return repo.readonly_session(branch=branch)
    except icechunk.IcechunkError as err:
        what = f"snapshot {snapshot!r}" if snapshot is not None else f"branch {branch!r}"
        raise SnapshotNotFoundError(f"{what} not found in store {url!r}: {icechunk_message(err)}") from err


def _initialise(repo: icechunk.Repository) -> None:
    """Write the empty layout (root marker, cases, empty index, tables) as the store's first commit."""
    session = repo.writable_session("main")
    root = zarr.group(store=session.store, attributes={ROOT_MARKER: LAYOUT_VERSION})
    for name in (CASES, INDEX, TABLES):
        root.require_group(name)
    write_index(root, empty_columns())
    session.commit("create samdata store")


def _is_blank(repo: icechunk.Repository) -> bool:
    """Whether main holds only Icechunk's initial commit (a create that stopped before initialising)."""
    return repo.lookup_snapshot(repo.lookup_branch("main")).parent_id is None


def _reopen(repo: icechunk.Repository, url: str, s3: S3Options | None, branch: str, snapshot: str) -> SliceStore:
    """Rebuild a pickled SliceStore at its snapshot."""
    return SliceStore(repo, locate(url, s3), branch, _session(repo, url, snapshot=snapshot, branch=branch), s3)
