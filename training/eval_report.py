"""Evaluate a trained run against its zero-shot base on a split, and write the report.

:func:`evaluate_run` scores the run's model and the same registry model without its adaptation on the same
items and prompts, optionally with the clicks protocol, and writes ``metrics.json``, ``metrics.md`` and
``best_worst.png`` into ``out_dir``. ``test`` and ``val`` use the mixture's fixed prompt set; ``train`` is
scored only on held-out slices, with prompts drawn as the run's own validation drew them. With
``EvalConfig.volumes`` it adds 3D scores per case on the source grid and nnU-Net's ``summary.json`` per model
under ``out_dir/volumes/`` (:mod:`training.volume_scores`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from samdata.errors import ConfigError, ValidationError
from samdata.figures import draw_grid
from samdata.files import write_json
from samdata.metrics import METRICS, dice
from samdata.spec import parse_slices
from training.auto import AutoConfig, check_auto, frame_of
from training.auto_eval import AutoModel, auto_record, draw_auto_best_worst, evaluate_auto
from training.batches import SeededMixture
from training.dataset import DatasetConfig, MixtureDataset
from training.evaluate import (
    EvalConfig,
    EvalResult,
    InteractiveResult,
    Stages,
    aggregate,
    evaluate_interactive,
    evaluate_models,
    predict_objects,
)
from training.loop import is_promptable
from training.models import BASELINES, SamModel, build_model
from training.proposer import load_proposer
from training.run import LoadedRun
from training.tta import tta_views
from training.volume_scores import SliceMaps, score_volumes, volume_json, volume_sentence, volume_table

ZERO_SHOT, ADAPTED = "zero_shot", "adapted"
EMPTY_RULE = (
    "an object the model misses (empty prediction) scores Dice = IoU = NSD = 0 and HD95 = the slice "
    "diagonal in mm, a finite worst case that keeps means defined; an empty reference with an empty "
    "prediction would score 1, 1, 1 and 0 (samdata.metrics)"
)


@dataclass(frozen=True)
class EvalReport:
    """Paths written by :func:`evaluate_run`, the summary (overall means per model) and, with the 3D scores, each
    model's nnU-Net-style summary.json and foreground means (Dice, IoU, NSD, HD95)."""

    json_path: str
    markdown_path: str
    figure_path: str
    overall: dict[str, dict[str, float]]
    interactive: dict[str, dict[int, float]]
    summaries: dict[str, str] = field(default_factory=dict)
    volumes: dict[str, dict[str, float | None]] = field(default_factory=dict)


def dataset_config(run: LoadedRun) -> DatasetConfig:
    """The evaluation items as the run's training made them (size, context, slice stacks of a ``depth`` adapter,
    labels, scheme, min area)."""
    config = run.config
    return DatasetConfig(
        size=config.size or run.model.img_size,
        context=config.context,
        depth=getattr(run.model, "depth", 1),
        min_area=config.min_area,
        labels=config.labels,
        scheme=config.scheme,
    )


def zero_shot_model(run: LoadedRun) -> SamModel:
    """The run's registry model with its base weights only, on the run model's device, in eval mode."""
    if run.config.model in BASELINES:
        raise ConfigError(f"model {run.config.model!r} is trained from scratch: it has no zero-shot version")
    base = build_model(run.config.model, checkpoint=run.config.checkpoint)
    return base.to(run.model.pixel_mean.device).eval()


def _records(frame: pd.DataFrame, by: str, keys: list[str]) -> list[dict[str, Any]]:
    """Rows of an aggregate frame pivoted to ``{keys..., <by value>: {metric: value}}`` records."""
    metrics = [c for c in frame.columns if c in METRICS]
    out: dict[tuple, dict[str, Any]] = {}
    for row in frame.to_dict("records"):
        key = tuple(row[k] for k in keys)
        record = out.setdefault(key, {k: _plain(row[k]) for k in keys})
        record[str(row[by])] = {m: _plain(row[m]) for m in metrics}
        if "n_slices" in row:
            record["n_slices"] = int(row["n_slices"])
    return list(out.values())


def _plain(value: Any) -> Any:
    """A JSON-safe Python scalar (NaN → None)."""
    if isinstance(value, np.generic):
        value = value.item()
    return None if isinstance(value, float) and math.isnan(value) else value


def open_split(
    run: LoadedRun, split: str, store_url: str | None, slices: str | None
) -> tuple[MixtureDataset, list[int] | None, str]:
    """The run's items of ``split`` (only slices ``slices``, a z spec like ``51-135:6``), their indices and the
    protocol. ``train`` means the run's held-out slices (``slices`` or its ``val_slices``) with seeded prompts."""
    info, config = run.info, run.config
    if split not in ("train", "val", "test"):
        raise ConfigError(f"split {split!r}; expected test, val or train (held-out slices)")
    if split == "train":
        slices = slices or config.val_slices
        if slices is None:
            raise ConfigError(
                "run trained on every slice of the train split (no val_slices); evaluating split "
                "'train' needs held-out slices (--slices) or use val/test"
            )
    where = (
        store_url or info.get("store_url") or config.store,
        info.get("mixture") or config.mixture,
        split,
        dataset_config(run),
    )
    snapshot = info.get("snapshot_id") or config.snapshot
    dataset = (
        SeededMixture(*where, seed=config.seed, snapshot=snapshot)
        if split == "train"
        else MixtureDataset(*where, snapshot=snapshot)
    )
    if slices is None:
        return dataset, None, f"the mixture's {split} split with its fixed prompts"
    chosen = set(parse_slices(slices))
    indices = [i for i, z in enumerate(dataset.objects()["z"].tolist()) if int(z) in chosen]
    if not indices:
        raise ValidationError(f"no {split} objects of mixture {dataset.mixture!r} on slices {slices!r}")
    seeded = " (prompts from object_rng(run seed, case, z, label))" if split == "train" else ""
    return dataset, indices, f"slices z in {slices} of the {split} split{seeded}"


def evaluate_run(
    run: LoadedRun,
    out_dir: Path | str,
    *,
    split: str = "test",
    store_url: str | None = None,
    zero_shot: bool = True,
    config: EvalConfig = EvalConfig(),
    slices: str | None = None,
    stages: Stages | None = None,
    auto: AutoConfig | None = None,
) -> EvalReport:
    """Evaluate ``run`` (and its zero-shot base) on ``split`` of its mixture; write JSON, Markdown and figure.
    ``auto``: prompt mode auto, the boxes from the run's proposer (:mod:`training.auto_eval`), not the split's
    stored prompts; labels are read only to score."""
    if auto is not None:
        check_auto(run)
        if config.clicks:
            raise ConfigError("corrective clicks answer a stored prompt's errors; evaluate --auto without --clicks")
    dataset, indices, protocol = open_split(run, split, store_url, slices)
    config = replace(config, prompt_seed=run.config.seed)
    zero_shot = zero_shot and run.config.model not in BASELINES  # a U-Net has nothing before training
    models = {ZERO_SHOT: zero_shot_model(run)} if zero_shot else {}
    models[ADAPTED] = run.model.eval()
    maps = SliceMaps(config.threshold) if config.volumes else None
    given = None  # --auto: the cascade's whole-case predictions
    out = Path(out_dir)
    interactive = {}
    if auto is None:
        result = evaluate_models(models, dataset, config, indices=indices, stages=stages, sink=maps)
        if config.clicks:
            interactive = {
                name: evaluate_interactive(model, dataset, config.clicks, config=config, indices=indices, stages=stages)
                for name, model in models.items()
                if is_promptable(model)
            }
        out.mkdir(parents=True, exist_ok=True)
        figure = draw_best_worst(models, dataset, result, config, out / "best_worst.png")
    else:
        proposer = load_proposer(run, auto.proposer)
        cascade = {name: AutoModel(model, frame_of(run), proposer) for name, model in models.items()}
        result, predictions = evaluate_auto(cascade, dataset, config, auto, indices=indices, stages=stages)
        given = predictions
        out.mkdir(parents=True, exist_ok=True)
        figure = draw_auto_best_worst(result, predictions, dataset, config, out / "best_worst.png")
    report = report_json(run, dataset, result, config, interactive)
    report["data"]["protocol"] = protocol
    report["figure"] = figure.name
    if maps is not None:
        z_filter = slices or (run.config.val_slices if split == "train" else None)
        scores = score_volumes(
            {name: (model, dataset) for name, model in models.items()},
            result.rows,
            maps,
            config,
            out,
            slices=z_filter,
            stages=stages,
            given=given,
        )
        report["volumetric"] = volume_json(scores)
    if auto is not None:
        report["prompts"] = auto_record(auto, proposer, len(set(result.rows["case_id"])), result.seconds)
        report["data"].update(prompt_set=None, scheme=f"auto: boxes from the proposer run {proposer.info['run_dir']}")
    write_json(out / "metrics.json", report)
    (out / "metrics.md").write_text(report_markdown(report), encoding="utf-8")
    volumes = report["volumetric"] or {"summaries": {}, "foreground_mean": {}}
    return EvalReport(
        str(out / "metrics.json"),
        str(out / "metrics.md"),
        str(figure),
        report["overall"],
        interactive,
        volumes["summaries"],
        volumes["foreground_mean"],
    )


def report_json(
    run: LoadedRun,
    dataset: MixtureDataset,
    result: EvalResult,
    config: EvalConfig,
    interactive: dict[str, InteractiveResult],
) -> dict[str, Any]:
    """The JSON-safe report of one evaluation (``metrics.json``): run record, data (store, snapshot, mixture,
    prompt set, split), settings, the empty-mask rule, overall / per label / per case & label means for each
    model, every object's scores, interactive Dice per click count and timings."""
    per_case, per_label, overall = aggregate(result.rows, "model")
    n_slices = result.rows[["case_id", "z"]].drop_duplicates().shape[0]
    return {
        "run": {k: _plain(v) for k, v in run.info.items() if isinstance(v, str | int | float | bool)},
        "model": run.config.model,
        "adapter": run.config.adapter,
        "data": {
            "store": dataset.store_url,
            "snapshot_id": dataset.snapshot_id,
            "mixture": dataset.mixture,
            "prompt_set": dataset.prompt_set,
            "scheme": dataset.scheme_spec,
            "split": dataset.split,
            "cases": int(result.rows["case_id"].nunique()),
            "slices": int(n_slices),
            "objects": int(len(result.rows) // len(result.models)),
        },
        "settings": {
            "tolerance_mm": config.tolerance_mm,
            "threshold": config.threshold,
            "batch_slices": config.batch_slices,
            "context": dataset.config.context,
            "depth": dataset.config.depth,
            "size": dataset.config.size,
            "tta": config.tta,
        },
        "aggregation": "per object (label on a slice) → mean per case & label → mean over case & label pairs",
        "empty_masks": EMPTY_RULE,
        "models": list(result.models),
        "overall": {str(r["model"]): {m: _plain(r[m]) for m in METRICS} for r in overall.to_dict("records")},
        "per_label": _records(per_label, "model", ["label_name"]),
        "per_case_label": _records(per_case, "model", ["case_id", "label", "label_name"]),
        "per_object": _records(
            result.rows.drop(columns=["item"]), "model", ["case_id", "z", "label", "label_name", "gt_area"]
        ),
        "missed_objects": {
            m: int(((result.rows["model"] == m) & (result.rows["pred_area"] == 0)).sum()) for m in result.models
        },
        "interactive": {
            "clicks": list(config.clicks),
            "feed_logits": config.feed_logits,
            "dice": {m: {str(c): d for c, d in v.summary.items()} for m, v in interactive.items()},
            "ceiling": {m: {str(c): d for c, d in v.ceiling.items()} for m, v in interactive.items()},
        },
        "seconds": {m: round(s, 3) for m, s in result.seconds.items()},
        "seconds_per_slice": {m: round(s / max(n_slices, 1), 4) for m, s in result.seconds.items()},
        "volumetric": None,  # evaluate_run adds the 3D scores (training.volume_scores.volume_json)
    }


def tta_sentence(tta: str | None) -> str:
    """The reports' note on test-time mirroring (empty without it)."""
    if tta in (None, "none"):
        return ""
    views = len(tta_views(tta))
    return (
        f" Test-time mirroring `{tta}`: probabilities averaged over {views} mirrored views"
        " (box scores and corrective clicks alike)."
    )


def _table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def _num(value: Any) -> str:
    """A metric for a table (3 decimals, '-' for missing)."""
    return "-" if value is None else f"{value:.3f}"


def report_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: overall, per label and per case & label tables, models side by side."""
    models = report["models"]
    both = ZERO_SHOT in models and ADAPTED in models
    data = report["data"]
    parts = [
        f"# Evaluation: {report['model']} [{report['adapter']}] on {data['split']}",
        f"Store `{data['store']}` at `{data['snapshot_id']}`, mixture `{data['mixture']}`, prompts "
        f"`{data['prompt_set'] or data['scheme']}`; {data['cases']} cases, {data['slices']} slices, "
        f"{data['objects']} objects ({data.get('protocol', data['split'])}). NSD tolerance "
        f"{report['settings']['tolerance_mm']:g} mm; HD95 in mm.{tta_sentence(report['settings'].get('tta'))}",
        f"Aggregation: {report['aggregation']}. Empty masks: {report['empty_masks']}.",
        "## Overall",
    ]
    header = ["metric", *models] + (["adapted - zero-shot"] if both else [])
    rows = []
    for m in METRICS:
        values = [report["overall"][name][m] for name in models]
        delta = [_num(report["overall"][ADAPTED][m] - report["overall"][ZERO_SHOT][m])] if both else []
        rows.append([m, *map(_num, values), *delta])
    parts.append(_table(header, rows))
    shown = ("dice", "nsd", "hd95")
    cols = [f"{m} {name}" for m in shown for name in models]
    parts += [
        "## Per label",
        _table(
            ["label", *cols],
            [[r["label_name"], *[_num(r[name][m]) for m in shown for name in models]] for r in report["per_label"]],
        ),
    ]
    parts += [
        "## Per case and label",
        _table(
            ["case", "label", "slices", *cols],
            [
                [
                    r["case_id"],
                    r["label_name"],
                    str(r["n_slices"]),
                    *[_num(r[name][m]) for m in shown for name in models],
                ]
                for r in report["per_case_label"]
            ],
        ),
    ]
    clicks = report["interactive"]
    if clicks["dice"]:
        rows = []
        for name, dice in clicks["dice"].items():
            ceiling = clicks["ceiling"][name]
            rows += [
                [name, *[_num(dice[str(c)]) for c in clicks["clicks"]]],
                [
                    f"{name} (ceiling: k largest error regions fixed)",
                    *[_num(ceiling[str(c)]) for c in clicks["clicks"]],
                ],
            ]
        parts += [
            "## Interactive (Dice after corrective clicks)",
            _table(["model", *[f"{c} clicks" for c in clicks["clicks"]]], rows),
        ]
    if report.get("volumetric"):
        parts += ["## 3D per case (source grid)", _table(*volume_table(report["volumetric"]))]
        parts.append(volume_sentence(report["volumetric"]))
    parts.append(
        f"Missed objects (empty prediction): {report['missed_objects']}. "
        f"Seconds per slice: {report['seconds_per_slice']}."
    )
    if "prompts" in report:
        auto = report["prompts"]
        parts.append(
            f"Prompt mode auto: no stored prompt; the {auto['proposer_model']} run `{auto['proposer']}` proposed the "
            f"boxes (settings {auto['settings']}); labels were read only to score. Cascade seconds per case volume "
            f"(proposer and SAM): {auto['seconds_per_volume']}."
        )
    return "\n\n".join(parts) + "\n"


def draw_best_worst(
    models: dict[str, SamModel], dataset: MixtureDataset, result: EvalResult, config: EvalConfig, path: Path
) -> Path:
    """A PNG of the best and worst objects by the last model's Dice: reference, then each model's prediction."""
    primary = result.rows[result.rows["model"] == result.models[-1]]
    ranked = primary.sort_values(["dice", "case_id", "z", "label"], kind="stable")
    k = min(config.figure_objects, max(1, len(ranked) // 2))
    picks = [("best", r) for r in ranked.iloc[::-1][:k].to_dict("records")]
    picks += [("worst", r) for r in ranked.iloc[:k].to_dict("records") if len(ranked) > 1]
    found = predict_objects(models, dataset, [int(r["item"]) for _, r in picks], config)
    samples = []
    for rank, row in picks:
        key = (str(row["case_id"]), int(row["z"]), int(row["label"]))
        piece, i, probs = found[key]
        (new_h, new_w), (height, width) = piece.frame_geometry()
        prompt = piece.prompt(i).scaled(width / new_w, height / new_h)
        gt = piece.gt(i)
        samples.append(
            (
                piece.image,
                np.where(gt, key[2], 0).astype(piece.label.dtype),
                prompt,
                f"{rank}: {key[0]} z={key[1]}\nreference {row['label_name']}",
            )
        )
        for name, prob in probs.items():
            pred = prob > config.threshold
            samples.append(
                (
                    piece.image,
                    np.where(pred, key[2], 0).astype(piece.label.dtype),
                    prompt,
                    f"{name}\nDice {dice(pred, gt):.3f}",
                )
            )
    names = dict(zip(result.rows["label"].astype(int), result.rows["label_name"].astype(str)))
    return draw_grid(samples, path, cols=1 + len(models), label_names=names)
