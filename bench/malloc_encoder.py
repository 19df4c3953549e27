"""LiteMedSAM's encoder under glibc malloc settings: seconds per 256² slice and resident growth, each
setting in a fresh process, as a ratio to glibc's defaults measured in the same run.

``.venv/bin/python bench/malloc_encoder.py [--slices 4] [--repeats 3]``. Settings: ``default`` (glibc's),
``keep64`` / ``keep128`` / ``keep1024`` (``samdata.malloc.keep_freed_memory(limit)``, one arena) and
``batch4`` (the default setting, the slices as one batch instead of one at a time). Prints one JSON line per
setting and the ratios; the figures are in BENCHMARKS.md (memory of the demo).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = """
import json, sys, time, torch
from samdata.malloc import keep_freed_memory
limit, chunk, slices, repeats = (int(v) for v in sys.argv[1:5])
if limit:
    keep_freed_memory(limit << 20)
from samdata.memory import peak_rss, reset_peak, rss
from training.models.registry import build_litemedsam
model = build_litemedsam().eval()
x = torch.rand(slices, 3, 256, 256)
with torch.no_grad():
    model.encode_prefix(x[:1], 10)  # warm-up
    base = rss(); reset_peak(); started = time.perf_counter()
    for _ in range(repeats):
        torch.cat([model.encode_prefix(x[i:i + chunk], 10) for i in range(0, slices, chunk)])
print(json.dumps({"s_per_slice": (time.perf_counter() - started) / (slices * repeats),
                  "growth_mb": (peak_rss() - base) >> 20}))
"""

SETTINGS = {
    "default": (0, 1),
    "keep64": (64, 1),
    "keep128": (128, 1),
    "keep1024": (1024, 1),
    "batch4": (0, 0),
}  # (limit MB, slices per pass; 0 = all)


def main(argv: list[str] | None = None) -> None:
    """Run every setting in its own interpreter and print the ratios to ``default``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    results = {}
    for name, (limit, chunk) in SETTINGS.items():
        chunk = chunk or args.slices
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(limit), str(chunk), str(args.slices), str(args.repeats)],
            capture_output=True,
            text=True,
            check=True,
        )
        results[name] = json.loads(out.stdout.strip().splitlines()[-1])
        print(json.dumps({"setting": name, **{k: round(v, 3) for k, v in results[name].items()}}), flush=True)
    base = results["default"]["s_per_slice"]
    print(json.dumps({f"{name}_time_vs_default": round(r["s_per_slice"] / base, 2) for name, r in results.items()}))


if __name__ == "__main__":
    sys.exit(main())
