"""Prompt columns: prompts round trip through the flat table columns of a prompt set; bad columns are named."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from samdata.errors import ValidationError
from samdata.prompts import Prompt, columns_to_prompts, prompts_to_columns
from tests.samdata.prompts.shapes import FAST


@st.composite
def prompts(draw: st.DrawFn) -> Prompt:
    """A random prompt: maybe a box, 0..5 points with integer-valued or fractional coordinates."""
    box = None
    if draw(st.booleans()):
        x0, y0 = draw(st.integers(0, 500)), draw(st.integers(0, 500))
        box = (x0, y0, x0 + draw(st.integers(1, 500)), y0 + draw(st.integers(1, 500)))
    n = draw(st.integers(0, 5))
    coords = draw(st.lists(st.floats(-1, 1024, width=32), min_size=2 * n, max_size=2 * n))
    labels = draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))
    return Prompt(box, np.array(coords, np.float32).reshape(n, 2), np.array(labels, np.int8))


@FAST
@given(st.lists(prompts(), max_size=8), st.integers(0, 3))
def test_columns_round_trip(items: list[Prompt], extra: int) -> None:
    most = max((p.n_points for p in items), default=0)
    columns = prompts_to_columns(items, max_points=most + extra)
    assert len({c.shape for c in columns.values()}) == 1 and all(c.ndim == 1 for c in columns.values())
    assert len(columns) == 5 + 3 * (most + extra)
    assert columns["box_x0"].dtype == np.int32 and columns["n_points"].dtype == np.int32
    if most + extra:
        assert columns["point0_x"].dtype == np.float32 and columns["point0_label"].dtype == np.int8
    assert columns_to_prompts(columns) == items
    assert [Prompt.from_row(p.to_row(most)) for p in items] == items


def test_columns_layout_and_errors() -> None:
    items = [Prompt(box=(1, 2, 3, 4)), Prompt(points=[[5, 6]], point_labels=[0])]
    columns = prompts_to_columns(items)
    assert columns["box_x0"].tolist() == [1, -1] and columns["n_points"].tolist() == [0, 1]
    assert math.isnan(columns["point0_x"][0]) and columns["point0_label"].tolist() == [-1, 0]
    assert columns["point0_label"].dtype == np.int8
    with pytest.raises(ValidationError, match="has 1 points; the row holds at most 0"):
        prompts_to_columns(items, max_points=0)
    with pytest.raises(ValidationError, match="lack"):
        columns_to_prompts({k: v for k, v in columns.items() if k != "n_points"})
    with pytest.raises(ValidationError, match="equal length"):
        columns_to_prompts({**columns, "box_x0": columns["box_x0"][:1]})
    assert columns_to_prompts(prompts_to_columns([])) == []
