"""The slice and object index: per-case rows in memory, global 1-D columns in the store."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import zarr

from samdata.case import Case, slice_objects
from storage.columns import read_columns, write_columns
from storage.schema import INDEX

CASE_COLUMNS = ("case_id", "split", "origin", "modality", "source_hash", "label_names", "depth", "height", "width")
SLICE_COLUMNS = ("case", "z", "n_objects")
OBJECT_COLUMNS = ("case", "z", "label", "x0", "y0", "x1", "y1", "area")
_CASE_STR = CASE_COLUMNS[:6]
IndexColumns = dict[str, dict[str, np.ndarray]]


@dataclass(frozen=True, eq=False)
class CaseEntry:
    """The index rows of one case.

    ``objects``: (N, 7) int64 rows ``(z, label, x0, y0, x1, y1, area)``; ``n_objects``: (Z,) int32.
    """

    case_id: str
    split: str
    origin: str
    modality: str
    source_hash: str
    label_names: str
    shape: tuple[int, int, int]
    objects: np.ndarray
    n_objects: np.ndarray

    @classmethod
    def from_case(cls, case: Case) -> CaseEntry:
        """Compute a case's index rows from its label map with ``samdata.case.slice_objects``."""
        meta = case.meta
        rows = slice_objects(meta.case_id, case.label)
        objects = np.array([(r.z, r.label, r.x0, r.y0, r.x1, r.y1, r.area) for r in rows], dtype=np.int64).reshape(
            -1, 7
        )
        n_objects = np.bincount(objects[:, 0], minlength=case.label.shape[0]).astype(np.int32)
        return cls(
            case_id=meta.case_id,
            split=meta.split,
            origin=meta.provenance.origin,
            modality=meta.modality,
            source_hash=meta.provenance.source_hash,
            label_names=json.dumps(meta.to_json()["label_names"], sort_keys=True),
            shape=tuple(int(s) for s in case.image.shape),  # type: ignore[arg-type]
            objects=objects,
            n_objects=n_objects,
        )

    def same_rows(self, other: CaseEntry) -> bool:
        """Whether two entries carry identical index rows (used by verify)."""
        fields = ("case_id", "split", "origin", "modality", "source_hash", "label_names", "shape")
        return (
            all(getattr(self, f) == getattr(other, f) for f in fields)
            and np.array_equal(self.objects, other.objects)
            and np.array_equal(self.n_objects, other.n_objects)
        )


def empty_columns() -> IndexColumns:
    """The columns of an empty index."""
    return columns_from_entries({})


def columns_from_entries(entries: Mapping[str, CaseEntry]) -> IndexColumns:
    """Lay out per-case entries as the three global column sets, cases sorted by id."""
    ordered = [entries[k] for k in sorted(entries)]
    cases: dict[str, np.ndarray] = {
        name: np.array([getattr(e, name) for e in ordered], dtype=np.dtypes.StringDType()) for name in _CASE_STR
    }
    for axis, name in enumerate(("depth", "height", "width")):
        cases[name] = np.array([e.shape[axis] for e in ordered], dtype=np.int32)
    depth = cases["depth"].astype(np.int64)
    case_of_slice = np.repeat(np.arange(len(ordered), dtype=np.int32), depth)
    slices = {
        "case": case_of_slice,
        "z": (np.arange(int(depth.sum())) - np.repeat(np.cumsum(depth) - depth, depth)).astype(np.int32),
        "n_objects": np.concatenate([e.n_objects for e in ordered] or [np.zeros(0)]).astype(np.int32),
    }
    obj = np.concatenate([e.objects for e in ordered] or [np.zeros((0, 7), np.int64)])
    counts = [len(e.objects) for e in ordered]
    objects = {"case": np.repeat(np.arange(len(ordered), dtype=np.int32), counts)}
    for col, name in enumerate(OBJECT_COLUMNS[1:]):
        objects[name] = obj[:, col].astype(np.int64 if name == "area" else np.int32)
    return {"cases": cases, "slices": slices, "objects": objects}


def entries_from_columns(cols: IndexColumns) -> dict[str, CaseEntry]:
    """Split the global columns back into per-case entries."""
    cases, slices, objects = cols["cases"], cols["slices"], cols["objects"]
    n = len(cases["case_id"])
    obj = (
        np.stack([objects[name].astype(np.int64) for name in OBJECT_COLUMNS[1:]], axis=1)
        if len(objects["case"])
        else np.zeros((0, 7), np.int64)
    )
    obj_parts = np.split(obj, np.searchsorted(objects["case"], np.arange(1, n)))
    slice_parts = np.split(slices["n_objects"], np.searchsorted(slices["case"], np.arange(1, n)))
    out: dict[str, CaseEntry] = {}
    for i in range(n):
        entry = CaseEntry(
            *(str(cases[name][i]) for name in _CASE_STR),
            shape=(int(cases["depth"][i]), int(cases["height"][i]), int(cases["width"][i])),
            objects=obj_parts[i],
            n_objects=slice_parts[i].astype(np.int32),
        )
        out[entry.case_id] = entry
    return out


def write_index(root: zarr.Group, cols: IndexColumns) -> None:
    """Replace the store's index columns under ``/index``."""
    index = root.require_group(INDEX)
    for table, columns in cols.items():
        write_columns(index.require_group(table), columns)


def read_index(root: zarr.Group) -> IndexColumns:
    """Read the store's index columns from ``/index``."""
    index = root[INDEX]
    names = {"cases": CASE_COLUMNS, "slices": SLICE_COLUMNS, "objects": OBJECT_COLUMNS}
    return {table: read_columns(index[table], cols) for table, cols in names.items()}  # type: ignore[arg-type]


def objects_frame(cols: IndexColumns) -> pd.DataFrame:
    """One row per object: case_id, z, label, label_name, x0, y0, x1, y1, area, split, origin, modality."""
    cases, objects = cols["cases"], cols["objects"]
    row = objects["case"]
    names = [json.loads(str(s)) for s in cases["label_names"]]
    label_name = [names[c].get(str(lab), str(lab)) for c, lab in zip(row.tolist(), objects["label"].tolist())]
    return pd.DataFrame(
        {
            "case_id": _take(cases["case_id"], row),
            "z": objects["z"],
            "label": objects["label"],
            "label_name": pd.array(label_name, dtype="str"),
            "x0": objects["x0"],
            "y0": objects["y0"],
            "x1": objects["x1"],
            "y1": objects["y1"],
            "area": objects["area"],
            "split": _take(cases["split"], row),
            "origin": _take(cases["origin"], row),
            "modality": _take(cases["modality"], row),
        }
    )


def slices_frame(cols: IndexColumns) -> pd.DataFrame:
    """One row per slice: case_id, z, n_objects, labelled, split, origin, height, width."""
    cases, slices = cols["cases"], cols["slices"]
    row = slices["case"]
    return pd.DataFrame(
        {
            "case_id": _take(cases["case_id"], row),
            "z": slices["z"],
            "n_objects": slices["n_objects"],
            "labelled": slices["n_objects"] > 0,
            "split": _take(cases["split"], row),
            "origin": _take(cases["origin"], row),
            "height": cases["height"][row],
            "width": cases["width"][row],
        }
    )


def _take(values: np.ndarray, rows: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """Per-row strings from a per-case string column, as a pandas string array."""
    return pd.array(np.asarray(values, dtype=object)[rows], dtype="str")
