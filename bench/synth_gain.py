"""Do synthetic pairs earn their place? MNI152 white matter with n labelled slices, arms A-F, U-Net and SAM.

Protocol (``.venv/bin/python bench/synth_gain.py``; ``--quick`` for a smoke run): the store and held-out
slices of ``bench/low_data.py``, n in {4, 8} labelled slices; no generator, registration or gate ever sees
a held-out slice. Arms share steps, seed and prompts: A real only, B real + the ordinary augmentation
(``--screen`` picks it), then B plus pairs at ``--shares`` of the training draws from C ``fastgan``, D
``deform``, E ``labels2image``, F ``cgan`` or R random-contrast ``labels2image``. Each generator is built or
trained on the n slices and its pairs gated and committed; each (model, arm, n, seed, share) is one
``training.train`` run scored on the held-out objects. Reports mean ± sd, the paired difference against B
with a bootstrap 95% interval, ``dice_vs_n.png``, generator speed and gate rejections; finished runs and
generators are reused, interrupted ones resume. ``--data phantom`` runs the same arms on one CT phantom's five
organs (``bench.common.phantom_protocol``; a sanity check: the phantoms are themselves drawn from label maps).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: bench.common, this checkout
from bench.common import (
    MODELS,
    Protocol,
    args_record,
    bootstrap,
    figure,
    generator_id,
    has_mixture,
    mean_sd,
    mni152_protocol,
    phantom_protocol,
    read_json,
    run_steps,
    train_config,
    train_or_reuse,
    upsert,
    write_results,
)

#: arm → (generator kind spec or None, uses B's augmentation)
ARMS: dict[str, tuple[str | None, bool]] = {
    "A": (None, False),
    "B": (None, True),
    "C": ("fastgan", True),
    "D": ("deform", True),
    "E": ("labels2image", True),
    "F": ("cgan", True),
    "R": ("labels2image:mode=random", True),
}
SCREEN = ("flip", "flip,affine", "flip,affine,elastic", "flip,affine,bias,noise", "flip,affine,elastic,bias,noise")


@dataclass(frozen=True)
class Run:
    """One training run of the table."""

    model: str
    arm: str
    n: int
    seed: int
    share: float
    augment: tuple[str, ...]

    @property
    def name(self) -> str:
        aug = "+".join(self.augment) or "none"
        return f"{self.model}-{self.arm}-n{self.n}-s{self.seed}-r{self.share:g}-{aug}"


def make_generator(
    protocol: Protocol, out: Path, kind: str, n: int, seed: int, args: argparse.Namespace
) -> dict[str, Any]:
    """Build or train the generator of (kind, n, seed) on the n labelled slices and commit ``--count`` gated pairs."""
    from pipelines.synthesize import SliceQuery, SynthConfig, build_source, open_trained, synthesize, train_generator

    store = protocol.store
    gid = generator_id(kind, n, seed)
    query = SliceQuery(labels=protocol.labels, slices=tuple(protocol.shots(n)))
    started = time.perf_counter()
    train_seconds = 0.0
    if kind in ("cgan", "fastgan"):
        gen_dir = out / "generators" / gid
        if kind == "cgan":
            from samdata.synth.cgan import CganConfig

            config: Any = CganConfig(size=args.cgan_size, steps=args.cgan_steps, seed=seed, device=args.device)
        else:
            from samdata.synth.train import GanConfig

            config = GanConfig(
                size=64,
                width=8,
                steps=args.fastgan_steps,
                batch_size=8,
                seed=seed,
                sample_every=0,
                save_every=args.fastgan_steps,
                device=args.device,
            )
        done = (gen_dir / "generator.pt").is_file()
        if not done:
            train_generator(store, gen_dir, query, kind, config, generator_id=gid, resume=True)
            train_seconds = time.perf_counter() - started
        source, reference = open_trained(store, gen_dir, args.device)
    else:
        source, reference = build_source(store, query, kind, generator_id=gid)
    build_seconds = time.perf_counter() - started - train_seconds
    from samdata.synth.gate import GateConfig

    gate = GateConfig(frechet_max=None if args.frechet_max == "none" else float(args.frechet_max))
    report = synthesize(store, source, reference, SynthConfig(count=args.count, seed=seed, batch_size=32, gate=gate))
    summary = report.to_json()
    summary.pop("case_ids")
    return {
        "kind": kind,
        "generator": gid,
        "n": n,
        "seed": seed,
        "train_seconds": round(train_seconds, 1),
        "build_seconds": round(build_seconds, 1),
        "accepted": report.accepted,
        "synth": summary,
    }


def train_run(protocol: Protocol, out: Path, run: Run, args: argparse.Namespace) -> dict[str, Any]:
    """Mixture + training of one run (reused when finished); its held-out Dice per object."""
    from pipelines.mixtures import MixtureConfig, make_mixture
    from samdata.errors import RegistryError

    store = protocol.store
    kind = ARMS[run.arm][0]
    weight = run.share / (1 - run.share) if kind else 0.0
    mixture = f"m-{run.arm}-n{run.n}-s{run.seed}-r{run.share:g}"
    entry = {
        "model": run.model,
        "arm": run.arm,
        "n": run.n,
        "seed": run.seed,
        "share": run.share,
        "augment": list(run.augment),
        "val_dice": None,
        "objects": None,
        "run": None,
    }
    if not has_mixture(store, mixture):
        try:
            make_mixture(
                store,
                mixture,
                MixtureConfig(
                    real=1.0,
                    synthetic=weight,
                    generators={generator_id(kind, run.n, run.seed): 1.0} if kind else None,
                    labels=protocol.labels,
                    splits=(1.0, 0.0, 0.0),
                    seed=0,
                ),
            )
        except RegistryError as err:  # the gate accepted no pair of this generator: nothing to train on
            return {**entry, "note": str(err)}
    model, adapter, steps, lr = MODELS[run.model]
    steps = run_steps(run.model, steps, run.n, args.quick)
    config = train_config(
        store,
        mixture,
        model,
        adapter,
        steps=steps,
        lr=lr,
        seed=run.seed,
        augment=run.augment,
        slices=[0, *protocol.shots(run.n)],  # synthetic pairs are one-slice cases at z = 0
        batch_size=4,
        log_every=max(steps // 10, 1),
        device=args.device,
        labels=protocol.labels,
        val_slices=protocol.val_slices,
    )
    run_dir = out / "runs" / run.name
    done = train_or_reuse(config, run_dir)
    return {
        **entry,
        "val_dice": done["val_dice"],
        "objects": done.get("val_object_dice"),
        "train_objects": done.get("train_objects"),
        "seconds": round(float(done.get("seconds", 0)), 1),
        "run": str(run_dir),
    }


def table(runs: list[dict[str, Any]], gens: list[dict[str, Any]], b_augment: str) -> str:
    """Markdown: per (model, n, arm, share) mean ± sd, per seed, paired difference to B with its interval."""
    lines = [
        f"B's augmentation: `{b_augment}`.",
        "",
        "| model | n | arm | augmentation | share | Dice (mean ± sd) | per seed | vs B | 95% interval |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    aug = lambda r: ",".join(r["augment"]) or "none"  # noqa: E731
    keyed = {
        (r["model"], r["n"], r["arm"], aug(r), r["share"], r["seed"]): r for r in runs if r["val_dice"] is not None
    }
    for group in sorted({k[:5] for k in keyed}):
        model, n, arm, augment, share = group
        rows = [keyed[k] for k in sorted(keyed) if k[:5] == group]
        dice = [r["val_dice"] for r in rows]
        mean, sd = mean_sd(dice)
        diffs = {}
        for r in rows:
            base = keyed.get((model, n, "B", b_augment, 0.0, r["seed"]))
            if base is not None and base is not r and r["objects"] and base["objects"]:
                diffs[r["seed"]] = np.asarray(r["objects"]) - np.asarray(base["objects"])
        delta = ci = "–"
        if diffs:
            delta = f"{np.mean([d.mean() for d in diffs.values()]):+.4f}"
            lo, hi = bootstrap(diffs)
            ci = f"[{lo:+.4f}, {hi:+.4f}]"
        lines.append(
            f"| {model} | {n} | {arm} | {augment} | {share:g} | {mean:.4f} ± {sd:.4f} | "
            f"{', '.join(f'{d:.4f}' for d in dice)} | {delta} | {ci} |"
        )
    for r in runs:  # arms whose generator had no pair through the gate: said, not silently dropped
        if r["val_dice"] is None and r.get("note"):
            lines.append(
                f"| {r['model']} | {r['n']} | {r['arm']} | {aug(r)} | {r['share']:g} | not run: no pair "
                f"passed the gate (seed {r['seed']}) | | | |"
            )
    lines += [
        "",
        "| generator | n | seed | train s | build s | generated | accepted | rejections | Fréchet | "
        "pairs/s | gate pairs/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for g in gens:
        s = g["synth"]
        fids = [b["frechet"] for b in s["batches"] if b["frechet"] is not None]
        lines.append(
            f"| {g['kind']} | {g['n']} | {g['seed']} | {g['train_seconds']} | {g['build_seconds']} | "
            f"{s['generated']} | {s['accepted']} | {s['reasons'] or '-'} | "
            f"{np.mean(fids) if fids else float('nan'):.2f} | {s['pairs_per_s'] or 0:.1f} | "
            f"{s['gate_pairs_per_s'] or 0:.1f} |"
        )
    return "\n".join(lines)


def plot(runs: list[dict[str, Any]], path: Path, title: str) -> None:
    """Held-out Dice against n, one line per (model, arm, share), error bars = sd over seeds."""
    with figure(path, ncols=2, figsize=(11, 4)) as (_fig, axes):
        for ax, model in zip(axes, ("unet", "sam")):
            series: dict[tuple[str, float], dict[int, list[float]]] = {}
            for r in runs:
                if r["model"] == model and r["val_dice"] is not None:
                    series.setdefault((r["arm"], r["share"]), {}).setdefault(r["n"], []).append(r["val_dice"])
            for (arm, share), per_n in sorted(series.items()):
                ns = sorted(per_n)
                ax.errorbar(
                    ns,
                    [np.mean(per_n[n]) for n in ns],
                    yerr=[np.std(per_n[n]) for n in ns],
                    marker="o",
                    capsize=3,
                    label=f"{arm}" + (f" ({share:g})" if ARMS[arm][0] else ""),
                )
            ax.set_title(f"{'U-Net' if model == 'unet' else 'adapted LiteMedSAM'}: {title}")
            ax.set_xlabel("labelled real slices")
            ax.set_ylabel("held-out Dice")
            ax.grid(alpha=0.3)
            if series:
                ax.legend(fontsize=7)


def main(argv: list[str] | None = None) -> None:
    """Run the protocol and write results.json / results.md / dice_vs_n.png under ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="default: bench-output/synth_gain[_phantom]")
    parser.add_argument(
        "--data", choices=("mni152", "phantom"), default="mni152", help="phantom: the CT phantoms' organs (sanity)"
    )
    parser.add_argument("--shots", default="4,8")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--models", default="unet", help="unet, sam or unet,sam")
    parser.add_argument("--arms", default="A,B,C,D,E,F")
    parser.add_argument("--shares", default="0.5", help="synthetic shares of training objects")
    parser.add_argument("--augment", default="flip", help="B's ordinary augmentation (--screen picks it)")
    parser.add_argument("--screen", action="store_true", help="screen B's augmentation with the U-Net (first seed)")
    parser.add_argument("--count", type=int, default=200, help="pairs generated per generator")
    parser.add_argument("--cgan-size", type=int, default=256)
    parser.add_argument("--cgan-steps", type=int, default=600)
    parser.add_argument("--fastgan-steps", type=int, default=500)
    parser.add_argument(
        "--frechet-max",
        default="2.0",
        help="the gate's batch Fréchet limit; 'none' = report only (an explicitly ungated row)",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="one seed, n = 4, steps / 50, few pairs")
    args = parser.parse_args(argv)
    if args.quick:
        args.shots, args.seeds, args.count, args.cgan_steps, args.fastgan_steps = "4", "0", 16, 5, 5
        args.cgan_size = 64
    if args.out is None:
        args.out = Path("bench-output/synth_gain" + ("" if args.data == "mni152" else f"_{args.data}"))
    args.out.mkdir(parents=True, exist_ok=True)
    previous = read_json(args.out / "results.json")
    gens: list[dict[str, Any]] = previous.get("generators", [])
    runs: list[dict[str, Any]] = previous.get("runs", [])
    started = time.perf_counter()
    protocol = mni152_protocol(args.out) if args.data == "mni152" else phantom_protocol(args.out)

    def save() -> None:  # after every run, so an interrupted bench keeps what it measured
        results = {
            "args": args_record(args),
            "data": protocol.title,
            "labels": list(protocol.labels),
            "held_out": protocol.val_slices,
            "shots": {n: protocol.shots(int(n)) for n in args.shots.split(",")},
            "generators": gens,
            "runs": runs,
            "seconds": round(time.perf_counter() - started, 1),
        }
        write_results(args.out, results, table(runs, gens, args.augment))

    def record(entry: dict[str, Any], into: list[dict[str, Any]], key: tuple[str, ...]) -> None:
        upsert(into, entry, key)
        print(json.dumps({k: v for k, v in entry.items() if k not in ("synth", "objects")}), flush=True)
        save()

    seeds = [int(v) for v in args.seeds.split(",")]
    ns = [int(v) for v in args.shots.split(",")]
    augment_b = tuple(a for a in args.augment.split(",") if a)
    if args.screen:
        for n in ns:
            for aug in SCREEN:
                record(
                    train_run(protocol, args.out, Run("unet", "B", n, seeds[0], 0.0, tuple(aug.split(","))), args),
                    runs,
                    ("model", "arm", "n", "seed", "share", "augment"),
                )
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    models = [m.strip() for m in args.models.split(",")]
    shares = [float(v) for v in args.shares.split(",")]
    made = {(g["kind"], g["n"], g["seed"]) for g in gens}
    for seed in seeds:  # seed-major: a cut-short bench still has every n
        for n in ns:
            for arm in arms:
                kind, uses_b = ARMS[arm]
                if kind and (kind, n, seed) not in made:
                    record(make_generator(protocol, args.out, kind, n, seed, args), gens, ("kind", "n", "seed"))
                    made.add((kind, n, seed))
                for model in models:
                    for share in shares if kind else [0.0]:
                        run = Run(model, arm, n, seed, share, augment_b if uses_b else ())
                        record(
                            train_run(protocol, args.out, run, args),
                            runs,
                            ("model", "arm", "n", "seed", "share", "augment"),
                        )
    shown = [r for r in runs if tuple(r["augment"]) in (augment_b, ()) or r["arm"] != "B"]
    plot(shown, args.out / "dice_vs_n.png", protocol.title)
    print(table(runs, gens, args.augment))


if __name__ == "__main__":
    sys.exit(main())
