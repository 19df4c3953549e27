"""Column groups: a Zarr group holding equal-length 1-D arrays, the form of the index and of tables."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import zarr
from numpy.dtypes import StringDType

from samdata.errors import ValidationError
from storage.schema import check_name, column_codec

_NUMERIC_KINDS = "biuf"
_STRING = StringDType()


def as_column(name: str, values: object, where: str) -> np.ndarray:
    """Return ``values`` as a 1-D numeric or string (numpy StringDType) array, or raise."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValidationError(f"column {name!r} of {where} has shape {arr.shape}; expected 1-D")
    if arr.dtype.kind in _NUMERIC_KINDS:
        return arr
    if arr.dtype.kind in "UT" or (arr.dtype.kind == "O" and all(isinstance(v, str) for v in arr)):
        return arr.astype(_STRING)
    raise ValidationError(f"column {name!r} of {where} has dtype {arr.dtype}; expected bool, integer, float or str")


def check_columns(columns: Mapping[str, object], where: str) -> dict[str, np.ndarray]:
    """Validate names, dimensionality, dtypes and equal lengths of a column mapping."""
    out = {check_name(f"column name in {where}", name): as_column(name, col, where) for name, col in columns.items()}
    lengths = {name: len(col) for name, col in out.items()}
    if len(set(lengths.values())) > 1:
        raise ValidationError(f"columns of {where} differ in length: {lengths}; expected equal lengths")
    return out


def write_columns(group: zarr.Group, columns: Mapping[str, np.ndarray]) -> None:
    """Write each 1-D column as one single-chunk array of ``group``, replacing any existing one."""
    for name, col in columns.items():
        dtype = str if col.dtype.kind in "UT" else col.dtype
        arr = group.create_array(
            name,
            shape=col.shape,
            dtype=dtype,
            chunks=(max(len(col), 1),),
            compressors=column_codec(),
            overwrite=True,
        )
        if len(col):
            arr[:] = col


def read_columns(group: zarr.Group, names: list[str] | tuple[str, ...]) -> dict[str, np.ndarray]:
    """Read the named 1-D arrays of ``group`` into memory."""
    return {name: np.asarray(_array(group, name)[:]) for name in names}


def _array(group: zarr.Group, name: str) -> zarr.Array:
    """The member array ``name`` of ``group`` (a missing or non-array member raises KeyError)."""
    arr = group[name]
    if not isinstance(arr, zarr.Array):
        raise KeyError(name)
    return arr
