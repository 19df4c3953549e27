"""Scoring the prompt-free cascade (:mod:`training.auto`) on a split: predict first, read labels after.

:func:`predict_cases` runs the cascade over whole case volumes read with ``SliceStore.read_image`` (no label
map, no object index, no prompt set); only then :func:`score_objects` reads the label slices of the evaluated
objects and scores each (slice, label) as :func:`training.evaluate.evaluate_models` does, so the rows aggregate
and report alike. A structure the cascade misses on a slice scores as an empty prediction; what it finds on
slices without a reference object is not scored (the protocol is per reference object, as for the U-Net).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from samdata.errors import ConfigError
from samdata.figures import draw_grid
from samdata.metrics import dice, object_metrics
from samdata.prompts import Prompt
from storage import SliceStore
from training.auto import AutoConfig, AutoResult, auto_segment, frame_of
from training.dataset import MixtureDataset
from training.evaluate import EvalConfig, EvalResult, Stages
from training.models import SamModel
from training.run import LoadedRun


@dataclass(frozen=True)
class AutoModel:
    """A SAM to prompt automatically: the module, its (input side, context) and the proposer run that boxes it."""

    module: SamModel
    frame: tuple[int, bool]
    proposer: LoadedRun


def predict_cases(
    model: AutoModel,
    store: SliceStore,
    case_ids: list[str],
    config: AutoConfig,
    tta: str = "none",
    stages: Stages | None = None,
) -> tuple[dict[str, AutoResult], float]:
    """The cascade over each case's whole image volume (read without its labels) and the seconds it took."""
    out: dict[str, AutoResult] = {}
    seconds = 0.0
    for case_id in case_ids:
        image = store.read_image(case_id)
        advance = stages(f"auto {case_id}: proposer over the slices", image.shape[0]) if stages else None
        start = time.perf_counter()
        out[case_id] = auto_segment(
            model.module,
            model.proposer.model,
            image,
            sam_frame=model.frame,
            proposer_frame=frame_of(model.proposer),
            config=config,
            tta=tta,
            advance=advance,
        )
        seconds += time.perf_counter() - start
    return out, seconds


def _value(result: AutoResult, name: str, where: str) -> int:
    """The cascade's label value of label ``name`` (ConfigError if its proposer has no such label)."""
    for value, known in result.names.items():
        if known == name:
            return value
    raise ConfigError(f"{where}: the proposer segments {list(result.names.values())}, not label {name!r}")


def score_objects(
    name: str,
    predictions: Mapping[str, AutoResult],
    dataset: MixtureDataset,
    indices: list[int] | None,
    config: EvalConfig,
) -> pd.DataFrame:
    """Rows (model, item, case, z, label, metrics) of the chosen dataset objects scored against the stored labels."""
    store = SliceStore.open(dataset.store_url, snapshot=dataset.snapshot_id)
    objects = dataset.objects()
    chosen = range(len(objects)) if indices is None else indices
    rows, spacing = [], {}
    for i in chosen:
        row = objects.iloc[i]
        case_id, z, label = str(row["case_id"]), int(row["z"]), int(row["label"])
        if case_id not in spacing:
            grid = store.case_meta(case_id).geometry.spacing
            spacing[case_id] = (float(grid[1]), float(grid[0]))
        result = predictions[case_id]
        pred = result.labels[z] == _value(result, str(row["label_name"]), f"model {name!r}")
        gt = store.read_slice(case_id, z)[1] == label
        scores = object_metrics(pred.astype(np.float32), gt, spacing[case_id], config.metric)
        rows.append(
            {"model": name, "item": i, "case_id": case_id, "z": z, "label": label, "label_name": str(row["label_name"])}
            | scores
        )
    return pd.DataFrame(rows)


def evaluate_auto(
    models: Mapping[str, AutoModel],
    dataset: MixtureDataset,
    config: EvalConfig,
    auto: AutoConfig,
    *,
    indices: list[int] | None = None,
    stages: Stages | None = None,
) -> tuple[EvalResult, dict[str, dict[str, AutoResult]]]:
    """Every model's cascade over the cases of the chosen objects, then their scores (an EvalResult whose
    ``seconds`` are cascade seconds) and the predictions {model: {case: AutoResult}}."""
    if not models:
        raise ConfigError("evaluate_auto needs at least one model")
    objects = dataset.objects()
    chosen = objects if indices is None else objects.iloc[indices]
    case_ids = sorted(set(chosen["case_id"].astype(str)))
    store = SliceStore.open(dataset.store_url, snapshot=dataset.snapshot_id)
    predictions, seconds, parts = {}, {}, []
    for name, model in models.items():
        predictions[name], seconds[name] = predict_cases(model, store, case_ids, auto, config.tta, stages)
    for name in models:  # labels are read only now, after every prediction
        parts.append(score_objects(name, predictions[name], dataset, indices, config))
    return EvalResult(pd.concat(parts, ignore_index=True), tuple(models), seconds), predictions


def auto_record(auto: AutoConfig, proposer: LoadedRun, cases: int, seconds: Mapping[str, float]) -> dict:
    """The reports' record of an auto-prompted evaluation: mode, proposer run and model, the cascade settings
    and each model's cascade seconds per case volume (proposer and SAM together)."""
    return {
        "mode": "auto",
        "proposer": proposer.info.get("run_dir"),
        "proposer_model": proposer.config.model,
        "settings": asdict(auto),
        "seconds_per_volume": {name: round(s / max(cases, 1), 3) for name, s in seconds.items()},
    }


def draw_auto_best_worst(
    result: EvalResult,
    predictions: Mapping[str, Mapping[str, AutoResult]],
    dataset: MixtureDataset,
    config: EvalConfig,
    path: Path,
) -> Path:
    """A PNG of the best and worst objects by the last model's Dice: the reference with the proposer's box, then
    each model's auto-prompted prediction."""
    store = SliceStore.open(dataset.store_url, snapshot=dataset.snapshot_id)
    primary = result.rows[result.rows["model"] == result.models[-1]]
    ranked = primary.sort_values(["dice", "case_id", "z", "label"], kind="stable")
    k = min(config.figure_objects, max(1, len(ranked) // 2))
    picks = [("best", r) for r in ranked.iloc[::-1][:k].to_dict("records")]
    picks += [("worst", r) for r in ranked.iloc[:k].to_dict("records") if len(ranked) > 1]
    samples = []
    for rank, row in picks:
        case_id, z, label, name = str(row["case_id"]), int(row["z"]), int(row["label"]), str(row["label_name"])
        image, stored = store.read_slice(case_id, z)
        gt = stored == label
        first = predictions[result.models[-1]][case_id]
        proposal = first.proposals.get(_value(first, name, "figure"), {}).get(z)
        prompt = Prompt(box=proposal.box) if proposal is not None else None
        samples.append((image, np.where(gt, label, 0).astype(stored.dtype), prompt, f"{rank}: {case_id} z={z}\n{name}"))
        for model in result.models:
            found = predictions[model][case_id]
            pred = found.labels[z] == _value(found, name, "figure")
            mask = np.where(pred, label, 0).astype(stored.dtype)
            samples.append((image, mask, prompt, f"{model} (auto)\nDice {dice(pred, gt):.3f}"))
    names = dict(zip(result.rows["label"].astype(int), result.rows["label_name"].astype(str)))
    return draw_grid(samples, path, cols=1 + len(result.models), label_names=names)
