"""Comparison command: ``compare`` (zero-shot SAM, adapted SAMs and baselines on the same items, one table)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from samdata.cli.common import interactive, out, progress
from samdata.cli.options import (
    DEFAULT_DEVICE,
    AutoOpt,
    DeviceOpt,
    ProposerOpt,
    RunStoreOpt,
    auto_config,
    config_option,
    feed_logits_option,
)
from samdata.spec import parse_clicks, parse_list
from training.eval_config import AutoConfig, CompareConfig


def compare(
    runs: Annotated[
        list[Path],
        typer.Argument(
            help="Run directories written by `samdata train`; the first one's split, snapshot and prompts are used."
        ),
    ],
    out_dir: Annotated[
        Path,
        typer.Option("--out", help="Folder for compare.json, compare.md, compare.png, errors.png and volumes/."),
    ],
    split: str = config_option(CompareConfig, "split"),
    slices: Optional[str] = config_option(CompareConfig, "slices"),
    clicks: str = config_option(CompareConfig, "clicks", note="'none' skips it"),
    names: Annotated[
        Optional[str], typer.Option(help="Row names of the runs, comma-separated (default: the run folder names).")
    ] = None,
    store: RunStoreOpt = None,
    zero_shot: bool = config_option(CompareConfig, "zero_shot", "--zero-shot/--no-zero-shot"),
    feed_logits: Optional[bool] = feed_logits_option(CompareConfig),
    tolerance_mm: float = config_option(CompareConfig, "tolerance_mm"),
    batch_slices: int = config_option(CompareConfig, "batch_slices"),
    tta: str = config_option(CompareConfig, "tta"),
    volumes: bool = config_option(CompareConfig, "volumes", "--volumes/--no-volumes"),
    auto: AutoOpt = False,
    proposer: ProposerOpt = None,
    auto_boxes: str = config_option(AutoConfig, "boxes", "--auto-boxes", note="with --auto"),
    device: DeviceOpt = DEFAULT_DEVICE,  # the CLI's device default, not CompareConfig's cpu (options.DEFAULT_DEVICE)
    json_out: Annotated[bool, typer.Option("--json", help="Print the rows and paths as JSON.")] = False,
) -> None:
    """Compare runs and zero-shot SAM on the same objects and prompts: Dice, IoU, NSD, HD95, parameters, clicks.
    With --auto the SAM rows take their proposers' boxes instead of the stored prompts."""
    from rich.table import Table

    from training.compare import compare_runs
    from training.compare_figures import TABLE_HEADER, click_table, json_row, table_cells

    counts = () if clicks.strip().lower() == "none" else parse_clicks(clicks)
    prompt_mode = auto_config(auto, proposer, auto_boxes)
    config = CompareConfig(
        split=split,
        slices=slices,
        clicks=counts,
        tolerance_mm=tolerance_mm,
        batch_slices=batch_slices,
        device=device,
        zero_shot=zero_shot,
        feed_logits=feed_logits,
        tta=tta,
        volumes=volumes,
    )
    with progress(disable=not interactive()) as bars:
        result = compare_runs(
            runs,
            out_dir,
            config,
            names=parse_list("--names", names),
            store_url=store,
            on_message=bars.print,
            stages=bars.stage,
            auto=prompt_mode,
        )
    files = [
        str(p)
        for p in (result.json_path, result.markdown_path, result.figure_path, result.error_figure_path)
        if p is not None
    ] + list(result.summaries.values())
    if json_out:
        rows = [json_row(r) for r in result.rows]
        out.print_json(json.dumps({"rows": rows, "files": files}))
        return
    table = Table(*TABLE_HEADER, title="models on the same objects and prompts")
    for row in result.rows:
        table.add_row(*table_cells(row))
    out.print(table)
    counts = sorted({c for r in result.rows for c in r["clicks"]})
    if counts:
        header, body = click_table(result.rows, counts)
        click_rows = Table(*header, title="Dice after corrective clicks")
        for cells in body:
            click_rows.add_row(*cells)
        out.print(click_rows)
    out.print(f"wrote {', '.join(files)}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add the comparison command to the top-level app."""
    app.command("compare")(compare)
