"""Training command: ``samdata train`` (one process, or many under ``torchrun``)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from samdata.cli.common import out, progress
from samdata.cli.options import ResumeOpt, config_option
from samdata.errors import ConfigError
from samdata.spec import parse_list
from training.config import TrainConfig


def train_option(*decls: str) -> Any:
    """The option of TrainConfig field ``decls[-1]`` (earlier items: its flag names), None when not given."""
    return config_option(TrainConfig, decls[-1], *decls[:-1], default=None)


def run_training(
    values: dict[str, Any], out_dir: Path, resume: bool, json_out: bool, config_file: Path | None = None
) -> None:
    """Build the TrainConfig from the given option values over ``config_file``'s (a run's config.json), or over
    the saved run's config when resuming, and train with a bar."""
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

        hooks = TrainHooks(
            on_start=lambda start, total: bar.update(start, total=total), on_step=on_step, on_message=bars.print
        )
        result = train(config, out_dir, resume=resume, hooks=hooks)
    if not rank0:
        return
    if json_out:
        out.print_json(json.dumps({"run_dir": str(result.run_dir), **result.info}, default=str))
    else:
        zero = "n/a" if result.zero_shot_dice is None else f"{result.zero_shot_dice:.4f}"
        final = "n/a" if result.val_dice is None else f"{result.val_dice:.4f}"
        out.print(
            f"run {result.run_dir}: step {result.step}, val Dice {zero} (before training) -> {final}; "
            f"{result.seconds:.1f} s"
        )
        if "proposer" in result.info:
            found = result.info["proposer"]
            dice = "n/a" if found["val_dice"] is None else f"{found['val_dice']:.4f}"
            out.print(
                f"proposer {found['spec']} in {result.run_dir / found['run_dir']}: step {found['step']}, "
                f"val Dice {dice} (for --auto)"
            )


def train_command(
    out_dir: Annotated[Path, typer.Option("--out", help="Run directory (created; must be new unless --resume).")],
    config_file: Annotated[
        Optional[Path],
        typer.Option(
            "--config",
            help="A TrainConfig as JSON, e.g. a run's config.json (it reproduces that run); options given "
            "override its values.",
        ),
    ] = None,
    # Every TrainConfig option defaults to None, "not given": its value then comes from --config, else (with
    # --resume) the run's config.json, else TrainConfig's default, which the help shows.
    store: Optional[str] = train_option("store"),
    mixture: Optional[str] = train_option("mixture"),
    model: Optional[str] = train_option("model"),
    adapter: Optional[str] = train_option("adapter"),
    steps: Optional[int] = train_option("steps"),
    batch_size: Optional[int] = train_option("batch_size"),
    grad_accum: Optional[int] = train_option("grad_accum"),
    lr: Optional[float] = train_option("lr"),
    weight_decay: Optional[float] = train_option("weight_decay"),
    warmup: Optional[int] = train_option("warmup"),
    iou_loss: Optional[float] = train_option("iou_loss"),
    seed: Optional[int] = train_option("seed"),
    checkpoint: Optional[str] = train_option("checkpoint"),
    context: Optional[bool] = train_option("--context/--no-context", "context"),
    augment: Optional[str] = train_option("augment"),
    labels: Optional[str] = train_option("labels"),
    scheme: Optional[str] = train_option("scheme"),
    min_area: Optional[int] = train_option("min_area"),
    train_slices: Optional[str] = train_option("train_slices"),
    val_slices: Optional[str] = train_option("val_slices"),
    snapshot: Optional[str] = train_option("snapshot"),
    eval_every: Optional[int] = train_option("eval_every"),
    val_max: Optional[int] = train_option("val_max"),
    save_every: Optional[int] = train_option("save_every"),
    log_every: Optional[int] = train_option("log_every"),
    device: Optional[str] = train_option("device"),
    bf16: Optional[bool] = train_option("--bf16/--no-bf16", "bf16"),
    cache: Optional[str] = train_option("cache"),
    workers: Optional[int] = train_option("--workers", "num_workers"),
    click_rounds: Optional[int] = train_option("click_rounds"),
    click_mode: Optional[str] = train_option("click_mode"),
    click_feed_logits: Optional[bool] = train_option("--click-feed-logits/--no-click-feed-logits", "click_feed_logits"),
    proposer: Optional[str] = train_option("proposer"),
    resume: ResumeOpt = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the run record as JSON.")] = False,
) -> None:
    """Fine-tune SAM with adapters on a mixture (under torchrun: DDP over the processes). Options not given take
    the --config file's values, else (with --resume) the run's, else TrainConfig's defaults (training/config.py)."""
    values: dict[str, Any] = dict(
        store=store,
        mixture=mixture,
        model=model,
        adapter=adapter,
        steps=steps,
        batch_size=batch_size,
        grad_accum=grad_accum,
        lr=lr,
        weight_decay=weight_decay,
        warmup=warmup,
        iou_loss=iou_loss,
        seed=seed,
        checkpoint=checkpoint,
        context=context,
        augment=parse_list("--augment", augment),
        labels=parse_list("--labels", labels),
        scheme=scheme,
        min_area=min_area,
        train_slices=train_slices,
        val_slices=val_slices,
        snapshot=snapshot,
        eval_every=eval_every,
        val_max=val_max,
        save_every=save_every,
        log_every=log_every,
        device=device,
        bf16=bf16,
        cache=cache,
        num_workers=workers,
        click_rounds=click_rounds,
        click_mode=click_mode,
        click_feed_logits=click_feed_logits,
        proposer=proposer,
    )
    run_training(values, out_dir, resume, json_out, config_file)


def register(app: typer.Typer) -> None:
    """Add the training command to the top-level app."""
    app.command("train")(train_command)
