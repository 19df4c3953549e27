"""Benchmark `samdata export ome-zarr` / `export nnunet` on the ingest benchmark's store: cases/s, MB/s, output
size, peak memory.

Run: ``.venv/bin/python bench/export.py`` (defaults: the 20 seeded CT phantoms of 512×512×100 that
``bench/ingest.py`` uses, ingested once into ``bench/out/export-work/store`` and reused) or ``--cases 4 --shape
256,256,64`` for a quick look; ``--format nnunet`` times the nnU-Net export of a mixture of every case (80 % train,
20 % test, made before the clock starts). The export runs in a fresh process, so its peak RSS growth (``VmHWM`` over a
baseline taken after the imports) is the export's own. MB/s counts the uint8 image and label voxels read from
the store; writes ``bench/out/export.json``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: bench.common, this checkout
from bench.common import OUT, du, phantom_args, phantom_store, write_json

EXPORT = """
import sys, time, json
import dask.array, skimage.transform, ome_zarr.writer, storage.omezarr
def _hwm():
    return next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM:'))
base = _hwm()
from storage.omezarr import export_ome_zarr
cases = []
t = time.perf_counter()
export_ome_zarr(sys.argv[1], sys.argv[2], version=sys.argv[3], on_case=lambda c: cases.append(c.voxel_bytes))
seconds = time.perf_counter() - t
print(json.dumps({"seconds": seconds, "cases": len(cases), "voxel_bytes": sum(cases),
                  "largest_case_bytes": max(cases), "rss_growth_mb": (_hwm() - base) / 1024}))
"""

NNUNET = """
import sys, time, json
import nibabel, pipelines.nnunet, storage
def _hwm():
    return next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM:'))
from pipelines.mixtures import MixtureConfig, make_mixture
from pipelines.nnunet import export_nnunet
from storage import SliceStore
make_mixture(sys.argv[1], "export-bench", MixtureConfig(splits=(0.8, 0.0, 0.2), seed=0), overwrite=True)
index = SliceStore.open(sys.argv[1]).slices()
sizes = {c: 2 * int((g["height"] * g["width"]).sum()) for c, g in index.groupby("case_id")}
base = _hwm()
cases = []
t = time.perf_counter()
export_nnunet(sys.argv[1], sys.argv[2], "export-bench", progress=lambda c: cases.append(sizes[c]))
seconds = time.perf_counter() - t
print(json.dumps({"seconds": seconds, "cases": len(cases), "voxel_bytes": sum(cases),
                  "largest_case_bytes": max(cases), "rss_growth_mb": (_hwm() - base) / 1024}))
"""


def main() -> None:
    """Build (or reuse) the phantom store, export it in a fresh process, print and save the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    phantom_args(parser, "export-work")
    parser.add_argument("--ngff", default="0.5", help="OME-NGFF version to write: 0.5 or 0.4")
    parser.add_argument("--format", default="ome-zarr", choices=("ome-zarr", "nnunet"), help="the export to time")
    args = parser.parse_args()
    shape = tuple(int(v) for v in args.shape.split(","))
    tag = args.work / f"built-{args.cases}-{'x'.join(map(str, shape))}"
    store = args.work / "store"
    if not tag.exists():
        from samdata.normalise import IngestConfig

        shutil.rmtree(args.work, ignore_errors=True)
        t = time.perf_counter()
        phantom_store(args.work, args.cases, IngestConfig(modality="CT", window="abdomen"), shape=shape)
        shutil.rmtree(args.work / "src")
        tag.touch()
        print(f"store: {args.cases} phantoms {shape} ingested in {time.perf_counter() - t:.0f} s")
    out = args.work / args.format
    shutil.rmtree(out, ignore_errors=True)
    script, extra = (EXPORT, [args.ngff]) if args.format == "ome-zarr" else (NNUNET, [])
    proc = subprocess.run(
        [sys.executable, "-c", script, str(store), str(out), *extra], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"export failed:\n{proc.stderr[-3000:]}")
    import json

    r = json.loads(proc.stdout.strip().splitlines()[-1])
    r |= {
        "format": args.format,
        "ngff": args.ngff if args.format == "ome-zarr" else None,
        "shape": shape,
        "cases_per_s": r["cases"] / r["seconds"],
        "mb_per_s": r["voxel_bytes"] / 1e6 / r["seconds"],
        "output_mb": du(out) / 1e6,
        "store_mb": du(store) / 1e6,
        "files": sum(1 for p in out.rglob("*") if p.is_file()),
    }
    r["rss_growth_over_largest_case"] = r["rss_growth_mb"] / (r["largest_case_bytes"] / 2**20)
    print(
        f"export {args.format} {r['ngff'] or ''}: {r['cases']} cases of {shape} in {r['seconds']:.1f} s = "
        f"{r['cases_per_s']:.2f} cases/s, {r['mb_per_s']:.1f} MB/s of image+label voxels "
        f"({r['voxel_bytes'] / 1e6:.0f} MB); output {r['output_mb']:.0f} MB in {r['files']} files "
        f"(store {r['store_mb']:.0f} MB); peak RSS growth {r['rss_growth_mb']:.0f} MB = "
        f"{r['rss_growth_over_largest_case']:.2f}× one case's voxels"
    )
    write_json(OUT / f"export-{args.format}.json", r)
    shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
