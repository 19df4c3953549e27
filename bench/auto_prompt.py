"""Prompt-free SAM on MNI152 white matter: the U-Net alone, the adapted SAM with ground-truth boxes, and the SAM
auto-prompted by that U-Net (``samdata predict RUN --auto``), with the CPU seconds per volume of the auto path.

Protocol (``.venv/bin/python bench/auto_prompt.py``; ``--quick`` for a smoke run): bench/low_data.py's MNI152 T1
store and real-only mixture ``wm``, n labelled slices from the pool z = 50, 53, ..., 139, the 15 held-out slices
z = 51, 57, ..., 135 scored. Per (n, seed) the U-Net (bench.common.MODELS ``unet``, with flips) and the adapted
LiteMedSAM (``sam``: serial adapters in blocks 8-9 + decoder + refinement head) are trained on the same mixture
and slices (finished runs reused). Rows: the U-Net alone and the SAM with ground-truth boxes (``compare_runs`` on
the held-out slices, box prompts from ``object_rng``), and the SAM with the U-Net as proposer for each
``--boxes`` mode (:mod:`training.auto`): the cascade runs over the whole volume from its image alone, then the
held-out objects are scored, per object and in 3D (nnU-Net's summary.json, the held-out slices of the volume,
as ``compare_runs`` scores the other rows). The cascade's wall and CPU seconds (``time.process_time``: every
thread of the process) are per volume. Writes ``<out>/results.json`` and ``results.md`` (other (n, seed) results kept).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: bench.common, this checkout
from bench.common import (
    LABEL,
    MIXTURE,
    MODELS,
    VAL_SLICES,
    args_record,
    build_store,
    labelled,
    read_json,
    real_mixture,
    run_steps,
    train_config,
    train_or_reuse,
    write_results,
)


def train_pair(store: Path, out: Path, n: int | str, seed: int, args: argparse.Namespace) -> dict[str, Path]:
    """Train (or reuse) the U-Net and the adapted SAM of (n, seed) on the same mixture and slices."""
    dirs = {}
    for name in ("unet", "sam"):
        model, adapter, steps, lr = MODELS[name]
        steps = run_steps(model, steps, n, args.quick)
        augment = ("flip",) if name == "unet" else tuple(a for a in args.sam_augment.split(",") if a)
        config = train_config(
            store,
            MIXTURE,
            model,
            adapter,
            steps=steps,
            lr=lr,
            seed=seed,
            augment=augment,
            slices=labelled(n),
            batch_size=args.batch_size,
            log_every=max(steps // 20, 1),
            device=args.device,
        )
        dirs[name] = out / "runs" / f"{name}-n{n}-s{seed}"
        train_or_reuse(config, dirs[name])
    return dirs


def ground_truth_rows(dirs: dict[str, Path], out: Path, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Held-out Dice of the U-Net alone and of the SAM with ground-truth boxes (one comparison, same objects;
    a finished comparison of the same runs is reused)."""
    from training.compare import CompareConfig, compare_runs

    done = read_json(out / "compare.json")
    if done.get("runs") != {"sam": str(dirs["sam"]), "unet": str(dirs["unet"])}:
        config = CompareConfig(split="train", slices=VAL_SLICES, clicks=(), zero_shot=False, device=args.device)
        compare_runs([dirs["sam"], dirs["unet"]], out, config, names=["sam", "unet"])
        done = read_json(out / "compare.json")
    rows = {r["name"]: {k: r[k] for k in ("dice", "nsd", "hd95")} for r in done["rows"]}
    for name, means in ((done.get("volumetric") or {}).get("foreground_mean") or {}).items():
        rows[name]["dice_3d"] = means["Dice"]
    return {"U-Net alone": rows["unet"], "SAM, ground-truth boxes": rows["sam"]}


def auto_row(dirs: dict[str, Path], mode: str, out: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Held-out scores of the SAM auto-prompted by the U-Net (boxes ``mode``), per object and in 3D over the
    held-out slices as the comparison scores the other rows (files under ``out``), and the cascade's seconds
    per volume."""
    import torch

    from storage import SliceStore
    from training.auto import frame_of
    from training.auto_eval import AutoModel, predict_cases, score_objects
    from training.eval_config import AutoConfig, EvalConfig
    from training.eval_report import open_split
    from training.evaluate import aggregate
    from training.proposer import load_proposer
    from training.run import load_run
    from training.volume_scores import SliceMaps, score_volumes

    sam = load_run(dirs["sam"], device=args.device)
    proposer = load_proposer(sam, dirs["unet"])
    dataset, indices, _ = open_split(sam, "train", None, VAL_SLICES)
    store = SliceStore.open(dataset.store_url, snapshot=dataset.snapshot_id)
    assert indices is not None
    cases = sorted(set(dataset.objects().iloc[indices]["case_id"].astype(str)))
    config = AutoConfig(boxes=mode)
    cpu, wall = time.process_time(), time.perf_counter()
    predictions, _ = predict_cases(AutoModel(sam.model, frame_of(sam), proposer), store, cases, config, stages=_say)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    rows = score_objects("auto", predictions, dataset, indices, EvalConfig())
    overall = aggregate(rows, "model")[2].set_index("model").loc["auto"]
    volumes = score_volumes(
        {"auto": (sam.model, dataset)},
        rows,
        SliceMaps(),
        EvalConfig(),
        out,
        slices=VAL_SLICES,
        given={"auto": predictions},
    )
    found = predictions[cases[0]]
    return {
        "dice": float(overall["dice"]),
        "nsd": float(overall["nsd"]),
        "hd95": float(overall["hd95"]),
        "dice_3d": volumes.foreground["auto"]["Dice"],
        "missed": int((rows["pred_area"] == 0).sum()),
        "objects": len(rows),
        "cpu_seconds_per_volume": round(cpu / len(cases), 1),
        "wall_seconds_per_volume": round(wall / len(cases), 1),
        "torch_threads": torch.get_num_threads(),
        "volume": list(store.read_image(cases[0]).shape),
        "cascade": found.summary(),
    }


def _say(what: str, total: int) -> Any:
    """A progress stage that prints every tenth of its slices."""
    done, started = [0], time.perf_counter()
    print(f"{what}: {total} slices", flush=True)

    def advance(n: int) -> None:
        done[0] += n
        if done[0] * 10 // total != (done[0] - n) * 10 // total:
            print(f"  {done[0]}/{total} slices, {time.perf_counter() - started:.0f} s", flush=True)

    return advance


def markdown(results: list[dict[str, Any]]) -> str:
    """One table per (n, seed): Dice, NSD, HD95 and the auto path's seconds per volume."""
    lines = []
    for entry in results:
        lines += [
            f"### n = {entry['n']}, seed {entry['seed']} ({LABEL}, held-out slices {VAL_SLICES})",
            "",
            "| model | Dice | NSD | HD95 (mm) | 3D Dice | CPU s / volume | wall s / volume |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for name, row in entry["rows"].items():
            cpu = row.get("cpu_seconds_per_volume", "-")
            wall = row.get("wall_seconds_per_volume", "-")
            d3 = f"{row['dice_3d']:.4f}" if row.get("dice_3d") is not None else "-"
            lines.append(
                f"| {name} | {row['dice']:.4f} | {row['nsd']:.4f} | {row['hd95']:.2f} | {d3} | {cpu} | {wall} |"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Train or reuse the runs, score the rows and write the results under ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench-output/auto_prompt"))
    parser.add_argument("--shots", default="4,all")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--boxes", default="proposer,propagate", help="auto modes: proposer, propagate")
    parser.add_argument("--sam-augment", default="flip", help="the SAM run's augmentation (comma-separated)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quick", action="store_true", help="n=4, one seed, steps / 50, boxes proposer only")
    args = parser.parse_args(argv)
    if args.quick:
        args.shots, args.seeds, args.boxes = "4", "0", "proposer"
    if args.device == "auto":
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    from samdata.malloc import keep_freed_memory

    keep_freed_memory()  # as `samdata predict --auto` does: the SAM encoder runs on every boxed slice
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    store = build_store(args.out)
    real_mixture(store)
    results: list[dict[str, Any]] = read_json(args.out / "results.json").get("results", [])  # other (n, seed)s
    for n in (s.strip() for s in args.shots.split(",")):
        for seed in (int(v) for v in args.seeds.split(",")):
            dirs = train_pair(store, args.out, n if n == "all" else int(n), seed, args)
            entry = {"n": n, "seed": seed, "runs": {k: str(v) for k, v in dirs.items()}, "rows": {}}
            entry["rows"].update(ground_truth_rows(dirs, args.out / f"compare-n{n}-s{seed}", args))
            for mode in args.boxes.split(","):
                folder = args.out / f"auto-n{n}-s{seed}-{mode.strip()}"
                entry["rows"][f"SAM, auto-prompted by the U-Net ({mode})"] = auto_row(dirs, mode.strip(), folder, args)
            results = [r for r in results if (r["n"], r["seed"]) != (n, seed)] + [entry]
            print(json.dumps(entry, default=str), flush=True)
            record = {"args": args_record(args), "results": results, "seconds": round(time.perf_counter() - started)}
            write_results(args.out, record, markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    sys.exit(main())
