"""Training checkpoints: trainable weights, optimizer, scheduler and RNG state, written atomically.

One ``torch.save`` file (read with ``weights_only=True``): format, step, model, adapter, the trainable
tensors, optimizer, scheduler, each rank's RNG states and the sampler's ``{seed, step}`` (a step's items are
a pure function of seed and step, so that is all the sampler needs). Only trainable parameters are stored,
the frozen base coming from the model registry, so a checkpoint is a fraction of the model's size
(BENCHMARKS.md). Writes go to a temporary file, then ``os.replace``: a crash leaves the previous checkpoint
whole.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from samdata.errors import CaseNotFoundError, ConfigError, InputFileError
from samdata.files import atomic_write

FORMAT = 1


def save_checkpoint(path: Path | str, state: dict[str, Any]) -> None:
    """``torch.save`` a checkpoint dict atomically (tmp file + os.replace)."""
    atomic_write(path, lambda tmp: torch.save({"format": FORMAT, **state}, tmp))


def load_checkpoint(path: Path | str) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise CaseNotFoundError(f"checkpoint {str(path)!r} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises pickle/zip/runtime errors for damaged files
        raise InputFileError(f"cannot read training checkpoint {str(path)!r}: {err}") from err
    if not isinstance(state, dict) or state.get("format") != FORMAT or "trainable" not in state:
        raise InputFileError(
            f"{str(path)!r} is not a samdata training checkpoint (format {FORMAT}); "
            "expected a file written by samdata train"
        )
    return state


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The trainable parameters of ``model`` by name, detached copies on the CPU."""
    return {name: p.detach().to("cpu", copy=True) for name, p in model.named_parameters() if p.requires_grad}


def load_trainable(model: nn.Module, state: dict[str, Any], where: str) -> None:
    """Copy a checkpoint's trainable weights into ``model``; ConfigError unless names and shapes match."""
    saved = state["trainable"]
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    missing, unexpected = sorted(set(params) - set(saved)), sorted(set(saved) - set(params))
    shapes = [
        f"{k}: file {tuple(saved[k].shape)} vs model {tuple(p.shape)}"
        for k, p in params.items()
        if k in saved and saved[k].shape != p.shape
    ]
    if missing or unexpected or shapes:
        detail = "; ".join(
            f"{what} {lst[:3]}"
            for what, lst in (("missing", missing), ("unexpected", unexpected), ("shape", shapes))
            if lst
        )
        raise ConfigError(
            f"checkpoint {where!r} was trained as model {state.get('model')!r} with adapter "
            f"{state.get('adapter')!r}; its weights do not fit this model ({detail})"
        )
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(saved[name])


def rng_state() -> dict[str, Any]:
    """This process's python, numpy and torch (and CUDA) generator states, in weights_only-safe types."""
    np_state = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore generator states saved by :func:`rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np_state = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": "MT19937",
            "state": {"key": np_state["key"].numpy().astype(np.uint32), "pos": np_state["pos"]},
            "has_gauss": np_state["has_gauss"],
            "gauss": np_state["gauss"],
        }
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])
