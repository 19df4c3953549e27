"""Training step time with the frozen-prefix cache vs recomputing the prefix every step.

One command: ``.venv/bin/python bench/train_step.py [--steps 4] [--batch-size 2] [--device cpu]``.
Builds a small store from seeded CT phantoms (``samdata.io.sample_data.write_phantoms``, ingested
and mixed here), then, for LiteMedSAM decoder-only and LiteMedSAM with LoRA in the last two encoder
blocks (+ decoder), times :meth:`training.loop.Trainer.step` on the same micro-batches with
``cache=off`` (the baseline, measured in the same run) and ``cache=memory`` (after one pass that
fills the cache; its cost is reported separately as the one-time fill). Prints a Markdown table with
the ratio baseline / cached and writes ``bench/out/train_step.json``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: bench.common, this checkout
from bench.common import OUT, phantom_store, write_json
from pipelines.mixtures import MixtureConfig, make_mixture
from samdata.normalise import IngestConfig
from training.batches import build_data, make_loader
from training.cache import PrefixCache
from training.config import TrainConfig
from training.loop import Dist, Trainer
from training.run import build_run_model

VARIANTS = (("decoder-only", "decoder"), ("LoRA blocks 8-9 + decoder", "lora:r=4,blocks=8-9+decoder"))


def make_store(root: Path) -> str:
    """Two 160x160x24 CT phantoms, ingested, with mixture 'bench' (liver)."""
    store = phantom_store(root, 2, IngestConfig(min_object_voxels=50, min_object_pixels=20), shape=(160, 160, 24))
    make_mixture(store, "bench", MixtureConfig(labels=("liver",), seed=0, splits=(1.0, 0.0, 0.0)))
    return str(store)


def time_variant(config: TrainConfig, steps: int) -> dict[str, float]:
    """Mean/median seconds per step with cache off and on, on the same batches; cache fill cost."""
    device = torch.device(config.device)
    model, report = build_run_model(config)
    model.to(device)
    data = build_data(config, None)
    batches = list(make_loader(data, config, Dist(), 0))[:steps]
    out: dict[str, float] = {"first_block": report.first_block, "trainable": report.trainable}
    for mode in ("off", "memory"):
        cache = PrefixCache(model, report.first_block, mode, 8 * 2**30, None, {})
        trainer = Trainer(model, report.first_block, config, device, cache, Dist())
        fill = time.perf_counter()
        trainer.step(1, [batches[0]])  # warm-up (and, cached: fills the slices of batch 0)
        for batch in batches[1:]:
            cache(batch["image"].to(device), list(zip(batch["case_id"], batch["z"].tolist(), strict=True)))
        _sync(device)
        out[f"{mode}_fill_s"] = time.perf_counter() - fill
        times = []
        for step, batch in enumerate(batches, start=2):
            began = time.perf_counter()
            trainer.step(step, [batch])
            _sync(device)
            times.append(time.perf_counter() - began)
        out[f"{mode}_mean_s"], out[f"{mode}_median_s"] = statistics.fmean(times), statistics.median(times)
        if mode == "memory":
            out["cached_slices"] = len(cache)
            out["cache_mib"] = cache.nbytes / 2**20
    out["ratio"] = out["off_median_s"] / out["memory_median_s"]
    return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    """Build the store, time both variants, print the table and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4, help="timed steps per mode")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = make_store(Path(tmp))
        for name, adapter in VARIANTS:
            config = TrainConfig(
                store=store,
                mixture="bench",
                model="litemedsam",
                adapter=adapter,
                size=256,
                steps=args.steps + 1,
                batch_size=args.batch_size,
                device=args.device,
                seed=0,
            )
            results[name] = time_variant(config, args.steps)
            print(f"{name}: {results[name]}", flush=True)
    threads = torch.get_num_threads()
    print(
        f"\nLiteMedSAM train step, batch {args.batch_size}, {args.device} ({threads} torch threads), "
        f"median of {args.steps} steps; baseline = prefix recomputed every step, measured in the same run\n"
    )
    print("| variant | frozen prefix up to block | recompute s/step | cached s/step | ratio | one-time fill s |")
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        print(
            f"| {name} | {int(r['first_block'])} | {r['off_median_s']:.3f} | {r['memory_median_s']:.3f} | "
            f"{r['ratio']:.1f}x | {r['memory_fill_s']:.2f} |"
        )
    write_json(
        OUT / "train_step.json",
        {"device": args.device, "threads": threads, "batch_size": args.batch_size, "results": results},
    )


if __name__ == "__main__":
    main()
