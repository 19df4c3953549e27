"""Data commands: ``sample-data``, ``ingest``, ``info``, ``verify``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from samdata.cli.common import console, fail, out, progress
from samdata.cli.options import StoreArg, StoreOpt, config_option
from samdata.ingest_config import IngestConfig

sample = typer.Typer(help="Write embedded sample datasets (no download).", no_args_is_help=True)


@sample.command("mni152")
def sample_mni152(
    dest: Annotated[Path, typer.Argument(help="Folder to write (MSD layout).")],
    contrast: Annotated[
        str,
        typer.Option(
            help="t1 (the template), or the same anatomy drawn from its tissue maps: t2, flair, t1inv (T1 inverted)."
        ),
    ] = "t1",
) -> None:
    """The real MNI152 2009a T1 template with white-matter, grey-matter and brain labels (from nilearn), or the same
    anatomy in another contrast (to test a model on a contrast it never saw)."""
    from samdata.io.sample_data import write_mni152

    path = write_mni152(dest, contrast)
    out.print(f"wrote MNI152 {contrast.upper()} + labels (1 white_matter, 2 grey_matter, 3 other_brain) to {path}")


@sample.command("phantom")
def sample_phantom(
    dest: Annotated[Path, typer.Argument(help="Folder to write (MSD layout).")],
    cases: Annotated[int, typer.Option(min=1, help="Number of phantom cases.")] = 4,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed writes the same phantoms.")] = 0,
) -> None:
    """Seeded CT-like phantoms in HU with labelled ellipsoid organs."""
    from samdata.io.sample_data import write_phantoms

    path = write_phantoms(dest, cases=cases, seed=seed)
    out.print(f"wrote {cases} CT phantom case(s) (seed {seed}) to {path}")


def ingest(
    source: Annotated[Path, typer.Argument(help="Dataset folder (MSD/nnU-Net raw or images/+labels/) or one file.")],
    store: StoreOpt,
    modality: Optional[str] = config_option(IngestConfig, "modality"),
    window: Optional[str] = config_option(IngestConfig, "window"),
    spacing: Optional[str] = config_option(IngestConfig, "spacing"),
    workers: Annotated[int, typer.Option(min=1, help="Local Dask worker processes (1 = in-process).")] = 1,
    scheduler: Annotated[Optional[str], typer.Option(help="Address of an existing Dask scheduler.")] = None,
    prefetch: Annotated[
        bool,
        typer.Option(
            help="In-process: read the next case while this one is written "
            "(each case is already read on two threads; two cases in memory)."
        ),
    ] = False,
    min_voxels: int = config_option(IngestConfig, "min_object_voxels", "--min-voxels"),
    min_pixels: int = config_option(IngestConfig, "min_object_pixels", "--min-pixels"),
    max_voxels: int = config_option(IngestConfig, "max_voxels"),
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Ingest a dataset into the slice store in one commit (idempotent, resumable)."""
    from pipelines.ingest import ClusterConfig
    from pipelines.ingest import ingest as run_ingest
    from samdata.io.layouts import discover
    from samdata.spec import parse_spacing, parse_window

    config = IngestConfig(
        modality=modality.upper() if modality else None,
        window=parse_window(window) if window else None,
        spacing=parse_spacing(spacing) if spacing else None,
        min_object_voxels=min_voxels,
        min_object_pixels=min_pixels,
        max_voxels=max_voxels,
    )
    total = len(discover(source).items)
    with progress() as bars:
        bar = bars.add("ingest", total)

        def on_case(case_id: str, status: str, detail: str) -> None:
            bar.advance(1)
            if status == "failed":
                console.print(f"[red]failed[/] {case_id}: {detail}", highlight=False)

        report = run_ingest(
            source,
            store,
            config,
            cluster=ClusterConfig(workers=workers, scheduler=scheduler, prefetch=prefetch),
            progress=on_case,
        )
    if json_out:
        out.print_json(json.dumps(report.to_json()))
    else:
        out.print(
            f"added {len(report.added)}, updated {len(report.updated)}, skipped {len(report.skipped)} "
            f"(already stored), failed {len(report.failed)}; snapshot {report.snapshot_id}"
        )
        for case_id, why in report.failed.items():
            out.print(f"  failed {case_id}: {why}", highlight=False)
    if report.failed:
        raise typer.Exit(1)


def info(
    store: StoreArg,
    snapshot: Annotated[Optional[str], typer.Option(help="Read this snapshot id instead of main's head.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON (keys documented in the README).")] = False,
) -> None:
    """Cases, slices, labelled slices, objects per label, origins, prompt sets, mixtures, renamed cases, snapshots."""
    from storage import SliceStore

    summary = SliceStore.open(store, snapshot=snapshot).info()
    if json_out:
        out.print_json(json.dumps(summary, default=str))
        return
    from rich.table import Table

    out.print(f"[bold]{store}[/] at snapshot {summary.get('snapshot_id', snapshot or 'main')}")
    out.print(f"cases {summary['cases']}, slices {summary['slices']}, labelled slices {summary['labelled_slices']}")
    for title, key in (("objects per label", "objects_per_label"), ("cases per origin", "origins")):
        table = Table(title=title)
        table.add_column("name")
        table.add_column("count", justify="right")
        for name, count in sorted(summary[key].items()):
            table.add_row(str(name), str(count))
        out.print(table)
    for key in ("prompt_sets", "mixtures"):
        if summary.get(key):
            out.print(f"{key.replace('_', ' ')}: {', '.join(map(str, summary[key]))}")
    if summary.get("case_names"):
        names = Table(title="cases named on disk otherwise")
        names.add_column("case id")
        names.add_column("name on disk")
        for case_id, name in sorted(summary["case_names"].items()):
            names.add_row(case_id, name)
        out.print(names)
    snaps = Table(title="snapshots (newest first)")
    for col in ("id", "written", "message"):
        snaps.add_column(col)
    for snap in summary["snapshots"]:
        snaps.add_row(snap["id"], str(snap["written_at"])[:19], snap["message"])
    out.print(snaps)


def verify(
    store: StoreArg,
    json_out: Annotated[bool, typer.Option("--json", help="Print {store, snapshot_id, ok, problems} as JSON.")] = False,
) -> None:
    """Check every chunk decodes, the index agrees with the pixels and metadata is complete (exit 1 if not)."""
    from storage import SliceStore

    opened = SliceStore.open(store)
    problems = opened.verify()
    if json_out:
        out.print_json(
            json.dumps({"store": store, "snapshot_id": opened.snapshot_id, "ok": not problems, "problems": problems})
        )
        if problems:
            raise typer.Exit(1)
        return
    if problems:
        for problem in problems:
            out.print(f"problem: {problem}", highlight=False)
        fail(f"{len(problems)} problem(s) in {store}", code=1)
    out.print(f"{store}: ok")


def register(app: typer.Typer) -> None:
    """Add the data commands to the top-level app."""
    app.add_typer(sample, name="sample-data")
    app.command("ingest")(ingest)
    app.command("info")(info)
    app.command("verify")(verify)
