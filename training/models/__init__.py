"""Model builders for samdata training: one registry behind ``build_model``.

SAM-shaped models (``MODELS``) are :class:`SamModel` (image encoder + prompt encoder + mask decoder,
single-mask output); see :mod:`training.models.sam` for the interface. Baselines (``BASELINES``:
the ``unet``) take no prompt, see :mod:`training.models.unet`. Builders: :mod:`training.models.registry`.
"""

from training.models.registry import (
    BASELINES,
    DEFAULT_MODEL,
    MODELS,
    build_model,
    check_state_dict,
    load_weights,
    model_names,
    read_state_dict,
)
from training.models.sam import SamModel, TinyViTSam, ViTSam
from training.models.unet import UNetModel

__all__ = [
    "BASELINES",
    "DEFAULT_MODEL",
    "MODELS",
    "SamModel",
    "TinyViTSam",
    "UNetModel",
    "ViTSam",
    "build_model",
    "check_state_dict",
    "load_weights",
    "model_names",
    "read_state_dict",
]
