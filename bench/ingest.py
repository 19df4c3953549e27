"""Benchmark `samdata ingest` against the read limit (nibabel decode only) and a MedSAM-style npy writer.

Run: ``.venv/bin/python bench/ingest.py`` (defaults: 20 phantom cases of 512×512×100 int16) or
``--cases 6 --shape 256,256,64`` for a quick look. Every variant runs in its own subprocess so peak
RSS is that variant's alone. Prints slices/s, MB/s (of decoded int16 input), output bytes, peak RSS,
and the ratios the targets are stated in; writes ``bench/out/ingest.json``. Variants: nibabel decode only (the
read limit), samdata's own reader (zlib straight into the array), one ``.npy`` per slice (MedSAM), and
``samdata ingest`` with 1 worker (the default, and ``--prefetch``) and 2 workers.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: bench.common, this checkout
from bench.common import OUT, du, phantom_args, write_json

DECODE = """
import sys, time, nibabel as nib, numpy as np
from samdata.io.layouts import discover
t = time.perf_counter(); n = 0
for item in discover(sys.argv[1]).items:
    img = np.asarray(nib.load(item.image).dataobj); lab = np.asarray(nib.load(item.label).dataobj)
    n += img.shape[2]
print(time.perf_counter() - t, n)
"""

NPY = """
import sys, time, pathlib, nibabel as nib, numpy as np
from samdata.io.layouts import discover
out = pathlib.Path(sys.argv[2]); out.mkdir(parents=True, exist_ok=True)
t = time.perf_counter(); n = 0
for item in discover(sys.argv[1]).items:
    img = np.asarray(nib.load(item.image).dataobj).astype(np.float32)
    lab = np.asarray(nib.load(item.label).dataobj).astype(np.uint8)
    img = (np.clip((img - (40 - 200)) / 400.0, 0, 1) * 255).astype(np.uint8)   # WL40/WW400 like MedSAM
    for z in range(img.shape[2]):
        np.save(out / f"{item.case_id}_{z:04d}_img.npy", img[:, :, z])
        np.save(out / f"{item.case_id}_{z:04d}_gt.npy", lab[:, :, z])
        n += 1
print(time.perf_counter() - t, n)
"""

READ = """
import sys, time
from samdata.io.layouts import discover
from samdata.io.readers import read_label, read_volume
t = time.perf_counter(); n = 0
for item in discover(sys.argv[1]).items:
    img = read_volume(item.image); lab = read_label(item.label, like=img)
    n += img.array.shape[2]
print(time.perf_counter() - t, n)
"""

INGEST = """
import sys, time
from pipelines.ingest import ClusterConfig, ingest
from samdata.normalise import IngestConfig
workers = int(sys.argv[3])
t = time.perf_counter()
rep = ingest(sys.argv[1], sys.argv[2], IngestConfig(modality="CT", window="abdomen"),
             cluster=ClusterConfig(workers=workers, prefetch=sys.argv[4] == "prefetch"))
assert rep.ok, rep.failed
from storage import SliceStore
n = SliceStore.open(sys.argv[2]).info()["slices"]
print(time.perf_counter() - t, n)
"""


# Every variant imports the same libraries first, so peak RSS growth over that baseline is the work's own.
# Peak RSS is the kernel's VmHWM of the variant's own process (ru_maxrss would start at the RSS of the
# forking bench process, which holds the phantoms it wrote); children's is ru_maxrss of RUSAGE_CHILDREN.
PRELUDE = (
    "import resource as _r, nibabel, SimpleITK, storage, pipelines.ingest, samdata.io.layouts\n"
    "def _hwm():\n"
    "    return next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM:'))\n"
    "_base = _hwm()\n"
)
RSS = "\nprint(_hwm(), _base, _r.getrusage(_r.RUSAGE_CHILDREN).ru_maxrss)\n"


def run(code: str, *args: str) -> dict:
    """Run a variant in a fresh interpreter; return seconds, slices and its peak RSS in MB (own, children)."""
    proc = subprocess.run(
        [sys.executable, "-c", PRELUDE + code + RSS, *args], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"variant failed:\n{proc.stderr[-3000:]}")
    timing, rss = proc.stdout.strip().splitlines()[-2:]
    seconds, slices = timing.split()
    own, base, children = (int(v) / 1024 for v in rss.split())
    return {
        "seconds": float(seconds),
        "slices": int(slices),
        "peak_rss_mb": own,
        "rss_growth_mb": own - base,
        "peak_rss_children_mb": children,
    }


def main() -> None:
    """Generate phantoms, time every variant, print and save the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    phantom_args(parser, "ingest-work")
    parser.add_argument("--repeat", type=int, default=1, help="runs of every variant (the median is reported)")
    args = parser.parse_args()
    shape = tuple(int(v) for v in args.shape.split(","))
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)

    from samdata.io.sample_data import write_phantoms

    t = time.perf_counter()
    src = write_phantoms(args.work / "src", cases=args.cases, seed=0, shape=shape)
    print(f"phantoms: {args.cases} × {shape} int16 written in {time.perf_counter() - t:.0f} s")
    voxels_mb = args.cases * shape[0] * shape[1] * shape[2] * 2 / 1e6

    variants = {
        "decode_only": (DECODE, str(src)),
        "npy_per_slice": (NPY, str(src), str(args.work / "npy")),
        "decode_samdata_reader": (READ, str(src)),
        "ingest_1_worker": (INGEST, str(src), str(args.work / "store1"), "1", "sequential"),
        "ingest_1_worker_prefetch": (INGEST, str(src), str(args.work / "store1p"), "1", "prefetch"),
        "ingest_2_workers": (INGEST, str(src), str(args.work / "store2"), "2", "sequential"),
    }
    # --repeat N: every variant N times, interleaved (this machine's speed drifts by 10-20 % over
    # minutes); the run with the median time of each variant is reported, with the spread
    runs: dict[str, list[dict]] = {name: [] for name in variants}
    for _ in range(args.repeat):
        for name, (code, *argv) in variants.items():
            for folder in argv[1:2]:
                shutil.rmtree(folder, ignore_errors=True)
            runs[name].append(run(code, *argv))
    results = {}
    for name, tries in runs.items():
        ordered = sorted(tries, key=lambda r: r["seconds"])
        results[name] = {**ordered[len(ordered) // 2], "seconds_all": [round(r["seconds"], 2) for r in tries]}
    results["npy_per_slice"]["bytes"] = du(args.work / "npy")
    for name, folder in (
        ("ingest_1_worker", "store1"),
        ("ingest_1_worker_prefetch", "store1p"),
        ("ingest_2_workers", "store2"),
    ):
        results[name]["bytes"] = du(args.work / folder)
    largest_mb = shape[0] * shape[1] * shape[2] * 2 / 1e6
    print(f"\n{'variant':<28}{'s':>8}{'slices/s':>10}{'MB/s':>8}{'bytes MB':>10}{'peak RSS MB':>13}{'growth MB':>11}")
    for name, r in results.items():
        r["slices_per_s"] = r["slices"] / r["seconds"]
        r["mb_per_s"] = voxels_mb / r["seconds"]
        size = f"{r['bytes'] / 1e6:10.1f}" if "bytes" in r else f"{'':>10}"
        spread = f"   s: {', '.join(f'{v:.1f}' for v in r['seconds_all'])}" if args.repeat > 1 else ""
        print(
            f"{name:<28}{r['seconds']:8.1f}{r['slices_per_s']:10.0f}{r['mb_per_s']:8.1f}{size}{r['peak_rss_mb']:13.0f}"
            f"{r['rss_growth_mb']:11.0f}{spread}"
        )
    decode = results["decode_only"]["seconds"]
    ratios = {
        "ingest_1w_over_decode_time": results["ingest_1_worker"]["seconds"] / decode,
        "ingest_1w_prefetch_over_decode_time": results["ingest_1_worker_prefetch"]["seconds"] / decode,
        "samdata_reader_over_decode_time": results["decode_samdata_reader"]["seconds"] / decode,
        "speedup_2w_over_1w": results["ingest_1_worker"]["seconds"] / results["ingest_2_workers"]["seconds"],
        "store_over_npy_bytes": results["ingest_1_worker"]["bytes"] / results["npy_per_slice"]["bytes"],
        "rss_growth_over_largest_volume": results["ingest_1_worker"]["rss_growth_mb"] / largest_mb,
        "rss_growth_prefetch_over_largest_volume": results["ingest_1_worker_prefetch"]["rss_growth_mb"] / largest_mb,
    }
    targets = {
        "ingest_1w_over_decode_time": "<= 1.5",
        "ingest_1w_prefetch_over_decode_time": "<= 1.5",
        "samdata_reader_over_decode_time": "-",
        "speedup_2w_over_1w": ">= 1.6",
        "store_over_npy_bytes": "<= 0.5",
        "rss_growth_over_largest_volume": "<= 3",
        "rss_growth_prefetch_over_largest_volume": "<= 3",
    }
    print()
    for key, value in ratios.items():
        print(f"{key:<44}{value:8.2f}   target {targets[key]}")
    out = {"cases": args.cases, "shape": shape, "results": results, "ratios": ratios, "targets": targets}
    write_json(OUT / "ingest.json", out)
    shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    main()
