"""A prompt set as equal-length 1-D columns (one row per object), for the store's prompt tables.

Columns: ``box_x0, box_y0, box_x1, box_y1`` int32 (-1 = no box), ``n_points`` int32, then for each
``i < max_points``: ``point{i}_x``, ``point{i}_y`` float32 (NaN = unused) and ``point{i}_label`` int8
(1 positive, 0 negative, -1 unused). Mask prompts are not stored: regenerate them from the seed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from samdata.errors import ValidationError
from samdata.prompts.prompt import BOX_KEYS, N_POINTS_KEY, Prompt, point_keys


def column_dtypes(max_points: int) -> dict[str, np.dtype]:
    """The column names, in order, and their dtypes for rows holding up to ``max_points`` points."""
    dtypes = {key: np.dtype(np.int32) for key in (*BOX_KEYS, N_POINTS_KEY)}
    for i in range(max_points):
        kx, ky, kl = point_keys(i)
        dtypes[kx], dtypes[ky], dtypes[kl] = np.dtype(np.float32), np.dtype(np.float32), np.dtype(np.int8)
    return dtypes


def prompts_to_columns(prompts: Sequence[Prompt], max_points: int | None = None) -> dict[str, np.ndarray]:
    """Flatten prompts to equal-length columns; ``max_points`` defaults to the most points of any prompt."""
    if max_points is None:
        max_points = max((p.n_points for p in prompts), default=0)
    rows = [p.to_row(max_points) for p in prompts]
    return {
        key: np.array([row[key] for row in rows], dtype=dtype).reshape(len(rows))
        for key, dtype in column_dtypes(max_points).items()
    }


def columns_to_prompts(columns: Mapping[str, np.ndarray]) -> list[Prompt]:
    """Rebuild the prompts (masks absent) from :func:`prompts_to_columns` output."""
    max_points = 0
    while point_keys(max_points)[0] in columns:
        max_points += 1
    missing = [key for key in column_dtypes(max_points) if key not in columns]
    if missing:
        raise ValidationError(f"prompt columns lack {missing}; have {sorted(columns)}")
    arrays = {key: np.asarray(columns[key]) for key in column_dtypes(max_points)}
    lengths = {key: arr.shape for key, arr in arrays.items()}
    if len(set(lengths.values())) != 1 or any(arr.ndim != 1 for arr in arrays.values()):
        raise ValidationError(f"prompt columns must be 1-D and of equal length; got shapes {lengths}")
    n_rows = len(arrays[BOX_KEYS[0]])
    return [Prompt.from_row({key: arr[i] for key, arr in arrays.items()}) for i in range(n_rows)]
