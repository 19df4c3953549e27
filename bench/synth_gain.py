"""Does synthetic data help? Few-shot white matter on MNI152, real only vs real + synthetic pairs.

Protocol (rerun with ``.venv/bin/python bench/synth_gain.py``; ``--quick`` for a minutes-long smoke run):

* Store: the MNI152 T1 template with its white-matter label (``samdata.io.sample_data``), ingested as MR.
* Held out for evaluation: axial slices z = 51, 57, ..., 135 (15 slices, ``val_slices``), never trained on.
* Labelled real slices: ``n`` in {4, 8}, evenly spaced in the pool z = 50, 53, ..., 139 (disjoint from
  the held-out ones).
* Per (n, seed): a paired GAN (``samdata.synth``) is trained on those n slices only, ``--count``
  pairs are drawn and put through the gate (LiteMedSAM consistency, memorisation, mask checks),
  accepted pairs are committed as synthetic cases.
* Per (n, seed, ratio): a mixture of the real case and that generator's synthetic cases, then the
  same adapter (LiteMedSAM, ``--adapter``, same steps, same seed) is trained with
  ``training.train``; the score is the final mean Dice over the 15 held-out slices (box prompts
  drawn with ``object_rng(seed, ...)``, so the three ratios of one seed see identical prompts).
* ``ratio`` is the synthetic : real share of training draws. Training splits each case's mixture
  weight over the objects it keeps after the ``train_slices`` filter, so the real volume keeps its
  whole weight (1.0) and the mixture's synthetic weight is ``ratio`` itself (share ``ratio / (1 +
  ratio)``); the share actually achieved (from ``training.batches.build_data``) is reported.

Synthetic slices are 2D cases with z = 0; MNI152 z = 0 holds no white matter, so ``train_slices``
lists 0 beside the real z to let them through. Results: ``<out>/results.json`` and ``results.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

LABEL = "white_matter"
VAL_SLICES = "51-135:6"
POOL = list(range(50, 140, 3))
MODEL_SIZES = {"litemedsam": 256, "tiny": 128}


def shots(n: int) -> list[int]:
    """``n`` evenly spaced z from the training pool."""
    return [POOL[int(i)] for i in np.linspace(0, len(POOL) - 1, n).round()]


def build_store(out: Path) -> Path:
    """Ingest MNI152 (MR) into ``out/store`` once."""
    store = out / "store"
    if not store.exists():  # imported only here: a prepared store needs no readers (nibabel, SimpleITK)
        from pipelines.ingest import ingest
        from samdata.io.sample_data import write_mni152
        from samdata.normalise import IngestConfig

        ingest(write_mni152(out / "mni152"), store, IngestConfig(modality="MR"))
    return store


def make_generator(store: Path, out: Path, n: int, seed: int, args: argparse.Namespace, gate: Any) -> dict[str, Any]:
    """Train the GAN of (n, seed), generate ``args.count`` pairs through the gate; the run's numbers."""
    from pipelines.synthesize import (GateModels, SliceQuery, SynthConfig, TrainedSource, reference_for, synthesize,
                                      train_generator)
    from samdata.synth.gate import GateConfig
    from samdata.synth.train import GanConfig

    gen_id = f"wm{n}s{seed}"
    gen_dir = out / "generators" / gen_id
    config = GanConfig(size=args.gan_size, width=args.gan_width, steps=args.gan_steps, batch_size=args.gan_batch,
                       seed=seed, sample_every=max(args.gan_steps // 4, 1), save_every=args.gan_steps,
                       device=args.device)
    reused = (gen_dir / "generator.pt").is_file()
    t0 = time.perf_counter()
    trained = train_generator(store, gen_dir, SliceQuery(labels=(LABEL,), slices=tuple(shots(n))), config,
                              generator_id=gen_id, resume=True)
    gan_seconds = math.nan if reused else time.perf_counter() - t0  # a finished generator is reused, not timed
    source = TrainedSource(gen_dir, args.device)
    models = GateModels(segment=gate.segment, features=gate.features)
    report = synthesize(store, source, reference_for(store, source.info),
                        SynthConfig(count=args.count, seed=seed, batch_size=args.gen_batch, gate=GateConfig()), models)
    summary = report.to_json()
    summary.pop("case_ids")
    return {"generator": gen_id, "gan_seconds": round(gan_seconds, 1), "gan_steps": trained.step,
            "gan_s_per_step": round(gan_seconds / max(trained.step, 1), 4), "accepted_cases": report.accepted,
            "synth": summary}


def train_run(store: Path, out: Path, n: int, seed: int, ratio: float, args: argparse.Namespace) -> dict[str, Any]:
    """Mixture + adapter training of one (n, seed, ratio); final held-out Dice and the achieved synthetic share."""
    from pipelines.mixtures import MixtureConfig, list_mixtures, make_mixture
    from storage import SliceStore
    from training.batches import build_data
    from training.config import TrainConfig
    from training.train import train

    gen_id, name = f"wm{n}s{seed}", f"wm-n{n}-s{seed}-r{ratio:g}"
    synthetic = ratio
    mixture = MixtureConfig(real=1.0, synthetic=synthetic, generators={gen_id: 1.0} if ratio > 0 else None,
                            labels=(LABEL,), splits=(1.0, 0.0, 0.0), seed=0)
    if name not in {m["name"] for m in list_mixtures(SliceStore.open(store))}:
        make_mixture(store, name, mixture)
    config = TrainConfig(store=str(store), mixture=name, model=args.model, adapter=args.adapter,
                         steps=args.train_steps, batch_size=args.batch_size, lr=args.lr, seed=seed,
                         train_slices=",".join(str(z) for z in [0, *shots(n)]), val_slices=VAL_SLICES, val_max=0,
                         save_every=args.train_steps, log_every=max(args.train_steps // 10, 1), device=args.device)
    data = build_data(config.with_values({"size": MODEL_SIZES.get(args.model, 1024)}), None)
    origins = data.train.objects()["origin"].astype(str).to_numpy()[data.candidates]
    achieved = float(data.weights[origins == "synthetic"].sum() / data.weights.sum())
    run_dir = out / "runs" / name
    done = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").is_file() else {}
    if "val_dice" not in done:  # a finished run is reused; an interrupted one resumes
        result = train(config, run_dir, resume=run_dir.exists())
        done = {"val_dice": result.val_dice, "zero_shot_dice": result.zero_shot_dice, "seconds": result.seconds}
    return {"n": n, "seed": seed, "ratio": ratio, "val_dice": done["val_dice"],
            "zero_shot_dice": done.get("zero_shot_dice"), "synthetic_share": round(achieved, 4),
            "train_objects": int(len(data.candidates)), "seconds": round(float(done.get("seconds", 0)), 1)}


def table(runs: list[dict[str, Any]], gens: list[dict[str, Any]]) -> str:
    """Markdown: mean ± sd held-out Dice per (n, ratio), and the generators' gate numbers."""
    lines = ["| real slices | ratio | synthetic share of draws | held-out Dice (mean ± sd over seeds) | per seed |",
             "|---|---|---|---|---|"]
    for n in sorted({r["n"] for r in runs}):
        for ratio in sorted({r["ratio"] for r in runs}):
            rows = [r for r in runs if r["n"] == n and r["ratio"] == ratio and r["val_dice"] is not None]
            if not rows:
                continue
            dice = [r["val_dice"] for r in rows]
            sd = statistics.stdev(dice) if len(dice) > 1 else 0.0
            share = statistics.mean(r["synthetic_share"] for r in rows)
            lines.append(f"| {n} | {ratio:g} | {share:.2f} | {statistics.mean(dice):.4f} ± {sd:.4f} | "
                         f"{', '.join(f'{d:.4f}' for d in dice)} |")
    lines += ["", "| generator | GAN s/step | generated | accepted | rejections | Fréchet (per batch) | "
              "gen pairs/s | gate pairs/s |", "|---|---|---|---|---|---|---|---|"]
    for g in gens:
        s = g["synth"]
        fids = ", ".join("n/a" if b["frechet"] is None else f"{b['frechet']:.2f}" for b in s["batches"])
        lines.append(f"| {g['generator']} | {g['gan_s_per_step']} | {s['generated']} | {s['accepted']} | "
                     f"{s['reasons'] or '-'} | {fids} | {s['pairs_per_s'] or 0:.1f} | "
                     f"{s['gate_pairs_per_s'] or 0:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Run the protocol and write results.json / results.md under ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench-output/synth_gain"))
    parser.add_argument("--shots", default="4,8")
    parser.add_argument("--ratios", default="0,0.5,1.0")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--gan-steps", type=int, default=1500)
    parser.add_argument("--gan-size", type=int, default=64)
    parser.add_argument("--gan-width", type=int, default=8)
    parser.add_argument("--gan-batch", type=int, default=8)
    parser.add_argument("--count", type=int, default=64, help="pairs generated per generator")
    parser.add_argument("--gen-batch", type=int, default=32)
    parser.add_argument("--model", default="litemedsam", help="gate and adapter model")
    parser.add_argument("--adapter", default="decoder")
    parser.add_argument("--train-steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quick", action="store_true", help="tiny settings: one seed, 4 shots, few steps")
    args = parser.parse_args(argv)
    if args.quick:
        args.shots, args.seeds, args.gan_steps, args.count, args.train_steps = "4", "0", 20, 8, 4
        args.gan_size, args.gan_width = 32, 4
    from samdata.cli.synth import SamGate
    from samdata.synth.train import resolve_device

    args.device = str(resolve_device(args.device))
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    store = build_store(args.out)
    gate = SamGate(args.model, device=args.device)
    gens: list[dict[str, Any]] = []
    runs: list[dict[str, Any]] = []

    def save() -> None:  # after every run, so an interrupted bench keeps what it measured
        results = {"args": {k: str(v) for k, v in vars(args).items()}, "held_out": VAL_SLICES,
                   "shots": {n: shots(int(n)) for n in args.shots.split(",")}, "generators": gens, "runs": runs,
                   "seconds": round(time.perf_counter() - started, 1)}
        (args.out / "results.json").write_text(json.dumps(results, indent=2, default=str))
        (args.out / "results.md").write_text(table(runs, gens) + "\n")

    for seed in (int(v) for v in args.seeds.split(",")):  # seed-major: a cut-short bench still has every n
        for n in (int(v) for v in args.shots.split(",")):
            gens.append(make_generator(store, args.out, n, seed, args, gate))
            print(json.dumps({k: v for k, v in gens[-1].items() if k != "synth"}), flush=True)
            save()
            for ratio in (float(v) for v in args.ratios.split(",")):
                runs.append(train_run(store, args.out, n, seed, ratio, args))
                print(json.dumps(runs[-1]), flush=True)
                save()
    print(table(runs, gens))


if __name__ == "__main__":
    sys.exit(main())
