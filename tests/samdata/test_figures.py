"""Figures: PNGs are written, outlines and prompt marks land where the mask and prompts are, bad input fails."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.colors import to_rgb
from PIL import Image

from samdata.errors import ValidationError
from samdata.figures import NEGATIVE, POSITIVE, draw_grid, draw_slice, label_colour
from samdata.prompts import Prompt

GREY = np.full((40, 60), 128, np.uint8)


def pixels_of(path: Path, colour: str, tol: int = 12) -> np.ndarray:
    """(N, 2) (row, col) figure pixels within ``tol`` of ``colour`` in the PNG at ``path``."""
    rgb = np.asarray(Image.open(path).convert("RGB")).astype(int)
    target = np.array([round(c * 255) for c in to_rgb(colour)])
    return np.argwhere(np.abs(rgb - target).max(axis=2) <= tol)


def block(x0: int, label: int = 1) -> np.ndarray:
    """(40, 60) uint8 label map with a 10x12 block of ``label`` from column ``x0``."""
    mask = np.zeros(GREY.shape, np.uint8)
    mask[15:25, x0 : x0 + 12] = label
    return mask


def test_outline_follows_the_mask(tmp_path: Path) -> None:
    left = draw_slice(GREY, block(5), None, "left", tmp_path / "left.png", label_names={1: "liver"})
    right = draw_slice(GREY, block(40), None, "right", tmp_path / "right.png", label_names={1: "liver"})
    empty = draw_slice(GREY, np.zeros_like(GREY), None, "empty", tmp_path / "empty.png")
    assert left.stat().st_size > 2000 and Image.open(left).size[0] > 200
    blue_left, blue_right = pixels_of(left, label_colour(1)), pixels_of(right, label_colour(1))
    assert len(blue_left) > 50 and len(pixels_of(empty, label_colour(1))) == 0
    # the legend entry stands in the same place in both figures; only the outline moves with the mask
    only_left = np.array(sorted(set(map(tuple, blue_left)) - set(map(tuple, blue_right))))
    only_right = np.array(sorted(set(map(tuple, blue_right)) - set(map(tuple, blue_left))))
    assert len(only_left) > 50 and only_right[:, 1].mean() - only_left[:, 1].mean() > 100


def test_labels_get_distinct_colours_and_prompts_are_drawn(tmp_path: Path) -> None:
    mask = block(5, 1) + block(40, 2)
    prompts = {
        1: Prompt(box=(3, 13, 19, 27)),
        2: Prompt(points=np.array([[45.0, 20.0], [30.0, 5.0]]), point_labels=np.array([1, 0])),
    }
    path = draw_slice(GREY, mask, prompts, "two labels", tmp_path / "two.png", label_names={1: "a", 2: "b"})
    assert label_colour(1) != label_colour(2)
    assert len(pixels_of(path, label_colour(2))) > 50
    assert len(pixels_of(path, POSITIVE)) > 20 and len(pixels_of(path, NEGATIVE)) > 10
    without = draw_slice(GREY, mask, {2: prompts[2]}, "two labels", tmp_path / "without-box.png")
    assert len(pixels_of(path, label_colour(1))) > len(pixels_of(without, label_colour(1))) + 30  # the box


def test_grid_draws_every_sample(tmp_path: Path) -> None:
    samples = [(GREY, block(5 + 8 * i), Prompt(box=(5 + 8 * i, 15, 17 + 8 * i, 25)), f"s{i}") for i in range(5)]
    path = draw_grid(samples, tmp_path / "grid" / "g.png", cols=3, label_names={1: "liver"})
    width, height = Image.open(path).size
    assert width > 600 and height > 300 and width > height
    assert len(pixels_of(path, label_colour(1))) > 5 * 40


@pytest.mark.parametrize(
    ("image", "mask", "path", "match"),
    [
        (GREY.astype(np.float32), block(5), "a.png", "uint8"),
        (GREY, block(5)[:, :30], "a.png", "shaped like the image"),
        (GREY, block(5), "a.jpg", "must end in .png"),
    ],
)
def test_bad_input_is_refused(tmp_path: Path, image: np.ndarray, mask: np.ndarray, path: str, match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        draw_slice(image, mask, None, "bad", tmp_path / path)
    with pytest.raises(ValidationError, match="at least one sample"):
        draw_grid([], tmp_path / "g.png")
