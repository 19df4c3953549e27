"""Simulated prompts for SAM: boxes, points, clicks, corrective clicks and mask prompts, with noise.

Pure functions of a (Y, X) bool object mask and a ``numpy.random.Generator`` (same seed, same
prompts); no file I/O, no torch. Prompts are in slice pixel coordinates (samdata/case.py): boxes
``(x0, y0, x1, y1)`` inclusive-exclusive, points ``(x, y)`` at pixel centres.
"""

from samdata.prompts.boxes import BoxParams, box_prompt, jitter_box
from samdata.prompts.clicks import ClickParams, click_prompt, clicksam_count, corrective_click, cvt_points
from samdata.prompts.columns import column_dtypes, columns_to_prompts, prompts_to_columns
from samdata.prompts.frame import frame_shape, mask_to_frame
from samdata.prompts.hybrid import HybridParams, hybrid_prompt
from samdata.prompts.masks import MaskParams, degrade_mask, mask_prompt
from samdata.prompts.noise import PromptNoise, apply_noise
from samdata.prompts.points import PointsParams, point_prompt
from samdata.prompts.prompt import Prompt
from samdata.prompts.registry import SCHEMES, SchemeEntry, SchemeParams, scheme_entry, scheme_names
from samdata.prompts.scheme import PromptScheme, object_rng, parse_scheme

__all__ = [
    "SCHEMES",
    "BoxParams",
    "ClickParams",
    "HybridParams",
    "MaskParams",
    "PointsParams",
    "Prompt",
    "PromptNoise",
    "PromptScheme",
    "SchemeEntry",
    "SchemeParams",
    "apply_noise",
    "box_prompt",
    "click_prompt",
    "clicksam_count",
    "column_dtypes",
    "columns_to_prompts",
    "corrective_click",
    "cvt_points",
    "degrade_mask",
    "frame_shape",
    "hybrid_prompt",
    "jitter_box",
    "mask_prompt",
    "mask_to_frame",
    "object_rng",
    "parse_scheme",
    "point_prompt",
    "prompts_to_columns",
    "scheme_entry",
    "scheme_names",
]
