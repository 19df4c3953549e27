"""``train_flow``: fine-tune SAM with adapters on a mixture (and, with ``train.proposer``, the prompt-free
proposer of ``--auto`` beside it, in ``RUN/proposer``), then evaluate it against zero-shot.

Two tasks in the flow's own process (a training run is one process; it is compute, not I/O, so
neither task is retried): ``train`` (:func:`training.train.train`; it resumes the run found in
``out`` when ``resume`` is on, so a flow re-run after a crash continues from the last checkpoint)
and ``evaluate`` (:func:`training.eval_report.evaluate_run`: adapted and zero-shot side by side).
The training curve is drawn into the run folder, and the artifact ``train-<run>`` holds the
metrics table and the paths of the figures.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE

from flows.artifacts import markdown_table, publish
from flows.train_params import EvalParams, TrainParams
from samdata.device import resolve_device
from samdata.errors import ValidationError
from samdata.memory import StageMemory
from samdata.metrics import METRICS
from samdata.report import draw_training_curve, fmt
from training.config import TrainConfig
from training.eval_report import ADAPTED, ZERO_SHOT, EvalReport, evaluate_run
from training.run import RunLayout, load_run
from training.train import TrainHooks, TrainResult, train

CURVE = "training_curve.png"
PROGRESS_LINES = 10  # progress lines logged per training run


def _hooks(total_hint: int) -> TrainHooks:
    """Training hooks that log the run's messages and about PROGRESS_LINES step lines to the run logger."""
    logger = get_run_logger()
    state = {"every": max(1, total_hint // PROGRESS_LINES), "total": total_hint, "began": time.perf_counter()}

    def on_start(start: int, total: int) -> None:
        state.update(every=max(1, (total - start) // PROGRESS_LINES), total=total, began=time.perf_counter())

    def on_step(step: int, metrics: dict[str, float]) -> None:
        if step % state["every"] == 0 or step == state["total"]:
            logger.info(
                f"step {step}/{state['total']}: loss {metrics['loss']:.4f}, "
                f"{metrics['seconds']:.2f} s/step, {time.perf_counter() - state['began']:.0f} s so far"
            )

    return TrainHooks(on_start=on_start, on_step=on_step, on_message=logger.info)


@task(name="train", cache_policy=NONE)
def train_task(config: TrainConfig, out: str, resume: bool) -> TrainResult:
    """Train (or resume) the run in ``out``."""
    return train(config, out, resume=resume, hooks=_hooks(config.steps))


@task(name="evaluate", cache_policy=NONE)
def evaluate_task(run_dir: str, params: EvalParams, device: str) -> EvalReport:
    """Score the run and its zero-shot base on the chosen split; writes metrics.json/.md, best_worst.png and (with
    ``volumes``) the 3D scores' volumes/<model>/summary.json."""
    run = load_run(run_dir, device=device)
    out = Path(run_dir) / "eval" / params.split
    return evaluate_run(run, out, split=params.split, config=params.config(), slices=params.slices)


def metric_rows(run_dir: str | Path) -> list[dict[str, Any]]:
    """The rows of the run's metrics.jsonl ([] before the first log)."""
    layout = RunLayout(Path(run_dir))
    if not layout.metrics.is_file():
        return []
    return [json.loads(line) for line in layout.metrics.read_text().splitlines() if line.strip()]


def last_val_dice(run_dir: str | Path) -> float | None:
    """The run's latest validation Dice (from metrics.jsonl; a resumed run that had no step left logs none)."""
    rows = [r for r in metric_rows(run_dir) if r.get("kind") == "val" and r.get("val_dice") is not None]
    return float(max(rows, key=lambda r: r["step"])["val_dice"]) if rows else None


def draw_curve(run_dir: str | Path) -> Path | None:
    """Draw the run's loss and validation Dice from metrics.jsonl into ``training_curve.png`` (None if empty)."""
    layout = RunLayout(Path(run_dir))
    rows = metric_rows(run_dir)
    train_rows = [r for r in rows if r.get("kind") == "train"]
    val_rows = [r for r in rows if r.get("kind") == "val"]
    if not train_rows and not val_rows:
        return None
    info = json.loads(layout.info.read_text()) if layout.info.is_file() else {}
    title = f"{info.get('model', 'model')} [{info.get('adapter', '?')}] on mixture {info.get('mixture', '?')}"
    return draw_training_curve(
        [r["step"] for r in train_rows],
        [r["loss"] for r in train_rows],
        [r["step"] for r in val_rows],
        [r["val_dice"] for r in val_rows],
        layout.root / CURVE,
        title=title,
    )


def overall_rows(overall: dict[str, dict[str, float]]) -> list[list[str]]:
    """Rows metric | zero-shot | adapted | difference of an evaluation's overall means."""
    rows = []
    for metric in METRICS:
        zero, adapted = overall.get(ZERO_SHOT, {}).get(metric), overall.get(ADAPTED, {}).get(metric)
        delta = adapted - zero if zero is not None and adapted is not None else None
        rows.append([metric, fmt(zero), fmt(adapted), fmt(delta)])
    return rows


def train_markdown(
    result: TrainResult,
    evaluation: EvalReport | None,
    curve: Path | None,
    params: EvalParams | None,
    skipped: str | None = None,
) -> str:
    """The artifact: run summary, the zero-shot vs adapted metrics table and where the figures are."""
    info = result.info
    parts = [
        f"## Training run `{result.run_dir}`",
        f"{info.get('model')} [{info.get('adapter_report', info.get('adapter'))}], step {result.step}, "
        f"mixture `{info.get('mixture')}` at snapshot `{info.get('snapshot_id')}`; validation: "
        f"{info.get('validation')}. Validation Dice {fmt(result.zero_shot_dice)} before training → "
        f"{fmt(last_val_dice(result.run_dir))} after; {result.seconds:.0f} s this run.",
    ]
    if info.get("proposer"):
        found = info["proposer"]
        parts.append(
            f"Proposer for prompt mode auto: `{found['spec']}` in `{Path(result.run_dir) / found['run_dir']}`, "
            f"step {found['step']}, validation Dice {fmt(found['val_dice'])} (`samdata predict RUN --auto`)."
        )
    if evaluation is not None and params is not None:
        parts += [
            f"### Evaluation on {params.split}" + (f" slices {params.slices}" if params.slices else ""),
            markdown_table(["metric", "zero-shot", "adapted", "adapted - zero-shot"], overall_rows(evaluation.overall)),
        ]
    elif params is not None and skipped:
        parts += [f"### Evaluation on {params.split} skipped", skipped]
    figures = [["training curve", str(curve)]] if curve is not None else []
    if evaluation is not None:
        figures += [
            ["best and worst objects, zero-shot vs adapted", evaluation.figure_path],
            ["metrics (JSON)", evaluation.json_path],
            ["metrics (Markdown)", evaluation.markdown_path],
            *[
                [f"3D scores per case, {name} (nnU-Net summary.json)", path]
                for name, path in evaluation.summaries.items()
            ],
        ]
    if figures:
        parts += ["### Files", markdown_table(["what", "path"], figures)]
    return "\n\n".join(parts)


@flow(name="train", validate_parameters=True)
def train_flow(
    store: str,
    mixture: str,
    out: str,
    train: TrainParams = TrainParams(),  # type: ignore[valid-type]
    evaluate: EvalParams | None = EvalParams(),
    resume: bool = True,
) -> dict[str, Any]:
    """Fine-tune on ``mixture`` of ``store`` into the run folder ``out`` (continuing the run there when
    ``resume``), evaluate adapted vs zero-shot (unless ``evaluate`` is None); artifact ``train-<run>``."""
    logger = get_run_logger()
    config = train.config(store, mixture)
    again = resume and RunLayout(Path(out)).exists()
    logger.info(
        f"{'resuming' if again else 'starting'} run {out}: {config.model} [{config.adapter}], "
        f"{config.steps} steps of batch {config.batch_size} on mixture {mixture!r}"
    )
    memory = StageMemory()
    with memory.stage("training"):
        result = train_task(config, out, again)
    curve = draw_curve(result.run_dir)
    evaluation, skipped = None, None
    if evaluate is not None:
        try:
            with memory.stage("evaluation"):
                evaluation = evaluate_task(str(result.run_dir), evaluate, str(resolve_device(config.device)))
        except ValidationError as err:  # e.g. a mixture whose test split is still empty: say so, keep the run
            skipped = str(err)
            logger.warning(f"evaluation on {evaluate.split} skipped: {skipped}")
        for name, scores in (evaluation.overall if evaluation else {}).items():
            logger.info(f"{name}: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items() if v is not None))
    for line in memory.lines():
        logger.info(f"memory of {line}")
    key = publish("train", out, train_markdown(result, evaluation, curve, evaluate, skipped), f"training run {out}")
    final = result.val_dice if result.val_dice is not None else last_val_dice(result.run_dir)
    logger.info(f"run {result.run_dir}: validation Dice {fmt(result.zero_shot_dice)} → {fmt(final)} (artifact {key})")
    return {
        "run_dir": str(result.run_dir),
        "step": result.step,
        "zero_shot_dice": result.zero_shot_dice,
        "val_dice": final,
        "seconds": result.seconds,
        "curve": str(curve) if curve else None,
        "evaluation": None
        if evaluation is None
        else {
            "overall": evaluation.overall,
            "json": evaluation.json_path,
            "markdown": evaluation.markdown_path,
            "figure": evaluation.figure_path,
            "summaries": evaluation.summaries,
        },
        "evaluation_skipped": skipped,
        "proposer": result.info.get("proposer"),
        "memory": memory.stages,
    }
