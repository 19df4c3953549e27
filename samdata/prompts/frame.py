"""The model input frame: SAM's resize of the longest side to ``target`` and zero pad at bottom/right.

The training Dataset resizes each (Y, X) slice this way (256 for LiteMedSAM, 1024 for SAM); prompts
and low-resolution mask prompts must follow the same geometry, so the rule lives in one place.
The rounding copies segment-anything's ``ResizeLongestSide.get_preprocess_shape``. Mask resizing
uses ``scipy.ndimage.zoom`` (numpy only; torch is kept out of prompt simulation).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from samdata.errors import ValidationError


def frame_shape(shape: tuple[int, int], target: int) -> tuple[int, int]:
    """(Y, X) size of a (Y, X) image after resizing its longest side to ``target`` (SAM rounding)."""
    height, width = int(shape[0]), int(shape[1])
    if height < 1 or width < 1 or target < 1:
        raise ValidationError(f"frame needs a positive image shape and target; got shape {shape}, target {target}")
    scale = target / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


def mask_to_frame(mask: np.ndarray, target: int) -> np.ndarray:
    """Resize a (Y, X) bool mask's longest side to ``target``, pad bottom/right: (target, target) bool."""
    new_h, new_w = frame_shape(mask.shape, target)
    zoomed = ndimage.zoom(
        mask.astype(np.float32),
        (new_h / mask.shape[0], new_w / mask.shape[1]),
        order=1,
        mode="nearest",
        grid_mode=True,
    )
    assert zoomed.shape == (new_h, new_w), (zoomed.shape, new_h, new_w)
    out = np.zeros((target, target), dtype=bool)
    out[:new_h, :new_w] = zoomed > 0.5
    return out
