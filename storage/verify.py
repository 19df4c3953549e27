"""Integrity check of one snapshot: chunks decode, metadata parses, shapes/dtypes, index agrees with pixels.

It catches every exception while reading (a corrupt chunk may surface as any error type from the
codec or the storage layer) and turns it into a problem line, because its job is to report them all.
"""

from __future__ import annotations

import numpy as np
import zarr

from samdata.case import Case, CaseMeta
from storage.index import CaseEntry, entries_from_columns, read_index
from storage.schema import CASES, IMAGE, LABEL, LABEL_DTYPES
from storage.tables import list_table_paths, read_table_group


def verify_root(root: zarr.Group, where: str) -> list[str]:
    """All problems found in the snapshot whose root group is ``root`` (``where`` names it)."""
    problems: list[str] = []
    try:
        entries: dict[str, CaseEntry] | None = entries_from_columns(read_index(root))
    except Exception as err:
        problems.append(f"{where}: index unreadable: {type(err).__name__}: {err}")
        entries = None
    cases = root[CASES]
    names = sorted(name for name, _ in cases.members())  # type: ignore[union-attr]
    for cid in names:
        expected = entries.get(cid) if entries is not None else None
        if entries is not None and expected is None:
            problems.append(f"case {cid!r}: stored but missing from the index")
        problems.extend(_verify_case(cases[cid], cid, expected))  # type: ignore[index, arg-type]
    if entries is not None:
        problems.extend(
            f"case {cid!r}: in the index but /{CASES}/{cid} is missing" for cid in sorted(set(entries) - set(names))
        )
    for path in list_table_paths(root, ""):
        try:
            columns, _ = read_table_group(root, path, where)
        except Exception as err:
            problems.append(f"table {path!r}: unreadable: {type(err).__name__}: {err}")
            continue
        lengths = {name: len(col) for name, col in columns.items()}
        if len(set(lengths.values())) > 1:
            problems.append(f"table {path!r}: columns differ in length {lengths}")
    return problems


def _verify_case(group: zarr.Group, cid: str, expected: CaseEntry | None) -> list[str]:
    """Problems of one case group; compares its recomputed index rows with ``expected``."""
    problems: list[str] = []
    meta: CaseMeta | None = None
    try:
        meta = CaseMeta.from_json(dict(group.attrs["meta"]))  # type: ignore[arg-type]
        if meta.case_id != cid:
            problems.append(f"case {cid!r}: metadata names case_id {meta.case_id!r}")
    except Exception as err:
        problems.append(f"case {cid!r}: metadata incomplete or invalid: {type(err).__name__}: {err}")
    arrays: dict[str, np.ndarray] = {}
    for name, dtypes in ((IMAGE, ("uint8",)), (LABEL, LABEL_DTYPES)):
        node = group[name] if name in group else None
        if not isinstance(node, zarr.Array):
            problems.append(f"case {cid!r}: {name} array missing")
            continue
        shape_problem = _shape_problem(node, dtypes)
        if shape_problem:
            problems.append(f"case {cid!r}: {name} {shape_problem}")
            continue
        data, bad = _read_all(node)
        problems.extend(f"case {cid!r}: {name} chunk z={z} does not decode: {msg}" for z, msg in bad)
        if not bad:
            arrays[name] = data
    if IMAGE in arrays and LABEL in arrays and arrays[IMAGE].shape != arrays[LABEL].shape:
        problems.append(f"case {cid!r}: image shape {arrays[IMAGE].shape} != label shape {arrays[LABEL].shape}")
    elif meta is not None and len(arrays) == 2 and expected is not None:
        actual = CaseEntry.from_case(Case(meta=meta, image=arrays[IMAGE], label=arrays[LABEL]))
        if not actual.same_rows(expected):
            problems.append(f"case {cid!r}: index disagrees with pixels/metadata: {_difference(expected, actual)}")
    return problems


def _shape_problem(arr: zarr.Array, dtypes: tuple[str, ...]) -> str | None:
    """Why an image/label array has the wrong dtype, rank or chunking (None if fine)."""
    if arr.dtype.name not in dtypes:  # type: ignore[union-attr]
        return f"has dtype {arr.dtype}, expected one of {dtypes}"
    if arr.ndim != 3:
        return f"has shape {arr.shape}, expected (Z, Y, X)"
    if tuple(arr.chunks) != (1, *arr.shape[1:]):
        return f"has chunks {arr.chunks}, expected one chunk per slice {(1, *arr.shape[1:])}"
    return None


def _read_all(arr: zarr.Array) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """Read a (Z, Y, X) array; on failure re-read slice by slice to name every bad chunk."""
    try:
        return np.asarray(arr[:]), []
    except Exception:
        pass
    bad: list[tuple[int, str]] = []
    for z in range(arr.shape[0]):
        try:
            arr[z]
        except Exception as err:
            bad.append((z, f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"))
    if not bad:
        bad.append((-1, "whole-array read failed but every slice read alone"))
    return np.zeros(0), bad


def _difference(expected: CaseEntry, actual: CaseEntry) -> str:
    """A short description of how the stored index rows differ from the recomputed ones."""
    for field in ("split", "origin", "modality", "source_hash", "label_names", "shape"):
        if getattr(expected, field) != getattr(actual, field):
            return f"{field}: index {getattr(expected, field)!r}, case {getattr(actual, field)!r}"
    if not np.array_equal(expected.n_objects, actual.n_objects):
        z = (
            int(np.flatnonzero(expected.n_objects != actual.n_objects)[0])
            if expected.n_objects.shape == actual.n_objects.shape
            else -1
        )
        return f"objects per slice differ (first at z={z})"
    if expected.objects.shape != actual.objects.shape:
        return f"index has {len(expected.objects)} objects, labels give {len(actual.objects)}"
    row = int(np.flatnonzero((expected.objects != actual.objects).any(axis=1))[0])
    cols = "z, label, x0, y0, x1, y1, area"
    return f"object row {row} ({cols}): index {expected.objects[row].tolist()}, labels {actual.objects[row].tolist()}"
