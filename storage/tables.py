"""Small named tables under ``/tables`` (prompt sets, mixtures): equal-length 1-D columns plus attrs."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import zarr

from samdata.errors import StoreError, ValidationError
from storage.columns import check_columns, read_columns, write_columns
from storage.schema import TABLE_MARKER, TABLES, check_table_path


def write_table_group(root: zarr.Group, path: str, columns: Mapping[str, object], attrs: dict[str, Any]) -> None:
    """Write (or replace) the table at ``/tables/<path>``."""
    where = f"table {check_table_path(path)!r}"
    cols = check_columns(columns, where)
    try:
        attrs = json.loads(json.dumps(attrs))
    except (TypeError, ValueError) as err:
        raise ValidationError(f"attrs of {where} are not JSON-serialisable: {err}") from err
    tables = root.require_group(TABLES)
    parent = tables
    parts = path.split("/")
    for part in parts[:-1]:
        if part in parent and _is_table(parent[part]):
            raise ValidationError(f"{where}: {part!r} is already a table, it cannot hold tables")
        parent = parent.require_group(part)
    name = parts[-1]
    if name in parent:
        del parent[name]
    n_rows = len(next(iter(cols.values()))) if cols else 0
    group = parent.create_group(
        name, attributes={TABLE_MARKER: {"columns": list(cols), "n_rows": n_rows, "attrs": attrs}}
    )
    write_columns(group, cols)


def read_table_group(root: zarr.Group, path: str, where: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a table's columns and attrs; StoreError naming the store ``where`` if absent."""
    try:
        group = root[f"{TABLES}/{check_table_path(path)}"]
    except (KeyError, ValidationError) as err:
        raise StoreError(f"table {path!r} not in store {where!r}") from err
    if not _is_table(group):
        raise StoreError(f"{path!r} in store {where!r} is a folder of tables, not a table")
    spec = dict(group.attrs[TABLE_MARKER])  # type: ignore[arg-type]
    return read_columns(group, list(spec["columns"])), dict(spec["attrs"])  # type: ignore[index]


def list_table_paths(root: zarr.Group, prefix: str) -> list[str]:
    """Sorted paths of all tables at or below ``prefix`` ('' lists every table)."""
    if TABLES not in root:
        return []
    start = root[TABLES]
    head = prefix.strip("/")
    if head:
        try:
            start = start[check_table_path(head)]
        except KeyError:
            return []
        if _is_table(start):
            return [head]
    found: list[str] = []
    for name, member in start.members(max_depth=None):  # type: ignore[union-attr]
        if _is_table(member):
            found.append(f"{head}/{name}" if head else name)
    return sorted(found)


def _is_table(node: object) -> bool:
    """Whether a Zarr node is a table group."""
    return isinstance(node, zarr.Group) and TABLE_MARKER in node.attrs
