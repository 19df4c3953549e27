"""Proposers: the prompt-free models that give an adapted SAM its boxes when nobody prompts it (``--auto``).

One registry (:data:`PROPOSERS`); a spec ``unet:steps=1200,lr=0.001,augment=flip`` names the kind and its
training settings. ``samdata train --proposer SPEC`` (``TrainConfig.proposer``) trains the proposer after the
SAM run on the same mixture, snapshot, slices, labels and seed, into ``RUN/proposer``, and records it in the SAM
run's ``run.json`` (``proposer``: its spec, folder, labels and validation Dice); prediction, evaluation and
comparison with ``--auto`` load it from there, or from a run folder given explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from samdata.errors import CaseNotFoundError, ConfigError, unknown_name
from samdata.files import write_json
from samdata.spec import build_params, format_params, split_spec
from training.config import TrainConfig
from training.loop import is_promptable
from training.run import LoadedRun, load_run

#: the proposer's folder inside the SAM run folder
PROPOSER_DIR = "proposer"


@dataclass(frozen=True)
class UNetProposer:
    """Training settings of a U-Net proposer (REFERENCES' U-Net: 1200 steps, lr 1e-3, flips); ``batch_size``
    0 takes the SAM run's."""

    steps: int = 1200
    lr: float = 1e-3
    augment: str = "flip"
    batch_size: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 0 or not self.lr > 0:
            raise ConfigError(
                f"proposer unet: steps={self.steps}, lr={self.lr}, batch_size={self.batch_size}; expected "
                "steps >= 1, lr > 0 and batch_size >= 0 (0: the SAM run's)"
            )


#: proposer kind → its params class; the kind is also the registry model it trains (training.models)
PROPOSERS: dict[str, type] = {"unet": UNetProposer}


def parse_proposer(spec: str) -> tuple[str, Any]:
    """``kind[:key=value,...]`` → (kind, params); an unknown kind or key raises ConfigError listing the valid."""
    name, raw = split_spec(spec, what="proposer spec", list_keys=("augment",), empty_options=True)
    if name not in PROPOSERS:
        raise unknown_name("proposer", name, list(PROPOSERS))
    return name, build_params(PROPOSERS[name], raw, spec)


def canonical_proposer(spec: str) -> str:
    """The spec with every key spelt out (what config.json records)."""
    name, params = parse_proposer(spec)
    return f"{name}:{','.join(format_params(params))}"


def proposer_config(sam: TrainConfig, labels: tuple[str, ...], snapshot: str | None) -> TrainConfig:
    """The proposer's TrainConfig for SAM run ``sam`` (whose ``proposer`` spec it reads): the same store,
    mixture, ``snapshot``, slices, seed, device and loader, one output channel per name in ``labels``."""
    if sam.proposer is None:
        raise ConfigError("the SAM run names no proposer (TrainConfig.proposer, --proposer unet)")
    name, params = parse_proposer(sam.proposer)
    augment = tuple(a for a in params.augment.split(",") if a and a != "none")
    return TrainConfig(
        store=sam.store,
        mixture=sam.mixture,
        model=name,
        adapter="full",
        steps=params.steps,
        batch_size=params.batch_size or sam.batch_size,
        lr=params.lr,
        seed=sam.seed,
        context=sam.context,
        augment=augment,
        labels=labels,
        min_area=sam.min_area,
        train_slices=sam.train_slices,
        val_slices=sam.val_slices,
        snapshot=snapshot,
        val_max=sam.val_max,
        save_every=min(sam.save_every, params.steps),
        log_every=min(sam.log_every, params.steps),
        device=sam.device,
        bf16=sam.bf16,
        num_workers=sam.num_workers,
    )


def record_proposer(run_dir: Path, info: dict[str, Any], spec: str, proposer: dict[str, Any]) -> dict[str, Any]:
    """Add the trained proposer (its run.json record ``proposer``) to the SAM run's record ``info`` and write it
    to ``run_dir/run.json``; the updated record."""
    entry = {
        "spec": spec,
        "run_dir": PROPOSER_DIR,
        "model": proposer.get("model"),
        "labels": proposer.get("label_names"),
        "step": proposer.get("step"),
        "val_dice": proposer.get("val_dice"),
        "seconds": proposer.get("seconds"),
    }
    updated = {**info, "proposer": entry}
    write_json(Path(run_dir) / "run.json", updated)
    return updated


def proposer_dir(run_dir: Path | str, info: dict[str, Any], override: Path | str | None = None) -> Path:
    """The proposer run folder of a SAM run: ``override`` if given, else the one its run.json records (relative
    to the run folder); CaseNotFoundError naming the run when there is none."""
    if override is not None:
        found = Path(override)
    else:
        entry = info.get("proposer")
        if not entry:
            raise CaseNotFoundError(
                f"run {str(run_dir)!r} records no proposer for --auto: train one with `samdata train ... "
                "--proposer unet` (or --resume the run with it), or name a U-Net run with --proposer RUN"
            )
        found = Path(run_dir) / entry["run_dir"]
    if not (found / "config.json").is_file():
        raise CaseNotFoundError(f"proposer run {str(found)!r} of run {str(run_dir)!r} is missing (no config.json)")
    return found


def load_proposer(run: LoadedRun, override: Path | str | None = None) -> LoadedRun:
    """The proposer of SAM run ``run`` (``override``: a prompt-free run folder to use instead of the recorded one),
    loaded on the SAM model's device; ConfigError if it is not prompt-free."""
    where = run.info.get("run_dir", "?")
    loaded = load_run(proposer_dir(where, run.info, override), device=run.model.pixel_mean.device)
    if is_promptable(loaded.model):
        raise ConfigError(
            f"proposer run {loaded.info['run_dir']!r} is of model {loaded.config.model!r}, which needs a prompt "
            "itself; a proposer is a prompt-free run (--model unet)"
        )
    return loaded
