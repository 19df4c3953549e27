"""Test-time mirroring on trained runs: held-out Dice and inference cost per mode, against no mirroring.

Run: ``.venv/bin/python bench/tta.py RUN_DIR [RUN_DIR ...] [--modes none,lr,flip --split train --slices 51-135:6]``.
Each run (a SAM or the U-Net, e.g. ``bench/low_data.py`` runs) is scored by
:func:`training.evaluate.evaluate_models` on the same objects and prompts once per mode of
:mod:`training.tta` (``train`` = the run's held-out slices with ``object_rng(run seed, ...)`` prompts,
as ``samdata evaluate --split train`` scores them). Prints a Markdown table per run (Dice, NSD, HD95,
the Dice gain over ``none`` and the seconds per slice as a ratio to ``none``, both measured in this
process) and a summary per mode over the runs given; writes ``bench/out/tta.json`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: bench.common, this checkout
from bench.common import OUT, args_record, write_json
from training.eval_report import open_split
from training.evaluate import EvalConfig, aggregate, evaluate_models
from training.run import load_run
from training.tta import tta_views


def score(run_dir: Path, modes: list[str], split: str, slices: str | None) -> list[dict]:
    """One row per mode: overall Dice, NSD, HD95 and seconds per slice of the run on its split."""
    run = load_run(run_dir, device="cpu")
    dataset, indices, protocol = open_split(run, split, None, slices)
    rows = []
    for mode in modes:
        config = EvalConfig(prompt_seed=run.config.seed, tta=mode)
        result = evaluate_models({"m": run.model}, dataset, config, indices=indices)
        overall = aggregate(result.rows, "model")[2].set_index("model").loc["m"]
        n_slices = len(result.rows[["case_id", "z"]].drop_duplicates())
        rows.append(
            {
                "run": str(run_dir),
                "model": run.config.model,
                "adapter": run.config.adapter,
                "mode": mode,
                "views": len(tta_views(mode)),
                "objects": len(result.rows),
                "protocol": protocol,
                "dice": float(overall["dice"]),
                "nsd": float(overall["nsd"]),
                "hd95": float(overall["hd95"]),
                "seconds_per_slice": result.seconds["m"] / n_slices,
            }
        )
    base = rows[0]
    for row in rows:
        row["dice_gain"] = row["dice"] - base["dice"]
        row["cost_ratio"] = row["seconds_per_slice"] / base["seconds_per_slice"]
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--modes", default="none,lr,flip", help="comma-separated; the first is the baseline")
    parser.add_argument("--split", default="train")
    parser.add_argument("--slices", default="51-135:6")
    parser.add_argument("--out", type=Path, default=OUT / "tta.json")
    args = parser.parse_args(argv)
    modes = args.modes.split(",")
    for mode in modes:
        tta_views(mode)
    began = time.perf_counter()
    found = []
    for run_dir in args.runs:
        rows = score(run_dir, modes, args.split, args.slices)
        found += rows
        print(
            f"\n{run_dir} ({rows[0]['model']} [{rows[0]['adapter']}], {rows[0]['objects']} objects, "
            f"{rows[0]['protocol']})"
        )
        print("| mode | views | Dice | NSD | HD95 (mm) | Dice gain | s / slice | cost ratio |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            print(
                f"| {r['mode']} | {r['views']} | {r['dice']:.4f} | {r['nsd']:.4f} | {r['hd95']:.2f} | "
                f"{r['dice_gain']:+.4f} | {r['seconds_per_slice']:.3f} | {r['cost_ratio']:.2f} |",
                flush=True,
            )
    print("\nover the runs given: mean Dice gain over", modes[0])
    for mode in modes[1:]:
        gains = [r["dice_gain"] for r in found if r["mode"] == mode]
        print(f"  {mode}: {np.mean(gains):+.4f} (min {min(gains):+.4f}, max {max(gains):+.4f}, {len(gains)} runs)")
    write_json(args.out, {"args": args_record(args), "rows": found, "seconds": round(time.perf_counter() - began, 1)})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
