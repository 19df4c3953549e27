"""3D scores per case and label on the source grid, beside the per-slice object scores, and nnU-Net's summary.json.

A case's test range is its slices from the first to the last one evaluated (only those a z filter keeps). A
promptable model's volume is put together from the per-slice predictions :func:`training.evaluate.evaluate_models`
made with the split's prompts (:class:`SliceMaps`; on each slice the most probable object wins): it is asked
only where the reference has an object, so slices of the range without one stay empty, as in MedSAM's
per-slice protocol. A prompt-free model (the U-Net) segments every slice of the range
(:func:`training.predict.segment_volume`); so does the prompt-free cascade of ``--auto``, whose label maps
come ready made (``given``; both mapped to the store's label values by name). Reference and prediction, both zero
outside the range, go back onto the source grid and are written there with the source affine
(:func:`training.predict.write_on_source_grid`, what ``samdata predict`` writes), and scored on it with the
source spacing (:mod:`samdata.volume_metrics`).

Files under ``out/volumes/``: ``reference/<case>.nii.gz``, and per model ``<model>/<case>.nii.gz`` and
``<model>/summary.json`` (nnU-Net v2's layout of a prediction folder).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from samdata.case import CaseMeta
from samdata.files import write_json
from samdata.names import case_id_for_name
from samdata.spec import parse_slices
from samdata.volume_metrics import EMPTY_CASES, case_scores, summary
from storage import SliceStore
from training.dataset import MixtureDataset
from training.eval_config import EvalConfig
from training.evaluate import SliceBatch, Stages
from training.loop import is_promptable
from training.models import SamModel
from training.models.unet import FOREGROUND
from training.predict import most_probable, segment_volume, write_on_source_grid

if TYPE_CHECKING:
    from training.auto import AutoResult

VOLUMES, REFERENCE = "volumes", "reference"
RANGE_RULE = (
    "each case from its first to its last evaluated slice; a promptable model predicts the evaluated objects "
    "from their prompts (nothing where none was given), a prompt-free one every slice of the range"
)
AUTO_RULE = "; with --auto, SAM's own cascade (proposer boxes) predicts every slice of the range"


class SliceMaps:
    """Per model, the (Y, X) label map of each evaluated slice: a sink for ``evaluate_models(sink=...)``."""

    def __init__(self, threshold: float = 0.5) -> None:
        self.threshold = threshold
        self.maps: dict[str, dict[str, dict[int, np.ndarray]]] = {}  # model → case → z → (Y, X) labels

    def __call__(self, model: str, piece: SliceBatch, probs: np.ndarray) -> None:
        """Keep slice ``piece``'s most probable object per pixel of its (n, Y, X) ``probs``."""
        labels = [int(item["label"]) for item in piece.items]
        found = most_probable(probs, labels, self.threshold).astype(piece.label.dtype)
        self.maps.setdefault(model, {}).setdefault(piece.case_id, {})[piece.z] = found


@dataclass(frozen=True)
class VolumeScores:
    """What :func:`score_volumes` wrote: summary.json per model, the per-label means and foreground means (nnU-Net's
    ``mean`` and ``foreground_mean``), label names by value, each case's test range, models skipped (with why)
    and the seconds the 3D part took."""

    summaries: dict[str, str]
    means: dict[str, dict[str, dict[str, float]]]
    foreground: dict[str, dict[str, float]]
    label_names: dict[str, str]
    ranges: dict[str, tuple[int, int]]
    seconds: float
    skipped: dict[str, str] = field(default_factory=dict)
    gaps: tuple[str, ...] = ()
    auto: bool = False


def source_spacing(meta: CaseMeta) -> tuple[float, ...]:
    """The source grid's voxel size in mm along its (X, Y, Z) axes (its affine's column lengths)."""
    affine = np.asarray(meta.geometry.source_affine, dtype=float)
    return tuple(float(v) for v in np.linalg.norm(affine[:3, :3], axis=0))


def _unet_values(model: SamModel, meta: CaseMeta, labels: list[int]) -> np.ndarray | None:
    """Store label value of each of a prompt-free model's outputs 1..C (index 0: background); None when one
    foreground channel stands for several labels, which no label map can hold."""
    names = tuple(model.label_names)
    if names == (FOREGROUND,):
        return np.array([0, labels[0]]) if len(labels) == 1 else None
    return store_values(dict(enumerate(names, 1)), meta)


def store_values(names: Mapping[int, str], meta: CaseMeta) -> np.ndarray:
    """Lookup table from a model's output values (``names``: value → label name; 0 is background) to the
    case's stored label values, matched by name (a name the case lacks maps to 0)."""
    by_name = {str(name): int(value) for value, name in meta.label_names.items()}
    lut = np.zeros(max(names, default=0) + 1, dtype=np.int64)
    for value, name in names.items():
        lut[value] = by_name.get(str(name), 0)
    return lut


def _in_range(depth: int, lo: int, hi: int, chosen: set[int] | None) -> np.ndarray:
    """(Z,) bool: slices lo..hi, only those in ``chosen`` when given."""
    keep = np.zeros(depth, dtype=bool)
    keep[lo : hi + 1] = True
    if chosen is not None:
        keep &= np.isin(np.arange(depth), sorted(chosen))
    return keep


def _runs(kept: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) of each run of consecutive True slices of a (Z,) bool array."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], kept.astype(np.int8), [0]])))
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2])]


def score_volumes(
    models: Mapping[str, tuple[SamModel, MixtureDataset]],
    rows: pd.DataFrame,
    maps: SliceMaps,
    config: EvalConfig,
    out_dir: Path | str,
    *,
    slices: str | None = None,
    stages: Stages | None = None,
    given: Mapping[str, Mapping[str, AutoResult]] | None = None,
) -> VolumeScores:
    """Score every model's prediction of each evaluated case in 3D on the source grid and write the files and
    summary.json of the module docstring. ``models``: name → (model, the dataset it was scored on: its store
    snapshot, input size and context); ``rows``: the per-object rows that were scored (columns case_id, z,
    label, label_name); ``maps``: the promptable models' slices; ``slices``: the z filter of the evaluation;
    ``given``: model → case → the ``--auto`` cascade's result (its (Z, Y, X) label map on the slice grid,
    predicted without prompts over the whole case), mapped to the store's values by name and cut to the range
    here like the U-Net's."""
    start = time.perf_counter()
    root = Path(out_dir) / VOLUMES
    chosen = set(parse_slices(slices)) if slices else None
    objects = rows[["case_id", "z", "label", "label_name"]].drop_duplicates()
    labels = sorted(int(v) for v in objects["label"].unique())
    names = {str(int(v)): str(n) for v, n in zip(objects["label"], objects["label_name"])}
    folders = {name: root / (case_id_for_name(name) or "model") for name in models}
    records: dict[str, list[dict[str, Any]]] = {name: [] for name in models}
    skipped: dict[str, str] = {}
    ranges: dict[str, tuple[int, int]] = {}
    gaps: list[str] = []
    first = next(iter(models.values()))[1]
    store = SliceStore.open(first.store_url, snapshot=first.snapshot_id)
    cases = sorted(objects["case_id"].astype(str).unique())
    advance = stages("3D scores per case", len(cases)) if stages is not None else None
    for case_id in cases:
        zs = objects.loc[objects["case_id"] == case_id, "z"].astype(int)
        lo, hi = int(zs.min()), int(zs.max())
        ranges[case_id] = (lo, hi)
        case = store.read_case(case_id)
        kept = _in_range(case.label.shape[0], lo, hi, chosen)
        if not kept[lo : hi + 1].all():
            gaps.append(case_id)
        keep = kept[:, None, None]
        ref = np.where(keep & np.isin(case.label, labels), case.label, 0).astype(case.label.dtype)
        ref_file, ref_source = write_on_source_grid(ref, case.meta, root / REFERENCE / f"{case_id}.nii.gz")
        spacing = source_spacing(case.meta)
        for name, (model, dataset) in models.items():
            if name in skipped:
                continue
            if given is not None and name in given:
                result = given[name][case_id]
                pred = store_values(result.names, case.meta)[result.labels]
            elif is_promptable(model):
                pred = np.zeros_like(ref)
                for z, found in maps.maps.get(name, {}).get(case_id, {}).items():
                    pred[z] = found
            else:
                values = _unet_values(model, case.meta, labels)
                if values is None:
                    skipped[name] = f"one foreground channel for labels {labels}: no label map holds it"
                    continue
                found = sum(
                    segment_volume(
                        model,
                        case.image,
                        context=dataset.config.context,
                        size=dataset.config.size,
                        z_range=run,
                        batch=config.batch_slices,
                        tta=config.tta,
                    )
                    for run in _runs(kept)
                )
                pred = values[found].astype(ref.dtype)
            pred = np.where(keep & np.isin(pred, labels), pred, 0).astype(ref.dtype)
            pred_file, pred_source = write_on_source_grid(pred, case.meta, folders[name] / f"{case_id}.nii.gz")
            records[name].append(
                {
                    "metrics": case_scores(pred_source, ref_source, labels, spacing, config.tolerance_mm),
                    "prediction_file": str(pred_file.resolve()),
                    "reference_file": str(ref_file.resolve()),
                }
            )
        if advance is not None:
            advance(1)
    paths, means, foreground = {}, {}, {}
    for name in models:
        if name in skipped:
            continue
        found = summary(records[name])
        found["samdata"] = {
            "model": name,
            "label_names": names,
            "grid": "source (each case's own file grid and affine; one-slice cases scored in 2D)",
            "tolerance_mm": config.tolerance_mm,
            "empty": EMPTY_CASES,
            "range": RANGE_RULE + (AUTO_RULE if given and name in given else ""),
            "ranges": {k: list(v) for k, v in ranges.items()},
        }
        paths[name] = str(write_json(folders[name] / "summary.json", found))
        means[name], foreground[name] = found["mean"], found["foreground_mean"]
    seconds = time.perf_counter() - start
    return VolumeScores(paths, means, foreground, names, ranges, seconds, skipped, tuple(gaps), bool(given))


SHOWN = ("Dice", "NSD", "HD95")


def _safe(value: float) -> float | None:
    """A JSON-safe float (NaN → None)."""
    return None if value is None or np.isnan(value) else float(value)


def volume_json(scores: VolumeScores) -> dict[str, Any]:
    """The reports' ``volumetric`` section: settings, rules, paths, per-label and foreground means (Dice, IoU,
    NSD, HD95; NaN → null) keyed by model, then label name."""
    keep = ("Dice", "IoU", "NSD", "HD95")
    return {
        "grid": "source",
        "range": RANGE_RULE + (AUTO_RULE if scores.auto else ""),
        "empty": EMPTY_CASES,
        "aggregation": "per case & label → mean over cases per label (nanmean) → foreground mean over labels",
        "label_names": scores.label_names,
        "ranges": {k: list(v) for k, v in scores.ranges.items()},
        "summaries": scores.summaries,
        "mean": {
            model: {scores.label_names[k]: {m: _safe(v[m]) for m in keep} for k, v in labels.items()}
            for model, labels in scores.means.items()
        },
        "foreground_mean": {model: {m: _safe(v[m]) for m in keep} for model, v in scores.foreground.items()},
        "skipped": scores.skipped,
        "gaps": list(scores.gaps),
        "seconds": round(scores.seconds, 3),
    }


def volume_table(section: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of a Markdown table of a ``volumetric`` section: a row per label and the foreground mean,
    Dice, NSD and HD95 of each model side by side."""
    models = list(section["mean"])

    def cells(by_model: Mapping[str, Mapping[str, float | None]]) -> list[str]:
        values = [by_model[model][m] for m in SHOWN for model in models]
        return ["-" if v is None else f"{v:.3f}" for v in values]

    header = ["label", *[f"{m} {model}" for m in SHOWN for model in models]]
    rows = [
        [name, *cells({model: section["mean"][model][name] for model in models})]
        for name in sorted(section["label_names"].values())
    ]
    rows.append(["foreground mean", *cells(section["foreground_mean"])])
    return header, rows


def volume_sentence(section: Mapping[str, Any]) -> str:
    """The reports' line under the 3D table: grid, range, empty rule and where summary.json is."""
    files = ", ".join(f"`{VOLUMES}/{Path(path).parent.name}/summary.json`" for path in section["summaries"].values())
    skipped = "".join(f" Not scored: {model} ({why})." for model, why in section["skipped"].items())
    gaps = (
        f" The z filter leaves gaps in the range of {', '.join(section['gaps'])}: each kept slice is then a slab "
        "whose faces are all surface, so NSD and HD95 there say little about a 3D shape (Dice still holds)."
        if section["gaps"]
        else ""
    )
    return (
        f"3D scores per case on its source grid ({section['aggregation']}); range: {section['range']}. "
        f"Empty masks: {section['empty']}. nnU-Net-style summaries: {files}; {section['seconds']:.1f} s."
        f"{gaps}{skipped}"
    )
