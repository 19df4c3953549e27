"""SAM's input frame: the resized shape, and masks and prompts mapped into it."""

from __future__ import annotations

import numpy as np
import pytest

from samdata.prompts import Prompt, frame_shape, mask_to_frame
from samdata.prompts.regions import tight_box


@pytest.mark.parametrize(
    ("shape", "target", "expected"),
    [
        ((200, 300), 256, (171, 256)),
        ((1024, 512), 256, (256, 128)),
        ((37, 37), 1024, (1024, 1024)),
        ((300, 201), 1024, (1024, 686)),
    ],
)
def test_frame_shape_follows_sam_rounding(shape: tuple[int, int], target: int, expected: tuple[int, int]) -> None:
    assert frame_shape(shape, target) == expected


@pytest.mark.parametrize(("shape", "target"), [((200, 300), 256), ((45, 70), 1024), ((90, 33), 256)])
def test_to_frame_box_holds_the_resized_object(shape: tuple[int, int], target: int) -> None:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    mask = ((yy - shape[0] * 0.4) / (shape[0] * 0.2)) ** 2 + ((xx - shape[1] * 0.6) / (shape[1] * 0.25)) ** 2 <= 1
    framed = mask_to_frame(mask, target)
    new_h, new_w = frame_shape(shape, target)
    assert framed.shape == (target, target) and not framed[new_h:].any() and not framed[:, new_w:].any()
    prompt = Prompt(tight_box(mask), [[shape[1] * 0.6, shape[0] * 0.4]], [1]).to_frame(shape, target)
    fx0, fy0, fx1, fy1 = tight_box(framed)
    x0, y0, x1, y1 = prompt.box
    assert x0 <= fx0 and y0 <= fy0 and x1 >= fx1 and y1 >= fy1 and x1 <= new_w and y1 <= new_h
    assert (x1 - x0) - (fx1 - fx0) <= 2 and (y1 - y0) - (fy1 - fy0) <= 2
    px, py = np.rint(prompt.points[0]).astype(int)
    assert framed[py, px]
