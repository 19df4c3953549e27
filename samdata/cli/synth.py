"""``samdata synth``: generators of synthetic pairs (kinds), training, gated generation, medigan packages.

``kinds`` lists the registry (:mod:`samdata.synth.kinds`); ``train`` trains a kind that learns
(``cgan``, ``fastgan``) into a folder GEN; ``generate`` builds a kind without training from the
store's labelled slices (``--kind deform``, ``--kind labels2image:mode=random``), or opens GEN or a
local medigan package, and commits the pairs that pass the gate (:mod:`samdata.synth.gate`).
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from pipelines.configs import SliceQuery, SynthConfig
from samdata.cli.common import fail, out, progress
from samdata.cli.options import DEFAULT_DEVICE, DeviceOpt, JsonOpt, ResumeOpt, StoreArg, config_option
from samdata.errors import ConfigError
from samdata.synth.configs import CganConfig, GanConfig, GateConfig

synth = typer.Typer(
    help="Synthetic image/mask pairs: generators driven by label maps (deform, labels2image, cgan), "
    "a few-shot GAN (fastgan), the quality gate, medigan packages.",
    no_args_is_help=True,
)
SECURITY = (
    "medigan packages are Python code that runs when loaded: samdata loads one only from the "
    "--package path you name, never downloads, and you should only name packages you trust."
)


def query_option(name: str, default: Any = None) -> Any:
    """The option of SliceQuery field ``name``, None when not given (the query then leaves it open; ``generate``
    needs ``labels`` only with --kind or --medigan, which :func:`_query` checks)."""
    note = "comma-separated" if name in ("labels", "cases") else ""
    return config_option(SliceQuery, name, default=default, note=note)


def gan_option(name: str) -> Any:
    """The option of a trained kind's config field ``name``; None when not given, so that the kind's own config
    (CganConfig or GanConfig, whose defaults differ) decides."""
    classes = tuple(c for c in (CganConfig, GanConfig) if name in c.__pydantic_fields__)
    return config_option(classes, name, default=None)


def _query(
    labels: str | None, slices: str | None, cases: str | None, max_slices: int | None, snapshot: str | None
) -> Any:
    from samdata.spec import parse_names, parse_slices, split_list

    if not labels:
        raise ConfigError("--labels is required: the labels whose real slices the generator starts from")
    names = parse_names("--labels", labels, "names like white_matter,grey_matter")
    return SliceQuery(
        labels=names,
        slices=parse_slices(slices) if slices else None,
        cases=split_list(cases) if cases else None,
        max_slices=max_slices,
        snapshot=snapshot,
    )


@synth.command("kinds")
def kinds_command(json_out: JsonOpt = False) -> None:
    """List the generator kinds, whether each trains, and its options (spec keys or training options)."""
    from samdata.spec import spec_fields
    from samdata.synth.kinds import KINDS

    rows = {
        name: {"trains": k.trains, "summary": k.summary, "keys": list(spec_fields(k.params))}
        for name, k in KINDS.items()
    }
    if json_out:
        out.print_json(json.dumps(rows))
        return
    for name, row in rows.items():
        how = "samdata synth train --kind " + name if row["trains"] else f"--kind {name}[:key=value,...]"
        out.print(f"[bold]{name}[/]: {row['summary']}\n  {how}; keys: {', '.join(row['keys'])}")


@synth.command("train")
def train_command(
    store: StoreArg,
    labels: str = query_option("labels", default=...),
    out_dir: Path = typer.Option(..., "--out", help="Generator folder GEN (created; new unless --resume)."),
    kind: Annotated[
        str, typer.Option(help="cgan (default: paints label maps) or fastgan (pairs from noise).")
    ] = "cgan",
    name: Annotated[Optional[str], typer.Option(help="Generator id (default: the GEN folder name).")] = None,
    size: Optional[int] = gan_option("size"),
    width: Optional[int] = gan_option("width"),
    steps: Optional[int] = gan_option("steps"),
    batch_size: Optional[int] = gan_option("batch_size"),
    lr: Optional[float] = gan_option("lr"),
    l1: Optional[float] = gan_option("l1"),
    augment: Optional[str] = gan_option("augment"),
    arch: Optional[str] = gan_option("arch"),
    latent: Optional[int] = gan_option("latent"),
    seed: Optional[int] = gan_option("seed"),
    slices: Optional[str] = query_option("slices"),
    cases: Optional[str] = query_option("cases"),
    max_slices: Optional[int] = query_option("max_slices"),
    snapshot: Optional[str] = query_option("snapshot"),
    save_every: Optional[int] = gan_option("save_every"),
    device: DeviceOpt = DEFAULT_DEVICE,
    resume: ResumeOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Train a generator of a kind that learns on the store's real slices of LABELS (few-shot: a few to tens).
    Options not given take the kind's config defaults (CganConfig, GanConfig)."""
    from pipelines.synthesize import train_generator
    from samdata.synth.kinds import kind_entry

    entry = kind_entry(kind)
    if not entry.trains:
        raise ConfigError(
            f"generator kind {kind!r} needs no training: use `samdata synth generate STORE --kind "
            f"{kind} --labels ... --count N`"
        )
    query = _query(labels, slices, cases, max_slices, snapshot)
    given = {
        "size": size,
        "width": width,
        "steps": steps,
        "batch_size": batch_size,
        "lr": lr,
        "augment": augment,
        "seed": seed,
        "save_every": save_every,
        "device": device,
        "l1": l1,
        "arch": arch,
        "latent": latent,
    }
    fields = {f.name for f in dataclasses.fields(entry.params)}  # a kind ignores the other kind's options
    config = entry.params(**{k: v for k, v in given.items() if v is not None and k in fields})  # else its defaults
    with progress() as bars:
        bar = bars.add(f"synth train {kind}", config.steps)

        def on_step(step: int, total: int, metrics: dict[str, float]) -> None:
            bar.update(step, total=total, status=f"D {metrics['loss_d']:.3f}  G {metrics['loss_g']:.3f}")

        result = train_generator(
            store, out_dir, query, kind, config, generator_id=name or out_dir.name, resume=resume, on_step=on_step
        )
    summary = {
        "generator": str(result.gen_dir),
        "kind": kind,
        "steps": result.step,
        "checkpoint_hash": result.checkpoint_hash,
        "seconds": round(result.seconds, 1),
        "losses": result.metrics,
    }
    if json_out:
        out.print_json(json.dumps(summary))
    else:
        out.print(
            f"{kind} generator {result.gen_dir}: {result.step} steps in {result.seconds:.0f} s, "
            f"checkpoint sha256 {result.checkpoint_hash[:16]}…"
        )


def _print_report(report: dict[str, Any], json_out: bool) -> None:
    if json_out:
        out.print_json(json.dumps(report, default=str))
        return
    out.print(
        f"{report['generator_id']} seed {report['seed']}: generated {report['generated']} "
        f"(already stored {report['already_stored']}), accepted {report['accepted']}, rejected "
        f"{report['rejected']} {report['reasons'] or ''}; snapshot {report['snapshot_id']}"
    )
    for batch in report["batches"]:
        fid = "n/a" if batch["frechet"] is None else f"{batch['frechet']:.2f}"
        whole = " (whole batch rejected)" if batch.get("batch_rejected") else ""
        out.print(
            f"  batch {batch['indices'][0]}–{batch['indices'][1]}: accepted {batch['accepted']}/"
            f"{batch['generated']}, Fréchet distance {fid}{whole}"
        )
    rate, gate = report.get("pairs_per_s"), report.get("gate_pairs_per_s")
    limits = report["thresholds"]
    out.print(
        f"  generation {rate or 0:.1f} pairs/s, gate {gate or 0:.1f} pairs/s; thresholds "
        f"min_distance={limits.get('min_distance'):.4f}, frechet_max={limits.get('frechet_max')}"
    )


@synth.command(
    "generate",
    help="Generate pairs and commit those that pass the gate, in one commit: from a kind "
    "without training (--kind deform | labels2image[:mode=random] with --labels), a "
    "trained generator (--generator GEN) or a local medigan package (--medigan "
    "MODEL_ID --package PATH). " + SECURITY,
)
def generate_command(
    store: StoreArg,
    count: int = config_option(SynthConfig, "count"),
    kind: Annotated[
        Optional[str],
        typer.Option(
            help="Kind spec without training: deform[:key=value,...] or "
            "labels2image[:mode=near|random,...] (`samdata synth kinds`)."
        ),
    ] = None,
    generator: Annotated[Optional[Path], typer.Option(help="Generator folder from `samdata synth train`.")] = None,
    medigan: Annotated[Optional[str], typer.Option(help="medigan model id, with --package.")] = None,
    package: Annotated[
        Optional[Path], typer.Option(help="Local medigan package folder or zip (its code runs!).")
    ] = None,
    config: Annotated[
        Optional[Path], typer.Option(help="medigan config JSON (default: the package's metadata.json).")
    ] = None,
    labels: Optional[str] = query_option("labels"),
    slices: Optional[str] = query_option("slices"),
    cases: Optional[str] = query_option("cases"),
    max_slices: Optional[int] = query_option("max_slices"),
    snapshot: Optional[str] = query_option("snapshot"),
    name: Annotated[Optional[str], typer.Option(help="--kind: generator id in case ids (default: the kind).")] = None,
    seed: int = config_option(SynthConfig, "seed"),
    # 32, as the synthesize flow draws (min(32, count)): a Fréchet distance over 32 pairs is steadier than over
    # SynthConfig's 16, the library default
    batch_size: int = config_option(SynthConfig, "batch_size", default=32),
    area_slack: float = config_option(GateConfig, "area_slack"),
    component_slack: float = config_option(GateConfig, "component_slack"),
    min_distance: Optional[float] = config_option(GateConfig, "min_distance"),
    frechet_max: Optional[float] = config_option(GateConfig, "frechet_max", note="0 = report only"),
    device: DeviceOpt = DEFAULT_DEVICE,
    dry_run: bool = config_option(SynthConfig, "dry_run"),
    json_out: JsonOpt = False,
) -> None:
    """Generate, gate and store synthetic pairs."""
    from pipelines.synthesize import build_source, load_real_pairs, open_trained, synthesize

    if sum(x is not None for x in (kind, generator, medigan)) != 1 or (medigan is not None and package is None):
        fail("give one of --kind SPEC (with --labels), --generator GEN, or --medigan MODEL_ID with --package PATH")
    if (kind is not None or medigan is not None) and not labels:
        fail(
            "--kind and --medigan need --labels: the labels whose real slices the generator starts from (and the "
            "gate compares to)"
        )
    gate = GateConfig(
        area_slack=area_slack,
        component_slack=component_slack,
        min_distance=min_distance,
        frechet_max=frechet_max or None,
    )
    cfg = SynthConfig(count=count, seed=seed, batch_size=batch_size, gate=gate, dry_run=dry_run)
    with progress() as bars:
        bar = bars.add("synth generate", count)

        def advance(done: int, total: int, batch: dict[str, Any]) -> None:
            bar.update(done, total=total, status=f"accepted {batch['accepted']}/{batch['generated']}")

        def run() -> Any:
            if kind is not None:
                source, reference = build_source(
                    store, _query(labels, slices, cases, max_slices, snapshot), kind, generator_id=name
                )
                return synthesize(store, source, reference, cfg, progress=advance)
            if generator is not None:
                from samdata.device import resolve_device

                source, reference = open_trained(store, generator, str(resolve_device(device)))
                return synthesize(store, source, reference, cfg, progress=advance)
            from samdata.synth.medigan_io import MediganModel
            from samdata.synth.medigan_source import MediganSource

            reference = load_real_pairs(store, _query(labels, slices, cases, max_slices or 64, snapshot))
            with (
                MediganModel(medigan or "", package or Path(), config=config) as opened,
                tempfile.TemporaryDirectory(prefix="samdata-medigan-out-") as work,
            ):
                return synthesize(store, MediganSource(opened, work, reference), reference, cfg, progress=advance)

        report = run()
    _print_report(report.to_json(), json_out)


@synth.command(
    "export-medigan",
    help="Export a trained generator (cgan or fastgan) as a medigan model package "
    "(folder or zip) with metadata.json, loadable by medigan's Generators. " + SECURITY,
)
def export_command(
    gen: Annotated[Path, typer.Argument(help="Generator folder from `samdata synth train`.")],
    out_dir: Annotated[Path, typer.Argument(help="Folder to write the package into.")],
    store: Annotated[
        Optional[str], typer.Option(help="cgan: the store it was trained on (its label maps go into the package).")
    ] = None,
    model_id: Annotated[Optional[str], typer.Option(help="medigan model id (default SAMDATA_<GENERATOR ID>).")] = None,
    as_zip: Annotated[bool, typer.Option("--zip", help="Write <model_id>.zip instead of a folder.")] = False,
) -> None:
    """Export GEN as a medigan package."""
    from samdata.synth.medigan_export import export_medigan

    def run() -> Path:
        from samdata.synth.checkpoint import read_info

        reference = None
        if read_info(gen).kind == "cgan":
            if store is None:
                raise ConfigError(
                    "exporting a cgan needs --store: the store it was trained on (the package carries "
                    "the label maps it paints)"
                )
            from pipelines.synthesize import reference_for

            reference = reference_for(store, gen)
        return export_medigan(gen, out_dir, model_id=model_id, as_zip=as_zip, reference=reference)

    path = run()
    out.print(
        f"medigan package {path} (load it with: samdata synth generate STORE --medigan "
        f"{path.stem} --package {path} --labels ... --count N)"
    )


def register(app: typer.Typer) -> None:
    """Add the ``synth`` command group to the top-level app."""
    app.add_typer(synth, name="synth")
