"""Model builders for samdata training: one registry (``MODELS``) behind ``build_model``.

Every model is a :class:`SamModel` (image encoder + prompt encoder + mask decoder, single-mask
output); see :mod:`training.models.sam` for the interface and :mod:`training.models.registry` for
the builders.
"""

from training.models.registry import (
    DEFAULT_MODEL,
    MODELS,
    build_model,
    check_state_dict,
    load_weights,
    read_state_dict,
)
from training.models.sam import SamModel, TinyViTSam, ViTSam

__all__ = [
    "DEFAULT_MODEL",
    "MODELS",
    "SamModel",
    "TinyViTSam",
    "ViTSam",
    "build_model",
    "check_state_dict",
    "load_weights",
    "read_state_dict",
]
