"""``train(config, run_dir)``: fine-tune a SAM-shaped model on a store mixture, resumably, on one
process or many (``torchrun``; NCCL on CUDA, gloo on CPU).

A run settles its config (a resumed run refuses changes to the model, adapter, data or optimisation),
builds the model and data, restores the checkpoint, scores the validation set before step 1 (zero-shot),
then steps, checkpointing and validating on schedule. Rank 0 keeps the books; a non-finite loss stops the
run and keeps the last good checkpoint; under DDP the ranks' final weights are hashed and compared.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from samdata.device import resolve_device
from samdata.errors import ConfigError, TrainingError
from samdata.files import write_json, write_text
from training.adapters import parse_adapter
from training.augment import augment_entry
from training.batches import RunData, build_data, make_loader, val_batches
from training.cache import PrefixCache
from training.checkpoint import (
    load_checkpoint,
    load_trainable,
    rng_state,
    save_checkpoint,
    set_rng_state,
    trainable_state,
)
from training.config import RESUME_MUTABLE, TrainConfig, check_resumable
from training.loop import Dist, Trainer, is_promptable
from training.models import SamModel
from training.proposer import PROPOSER_DIR, proposer_config, record_proposer
from training.run import RunLayout, build_run_model, package_versions, read_info


def _quiet(*_: Any) -> None:
    """The default hook: do nothing."""


@dataclass(frozen=True)
class TrainHooks:
    """Callbacks for a front end (rank 0 only): start (first step, total), each step, log messages."""

    on_start: Callable[[int, int], None] = _quiet
    on_step: Callable[[int, dict[str, float]], None] = _quiet
    on_message: Callable[[str], None] = _quiet


@dataclass(frozen=True)
class TrainResult:
    """What a finished run reached: its folder, last step, zero-shot and final validation Dice, wall time."""

    run_dir: Path
    step: int
    zero_shot_dice: float | None
    val_dice: float | None
    seconds: float
    info: dict[str, Any] = field(default_factory=dict)


def init_distributed(config: TrainConfig) -> Dist:
    """Join the process group that ``torchrun`` describes in the environment (one process if none)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    ranks = Dist(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        cuda = config.device != "cpu" and torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(ranks.local_rank)
        dist.init_process_group("nccl" if cuda else "gloo")
    return ranks


def settle_config(config: TrainConfig, layout: RunLayout, resume: bool) -> tuple[TrainConfig, dict[str, Any] | None]:
    """The config to run: ``config`` for a new run, the saved one (mutable fields updated) when resuming."""
    if not resume:
        if layout.exists():
            raise ConfigError(
                f"run directory {str(layout.root)!r} already holds a run; pass --resume to continue "
                "it or choose another --out"
            )
        return config, None
    if not layout.exists():
        raise ConfigError(f"cannot resume: {str(layout.root)!r} holds no run ({layout.config.name} missing)")
    saved = TrainConfig.read(layout.config)
    if config.size is None:
        config = config.with_values({"size": saved.size})
    check_resumable(saved, config, str(layout.root))
    state = load_checkpoint(layout.last) if layout.last.is_file() else None
    if state is not None and state["step"] > config.steps:
        raise ConfigError(f"run {str(layout.root)!r} is at step {state['step']}; steps={config.steps} is smaller")
    return saved.with_values({k: getattr(config, k) for k in RESUME_MUTABLE}), state


class RunLog:
    """The run's text log, metrics JSONL and TensorBoard writer (active on rank 0 only)."""

    def __init__(self, layout: RunLayout, ranks: Dist, hooks: TrainHooks, start: int) -> None:
        self.layout, self.active, self.hooks = layout, ranks.rank == 0, hooks
        self.tb = None
        if self.active:
            if layout.metrics.is_file():  # a resumed run: drop rows of steps after its checkpoint
                rows = [
                    r
                    for r in layout.metrics.read_text(encoding="utf-8").splitlines()
                    if start and json.loads(r)["step"] <= start
                ]
                write_text(layout.metrics, "".join(r + "\n" for r in rows))

            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is optional: metrics.jsonl holds the same numbers
                hooks.on_message("tensorboard is not installed: metrics go to metrics.jsonl only")
            else:
                self.tb = SummaryWriter(str(layout.tensorboard), purge_step=start + 1 if start else None)

    def message(self, text: str) -> None:
        """Append a timestamped line to log.txt and show it."""
        if self.active:
            stamp = datetime.now(UTC).isoformat(timespec="seconds")
            with open(self.layout.root / "log.txt", "a") as fh:
                fh.write(f"{stamp} {text}\n")
            self.hooks.on_message(text)

    def metrics(self, step: int, values: dict[str, float], prefix: str) -> None:
        """Append ``values`` at ``step`` to metrics.jsonl and TensorBoard (``prefix``/name)."""
        if self.active:
            with open(self.layout.metrics, "a") as fh:
                fh.write(json.dumps({"step": step, "kind": prefix, **values}) + "\n")
            if self.tb is not None:
                for key, value in values.items():
                    self.tb.add_scalar(f"{prefix}/{key}", value, step)

    def close(self) -> None:
        """Flush and close TensorBoard."""
        if self.tb is not None:
            self.tb.close()


def weights_digest(model: torch.nn.Module) -> str:
    """sha256 of the trainable weights' bytes in name order (equal digests: bit-equal weights)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(trainable_state(model).items()):
        digest.update(name.encode())
        digest.update(tensor.reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())  # 0-dim too
    return digest.hexdigest()


def _gather(obj: Any, ranks: Dist) -> list[Any]:
    """``obj`` of every rank (a list of one without DDP)."""
    if not ranks.active:
        return [obj]
    out: list[Any] = [None] * ranks.world
    dist.all_gather_object(out, obj)
    return out


def seed_everything(seed: int) -> None:
    """Seed python's, numpy's and torch's global generators (libraries may draw from them)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _barrier(ranks: Dist) -> None:
    if ranks.active:
        dist.barrier()


def _prepare_model(config: TrainConfig, device: torch.device) -> tuple[TrainConfig, SamModel, Any]:
    """Build the model with adapters on ``device``; fill in (or check) ``config.size``."""
    model, report = build_run_model(config)
    if config.size is None:
        config = config.with_values({"size": model.img_size})
    elif config.size != model.img_size:
        raise ConfigError(
            f"size={config.size} but model {config.model!r} takes {model.img_size}x{model.img_size} "
            "input (prompts are in model pixels); leave size unset or use the model's size"
        )
    return config, model.to(device), report


class Session:
    """One call of :func:`train` in one process: the objects of the run and its step loop."""

    def __init__(self, config: TrainConfig, layout: RunLayout, ranks: Dist, hooks: TrainHooks) -> None:
        self.config, self.layout, self.ranks, self.hooks = config, layout, ranks, hooks
        self.info: dict[str, Any] = {}
        self.last_saved = 0

    def run(self, resume: bool) -> TrainResult:
        """Set up, train from the saved step (or 0) to ``config.steps``, save and report."""
        began = time.perf_counter()
        cfg, state = settle_config(self.config, self.layout, resume)
        _barrier(self.ranks)  # every rank checked the folder before rank 0 writes into it
        seed_everything(cfg.seed + self.ranks.rank)
        device = resolve_device(cfg.device, self.ranks.local_rank)
        cfg, model, report = _prepare_model(cfg, device)
        start = 0
        if state is not None:
            load_trainable(model, state, str(self.layout.last))
            start = self.last_saved = int(state["step"])
        snapshot = read_info(self.layout.root)["snapshot_id"] if resume and self.layout.info.is_file() else cfg.snapshot
        data = build_data(cfg, snapshot)
        self.layout.root.mkdir(parents=True, exist_ok=True)
        log = RunLog(self.layout, self.ranks, self.hooks, start)
        try:
            cache = self._cache(cfg, model, report.first_block, data, log)
            trainer = Trainer(model, report.first_block, cfg, device, cache, self.ranks)
            if state is not None:
                trainer.load_state_dict(state)
                if len(state["rng"]) == self.ranks.world:
                    set_rng_state(state["rng"][self.ranks.rank])
            self._record(cfg, report, data, start, device, getattr(model, "checkpoint_sha256", None))
            log.message(
                f"{'resuming at step ' + str(start) if start else 'training'} {cfg.model} "
                f"[{report.describe()}] on {device} x{self.ranks.world}; {len(data.candidates)} train "
                f"objects of mixture {cfg.mixture!r} at snapshot {data.train.snapshot_id}; validation: "
                f"{data.protocol} ({len(data.val_indices)} objects)"
            )
            zero_shot = self._validate(trainer, data, cfg, log, 0) if start == 0 else self.info.get("zero_shot_dice")
            self.info["zero_shot_dice"] = zero_shot
            final = self._loop(trainer, data, cfg, log, start)
            return self._finish(model, cfg, cache, log, began, final)
        finally:
            log.close()

    def _cache(self, cfg: TrainConfig, model: SamModel, first: int, data: RunData, log: RunLog) -> PrefixCache:
        mode = cfg.cache
        full = "full" in parse_adapter(cfg.adapter).kinds
        if not is_promptable(model):  # a U-Net has no frozen part to cache
            mode = "off"
        elif full:
            if mode != "off":
                log.message("prefix cache off: full fine-tuning trains the whole encoder, stem included")
            mode = "off"
        elif mode != "off" and not all(augment_entry(name).finite for name in cfg.augment):
            log.message(
                f"prefix cache off: image augmentation {','.join(cfg.augment)} changes the encoder input "
                "every step (prompts vary per step either way)"
            )
            mode = "off"
        tag = {
            "model": cfg.model,
            "checkpoint": cfg.checkpoint,
            "size": cfg.size,
            "context": cfg.context,
            "snapshot_id": data.train.snapshot_id,
        }
        cache = PrefixCache(
            model,
            first,
            mode,
            cfg.cache_mb * 2**20,
            self.layout.cache if mode == "disk" else None,
            tag,
            trainable=full and is_promptable(model),
        )
        if mode != "off":
            what = "image embeddings" if first >= len(model.encoder_blocks()) else f"activations entering block {first}"
            views = " (per flip view: up to 4 per slice)" if cfg.augment else ""
            log.message(f"prefix cache {mode}: the frozen encoder runs once per slice{views}; cached {what}")
        return cache

    def _record(
        self,
        cfg: TrainConfig,
        report: Any,
        data: RunData,
        start: int,
        device: torch.device,
        checkpoint_sha256: str | None,
    ) -> None:
        """Write config.json and run.json (rank 0); on resume keep the record and note the resume."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        old = read_info(self.layout.root) if start and self.layout.info.is_file() else {}
        self.info = {
            **old,
            "created": old.get("created", now),
            "store_url": data.train.store_url,
            "snapshot_id": data.train.snapshot_id,
            "mixture": cfg.mixture,
            "mixture_snapshot_id": data.train.mixture_snapshot_id,
            "prompt_set": data.train.prompt_set,
            "train_scheme": data.train.scheme_spec,
            "model": cfg.model,
            "base_checkpoint": report_checkpoint(cfg),
            "base_checkpoint_sha256": checkpoint_sha256,
            "adapter": cfg.adapter,
            "adapter_report": report.describe(),
            "trainable": report.trainable,
            "total": report.total,
            "first_adapted_block": report.first_block,
            "versions": package_versions(),
            "steps": cfg.steps,
            "step": start,
            "world_size": self.ranks.world,
            "device": str(device),
            "label_names": sorted({str(n) for n in data.train.objects().iloc[data.candidates]["label_name"]}),
            "train_objects": int(len(data.candidates)),
            "val_objects": int(len(data.val_indices)),
            "validation": data.protocol,
            "val_keys": _val_keys(data),
        }
        if start:
            self.info["resumed"] = [*old.get("resumed", []), {"step": start, "at": now}]
        if self.ranks.rank == 0:
            write_json(self.layout.config, cfg.to_json())
            write_json(self.layout.info, self.info)

    def _validate(self, trainer: Trainer, data: RunData, cfg: TrainConfig, log: RunLog, step: int) -> float | None:
        """Validation Dice on rank 0 (others wait); None without a validation set."""
        if data.val is None or not len(data.val_indices):
            return None
        result = None
        if self.ranks.rank == 0:
            values = trainer.validate(val_batches(data, cfg))
            self.info["val_object_dice"] = trainer.val_scores
            log.metrics(step, values, "val")
            log.message(
                f"step {step}: val Dice {values['val_dice']:.4f} over {int(values['val_n'])} objects"
                + (" (before training)" if step == 0 else "")
            )
            result = values["val_dice"]
        _barrier(self.ranks)
        return result

    def _save(self, trainer: Trainer, cfg: TrainConfig, step: int) -> None:
        """Write the checkpoint of ``step`` (rank 0; every rank contributes its RNG state)."""
        states = _gather_rng(self.ranks)
        if self.ranks.rank == 0:
            save_checkpoint(
                self.layout.last,
                {
                    "step": step,
                    "model": cfg.model,
                    "adapter": cfg.adapter,
                    "trainable": trainable_state(trainer.model),
                    **trainer.state_dict(),
                    "rng": states,
                    "sampler": {"seed": cfg.seed, "step": step},
                },
            )
            self.info["step"] = step
            write_json(self.layout.info, self.info)
        self.last_saved = step

    def _loop(self, trainer: Trainer, data: RunData, cfg: TrainConfig, log: RunLog, start: int) -> float | None:
        """Steps ``start+1 .. steps``; returns the last validation Dice."""
        batches = iter(make_loader(data, cfg, self.ranks, start))
        if self.ranks.rank == 0:
            self.hooks.on_start(start, cfg.steps)
        val_dice = None
        for step in range(start + 1, cfg.steps + 1):
            began = time.perf_counter()
            micro = [next(batches) for _ in range(cfg.grad_accum)]
            try:
                values = trainer.step(step, micro)
            except TrainingError as err:
                kept = (
                    f"the last good checkpoint {str(self.layout.last)!r} (step {self.last_saved}) is kept"
                    if self.last_saved
                    else "no checkpoint had been written yet"
                )
                log.message(f"stopped: {err}; {kept}")
                raise TrainingError(f"{err}; training stopped, {kept}") from err
            values["seconds"] = time.perf_counter() - began
            if step % cfg.log_every == 0 or step == cfg.steps:
                log.metrics(step, values, "train")
            if step % cfg.save_every == 0 or step == cfg.steps:
                self._save(trainer, cfg, step)
            if (cfg.eval_every and step % cfg.eval_every == 0) or step == cfg.steps:
                val_dice = self._validate(trainer, data, cfg, log, step)
            if self.ranks.rank == 0:
                self.hooks.on_step(step, values)
        return val_dice

    def _finish(
        self, model: SamModel, cfg: TrainConfig, cache: PrefixCache, log: RunLog, began: float, val_dice: float | None
    ) -> TrainResult:
        digests = _gather(weights_digest(model), self.ranks)
        seconds = time.perf_counter() - began
        self.info.update(
            step=self.last_saved,
            val_dice=val_dice,
            seconds=round(seconds, 2),
            cache=cache.describe(),
            rank_weight_sha256=digests,
        )
        if self.ranks.rank == 0:
            write_json(self.layout.info, self.info)
        log.message(
            f"done at step {self.last_saved} in {seconds:.1f} s; zero-shot val Dice "
            f"{self.info.get('zero_shot_dice')}, final {val_dice}; {cache.describe()}"
        )
        if len(set(digests)) > 1:
            raise TrainingError(
                f"DDP ranks ended with different weights (sha256 {digests}) in run {str(self.layout.root)!r}"
            )
        return TrainResult(
            self.layout.root, self.last_saved, self.info.get("zero_shot_dice"), val_dice, seconds, dict(self.info)
        )


def _val_keys(data: RunData) -> list[list[Any]]:
    """(case_id, z, label) of each validation object, in the order of ``val_object_dice``."""
    if data.val is None or not len(data.val_indices):
        return []
    rows = data.val.objects().iloc[data.val_indices]
    return [[str(c), int(z), int(v)] for c, z, v in zip(rows["case_id"], rows["z"], rows["label"])]


def report_checkpoint(cfg: TrainConfig) -> str | None:
    """The base weights a run starts from (the user's file, or the model's bundled weights)."""
    if cfg.checkpoint is not None:
        return str(cfg.checkpoint)
    return "bundled" if cfg.model == "litemedsam" else ("seeded" if cfg.model == "tiny" else None)


def _gather_rng(ranks: Dist) -> list[dict[str, Any]]:
    """Every rank's RNG state, in rank order."""
    return _gather(rng_state(), ranks)


def train(
    config: TrainConfig, run_dir: Path | str, *, resume: bool = False, hooks: TrainHooks | None = None
) -> TrainResult:
    """Train per ``config`` into ``run_dir`` (``resume``: continue the run there); see the module docstring."""
    owned = int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized()
    ranks = init_distributed(config)
    hooks = hooks or TrainHooks()
    try:
        result = Session(config, RunLayout(Path(run_dir)), ranks, hooks).run(resume)
        if config.proposer is not None:
            result = _train_proposer(config, result, ranks, hooks)
        return result
    finally:
        if owned and dist.is_initialized():
            dist.destroy_process_group()


def _train_proposer(config: TrainConfig, result: TrainResult, ranks: Dist, hooks: TrainHooks) -> TrainResult:
    """Train (or resume) the SAM run's proposer in ``RUN/proposer`` on the same data; record it in its run.json."""
    assert config.proposer is not None
    folder = result.run_dir / PROPOSER_DIR
    sam = TrainConfig.read(RunLayout(result.run_dir).config)  # a resumed run's saved settings
    labels = tuple(result.info["label_names"])
    spec = proposer_config(sam.with_values({"proposer": config.proposer}), labels, result.info["snapshot_id"])
    hooks.on_message(f"training the proposer {config.proposer} in {folder} on labels {list(labels)}")
    done = Session(spec, RunLayout(folder), ranks, hooks).run(RunLayout(folder).exists())
    info = result.info
    if ranks.rank == 0:
        info = record_proposer(result.run_dir, result.info, config.proposer, done.info)
    _barrier(ranks)
    return dataclasses.replace(result, info=info)
