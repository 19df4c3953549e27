"""The one registry of prompt schemes: name -> (params class, generator function, summary).

A generator is a pure function ``(mask (Y, X) bool, rng, params) -> Prompt``; noise is applied
on top by :class:`samdata.prompts.scheme.PromptScheme`. Tests loop over :data:`SCHEMES`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

from samdata.errors import unknown_name
from samdata.prompts.boxes import BoxParams, box_prompt
from samdata.prompts.clicks import ClickParams, click_prompt
from samdata.prompts.hybrid import HybridParams, hybrid_prompt
from samdata.prompts.masks import MaskParams, mask_prompt
from samdata.prompts.points import PointsParams, point_prompt
from samdata.prompts.prompt import Prompt

SchemeParams = BoxParams | PointsParams | HybridParams | ClickParams | MaskParams


@dataclass(frozen=True)
class SchemeEntry:
    """One registered scheme: its frozen params dataclass, its generator and a one-line summary."""

    params: type
    generate: Callable[[np.ndarray, np.random.Generator, Any], Prompt]
    summary: str


SCHEMES: MappingProxyType[str, SchemeEntry] = MappingProxyType(
    {
        "box": SchemeEntry(
            BoxParams, box_prompt, "tight box, edges jittered outward 0..k px, by a fraction of the side, or Gaussian"
        ),
        "points": SchemeEntry(
            PointsParams,
            point_prompt,
            "n positive points (uniform or most interior) and negatives in a ring or background",
        ),
        "hybrid": SchemeEntry(HybridParams, hybrid_prompt, "box, points or box+points drawn with set probabilities"),
        "clicks": SchemeEntry(
            ClickParams,
            click_prompt,
            "positive clicks spread by centroidal Voronoi iterations, count growing with area",
        ),
        "mask": SchemeEntry(MaskParams, mask_prompt, "ground-truth mask eroded, dilated or shifted, at model size"),
    }
)


def scheme_names() -> tuple[str, ...]:
    """Names of the registered prompt schemes."""
    return tuple(SCHEMES)


def scheme_entry(name: str) -> SchemeEntry:
    """The registry entry of scheme ``name``; unknown names raise a RegistryError listing the valid ones."""
    try:
        return SCHEMES[name]
    except KeyError as err:
        raise unknown_name("prompt scheme", name, tuple(SCHEMES)) from err
