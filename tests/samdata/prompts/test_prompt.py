"""The Prompt record: validation, immutability, value equality, pickling and scaling."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from samdata.errors import ValidationError
from samdata.prompts import Prompt, parse_scheme


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"box": (3, 0, 3, 5)}, "0 <= x0 < x1"),
        ({"box": (-1, 0, 3, 5)}, "0 <= x0 < x1"),
        ({"box": (1, 2, 3)}, "x0, y0"),
        ({"points": np.zeros((2, 3)), "point_labels": [1, 1]}, r"\(N, 2\)"),
        ({"points": np.zeros((2, 2)), "point_labels": [1]}, "do not match"),
        ({"points": [[1.0, 2.0]], "point_labels": [2]}, "labels 0/1"),
        ({"points": [[np.nan, 2.0]], "point_labels": [1]}, "finite"),
        ({"mask": np.zeros(4, bool)}, "2D"),
    ],
)
def test_bad_prompt_is_rejected(kwargs: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Prompt(**kwargs)


def test_prompt_is_immutable_and_compares_by_value() -> None:
    points = np.array([[1.0, 2.0]])
    prompt = Prompt((0, 0, 4, 4), points, [1], np.ones((2, 2), bool))
    points[0, 0] = 9.0
    assert prompt.points.tolist() == [[1.0, 2.0]] and prompt.points.dtype == np.float32
    with pytest.raises(ValueError, match="read-only"):
        prompt.points[0, 0] = 3.0
    assert prompt == Prompt((0, 0, 4, 4), [[1, 2]], [1], np.ones((2, 2), bool))
    assert prompt != Prompt((0, 0, 4, 4), [[1, 2]], [1]) and prompt != Prompt((0, 0, 4, 5), [[1, 2]], [1])
    copy = pickle.loads(pickle.dumps(prompt))  # Dask ships prompts and schemes between workers
    assert copy == prompt and not copy.points.flags.writeable and not copy.mask.flags.writeable
    scheme = parse_scheme("hybrid:box.jitter=3,jitter_px=1")
    assert pickle.loads(pickle.dumps(scheme)) == scheme


def test_scaled_maps_edges_and_pixel_centres() -> None:
    prompt = Prompt((2, 3, 7, 9), [[0, 0], [4, 5]], [1, 0])
    assert prompt.scaled(1, 1) == prompt
    doubled = prompt.scaled(2, 4, offset=(1, 0))
    assert doubled.box == (5, 12, 15, 36)
    assert doubled.points.tolist() == [[1.5, 1.5], [9.5, 21.5]]  # (x + .5) * s - .5 + offset
    assert prompt.scaled(1 / 3, 1 / 3).box == (0, 1, 3, 3)  # rounded outward
    with pytest.raises(ValidationError, match="positive"):
        prompt.scaled(0, 1)
