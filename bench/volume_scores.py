"""What the 3D scores per case add to an evaluation: the per-slice scoring and the 3D part timed in one process.

Run: ``.venv/bin/python bench/volume_scores.py RUN_DIR [RUN_DIR ...] [--split train --slices 51-135:6]``.
Each run is scored as ``samdata evaluate --no-zero-shot`` scores it: :func:`training.evaluate.evaluate_models`
(timed; it also keeps the per-slice label maps, :class:`training.volume_scores.SliceMaps`), then
:func:`training.volume_scores.score_volumes` (timed: read each case, a prompt-free model's pass over the case's
range, both NIfTI files on the source grid, Dice/NSD/HD95 per label, summary.json). Prints a Markdown row per run
with the 3D seconds as a share of the per-slice seconds; writes ``bench/out/volume_scores.json``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: bench.common, this checkout
from bench.common import OUT, args_record, write_json
from training.eval_report import open_split
from training.evaluate import EvalConfig, evaluate_models
from training.run import load_run
from training.volume_scores import SliceMaps, score_volumes


def measure(run_dir: Path, split: str, slices: str | None) -> dict:
    """Seconds of the per-slice scoring and of the 3D part, and the 3D foreground means, for one run."""
    run = load_run(run_dir, device="cpu")
    dataset, indices, protocol = open_split(run, split, None, slices)
    config = EvalConfig(prompt_seed=run.config.seed)
    maps = SliceMaps(config.threshold)
    start = time.perf_counter()
    result = evaluate_models({"m": run.model}, dataset, config, indices=indices, sink=maps)
    per_slice = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as out:
        z_filter = slices or (run.config.val_slices if split == "train" else None)
        found = score_volumes({"m": (run.model, dataset)}, result.rows, maps, config, out, slices=z_filter)
    return {
        "run": str(run_dir),
        "model": run.config.model,
        "protocol": protocol,
        "slices": len(result.rows[["case_id", "z"]].drop_duplicates()),
        "ranges": found.ranges,
        "per_slice_seconds": round(per_slice, 2),
        "volume_seconds": round(found.seconds, 2),
        "share": round(found.seconds / per_slice, 3),
        "foreground_mean": {k: found.foreground["m"][k] for k in ("Dice", "NSD", "HD95")},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--split", default="train")
    parser.add_argument("--slices", default="51-135:6")
    parser.add_argument("--out", type=Path, default=OUT / "volume_scores.json")
    args = parser.parse_args(argv)
    print("| run | model | slices scored | ranges | per-slice s | 3D s | 3D / per-slice | 3D Dice | NSD | HD95 |")
    print("|---|---|---:|---|---:|---:|---:|---:|---:|---:|")
    rows = []
    for run_dir in args.runs:
        r = measure(run_dir, args.split, args.slices)
        rows.append(r)
        fg = r["foreground_mean"]
        print(
            f"| {run_dir.name} | {r['model']} | {r['slices']} | {r['ranges']} | {r['per_slice_seconds']:.1f} | "
            f"{r['volume_seconds']:.1f} | {r['share']:.2f} | {fg['Dice']:.3f} | {fg['NSD']:.3f} | {fg['HD95']:.2f} |",
            flush=True,
        )
    write_json(args.out, {"args": args_record(args), "rows": rows})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
