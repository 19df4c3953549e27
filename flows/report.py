"""The ``report`` task: gather what a build-and-train run made and write ``<folder>/index.html`` with PNGs.

Sections: the store (counts, sample slices with their stored prompts), synthetic pairs (a grid and
their gate scores, when the store has any), the prompt set and the mixture, the training curve,
and zero-shot vs adapted (metrics tables and the best/worst overlays of the evaluation). Figures
are drawn by :mod:`samdata.figures` / :mod:`samdata.report` or copied from the run folder, so the
report folder stands alone. Page writing is :func:`samdata.report.write_report`.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from prefect import task
from prefect.cache_policies import NONE

from flows.train import last_val_dice
from pipelines.mixtures import SPLITS, load_mixture
from pipelines.prompt_sets import load_prompt_set, slice_prompts
from samdata.figures import draw_grid
from samdata.report import Report, ReportFigure, ReportSection, ReportTable, fmt, write_report
from storage import SliceStore

SAMPLES, SYNTHETIC = "samples.png", "synthetic.png"
MAX_SAMPLES, MAX_SYNTHETIC = 6, 8


@dataclass(frozen=True)
class ReportInputs:
    """Where the report's content is: the store and its tables, the run folder and its evaluation."""

    title: str
    store: str
    prompt_set: str | None = None
    mixture: str | None = None
    run_dir: str | None = None
    evaluation_json: str | None = None
    memory: dict[str, dict[str, float]] | None = None


def _busiest_slice(objects: pd.DataFrame, case_id: str) -> int:
    """The z of the case's slice with the most objects (the middle one among ties)."""
    counts = objects[objects["case_id"] == case_id].groupby("z").size()
    best = counts[counts == counts.max()].index.to_numpy()
    return int(best[len(best) // 2])


def _sample(store: SliceStore, case_id: str, z: int, frame: pd.DataFrame | None, tag: str):
    """(image, label map, prompts by label, title) of one slice, for draw_grid."""
    image, label = store.read_slice(case_id, z)
    prompts = slice_prompts(frame, case_id, z) if frame is not None else None
    return image, label, prompts or None, f"{case_id} z={z} ({tag})"


def _names(store: SliceStore, case_ids: list[str]) -> dict[int, str]:
    """Label value → name over some cases (different names of one value joined by '/')."""
    names: dict[int, str] = {}
    for case_id in case_ids:
        for value, name in store.case_meta(case_id).label_names.items():
            if value and name not in names.get(value, "").split("/"):
                names[value] = f"{names[value]}/{name}" if value in names else name
    return names


def data_section(store: SliceStore, frame: pd.DataFrame | None, folder: Path) -> ReportSection:
    """Store counts and, per dataset (cases sharing label names), a grid of each real case's busiest slice
    with its stored prompts."""
    info, objects = store.info(), store.objects()
    real = sorted(set(objects.loc[objects["origin"] == "real", "case_id"].astype(str)))
    rows = [
        ("cases", str(info["cases"])),
        ("slices", str(info["slices"])),
        ("labelled slices", str(info["labelled_slices"])),
    ]
    rows += [(f"cases of origin {k}", str(v)) for k, v in info["origins"].items()]
    rows += [(f"objects of {k}", str(v)) for k, v in info["objects_per_label"].items()]
    groups: dict[tuple, list[str]] = {}
    for case_id in real:
        meta = store.case_meta(case_id)
        groups.setdefault((meta.modality, tuple(sorted(meta.label_names.items()))), []).append(case_id)
    figures = []
    for k, ((modality, _labels), cases) in enumerate(sorted(groups.items(), key=lambda g: g[1][0])):
        shown = cases[:MAX_SAMPLES]
        samples = [_sample(store, cid, _busiest_slice(objects, cid), frame, modality) for cid in shown]
        name = SAMPLES.replace(".png", f"_{k + 1}.png")
        draw_grid(samples, folder / name, cols=min(3, len(samples)), label_names=_names(store, shown))
        figures.append(
            ReportFigure(
                name,
                f"{modality}: {len(shown)} of {len(cases)} real case(s), each at its slice "
                "with the most objects: label outlines and the prompt set's prompts "
                "(boxes dashed, positive points as stars, negative as crosses).",
            )
        )
    return ReportSection(
        "Data",
        (f"Store {store.url} at snapshot {store.snapshot_id}.",),
        (ReportTable("store contents", ("what", "count"), tuple(rows)),),
        tuple(figures),
    )


def synthetic_section(store: SliceStore, folder: Path) -> ReportSection | None:
    """Synthetic pairs at the store's resolution beside the real slice each was made from, and their gate
    scores (None if the store has none)."""
    objects = store.objects()
    synthetic = sorted(set(objects.loc[objects["origin"] == "synthetic", "case_id"].astype(str)))
    if not synthetic:
        return None
    shown = synthetic[:: max(1, len(synthetic) // MAX_SYNTHETIC)][:MAX_SYNTHETIC]
    metas = {cid: store.case_meta(cid) for cid in shown}
    samples = []
    for cid in shown:
        prov = metas[cid].provenance
        recipe = prov.recipe
        what = f"{prov.generator or 'synthetic'} #{cid.rsplit('-', 1)[-1]}"
        if recipe.get("op") == "morph":
            what += f": morph {recipe['from'][1]}→{recipe['to'][1]}, t={float(recipe.get('t', 0)):.2f}"
        elif recipe.get("op"):
            what += f": {recipe['op']}"
        if prov.parents:
            parent_case, parent_z = prov.parents[0]
            samples.append(_sample(store, parent_case, parent_z, None, "")[:3] + (f"real {parent_case} z={parent_z}",))
        samples.append(_sample(store, cid, _busiest_slice(objects, cid), None, "")[:3] + (what,))
    cols = 4 if all(metas[c].provenance.parents for c in shown) else min(4, len(samples))
    draw_grid(samples, folder / SYNTHETIC, cols=cols, label_names=_names(store, shown))
    keys = [
        k for k in ("distance", "min_jacobian", "frechet_batch") if any(k in metas[c].provenance.scores for c in shown)
    ]
    rows = tuple(
        (
            cid,
            metas[cid].provenance.generator or "-",
            str(metas[cid].provenance.seed),
            " ".join(f"{c}:{z}" for c, z in metas[cid].provenance.parents) or "-",
            *(fmt(metas[cid].provenance.scores.get(k)) for k in keys),
        )
        for cid in shown
    )
    return ReportSection(
        "Synthetic pairs",
        (
            f"{len(synthetic)} synthetic case(s) passed the quality gate and are "
            "in the store; synthetic cases only ever train.",
        ),
        (ReportTable("shown synthetic cases", ("case", "generator", "seed", "made from", *keys), rows),),
        (
            ReportFigure(
                SYNTHETIC,
                "Each generated pair at the store's resolution (right) beside "
                "the real slice it was made from (left); label outlines.",
            ),
        ),
    )


def curation_section(store: SliceStore, inputs: ReportInputs, attrs: dict | None) -> ReportSection:
    """The prompt set's and the mixture's tables."""
    tables = []
    if attrs is not None:
        tables.append(
            ReportTable(
                f"prompt set {inputs.prompt_set}",
                ("scheme", "seed", "objects", "skipped"),
                ((str(attrs["scheme"]), str(attrs["seed"]), str(attrs["n_objects"]), str(attrs["n_skipped"])),),
            )
        )
    paragraphs: tuple[str, ...] = ()
    if inputs.mixture is not None:
        record = load_mixture(store, inputs.mixture)
        rows = []
        for split in SPLITS:
            cases = record.cases[record.cases["split"] == split]
            rows.append(
                (
                    split,
                    str(record.counts[split]["real"]),
                    str(record.counts[split]["synthetic"]),
                    str(int(cases["n_objects"].sum())),
                    fmt(float(cases["weight"].sum())),
                )
            )
        tables.append(
            ReportTable(
                f"mixture {record.name} (labels {', '.join(record.labels or ['all'])})",
                ("split", "real cases", "synthetic cases", "objects", "weight"),
                tuple(rows),
            )
        )
        paragraphs = tuple(f"Warning: {w}" for w in record.warnings)
    return ReportSection("Prompts and mixture", paragraphs, tuple(tables))


def _copy(source: str | Path | None, folder: Path, name: str) -> str | None:
    """Copy a figure into the report folder under ``name``; None when there is none."""
    if source is None or not Path(source).is_file():
        return None
    shutil.copyfile(source, folder / name)
    return name


def training_sections(inputs: ReportInputs, folder: Path) -> list[ReportSection]:
    """The training run (curve, record) and the evaluation (tables, overlays)."""
    if inputs.run_dir is None:
        return []
    run = Path(inputs.run_dir)
    info = json.loads((run / "run.json").read_text()) if (run / "run.json").is_file() else {}
    curve = _copy(run / "training_curve.png", folder, "training_curve.png")
    text = (
        f"{info.get('model')} [{info.get('adapter_report', info.get('adapter'))}] trained for {info.get('step')} "
        f"steps on {info.get('device')} (last session {fmt(info.get('seconds'), 0)} s); validation: "
        f"{info.get('validation')}; Dice {fmt(info.get('zero_shot_dice'))} before training, "
        f"{fmt(last_val_dice(run))} after."
    )
    sections = [
        ReportSection(
            "Training",
            (text, f"Run folder: {run}"),
            (),
            (ReportFigure(curve, "Training loss per logged step and validation Dice (step 0 is the zero-shot model)."),)
            if curve
            else (),
        )
    ]
    if inputs.evaluation_json is None or not Path(inputs.evaluation_json).is_file():
        return sections
    report = json.loads(Path(inputs.evaluation_json).read_text())
    overall = report["overall"]
    models = report["models"]
    rows = [(m, *(fmt(overall[name][m]) for name in models)) for m in overall[models[0]]]
    per_label = [(r["label_name"], *(fmt(r[name]["dice"]) for name in models)) for r in report["per_label"]]
    figure = _copy(
        Path(inputs.evaluation_json).parent / report.get("figure", "best_worst.png"), folder, "zero_shot_vs_adapted.png"
    )
    data = report["data"]
    sections.append(
        ReportSection(
            "Zero-shot vs adapted",
            (
                f"Evaluated on {data.get('protocol') or 'split ' + data['split']}: {data['cases']} case(s), "
                f"{data['slices']} slices, {data['objects']} objects; the same prompts for both models.",
                f"Empty masks: {report['empty_masks']}",
            ),
            (
                ReportTable("overall (mean over case & label)", ("metric", *models), tuple(rows)),
                ReportTable("Dice per label", ("label", *models), tuple(per_label)),
            ),
            (
                ReportFigure(
                    figure, "Best and worst objects: reference, then each model's prediction with the same prompt."
                ),
            )
            if figure
            else (),
        )
    )
    return sections


@task(name="report", retries=1, retry_delay_seconds=2, cache_policy=NONE)
def report_task(inputs: ReportInputs, folder: str) -> str:
    """Write the report folder (figures and index.html); returns the index.html path."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    store = SliceStore.open(inputs.store)
    prompt_set = load_prompt_set(store, inputs.prompt_set) if inputs.prompt_set else None
    frame, attrs = (prompt_set.frame, prompt_set.attrs) if prompt_set is not None else (None, None)
    sections = [data_section(store, frame, out)]
    synthetic = synthetic_section(store, out)
    if synthetic is not None:
        sections.append(synthetic)
    sections.append(curation_section(store, inputs, attrs))
    sections += training_sections(inputs, out)
    if inputs.memory:
        rows = tuple(
            (name, f"{stage['peak_mb']:,.0f}", f"{stage['seconds']:.0f}") for name, stage in inputs.memory.items()
        )
        sections.append(
            ReportSection(
                "Memory",
                (
                    "Peak resident memory of the job's process per stage (MB; the ingest "
                    "workers of a local Dask cluster run in processes of their own).",
                ),
                (ReportTable("peak per stage", ("stage", "peak MB", "seconds"), rows),),
            )
        )
    page = Report(
        inputs.title, summary_lines(store, inputs), tuple(sections), {"store": store.url, "snapshot": store.snapshot_id}
    )
    return str(write_report(page, out))


def summary_lines(store: SliceStore, inputs: ReportInputs) -> tuple[str, ...]:
    """The headline: what the store holds and, after an evaluation, Dice zero-shot vs adapted."""
    info = store.info()
    origins = ", ".join(f"{n} {k}" for k, n in info["origins"].items())
    lines = [
        f"Store: {info['cases']} cases ({origins}), {info['labelled_slices']} labelled slices, "
        f"{sum(info['objects_per_label'].values())} objects."
    ]
    if inputs.evaluation_json is not None and Path(inputs.evaluation_json).is_file():
        report = json.loads(Path(inputs.evaluation_json).read_text())
        dice = {name: scores.get("dice") for name, scores in report["overall"].items()}
        where = report["data"].get("protocol") or f"split {report['data']['split']}"
        lines.append(
            f"{report['model']} [{report['adapter']}] on {where} ({report['data']['objects']} objects): "
            "Dice " + ", ".join(f"{name.replace('_', '-')} {fmt(v)}" for name, v in dice.items()) + "."
        )
    return tuple(lines)
