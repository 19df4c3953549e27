"""Curation commands: ``prompts`` (seeded prompt sets), ``mixture`` (curated splits) and ``show`` (figures)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from pipelines.configs import MixtureConfig
from samdata.cli.common import console, fail, interactive, out, progress
from samdata.cli.options import JsonOpt, StoreArg, config_option
from samdata.errors import ConfigError
from samdata.spec import parse_labels, parse_splits, split_assignment

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from samdata.prompts import Prompt
    from storage import SliceStore

LabelsOpt = Annotated[
    Optional[list[str]],
    typer.Option("--labels", help="Label names, comma-separated or repeated (default: all labels)."),
]


def parse_generators(items: list[str] | None) -> dict[str, float] | None:
    """``["pix2pix=2", "fastgan=1"]`` → generator weights (None when not given)."""
    if not items:
        return None
    weights: dict[str, float] = {}
    for item in items:
        gen, raw = split_assignment(item) or ("", "")
        try:
            weight = float(raw)
        except ValueError:
            weight = math.nan
        if not gen or not math.isfinite(weight) or gen in weights:
            raise ConfigError(
                f"--generator {item!r} is not GEN=W with a new generator id and a number; "
                "expected e.g. --generator pix2pix=2"
            )
        weights[gen] = weight
    return weights


def prompts(
    store: StoreArg,
    scheme: Annotated[str, typer.Option(help="Prompt scheme spec, e.g. box:jitter=5 or points:n=2,neg=1.")],
    name: Annotated[str, typer.Option(help="Name of the prompt set (table prompt_sets/NAME).")],
    seed: Annotated[int, typer.Option(min=0, help="Seed; the same seed draws the same prompts.")] = 0,
    labels: LabelsOpt = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing prompt set of that name.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Draw one seeded prompt per (case, slice, label) object and commit it as a prompt set."""
    from pipelines.prompt_sets import make_prompt_set

    wanted = parse_labels(labels)
    with progress(disable=not interactive()) as bars:
        bar = bars.add(f"prompts {name}")
        report = make_prompt_set(
            store, scheme, name, seed, labels=wanted, overwrite=overwrite, progress=lambda done, total: bar.advance(1)
        )
    if json_out:
        out.print_json(json.dumps(report.to_json()))
        return
    out.print(
        f"prompt set [bold]{report.name}[/]: {report.n_objects} objects, scheme {report.scheme}, "
        f"seed {report.seed}; drawn from {report.source_snapshot_id}, committed {report.snapshot_id}",
        highlight=False,
    )
    if report.n_skipped:
        console.print(
            f"[yellow]skipped {report.n_skipped} object(s) too small for the scheme[/], e.g.:", highlight=False
        )
        for line in report.skipped_examples[:5]:
            console.print(f"  {line}", highlight=False, markup=False)


def mixture(
    store: StoreArg,
    name: Annotated[str, typer.Option(help="Name of the mixture (table mixtures/NAME).")],
    real: float = config_option(MixtureConfig, "real"),
    synthetic: float = config_option(MixtureConfig, "synthetic"),
    generator: Optional[list[str]] = config_option(MixtureConfig, "generators", "--generator", note="repeat"),
    labels: LabelsOpt = None,
    splits: str = config_option(MixtureConfig, "splits"),
    prompt_set: Optional[str] = config_option(MixtureConfig, "prompt_set", "--prompts"),
    seed: int = config_option(MixtureConfig, "seed"),
    snapshot: Annotated[Optional[str], typer.Option(help="Mix the cases of this snapshot id (default: head).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing mixture of that name.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Split the cases by case (synthetic only in train), weight them, and commit the mixture."""
    from pipelines.mixtures import SPLITS, make_mixture

    wanted = parse_labels(labels)
    config = MixtureConfig(
        real=real,
        synthetic=synthetic,
        generators=parse_generators(generator),
        labels=tuple(wanted) if wanted is not None else None,
        splits=parse_splits(splits),
        prompt_set=prompt_set,
        seed=seed,
    )
    record = make_mixture(store, name, config, snapshot=snapshot, overwrite=overwrite)
    if json_out:
        out.print_json(json.dumps(record.attrs))
        return
    from rich.table import Table

    table = Table(title=f"mixture {record.name} of snapshot {record.snapshot_id}")
    for col in ("split", "real", "synthetic", "objects", "weight"):
        table.add_column(col, justify="left" if col == "split" else "right")
    for split in SPLITS:
        rows = record.cases[record.cases["split"] == split]
        table.add_row(
            split,
            str(record.counts[split]["real"]),
            str(record.counts[split]["synthetic"]),
            str(int(rows["n_objects"].sum())),
            f"{rows['weight'].sum():.3g}",
        )
    out.print(table)
    from storage import SliceStore

    head = SliceStore.open(store).snapshot_id
    out.print(f"committed mixture {record.name} as {head}", highlight=False)
    if record.generators:
        out.print(
            "generator shares: " + ", ".join(f"{g} {s:.3g}" for g, s in record.generators.items()), highlight=False
        )
    for warning in record.warnings:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)


def _slice_sample(
    view: SliceStore, case_id: str, z: int, labels: tuple[str, ...] | None, frame: pd.DataFrame | None
) -> tuple[np.ndarray, np.ndarray, dict[int, Prompt] | None, dict[int, str]]:
    """Image, label map restricted to ``labels``, stored prompts and label names of one slice."""
    import numpy as np

    from pipelines.prompt_sets import slice_prompts

    image, label = view.read_slice(case_id, z)
    names = view.case_meta(case_id).label_names
    keep = [value for value, label_name in names.items() if labels is None or label_name in labels]
    mask = np.where(np.isin(label, keep), label, 0)
    prompts = slice_prompts(frame, case_id, z) if frame is not None else None
    if prompts is not None:
        prompts = {value: p for value, p in prompts.items() if value in keep}
    return image, mask, prompts, {value: names[value] for value in keep}


def _merge_names(into: dict[int, str], names: dict[int, str]) -> None:
    """Add label names to ``into``, joining different names of one label value with '/'."""
    for value, name in names.items():
        have = into.get(value)
        into[value] = name if have is None or name in have.split("/") else f"{have}/{name}"


def _show_grid(view: SliceStore, mixture_name: str, n: int, seed: int, cols: int, path: Path) -> tuple[Path, Any]:
    """Draw ``n`` weighted train samples of a mixture; returns the PNG path and the draws."""
    import numpy as np

    from pipelines.mixtures import load_mixture, sample_train_slices
    from pipelines.prompt_sets import load_prompt_set
    from samdata.figures import draw_grid

    record = load_mixture(view, mixture_name)
    source = view.at(record.snapshot_id)
    frame = load_prompt_set(view, record.prompt_set).frame if record.prompt_set else None
    draws = sample_train_slices(source, record, n, np.random.default_rng(seed))
    origin = dict(zip(record.cases["case_id"], record.cases["origin"]))
    generator = dict(zip(record.cases["case_id"], record.cases["generator"]))
    samples, names = [], {}
    for case_id, z in draws:
        image, mask, prompts, case_names = _slice_sample(source, case_id, z, record.labels, frame)
        _merge_names(names, case_names)
        kind = generator[case_id] if origin[case_id] == "synthetic" else "real"
        samples.append((image, mask, prompts, f"{case_id} z={z} ({kind})"))
    return draw_grid(samples, path, cols=cols, label_names=names), draws


def show(
    store: StoreArg,
    out_path: Annotated[Path, typer.Option("--out", help="PNG file to write.")],
    case: Annotated[Optional[str], typer.Option(help="Case id (single-slice mode).")] = None,
    slice_z: Annotated[Optional[int], typer.Option("--slice", min=0, help="Slice index z (single-slice mode).")] = None,
    prompt_set: Annotated[Optional[str], typer.Option("--prompts", help="Overlay this prompt set.")] = None,
    snapshot: Annotated[Optional[str], typer.Option(help="Read this snapshot id (default: head).")] = None,
    mixture_name: Annotated[
        Optional[str], typer.Option("--mixture", help="Grid of train samples of a mixture.")
    ] = None,
    grid: Annotated[int, typer.Option(min=1, help="Samples in the grid (mixture mode).")] = 8,
    cols: Annotated[int, typer.Option(min=1, help="Grid columns (mixture mode).")] = 4,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the grid's sample draw.")] = 0,
) -> None:
    """Draw one slice with label outlines and prompts, or a grid of a mixture's weighted train samples."""
    from storage import SliceStore

    if mixture_name is not None and (case is not None or slice_z is not None or prompt_set is not None):
        fail("--mixture draws a grid; do not combine it with --case/--slice/--prompts (the mixture names its prompts)")
    if mixture_name is None and (case is None or slice_z is None):
        fail("give --case and --slice for one slice, or --mixture for a grid of train samples")
    view = SliceStore.open(store, snapshot=snapshot)
    if mixture_name is not None:
        path, draws = _show_grid(view, mixture_name, grid, seed, cols, out_path)
        out.print(f"wrote {path}: {len(draws)} train samples of mixture {mixture_name} (seed {seed})", highlight=False)
        return
    assert case is not None and slice_z is not None

    from pipelines.prompt_sets import load_prompt_set
    from samdata.figures import draw_slice

    frame = load_prompt_set(view, prompt_set).frame if prompt_set is not None else None
    image, mask, prompts, names = _slice_sample(view, case, slice_z, None, frame)
    title = f"{case} z={slice_z}" + (f" prompts {prompt_set}" if prompt_set else "")
    path = draw_slice(image, mask, prompts, title, out_path, label_names=names)
    out.print(f"wrote {path}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add the curation commands to the top-level app."""
    app.command("prompts")(prompts)
    app.command("mixture")(mixture)
    app.command("show")(show)
