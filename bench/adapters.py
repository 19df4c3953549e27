"""Every adapter type on one protocol: MNI152 white matter, Dice, trainable parameters and step time.

Rerun with ``.venv/bin/python bench/adapters.py`` (``--quick`` for a minutes-long smoke run). The MNI152
T1 store with its white-matter label; held out z = 51, 57, ..., 135; trained (``--protocol gap``) on
z = 54, 60, ..., 138, at least 2 slices from any held-out one (``--protocol interleaved``: ``low_data``'s
pool). One ``training.train`` run per (row, seed) on the real-only mixture ``wm``; the score is its final
held-out Dice (box prompts from ``object_rng``; the U-Net gets none); step time is the median optimiser step
after the first, "prefix s" the time spent computing the frozen prefix once. Rows (``--models``) as in
``low_data``; ``--rows gpu --device cuda --bf16`` adds adapters in every block and full fine-tuning, which
need the whole encoder every step. Writes ``<out>/results.json`` and ``results.md``; finished runs are
reused, interrupted ones resume, and the (row, seed) pairs an invocation does not run keep their results.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: bench.common, this checkout
from bench.common import (
    HELD_OUT,
    MIXTURE,
    POOL,
    VAL_SLICES,
    ModelSpec,
    args_record,
    build_store,
    mean_sd,
    read_json,
    real_mixture,
    run_steps,
    train_config,
    train_or_reuse,
    write_results,
)

GAP_TRAIN = list(range(54, 139, 6))
STAGE = "8-9"
DEFAULT_MODELS = ";".join(
    [
        "decoder|litemedsam|decoder|300|1e-4|",
        f"serial|litemedsam|serial:blocks={STAGE}+decoder|300|2e-4|",
        f"parallel|litemedsam|parallel:blocks={STAGE}+decoder|300|2e-4|",
        f"lora|litemedsam|lora:r=8,blocks={STAGE}+decoder|300|2e-4|",
        "unet|unet|full|1200|1e-3|flip",
        f"serial+lora|litemedsam|serial:blocks={STAGE}+lora:r=8,blocks={STAGE}+decoder|300|2e-4|",
        f"serial+refine|litemedsam|serial:blocks={STAGE}+decoder+refine|300|2e-4|",
        f"depth|litemedsam|depth:k=3,blocks={STAGE}+decoder|300|2e-4|",
        f"serial+depth|litemedsam|serial:blocks={STAGE}+depth:k=3,blocks={STAGE}+decoder|300|2e-4|",
    ]
)
#: Every block, and full fine-tuning: the whole encoder runs forward and backward each step (a GPU's job).
GPU_MODELS = ";".join(
    [
        "decoder|litemedsam|decoder|300|1e-4|",
        "serial-all|litemedsam|serial+decoder|300|2e-4|",
        "parallel-all|litemedsam|parallel+decoder|300|2e-4|",
        "lora-all|litemedsam|lora:r=8+decoder|300|2e-4|",
        "serial+lora-all|litemedsam|serial+lora:r=8+decoder|300|2e-4|",
        "full|litemedsam|full|300|1e-5|",
    ]
)


def train_slices(protocol: str) -> list[int]:
    """The training z of a protocol, checked against the held-out slices."""
    chosen = GAP_TRAIN if protocol == "gap" else list(POOL)
    assert not set(HELD_OUT) & set(chosen)
    return chosen


def min_gap(chosen: list[int]) -> int:
    """Slices strictly between the closest training and held-out z."""
    return min(abs(a - b) for a in chosen for b in HELD_OUT) - 1


def step_times(run_dir: Path) -> tuple[float | None, float | None]:
    """(median s/step, s spent computing the frozen prefix) of a finished run.

    Every logged train record carries the wall time of its own step; the first one is left out (it may
    still fill the prefix cache). The prefix time is the cache's own count from ``run.json``."""
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    seconds = [r["seconds"] for r in records if r.get("kind") == "train" and "seconds" in r]
    if not seconds:
        return None, None
    steady = statistics.median(seconds[1:] or seconds)
    info = read_json(run_dir / "run.json")
    found = re.search(r"([0-9.]+) s computing", str(info.get("cache", "")))
    return steady, float(found.group(1)) if found else None


def train_one(
    store: Path, out: Path, spec: ModelSpec, seed: int, chosen: list[int], args: argparse.Namespace
) -> dict[str, Any]:
    """Train (or reuse) one (spec, seed) run; its held-out Dice, parameters and timings."""
    steps = run_steps(spec.model, spec.steps, None, args.quick, least=2)
    config = train_config(
        store,
        MIXTURE,
        spec.model,
        spec.adapter,
        steps=steps,
        lr=spec.lr,
        seed=seed,
        augment=spec.augment,
        slices=chosen,
        batch_size=args.batch_size,
        log_every=max(steps // 20, 1),
        device=args.device,
        checkpoint=args.checkpoint if spec.model == "litemedsam" else None,
        bf16=args.bf16,
    )
    run_dir = out / "runs" / f"{spec.name}-{args.protocol}-s{seed}"
    done = train_or_reuse(config, run_dir)
    steady, first = step_times(run_dir)
    return {
        "model": spec.name,
        "adapter": done.get("adapter", spec.adapter),
        "seed": seed,
        "run": str(run_dir),
        "val_dice": done["val_dice"],
        "zero_shot_dice": done.get("zero_shot_dice") if spec.promptable else None,
        "trainable": done.get("trainable"),
        "total": done.get("total"),
        "steps": steps,
        "s_per_step": steady,
        "prefix_seconds": first,
        "seconds": round(float(done.get("seconds", 0)), 1),
        "device": done.get("device", args.device),
    }


def markdown(runs: list[dict[str, Any]], specs: list[ModelSpec]) -> str:
    """One row per model: Dice mean ± sd over seeds, trainable params (and share), step times, wall time."""
    lines = [
        "| model | adapter | held-out Dice (mean ± sd) | per seed | trainable params | trainable share | "
        "s/step (median) | prefix s (once) | s per run | steps, lr |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    zero = [r["zero_shot_dice"] for r in runs if r["zero_shot_dice"] is not None]
    if zero:
        lines.append(f"| zero-shot LiteMedSAM (box) | – | {statistics.mean(zero):.4f} | – | 0 | 0 | – | – | – | – |")
    for spec in specs:
        mine = [r for r in runs if r["model"] == spec.name and r["val_dice"] is not None]
        if not mine:
            continue
        dice = [r["val_dice"] for r in mine]
        mean, sd = mean_sd(dice)
        share = mine[0]["trainable"] / mine[0]["total"] if mine[0].get("total") else float("nan")
        steady = statistics.mean(r["s_per_step"] for r in mine if r["s_per_step"] is not None)
        prefix = [r["prefix_seconds"] for r in mine if r.get("prefix_seconds") is not None]
        lines.append(
            f"| {spec.name} | `{spec.adapter}` | {mean:.4f} ± {sd:.4f} | "
            f"{', '.join(f'{d:.4f}' for d in dice)} | {mine[0]['trainable']:,} | {share:.2%} | "
            f"{steady:.3f} | {f'{statistics.mean(prefix):.0f}' if prefix else '–'} | "
            f"{statistics.mean(r['seconds'] for r in mine):.0f} | "
            f"{mine[0]['steps']}, {spec.lr:g}{', ' + '+'.join(spec.augment) if spec.augment else ''} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Run every row and write the table under ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench-output/adapters"))
    parser.add_argument("--protocol", choices=("gap", "interleaved"), default="gap")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument(
        "--models", default=None, help="';'-separated name|model|adapter|steps|lr|augment (default: --rows)"
    )
    parser.add_argument(
        "--rows",
        choices=("cpu", "gpu"),
        default="cpu",
        help="cpu: adapters in blocks 8-9 + the U-Net; gpu: adapters in every block and full "
        "fine-tuning (whole encoder each step)",
    )
    parser.add_argument("--only", default="", help="comma-separated row names to run (default: every row)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (CUDA)")
    parser.add_argument("--checkpoint", default=None, help="LiteMedSAM weights (default: the bundled ones)")
    parser.add_argument("--quick", action="store_true", help="one seed, steps / 50")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds = "0"
    if args.models is None:
        args.models = DEFAULT_MODELS if args.rows == "cpu" else GPU_MODELS
    if args.device == "auto":
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    specs = ModelSpec.parse_list(args.models)
    if args.only:
        wanted = {name.strip() for name in args.only.split(",")}
        unknown = wanted - {s.name for s in specs}
        if unknown:
            raise SystemExit(f"--only names no row: {', '.join(sorted(unknown))}")
        specs = [s for s in specs if s.name in wanted]
    chosen = train_slices(args.protocol)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    store = build_store(args.out)
    real_mixture(store)
    previous = read_json(args.out / "results.json").get("runs", [])
    seeds = [int(v) for v in args.seeds.split(",")]
    planned = {(s.name, seed) for s in specs for seed in seeds}
    # keep what earlier invocations measured (other rows, other seeds); this one re-reports its own runs
    runs: list[dict[str, Any]] = [r for r in previous if (r["model"], r["seed"]) not in planned]

    def save() -> None:  # after every run, so an interrupted bench keeps what it measured
        results = {
            "args": args_record(args),
            "held_out": VAL_SLICES,
            "train_slices": chosen,
            "min_gap_slices": min_gap(chosen),
            "runs": runs,
            "seconds": round(time.perf_counter() - started, 1),
        }
        every = list(
            {
                spec.name: spec
                for text in (args.models, DEFAULT_MODELS, GPU_MODELS)  # rows of earlier runs too
                for spec in ModelSpec.parse_list(text)
            }.values()
        )
        header = (
            f"Protocol `{args.protocol}`: {len(chosen)} training slices z = {chosen[0]}..{chosen[-1]}, "
            f"15 held-out z = 51..135 step 6, at least {min_gap(chosen)} slices between them; "
            f"batch {args.batch_size}, device {args.device}.\n\n"
        )
        write_results(args.out, results, header + markdown(runs, every))

    for seed in seeds:
        for spec in specs:
            runs.append(train_one(store, args.out, spec, seed, chosen, args))
            runs.sort(key=lambda r: (r["model"], r["seed"]))
            print(json.dumps(runs[-1]), flush=True)
            save()
    print((args.out / "results.md").read_text())


if __name__ == "__main__":
    sys.exit(main())
