"""Benchmark the mixture Dataset through a DataLoader against a naive per-sample NIfTI reader.

Run: ``.venv/bin/python bench/loader.py`` (defaults: 10 phantom cases of 256×256×64, batch 16, size 256,
workers 1 and 2). The stored cases are also written as uint8 ``.nii.gz``, so the baseline (``nib.load`` per
sample, then the same framing) reads the same pixels; both run through
``training.dataset.mixture_loader``. Reports the Dataset's cold and best warm epoch, the baseline, and a
"floor" (a Dataset returning copies of one item: the most the DataLoader allows), as samples/s and ratios
to the baseline of the same run; writes ``bench/out/loader.json``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from torch.utils.data import Dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: bench.common, this checkout
from bench.common import OUT, phantom_store, write_json
from samdata.prompts import parse_scheme
from training.augment import resize_pad, resize_pad_mask
from training.dataset import DatasetConfig, MixtureDataset, mixture_loader

TARGET_PER_WORKER = 1000.0
TARGET_RATIO = 20.0


class NiftiBaseline(Dataset):
    """The naive loader: every sample opens the case's .nii.gz files and reads one slice of each."""

    def __init__(self, folder: str, objects: list[tuple[str, int, int]], size: int) -> None:
        self.folder, self.objects, self.size = folder, objects, size
        self.scheme = parse_scheme("box:jitter=5")

    def __len__(self) -> int:
        return len(self.objects)

    def __getitem__(self, index: int) -> dict:
        case_id, z, value = self.objects[index]
        image = np.array(nib.load(f"{self.folder}/{case_id}_img.nii.gz").dataobj[..., z].T)
        label = np.array(nib.load(f"{self.folder}/{case_id}_seg.nii.gz").dataobj[..., z].T)
        mask = label == value
        prompt = self.scheme(mask, np.random.default_rng(index)).to_frame(mask.shape, self.size)
        return {
            "image": resize_pad(image[None], self.size),
            "mask": resize_pad_mask(mask, self.size),
            "box": torch.tensor(prompt.box, dtype=torch.float32),
            "case_id": case_id,
            "z": z,
            "label": value,
        }


class Floor(Dataset):
    """The DataLoader's own cost: every sample is a fresh copy of one item (same keys, shapes, dtypes)."""

    def __init__(self, template: dict, n: int) -> None:
        self.template, self.n = template, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> dict:
        return {k: _copy(v) for k, v in self.template.items()}


def _copy(value: object) -> object:
    """A fresh copy of an item value; a tensor expanded along dim 0 (a one-channel image) stays expanded."""
    if not isinstance(value, torch.Tensor):
        return value
    if value.ndim and value.shape[0] > 1 and value.stride(0) == 0:
        return value[:1].clone().expand_as(value)
    return value.clone()


def build(work: Path, cases: int, shape: tuple[int, int, int]) -> tuple[str, str]:
    """Phantoms → store (+ mixture 'bench', all train) and the stored cases as uint8 .nii.gz; (store, nifti dir)."""
    from pipelines.mixtures import MixtureConfig, make_mixture
    from samdata.normalise import IngestConfig
    from storage import SliceStore

    store_path = phantom_store(work, cases, IngestConfig(modality="CT", window="abdomen"), shape=shape)
    nifti = work / "nifti"
    make_mixture(store_path, "bench", MixtureConfig(splits=(1.0, 0.0, 0.0)))
    nifti.mkdir()
    store = SliceStore.open(store_path)
    for case_id in store.case_ids():
        case = store.read_case(case_id)
        affine = np.asarray(case.meta.geometry.affine)
        nib.save(nib.Nifti1Image(case.image.transpose(2, 1, 0), affine), nifti / f"{case_id}_img.nii.gz")
        nib.save(nib.Nifti1Image(case.label.transpose(2, 1, 0), affine), nifti / f"{case_id}_seg.nii.gz")
    shutil.rmtree(work / "src")
    return str(store_path), str(nifti)


def timed_epochs(dataset: Dataset, order: list[int], workers: int, batch: int, epochs: int) -> dict:
    """Samples/s of ``epochs`` passes over ``order`` with persistent workers; start-up timed apart."""
    sampler = order  # a list of indices is a valid sampler: same order for every variant
    t0 = time.perf_counter()
    loader = mixture_loader(dataset, batch, num_workers=workers, sampler=sampler)
    result: dict = {"samples": len(order), "epochs": []}
    for epoch in range(epochs):
        it = iter(loader)
        first = next(it)
        t1 = time.perf_counter()
        if epoch == 0:
            result["startup_s"] = t1 - t0
        n = len(first["case_id"])
        for item in it:
            n += len(item["case_id"])
        seconds = time.perf_counter() - t1
        rate = (n - len(first["case_id"])) / seconds
        result["epochs"].append({"seconds": seconds, "samples_per_s": rate, "per_worker": rate / max(workers, 1)})
    del loader
    return result


def main() -> None:
    """Build the data, time the Dataset and the baseline per worker count, print and save the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=10)
    parser.add_argument("--shape", default="256,256,64", help="X,Y,Z of each phantom")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--baseline-samples", type=int, default=480)
    parser.add_argument("--work", type=Path, default=OUT / "loader-work")
    args = parser.parse_args()
    shape = tuple(int(v) for v in args.shape.split(","))
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    t = time.perf_counter()
    store, nifti = build(args.work, args.cases, shape)
    print(f"data: {args.cases} phantoms {shape} → store + uint8 .nii.gz in {time.perf_counter() - t:.0f} s")

    datasets = {
        dtype: MixtureDataset(store, "bench", "train", DatasetConfig(size=args.size, dtype=dtype))
        for dtype in ("float32", "uint8")
    }
    objects = datasets["float32"].objects()
    keys = list(zip(objects["case_id"].astype(str), objects["z"].astype(int), objects["label"].astype(int)))
    baseline = NiftiBaseline(nifti, keys, args.size)
    order = torch.randperm(len(keys), generator=torch.Generator().manual_seed(0)).tolist()
    n_base = min(args.baseline_samples, len(order))
    print(
        f"objects: {len(keys)} (area >= 10) on {objects[['case_id', 'z']].drop_duplicates().shape[0]} slices; "
        f"baseline on the first {n_base} of the same shuffled order; {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f} (other processes share them)"
    )

    rows = []
    for workers in (int(w) for w in args.workers.split(",")):
        base = timed_epochs(baseline, order[:n_base], workers, args.batch, epochs=1)
        base_rate = base["epochs"][0]["samples_per_s"]
        rows.append(
            {
                "workers": workers,
                "variant": "nifti baseline (float32)",
                "samples_per_s": base_rate,
                "per_worker": base["epochs"][0]["per_worker"],
                "ratio": 1.0,
                "startup_s": base["startup_s"],
            }
        )
        for dtype, dataset in datasets.items():
            floor = timed_epochs(Floor(dataset[0], len(order)), order, workers, args.batch, epochs=1)
            rate = floor["epochs"][0]["samples_per_s"]
            rows.append(
                {
                    "workers": workers,
                    "variant": f"floor {dtype} (copy one item)",
                    "samples_per_s": rate,
                    "per_worker": rate / workers,
                    "ratio": rate / base_rate,
                    "startup_s": floor["startup_s"],
                }
            )
            ours = timed_epochs(dataset, order, workers, args.batch, epochs=3)
            warm = max(ours["epochs"][1:], key=lambda e: e["samples_per_s"])  # best of two: the CPUs are shared
            for epoch, name in ((ours["epochs"][0], "cold"), (warm, "warm")):
                rows.append(
                    {
                        "workers": workers,
                        "variant": f"dataset {dtype} epoch {name}",
                        "samples_per_s": epoch["samples_per_s"],
                        "per_worker": epoch["per_worker"],
                        "ratio": epoch["samples_per_s"] / base_rate,
                        "startup_s": ours["startup_s"] if name == "cold" else None,
                    }
                )

    print(f"\n{'workers':>7}  {'variant':<30}{'samples/s':>10}{'per worker':>12}{'x baseline':>12}{'start-up s':>12}")
    for r in rows:
        startup = f"{r['startup_s']:12.1f}" if r["startup_s"] is not None else f"{'':>12}"
        print(
            f"{r['workers']:>7}  {r['variant']:<30}{r['samples_per_s']:10.0f}{r['per_worker']:12.0f}"
            f"{r['ratio']:12.1f}{startup}"
        )
    for dtype in datasets:
        warm = [r for r in rows if r["variant"] == f"dataset {dtype} epoch warm"]
        print(
            f"{dtype} warm: best {max(r['per_worker'] for r in warm):.0f} samples/s per worker "
            f"(target >= {TARGET_PER_WORKER:.0f}), best {max(r['ratio'] for r in warm):.1f}x baseline "
            f"(target >= {TARGET_RATIO:.0f}x)"
        )
    out = {
        "cases": args.cases,
        "shape": shape,
        "size": args.size,
        "batch": args.batch,
        "objects": len(keys),
        "cpus": os.cpu_count(),
        "load_average_end": os.getloadavg()[0],
        "rows": rows,
        "targets": {"per_worker": TARGET_PER_WORKER, "ratio": TARGET_RATIO},
    }
    write_json(OUT / "loader.json", out)
    shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    main()
