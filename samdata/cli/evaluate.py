"""Evaluation commands: ``evaluate`` (a run vs zero-shot on a split) and ``predict`` (a new image to a mask file:
NIfTI, 3D Slicer .seg.nrrd or DICOM-SEG)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Optional

import typer

from samdata.cli.common import interactive, out, progress
from samdata.cli.options import (
    DEFAULT_DEVICE,
    AutoOpt,
    DeviceOpt,
    ProposerOpt,
    RunArg,
    RunStoreOpt,
    SegFormatOpt,
    auto_config,
    config_option,
    feed_logits_option,
)
from samdata.device import resolve_device
from samdata.errors import CaseNotFoundError, ConfigError
from samdata.spec import parse_box, parse_clicks, parse_z_range
from training.eval_config import AutoConfig, CompareConfig, EvalConfig


def evaluate(
    run: RunArg,
    store: RunStoreOpt = None,
    split: Annotated[
        str,
        typer.Option(
            help="Mixture split: test, val, or train (its held-out slices: --slices or the run's val_slices)."
        ),
    ] = "test",
    slices: Optional[str] = config_option(CompareConfig, "slices"),
    zero_shot: Annotated[
        bool,
        typer.Option("--zero-shot/--no-zero-shot", help="Also score the base model without adapters, side by side."),
    ] = True,
    out_dir: Annotated[
        Optional[Path],
        typer.Option(
            "--out",
            help="Folder for metrics.json, metrics.md, best_worst.png and volumes/ (default: RUN/eval/SPLIT).",
        ),
    ] = None,
    tolerance_mm: float = config_option(EvalConfig, "tolerance_mm"),
    clicks: Optional[str] = config_option(
        EvalConfig, "clicks", default=None, note="given, evaluate also runs the interactive protocol"
    ),
    feed_logits: Optional[bool] = feed_logits_option(EvalConfig),
    batch_slices: int = config_option(EvalConfig, "batch_slices"),
    figure_objects: int = config_option(EvalConfig, "figure_objects"),
    tta: str = config_option(EvalConfig, "tta"),
    volumes: bool = config_option(EvalConfig, "volumes", "--volumes/--no-volumes"),
    auto: AutoOpt = False,
    proposer: ProposerOpt = None,
    auto_boxes: str = config_option(AutoConfig, "boxes", "--auto-boxes", note="with --auto"),
    device: DeviceOpt = DEFAULT_DEVICE,
    json_out: Annotated[bool, typer.Option("--json", help="Print the overall means as JSON.")] = False,
) -> None:
    """Dice, IoU, NSD, HD95 and MAE per case and label on a split, adapted vs zero-shot (JSON, Markdown, figure),
    and 3D scores per case with nnU-Net's summary.json. The 3D ones are on each case's source grid, under
    OUT/volumes/<model>/ (--no-volumes leaves them out). With --auto the boxes come from the run's proposer,
    not the stored prompts, and the 3D scores take the cascade's every slice of the range."""
    from dataclasses import replace

    from training.compare import default_feed
    from training.eval_report import evaluate_run
    from training.run import load_run

    config = EvalConfig(
        tolerance_mm=tolerance_mm,
        batch_slices=batch_slices,
        figure_objects=figure_objects,
        clicks=parse_clicks(clicks),
        feed_logits=bool(feed_logits),
        tta=tta,
        volumes=volumes,
    )
    prompt_mode = auto_config(auto, proposer, auto_boxes)
    loaded = load_run(run, device=resolve_device(device))
    if feed_logits is None:  # the same default as compare's: by what the run's model learnt
        config = replace(config, feed_logits=default_feed(loaded.config))
    with progress(disable=not interactive()) as bars:
        report = evaluate_run(
            loaded,
            out_dir or run / "eval" / split,
            split=split,
            store_url=store,
            zero_shot=zero_shot,
            config=config,
            slices=slices,
            stages=bars.stage,
            auto=prompt_mode,
        )
    if json_out:
        out.print_json(
            json.dumps(
                {
                    "overall": report.overall,
                    "interactive": report.interactive,
                    "json": report.json_path,
                    "markdown": report.markdown_path,
                    "figure": report.figure_path,
                    "summaries": report.summaries,
                    "volumes": report.volumes,
                }
            )
        )
        return
    for name, scores in report.overall.items():
        out.print(f"{name:>9}: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items()), highlight=False)
    for name, scores in report.volumes.items():
        shown = ", ".join(f"{k} {'-' if v is None else f'{v:.3f}'}" for k, v in scores.items())
        out.print(f"{name:>9} 3D per case, foreground mean: {shown}", highlight=False)
    files = [report.json_path, report.markdown_path, report.figure_path, *report.summaries.values()]
    out.print(f"wrote {', '.join(files)}", highlight=False)


def predict(
    run: RunArg,
    image: Annotated[Path, typer.Option(help="Image to segment (NIfTI, NRRD/MHA, DICOM folder).")],
    out_path: Annotated[
        Path,
        typer.Option(
            "--out",
            help="Output label map on the image's grid (.nii.gz; .seg.nrrd with --format nrrd, .dcm with "
            "--format dicom-seg).",
        ),
    ],
    box: Annotated[
        Optional[str],
        typer.Option(
            help="x0,y0,x1,y1@z in the canonical (RAS+) slice frame, pixels, inclusive-exclusive; propagated "
            "up and down from slice z."
        ),
    ] = None,
    prompt_from_mask: Annotated[
        Optional[Path],
        typer.Option(help="Label file on the image grid: each slice's labels give one box each; labels are kept."),
    ] = None,
    z_range: Annotated[
        Optional[str],
        typer.Option(
            help="With --box: propagate only within canonical slices first-last (inclusive), e.g. 30-52; "
            "with a U-Net run: segment only those slices."
        ),
    ] = None,
    context: Annotated[
        Optional[bool],
        typer.Option(
            "--context/--no-context", help="Slices z-1, z, z+1 as the 3 channels (default: as the run trained)."
        ),
    ] = None,
    tta: str = config_option(EvalConfig, "tta"),
    out_format: SegFormatOpt = "nifti",
    auto: AutoOpt = False,
    proposer: ProposerOpt = None,
    auto_boxes: str = config_option(AutoConfig, "boxes", "--auto-boxes", note="with --auto"),
    store: RunStoreOpt = None,
    device: DeviceOpt = DEFAULT_DEVICE,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Segment a new image with a run from a box (propagated through the volume), a prompt mask, or with --auto
    from its proposer's boxes (no prompt); a U-Net run takes no prompt and segments every slice."""
    from samdata.io.segmentations import check_output
    from training.predict import predict_file
    from training.run import load_run
    from training.tta import tta_views

    tta_views(tta)  # a bad mode fails before the (slow) model load
    prompt_mode = auto_config(auto, proposer, auto_boxes)
    given = [name for name, v in (("--box", box), ("--prompt-from-mask", prompt_from_mask)) if v is not None]
    if len(given) > 1:  # none at all: fine for a U-Net run (checked on load)
        raise ConfigError("give exactly one of --box x0,y0,x1,y1@z and --prompt-from-mask FILE")
    if prompt_mode is not None and (given or z_range is not None or context is not None):
        extra = given + [n for n, v in (("--z-range", z_range), ("--context", context)) if v is not None]
        raise ConfigError(f"--auto finds its own boxes and slices; drop {', '.join(extra)}")
    parsed = parse_box(box) if box is not None else None
    limits = parse_z_range(z_range) if z_range is not None else None
    if not image.exists():  # before the (slow) model load
        raise CaseNotFoundError(f"{image}: no such file or folder; expected an image to segment")
    check_output(out_format, image, out_path)
    loaded = load_run(run, device=resolve_device(device))
    with progress(disable=not interactive()) as bars:
        if prompt_mode is not None:
            from samdata.malloc import keep_freed_memory
            from training.auto import check_auto, predict_auto_file
            from training.proposer import load_proposer

            check_auto(loaded)
            keep_freed_memory()  # the encoder runs on every boxed slice: reuse its freed buffers (samdata.malloc)
            report = predict_auto_file(
                loaded,
                load_proposer(loaded, prompt_mode.proposer),
                image,
                out_path,
                config=prompt_mode,
                store_url=store,
                tta=tta,
                stages=bars.stage,
                out_format=out_format,
            )
        else:
            report = predict_file(
                loaded,
                image,
                out_path,
                box=parsed,
                prompt_mask=prompt_from_mask,
                context=context,
                store_url=store,
                z_range=limits,
                tta=tta,
                stages=bars.stage,
                out_format=out_format,
            )
    if json_out:
        out.print_json(json.dumps(asdict(report), default=str))
        return
    voxels = (
        ", ".join(
            f"label {k}{' (' + report.labels[k] + ')' if k in report.labels else ''}: {v}"
            for k, v in report.voxels.items()
        )
        or "nothing"
    )
    if report.auto:
        runs = "; ".join(
            f"{name}: {found['proposed_slices']} slices boxed, seeds {[r['seed'] for r in found['runs']]}"
            for name, found in report.auto["labels"].items()
        )
        out.print(f"auto prompts from proposer {report.auto['proposer']}: {runs}", highlight=False)
    out.print(
        f"canonical (Z, Y, X) shape {report.canonical_shape} (box frame); normalisation "
        f"{report.normalisation.method}; context {report.context}; test-time mirroring {report.tta}",
        highlight=False,
    )
    out.print(
        f"segmented {voxels} voxels over {len(report.slices)} slices in {report.seconds:.1f} s; "
        f"wrote {report.out} ({report.out_format}) on the source grid {report.source_shape}",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    """Add the evaluation commands to the top-level app."""
    app.command("evaluate")(evaluate)
    app.command("predict")(predict)
