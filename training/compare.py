"""Compare trained runs in one table: zero-shot SAM, adapted SAMs (real or real + synthetic data) and
prompt-free baselines (the U-Net), all scored on the same objects with the same prompts.

The first run's split (its mixture, snapshot and prompts) is the reference; a run from another store, with
other label names, or that trained on those items is refused (ConfigError), so the comparison stays fair.
Models of other input sizes or context read the same objects through one dataset per (size, context), the
prompts mapped into each frame. :func:`compare_runs` writes ``compare.json``, ``compare.md``,
``compare.png`` and, with a baseline beside an adapted SAM, ``errors.png`` (README.md, "Comparison"), and with
``CompareConfig.volumes`` each model's 3D scores per case and nnU-Net-style ``volumes/<model>/summary.json``
(:mod:`training.volume_scores`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from samdata.device import resolve_device
from samdata.errors import ConfigError, ValidationError
from samdata.files import write_json
from samdata.metrics import METRICS
from storage import SliceStore
from storage.records import load_mixture, mixture_view
from training.auto import AutoConfig, AutoResult
from training.auto_eval import AutoModel, evaluate_auto
from training.batches import build_data
from training.compare_figures import (
    ADAPTED,
    BASELINE,
    TABLE_HEADER,
    ZERO_SHOT,
    click_table,
    draw_errors,
    draw_scores,
    error_map,
    json_row,
    table_cells,
)
from training.config import TrainConfig
from training.dataset import MixtureDataset
from training.eval_config import CompareConfig as CompareConfig
from training.eval_report import EMPTY_RULE, open_split, tta_sentence, zero_shot_model
from training.evaluate import Stages, aggregate, evaluate_interactive, evaluate_models, predict_objects
from training.loop import is_promptable
from training.proposer import load_proposer
from training.run import LoadedRun, load_run
from training.volume_scores import SliceMaps, score_volumes, volume_json, volume_sentence, volume_table

NO_FED_LOGITS = ("litemedsam",)  # box-only models: their mask encoder never trained
AGGREGATION = "per object (label on a slice) → mean per case & label → mean over case & label pairs"
SD_RULE = "sample sd (ddof 1) of the per case & label mean Dice, the units the overall mean averages; null if < 2"
#: (model input side, context channels), plus slices per stack for a model with a ``depth`` adapter
Frame = tuple[int, bool] | tuple[int, bool, int]


@dataclass(frozen=True)
class CompareResult:
    """One row per model in table order (name, kind, model, adapter, synthetic, dice, iou, nsd, hd95, mae,
    trainable, total, train_seconds, steps, clicks {count: Dice} ({} without prompts), dice_sd_over_cases,
    plus objects, mixture, feed_logits, run_dir, eval_seconds) and the files written."""

    rows: tuple[dict, ...]
    json_path: Path
    markdown_path: Path
    figure_path: Path
    error_figure_path: Path | None
    summaries: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Model:
    """A compared model: its row name and kind, the module, its run (the base run for zero-shot) and folder."""

    name: str
    kind: str
    module: nn.Module
    run: LoadedRun
    run_dir: Path

    @property
    def frame(self) -> Frame:
        """(input side, context) of the items this model reads, and the slices per stack if a ``depth`` adapter
        makes them stacks."""
        size, depth = int(self.run.config.size or self.module.img_size), int(getattr(self.module, "depth", 1))
        return (size, bool(self.run.config.context)) + ((depth,) if depth > 1 else ())


def _number(value: Any) -> float | None:
    """A JSON-safe float (NaN → None)."""
    value = float(value)
    return None if math.isnan(value) else value


def store_of(run: LoadedRun) -> str:
    """The store a run trained on, as its run.json records it."""
    return str(run.info.get("store_url") or run.config.store)


def trains_synthetic(run: LoadedRun, store_url: str | None = None) -> bool:
    """Whether the run's mixture gives synthetic cases training weight (train rows, origin synthetic, weight > 0)."""
    store = SliceStore.open(store_url or store_of(run), snapshot=run.info.get("mixture_snapshot_id"))
    name = run.info.get("mixture") or run.config.mixture
    cases = load_mixture(mixture_view(store, name), name).cases
    return bool(((cases["origin"] == "synthetic") & (cases["split"] == "train") & (cases["weight"] > 0)).any())


def _load(
    run_dirs: Sequence[Path | str],
    names: Sequence[str] | None,
    zero_shot: bool,
    device: torch.device,
    say: Callable[[str], None],
) -> list[_Model]:
    """The runs' models (adapted or baseline) in order, the zero-shot base of the first SAM run first."""
    dirs = [Path(d) for d in run_dirs]
    if not dirs:
        raise ConfigError("compare needs at least one run directory")
    labels = [str(n) for n in names] if names is not None else [d.resolve().name for d in dirs]
    if len(labels) != len(dirs):
        raise ConfigError(f"{len(labels)} names {labels} for {len(dirs)} runs; expected one name per run")
    models = []
    for folder, name in zip(dirs, labels):
        say(f"loading run {folder}")
        run = load_run(folder, device=device)
        models.append(_Model(name, ADAPTED if is_promptable(run.model) else BASELINE, run.model, run, folder))
    sam = next((m for m in models if m.kind == ADAPTED), None)
    if zero_shot and sam is not None:
        models.insert(
            0, _Model(f"zero-shot {sam.run.config.model}", ZERO_SHOT, zero_shot_model(sam.run), sam.run, sam.run_dir)
        )
    taken = [m.name for m in models]
    if len(set(taken)) != len(taken):
        raise ConfigError(f"model names {taken} repeat; give distinct names (--names a,b,c)")
    return models


def _proposers(models: list[_Model], auto: AutoConfig | None) -> dict[str, LoadedRun]:
    """With prompt mode auto, each SAM row's proposer run (its run's recorded one, or ``auto.proposer``), loaded
    once per folder; {} otherwise."""
    if auto is None:
        return {}
    loaded: dict[str, LoadedRun] = {}
    out = {}
    for m in models:
        if is_promptable(m.module):
            key = f"{m.run.info.get('run_dir')}|{auto.proposer}"
            if key not in loaded:
                loaded[key] = load_proposer(m.run, auto.proposer)
            out[m.name] = loaded[key]
    return out


def _keys(dataset: MixtureDataset, indices: list[int] | None) -> pd.DataFrame:
    """The evaluated objects (case_id, z, label, label_name) of a split in item order."""
    objects = dataset.objects()[["case_id", "z", "label", "label_name"]]
    return (objects if indices is None else objects.iloc[indices]).reset_index(drop=True)


def _check_runs(runs: list[_Model], evaluated: pd.DataFrame, store_url: str | None) -> None:
    """ConfigError naming the runs unless every run is of the first one's store, trained on the same label names,
    and trained on none of the ``evaluated`` objects (its own mixture and slice filters, as training drew them)."""
    first, where, names = runs[0], store_of(runs[0].run), None
    wanted = set(map(tuple, evaluated[["case_id", "z", "label"]].to_numpy().tolist()))
    for m in runs:
        pair = f"runs {str(first.run_dir)!r} and {str(m.run_dir)!r}"
        if store_of(m.run) != where:
            raise ConfigError(
                f"{pair} come from different stores ({where!r} vs {store_of(m.run)!r}); "
                "compare runs trained on one store"
            )
        config = m.run.config if store_url is None else m.run.config.with_values({"store": store_url})
        data = build_data(config, m.run.info.get("snapshot_id"))
        objects = data.train.objects()
        labels = sorted(set(objects["label_name"].astype(str)))
        names = names or labels
        if labels != names:
            raise ConfigError(
                f"{pair} trained on different label sets: {names} vs {labels}; compare runs trained on the same labels"
            )
        seen = set(map(tuple, objects.iloc[data.candidates][["case_id", "z", "label"]].to_numpy().tolist()))
        if seen & wanted:
            raise ConfigError(
                f"run {str(m.run_dir)!r} trained on {len(seen & wanted)} of the {len(wanted)} objects "
                f"compared (e.g. {sorted(seen & wanted)[0]}) of the split of run {str(first.run_dir)!r}; "
                "compare on data every run held out (test or val, or --slices of their val_slices)"
            )


def _open_frames(
    models: list[_Model], reference: LoadedRun, split: str, store_url: str | None, slices: str | None
) -> tuple[dict[Frame, MixtureDataset], list[int] | None, str]:
    """One dataset per (size, context) over the reference run's split items, their indices and the protocol."""
    frames: dict[Frame, MixtureDataset] = {}
    indices, protocol, first = None, "", None
    for m in models:
        if m.frame in frames:
            continue
        size, context = m.frame[:2]
        shaped = reference.config.with_values({"size": size, "context": context})
        template = LoadedRun(m.module, shaped, reference.info)  # type: ignore[arg-type]
        frames[m.frame], indices, protocol = open_split(template, split, store_url, slices)
        keys = _keys(frames[m.frame], indices)
        if first is not None and not keys.equals(first):  # internal: item selection does not depend on the frame
            raise ValidationError(f"split {split!r} gives other items at frame {m.frame} (size, context[, depth])")
        first = keys
    return frames, indices, protocol


def _interactive(
    models: list[_Model],
    frames: dict[Frame, MixtureDataset],
    indices: list[int] | None,
    config: CompareConfig,
    seed: int,
    say: Callable[[str], None],
    stages: Stages | None = None,
) -> dict[str, tuple[bool, dict, dict]]:
    """(feed_logits, Dice per click count, region ceiling per click count) of every promptable model."""
    out: dict[str, tuple[bool, dict, dict]] = {}
    for m in models:
        if not config.clicks or not is_promptable(m.module):
            continue
        feed = config.feed_logits if config.feed_logits is not None else default_feed(m.run.config, m.kind != ZERO_SHOT)
        say(f"interactive protocol: {m.name}, clicks {','.join(map(str, config.clicks))}, fed-back logits {feed}")
        found = evaluate_interactive(
            m.module,
            frames[m.frame],
            config.clicks,
            seed=seed,
            config=config.eval_config(seed, feed),
            indices=indices,
            stages=stages,
        )
        out[m.name] = feed, found.summary, found.ceiling
    return out


def default_feed(config: TrainConfig, trained: bool = True) -> bool:
    """Whether the interactive protocol feeds a run's previous logits back by default: yes for a run trained
    with fed-back click rounds, and for models whose mask input was trained (not LiteMedSAM's: boxes only).
    ``trained`` False: the run's base model without its adapters (the zero-shot row), by its model alone."""
    if trained and config.click_rounds > 0 and config.click_feed_logits:
        return True
    return config.model not in NO_FED_LOGITS


def _row(
    m: _Model,
    overall: pd.DataFrame,
    sd: pd.Series,
    count: int,
    clicks: dict[str, tuple[bool, dict, dict]],
    seconds: float,
    store_url: str | None,
) -> dict[str, Any]:
    """The table row of one model (numbers from the scores, run.json and the clicks protocol)."""
    trained, info = m.kind != ZERO_SHOT, m.run.info
    total = sum(p.numel() for p in m.module.parameters())
    feed, summary, ceiling = clicks.get(m.name, (None, {}, {}))
    return {
        "name": m.name,
        "kind": m.kind,
        "model": m.run.config.model,
        "adapter": m.run.config.adapter if trained else None,
        "synthetic": trains_synthetic(m.run, store_url) if trained else False,
        **{k: _number(overall.loc[m.name, k]) for k in METRICS},
        "trainable": int(info.get("trainable", 0)) if trained else 0,
        "total": int(info.get("total", total)) if trained else total,
        "train_seconds": info.get("seconds") if trained else 0.0,
        "steps": int(info.get("step", 0)) if trained else 0,
        "clicks": {int(c): float(d) for c, d in summary.items()},
        "click_ceiling": {int(c): float(d) for c, d in ceiling.items()},
        "dice_sd_over_cases": _number(sd.get(m.name, float("nan"))),
        "objects": count,
        "mixture": (info.get("mixture") or m.run.config.mixture) if trained else None,
        "feed_logits": feed,
        "run_dir": str(m.run_dir) if trained else None,
        "eval_seconds": round(seconds, 3),
    }


def _error_panels(
    sam: _Model,
    base: _Model,
    frames: dict[Frame, MixtureDataset],
    indices: list[int] | None,
    config: CompareConfig,
    seed: int,
    scores: pd.DataFrame,
) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """The ``figure_slices`` slices where ``sam`` and ``base`` differ on most pixels, as error-map panels."""
    cfg = config.eval_config(seed)
    keys = _keys(frames[sam.frame], indices)
    slices: dict[tuple[str, int], list[int]] = {}
    for i, (case_id, z) in zip(indices or range(len(keys)), keys[["case_id", "z"]].itertuples(index=False)):
        slices.setdefault((str(case_id), int(z)), []).append(int(i))
    order, best = list(slices), []
    for start in range(0, len(order), config.batch_slices):
        wanted = [i for key in order[start : start + config.batch_slices] for i in slices[key]]
        a = predict_objects({sam.name: sam.module}, frames[sam.frame], wanted, cfg)
        b = predict_objects({base.name: base.module}, frames[base.frame], wanted, cfg)
        by_slice: dict[tuple[str, int], list[tuple[str, int, int]]] = {}
        for key in sorted(a):
            by_slice.setdefault(key[:2], []).append(key)
        for where, objects in by_slice.items():
            piece = a[objects[0]][0]
            gt = np.stack([piece.gt(a[k][1]) for k in objects])
            pa = np.stack([a[k][2][sam.name] > cfg.threshold for k in objects])
            pb = np.stack([b[k][2][base.name] > cfg.threshold for k in objects])
            best.append((int((pa != pb).sum()), where, piece.image, error_map(gt, pa, pb)))
        best = sorted(best, key=lambda t: (-t[0], t[1]))[: config.figure_slices]
    panels = []
    for differ, (case_id, z), image, errors in best:
        here = scores[(scores["case_id"] == case_id) & (scores["z"] == z)].groupby("model")["dice"].mean()
        panels.append(
            (
                image,
                errors,
                f"{case_id} z={z}: {differ} px differ\nDice {sam.name} "
                f"{here[sam.name]:.3f}, {base.name} {here[base.name]:.3f}",
            )
        )
    return panels


def _markdown(report: dict[str, Any], rows: Sequence[dict[str, Any]], clicks: Sequence[int]) -> str:
    """compare.md: the data line, the model table and the clicks table."""
    d = report["data"]

    def table(header: list[str], body: list[list[str]]) -> str:
        return "\n".join(
            ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in body]
        )

    parts = [
        f"# Comparison on {d['split']}: {', '.join(r['name'] for r in rows)}",
        f"Store `{d['store']}` at `{d['snapshot_id']}`, mixture `{d['mixture']}` of the reference run, prompts "
        f"`{d['prompt_set'] or d['scheme']}` (seed {d['prompt_seed']}); {d['cases']} cases, {d['slices']} slices, "
        f"{d['objects']} objects ({d['protocol']}); every model scored on the same objects and prompts. "
        f"NSD tolerance {report['settings']['tolerance_mm']:g} mm; HD95 in mm."
        f"{tta_sentence(report['settings'].get('tta'))}",
        f"Aggregation: {AGGREGATION}; ± {SD_RULE}. Empty masks: {EMPTY_RULE}.",
        "## Models",
        table(TABLE_HEADER, [table_cells(r) for r in rows]),
    ]
    if clicks and any(r["clicks"] for r in rows):
        parts += ["## Interactive (Dice after corrective clicks)", table(*click_table(rows, clicks))]
    if report.get("volumetric"):
        volumes = report["volumetric"]
        parts += ["## 3D per case (source grid)", table(*volume_table(volumes)), volume_sentence(volumes)]
    if report.get("prompts"):
        auto = report["prompts"]
        parts.append(
            f"Prompt mode auto: the SAM rows take no stored prompt; their boxes come from the proposer runs "
            f"{auto['proposers']} (settings {auto['settings']}), labels read only to score; prompt-free rows as "
            f"always. Cascade seconds per case volume (proposer and SAM): {auto['seconds_per_volume']}."
        )
    return "\n\n".join(parts) + "\n"


def compare_runs(
    run_dirs: Sequence[Path | str],
    out_dir: Path | str,
    config: CompareConfig = CompareConfig(),
    *,
    names: Sequence[str] | None = None,
    store_url: str | None = None,
    on_message: Callable[[str], None] | None = None,
    stages: Stages | None = None,
    auto: AutoConfig | None = None,
) -> CompareResult:
    """Score runs (and the first SAM run's zero-shot base) on the same items and prompts; write JSON, Markdown,
    the score figure and, with a baseline and an adapted SAM, the error figure (see the module docstring).
    ``auto``: prompt mode auto, each SAM row boxed by its run's proposer (or ``auto.proposer``) instead of the
    stored prompts (:mod:`training.auto_eval`); no clicks protocol and no error figure then."""
    say = on_message or (lambda _: None)
    device = resolve_device(config.device)
    models = _load(run_dirs, names, config.zero_shot, device, say)
    runs = [m for m in models if m.kind != ZERO_SHOT]
    reference = runs[0].run
    slices = config.slices or (reference.config.val_slices if config.split == "train" else None)
    frames, indices, protocol = _open_frames(models, reference, config.split, store_url, slices)
    keys = _keys(next(iter(frames.values())), indices)
    proposers = _proposers(models, auto)
    helpers = {str(p.info["run_dir"]): p for p in proposers.values()}  # a proposer must hold the data out too
    _check_runs(
        runs + [_Model(f"proposer {d}", BASELINE, p.model, p, Path(d)) for d, p in helpers.items()], keys, store_url
    )
    seed = reference.config.seed if config.prompt_seed is None else config.prompt_seed
    n_slices = len(keys[["case_id", "z"]].drop_duplicates())
    say(
        f"scoring {len(keys)} objects on {n_slices} slices with {len(models)} models: "
        f"{', '.join(m.name for m in models)}"
    )
    parts, seconds = [], {}
    maps = SliceMaps() if config.volumes else None
    given: dict[str, dict[str, AutoResult]] = {}  # --auto: the cascades' whole-case predictions
    for frame, dataset in frames.items():
        group = {m.name: m.module for m in models if m.frame == frame and m.name not in proposers}
        if group:
            result = evaluate_models(
                group,
                dataset,
                config.eval_config(seed),
                indices=indices,  # type: ignore[arg-type]
                stages=stages,
                sink=maps,
            )
            parts.append(result.rows)
            seconds.update(result.seconds)
        cascade = {
            m.name: AutoModel(m.module, m.frame, proposers[m.name])
            for m in models
            if m.frame == frame and m.name in proposers
        }
        if cascade and auto is not None:
            say(f"prompt mode auto: {', '.join(cascade)} boxed by their proposers; labels read after prediction")
            result, found = evaluate_auto(
                cascade, dataset, config.eval_config(seed), auto, indices=indices, stages=stages
            )
            given.update(found)
            parts.append(result.rows)
            seconds.update(result.seconds)
    scores = pd.concat(parts, ignore_index=True)
    counts = scores.groupby("model").size()
    if set(counts) != {len(keys)}:  # internal: evaluate_models scores every item with every model
        raise ValidationError(f"models scored unequal object counts {counts.to_dict()}; expected {len(keys)} each")
    per_case, per_label, overall = aggregate(scores, "model")
    sd = per_case.groupby("model")["dice"].std(ddof=1)
    if auto is not None and config.clicks:
        say("prompt mode auto: the clicks protocol is skipped (corrective clicks answer stored prompts)")
    clicks = _interactive(models, frames, indices, config, seed, say, stages) if auto is None else {}
    rows = tuple(
        _row(m, overall.set_index("model"), sd, int(counts[m.name]), clicks, seconds[m.name], store_url) for m in models
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    say(f"drawing {out / 'compare.png'}")
    figure = draw_scores(rows, config.clicks, out / "compare.png")
    sams = [r for r in rows if r["kind"] == ADAPTED]
    bases = [r for r in rows if r["kind"] == BASELINE]
    error_figure = None
    (out / "errors.png").unlink(missing_ok=True)  # a stale figure of an earlier comparison would mislead
    if sams and bases and auto is not None:
        say("prompt mode auto: no errors.png (its panels decode the stored prompts)")
    elif sams and bases:
        by_name = {m.name: m for m in models}
        sam, base = (by_name[max(group, key=lambda r: r["dice"])["name"]] for group in (sams, bases))
        say(f"drawing {out / 'errors.png'}: slices where {sam.name} and {base.name} differ most")
        error_figure = draw_errors(
            _error_panels(sam, base, frames, indices, config, seed, scores), (sam.name, base.name), out / "errors.png"
        )
    volumes = None
    if maps is not None:
        say("3D scores per case on the source grid")
        scored = {m.name: (m.module, frames[m.frame]) for m in models}
        found = score_volumes(
            scored, scores, maps, config.eval_config(seed), out, slices=slices, stages=stages, given=given
        )
        volumes = volume_json(found)
    dataset = frames[runs[0].frame]
    report = {
        "reference_run": str(runs[0].run_dir),
        "runs": {m.name: str(m.run_dir) for m in runs},
        "data": {
            "store": dataset.store_url,
            "snapshot_id": dataset.snapshot_id,
            "mixture": dataset.mixture,
            "prompt_set": dataset.prompt_set,
            "scheme": dataset.scheme_spec,
            "split": config.split,
            "protocol": protocol,
            "prompt_seed": seed,
            "cases": int(keys["case_id"].nunique()),
            "slices": n_slices,
            "objects": len(keys),
        },
        "settings": {**asdict(config), "device": str(device)},
        "aggregation": AGGREGATION,
        "dice_sd_over_cases": SD_RULE,
        "empty_masks": EMPTY_RULE,
        "rows": [json_row(r) for r in rows],
        "per_label_dice": {
            name: {str(k): float(v) for k, v in zip(g["label_name"], g["dice"])}
            for name, g in per_label.groupby("model", sort=False)
        },
        "figures": {"scores": figure.name, "errors": error_figure.name if error_figure else None},
        "volumetric": volumes,
        "prompts": None
        if auto is None
        else {
            "mode": "auto",
            "proposers": {name: run.info.get("run_dir") for name, run in proposers.items()},
            "settings": asdict(auto),
            "seconds_per_volume": {
                name: round(seconds[name] / max(int(keys["case_id"].nunique()), 1), 3) for name in proposers
            },
        },
    }
    write_json(out / "compare.json", report)
    (out / "compare.md").write_text(_markdown(report, rows, config.clicks), encoding="utf-8")
    say(f"wrote {out / 'compare.json'}, {out / 'compare.md'}")
    summaries = volumes["summaries"] if volumes else {}
    return CompareResult(rows, out / "compare.json", out / "compare.md", figure, error_figure, summaries)
