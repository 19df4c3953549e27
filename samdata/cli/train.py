"""Training command: ``samdata train`` (one process, or many under ``torchrun``)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from samdata.cli.common import out, progress
from samdata.cli.options import ResumeOpt
from samdata.errors import ConfigError
from samdata.spec import parse_list


def run_training(values: dict[str, Any], out_dir: Path, resume: bool, json_out: bool,
                 config_file: Path | None = None) -> None:
    """Build the TrainConfig from the given option values over ``config_file``'s (a run's config.json), or over
    the saved run's config when resuming, and train with a bar."""
    from training.config import TrainConfig
    from training.run import RunLayout
    from training.train import TrainHooks, train

    given = {k: v for k, v in values.items() if v is not None}
    if config_file is not None:  # the file's values, then the options given explicitly
        given = {**TrainConfig.read(config_file).to_json(), **given}
    layout = RunLayout(out_dir)
    if resume and layout.exists():
        config = TrainConfig.read(layout.config).with_values(given)
    elif "store" not in given or "mixture" not in given:
        raise ConfigError("samdata train needs --store and --mixture (or --resume with an existing --out run)")
    else:
        config = TrainConfig(**given)
    rank0 = os.environ.get("RANK", "0") == "0"
    with progress(disable=not rank0) as bars:
        bar = bars.add("train")

        def on_step(step: int, metrics: dict[str, float]) -> None:
            bar.update(step, status=f"loss {metrics['loss']:.4f}  {metrics['seconds']:.2f} s/step")

        hooks = TrainHooks(on_start=lambda start, total: bar.update(start, total=total), on_step=on_step,
                           on_message=bars.print)
        result = train(config, out_dir, resume=resume, hooks=hooks)
    if not rank0:
        return
    if json_out:
        out.print_json(json.dumps({"run_dir": str(result.run_dir), **result.info}, default=str))
    else:
        zero = "n/a" if result.zero_shot_dice is None else f"{result.zero_shot_dice:.4f}"
        final = "n/a" if result.val_dice is None else f"{result.val_dice:.4f}"
        out.print(f"run {result.run_dir}: step {result.step}, val Dice {zero} (before training) -> {final}; "
                  f"{result.seconds:.1f} s")


def train_command(
    out_dir: Annotated[Path, typer.Option("--out", help="Run directory (created; must be new unless --resume).")],
    config_file: Annotated[Optional[Path], typer.Option(
        "--config", help="A TrainConfig as JSON, e.g. a run's config.json (it reproduces that run); options given "
                         "override its values.")] = None,
    store: Annotated[Optional[str], typer.Option(help="Store folder or s3://bucket/prefix.")] = None,
    mixture: Annotated[Optional[str], typer.Option(help="Mixture name (samdata mixture).")] = None,
    model: Annotated[Optional[str], typer.Option(help="litemedsam, sam_vit_b/l/h, tiny, or unet (the prompt-free baseline: needs --labels, trains every weight; use --lr 1e-3).")] = None,
    adapter: Annotated[Optional[str], typer.Option(help="Adapter spec, e.g. decoder, lora:r=8,blocks=all+decoder.")] = None,
    steps: Annotated[Optional[int], typer.Option(help="Optimizer steps.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Items per micro-batch per process.")] = None,
    grad_accum: Annotated[Optional[int], typer.Option(help="Micro-batches per step.")] = None,
    lr: Annotated[Optional[float], typer.Option(help="AdamW learning rate.")] = None,
    weight_decay: Annotated[Optional[float], typer.Option(help="AdamW weight decay.")] = None,
    warmup: Annotated[Optional[int], typer.Option(help="Linear warm-up steps before cosine decay.")] = None,
    iou_loss: Annotated[Optional[float], typer.Option(help="Weight of the IoU-head MSE.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed of items, prompts, augmentation and adapters.")] = None,
    checkpoint: Annotated[Optional[str], typer.Option(help="Base weights (.pth); required for sam_vit_*.")] = None,
    context: Annotated[Optional[bool], typer.Option("--context/--no-context", help="Slices z-1,z,z+1 as channels.")] = None,
    augment: Annotated[Optional[str], typer.Option(help="Augmentations, e.g. flip,affine (turns the prefix cache off).")] = None,
    labels: Annotated[Optional[str], typer.Option(help="Label names to train on, comma-separated (default: the mixture's).")] = None,
    scheme: Annotated[Optional[str], typer.Option(help="Training prompt scheme (default: the prompt set's, else box:jitter=5).")] = None,
    min_area: Annotated[Optional[int], typer.Option(help="Skip objects smaller than this (pixels).")] = None,
    train_slices: Annotated[Optional[str], typer.Option(help="Train only on these z, e.g. 50-139:3.")] = None,
    val_slices: Annotated[Optional[str], typer.Option(help="Hold these z of the train cases out for validation, e.g. 51-135:6.")] = None,
    snapshot: Annotated[Optional[str], typer.Option(help="Store snapshot id (default: the mixture's).")] = None,
    eval_every: Annotated[Optional[int], typer.Option(help="Validate every N steps.")] = None,
    val_max: Annotated[Optional[int], typer.Option(help="At most N validation objects.")] = None,
    save_every: Annotated[Optional[int], typer.Option(help="Checkpoint every N steps.")] = None,
    log_every: Annotated[Optional[int], typer.Option(help="Log metrics every N steps.")] = None,
    device: Annotated[Optional[str], typer.Option(help="auto (CUDA if present), cpu, cuda, cuda:N.")] = None,
    bf16: Annotated[Optional[bool], typer.Option("--bf16/--no-bf16", help="bf16 autocast on CUDA.")] = None,
    cache: Annotated[Optional[str], typer.Option(help="Frozen-prefix cache: memory, disk, off.")] = None,
    workers: Annotated[Optional[int], typer.Option(help="DataLoader worker processes.")] = None,
    click_rounds: Annotated[Optional[int], typer.Option(help="Corrective clicks simulated per item after its first decode, each decoded again and its loss added.")] = None,
    click_mode: Annotated[Optional[str], typer.Option(help="Where a simulated click goes: interior (the deepest error pixel) or random.")] = None,
    click_feed_logits: Annotated[Optional[bool], typer.Option("--click-feed-logits/--no-click-feed-logits", help="Feed the previous round's logits as mask input during click rounds.")] = None,
    resume: ResumeOpt = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the run record as JSON.")] = False,
) -> None:
    """Fine-tune SAM with adapters on a mixture (under torchrun: DDP over the processes). Options not given take
    the --config file's values, else (with --resume) the run's, else TrainConfig's defaults (training/config.py)."""
    values: dict[str, Any] = dict(
        store=store, mixture=mixture, model=model, adapter=adapter, steps=steps, batch_size=batch_size,
        grad_accum=grad_accum, lr=lr, weight_decay=weight_decay, warmup=warmup, iou_loss=iou_loss, seed=seed,
        checkpoint=checkpoint, context=context, augment=parse_list("--augment", augment),
        labels=parse_list("--labels", labels), scheme=scheme, min_area=min_area,
        train_slices=train_slices, val_slices=val_slices, snapshot=snapshot, eval_every=eval_every,
        val_max=val_max, save_every=save_every, log_every=log_every, device=device, bf16=bf16, cache=cache,
        num_workers=workers, click_rounds=click_rounds, click_mode=click_mode, click_feed_logits=click_feed_logits)
    run_training(values, out_dir, resume, json_out, config_file)


def register(app: typer.Typer) -> None:
    """Add the training command to the top-level app."""
    app.command("train")(train_command)
