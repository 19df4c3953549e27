"""What a ``depth`` adapter costs per training step on LiteMedSAM, against the 2D adapter and a naive stack.

One command: ``.venv/bin/python bench/depth_step.py [--batch-size 4] [--k 3] [--repeats 3] [--threads 1]``.
Times the trainable part of a step (encoder suffix from block 8, forward and backward, from cached prefix
activations, as training runs it) for four models in the same run: the 2D serial adapter in blocks 8-9
(the baseline), the same with ``depth:k=K,blocks=8-9`` (the neighbours run block 8, the last depth block
and everything after it run on the centre slices only), with ``depth:k=K,blocks=8`` (its branch reads the
cached prefix rows, then only the centre slices go on), and the naive stack: the 2D model on all B·k
slices (what running every block on every slice of each stack costs). Prints a Markdown table with the
ratios to the baseline (median of ``--repeats`` after one warm-up) and writes ``bench/out/depth_step.json``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: bench.common, this checkout
from bench.common import OUT, write_json
from training.adapters import apply_adapters, parse_adapter
from training.models import build_model

FROM_BLOCK = 8


def suffix_seconds(spec: str, slices: int, repeats: int) -> tuple[float, int]:
    """Median seconds of the suffix's forward + backward on ``slices`` cached prefix rows, and the rows the
    embeddings come out for."""
    model = build_model("litemedsam")
    apply_adapters(model, parse_adapter(spec), seed=0)
    model.train()
    images = torch.rand(slices, 3, 256, 256, generator=torch.Generator().manual_seed(0)) * 255
    with torch.no_grad():
        prefix = model.encode_prefix(model.preprocess(images), FROM_BLOCK)
    times, rows = [], 0
    for _ in range(repeats + 1):  # the first is a warm-up
        model.zero_grad(set_to_none=True)
        start = time.perf_counter()
        embeddings = model.encode_suffix(prefix, FROM_BLOCK)
        embeddings.float().pow(2).mean().backward()
        times.append(time.perf_counter() - start)
        rows = embeddings.shape[0]
    return statistics.median(times[1:]), rows


def main(argv: list[str] | None = None) -> None:
    """Time the four models and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    serial = "serial:blocks=8-9+decoder"
    rows = [
        ("2D serial adapter, blocks 8-9 (baseline)", serial, args.batch_size),
        (f"+ depth:k={args.k}, blocks 8-9", f"serial:blocks=8-9+depth:k={args.k},blocks=8-9+decoder", 0),
        (f"+ depth:k={args.k}, block 8 only", f"serial:blocks=8-9+depth:k={args.k},blocks=8+decoder", 0),
        (f"naive stack: 2D model on all B·{args.k} slices", serial, args.batch_size * args.k),
    ]
    results = []
    for name, spec, slices in rows:
        count = slices or args.batch_size * args.k  # a depth model reads B stacks as B·k prefix rows
        seconds, out_rows = suffix_seconds(spec, count, args.repeats)
        results.append({"model": name, "adapter": spec, "prefix_rows": count, "embeddings": out_rows, "s": seconds})
        print(f"{name}: {seconds:.2f} s", flush=True)
    base = results[0]["s"]
    lines = [
        "| model | prefix rows | embeddings | s / step (suffix fwd+bwd) | × baseline |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(f"| {r['model']} | {r['prefix_rows']} | {r['embeddings']} | {r['s']:.2f} | {r['s'] / base:.2f} |")
    print("\n".join(lines))
    write_json(OUT / "depth_step.json", {"args": vars(args), "results": results})


if __name__ == "__main__":
    sys.exit(main())
