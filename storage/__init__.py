"""The slice store: a versioned, transactional Zarr v3 store of 2D slices on Icechunk (see storage.schema)."""

from storage.location import S3Options
from storage.store import SliceStore, SnapshotInfo
from storage.writer import CaseWriter, StoreWriter

__all__ = ["CaseWriter", "S3Options", "SliceStore", "SnapshotInfo", "StoreWriter"]
