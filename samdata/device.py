"""The one reader of device names (``--device``, ``TrainConfig.device``, ``GanConfig.device``, ...).

torch is imported when a name is resolved, not with this module, so the CLI can import it and stay fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from samdata.errors import ConfigError

if TYPE_CHECKING:
    import torch

DEVICE_NAMES = "auto, cpu, cuda, cuda:N or mps"


def resolve_device(name: str, local_rank: int | None = None) -> torch.device:
    """The torch device a name asks for: ``auto`` is CUDA when torch sees a GPU, else the CPU; ``cpu``,
    ``cuda``, ``cuda:N`` and ``mps`` as named. A bare ``cuda`` (``auto`` included) is ``cuda:<local_rank>``
    when a distributed process's local rank is given, else torch's current CUDA device. ConfigError when the
    name is not a torch device or asks for a CUDA or MPS device this machine does not have."""
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as err:
        raise ConfigError(f"device {name!r} is not a torch device; expected {DEVICE_NAMES}") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but torch sees no CUDA device; use cpu or auto")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {name!r} asked for, but torch sees no MPS device; use cpu or auto")
    if device.type == "cuda" and device.index is None and local_rank is not None:
        return torch.device("cuda", local_rank)
    return device
