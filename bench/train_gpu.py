"""GPU training throughput: images/s and peak memory per model × adapter × batch size, bf16.

Run where a CUDA device is present: ``.venv/bin/python bench/train_gpu.py [--quick]``.
Models: LiteMedSAM (256², the pretrained weights) and SAM ViT-B (1024², random weights saved to a
temporary checkpoint — speed does not depend on the values). Each configuration runs full training
steps (encoder with adapters, prompt encoder, mask decoder, Dice + BCE, backward, AdamW) under bf16
autocast, first on in-memory tensors already on the GPU (the upper bound), then fed by the real
loader (MixtureDataset over a store built here from CT phantoms, DataLoader workers, pinned memory).
The ratio store/in-memory says whether the loader starves the GPU (target ≥ 0.95).
Writes ``bench/out/train_gpu.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from monai.losses import DiceLoss

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: bench.common, this checkout
from bench.common import OUT, phantom_store, write_json


def build(name: str, adapter: str, ckpt_dir: Path, weights: str | None):
    """A model with adapters applied, on the GPU, and its trainable parameters."""
    from training.adapters import apply_adapters, parse_adapter
    from training.models import build_model

    checkpoint = weights if name == "litemedsam" else None
    if name == "sam_vit_b":
        checkpoint = ckpt_dir / "sam_vit_b_random.pth"
        if not checkpoint.exists():
            from segment_anything import sam_model_registry

            torch.save(sam_model_registry["vit_b"](checkpoint=None).state_dict(), checkpoint)
    model = build_model(name, checkpoint=checkpoint)
    report = apply_adapters(model, parse_adapter(adapter))
    model = model.cuda().train()
    params = [p for p in model.parameters() if p.requires_grad]
    return model, params, report


def make_step(model, params):
    """One optimiser step on a batch dict (image (B,3,S,S) in [0,1], mask, box) under bf16 autocast."""
    dice = DiceLoss(sigmoid=True, squared_pred=True, reduction="mean")
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01)

    def step(batch: dict) -> None:
        images = batch["image"].cuda(non_blocking=True)
        mask = batch["mask"].cuda(non_blocking=True).float()
        box = batch["box"].cuda(non_blocking=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits, _iou = model(model.preprocess(images), boxes=box)  # uint8 0..255 in, like the loader
        logits = logits.float()
        if logits.shape[-1] != mask.shape[-1]:
            mask = F.interpolate(mask, size=logits.shape[-2:], mode="nearest")
        loss = dice(logits, mask) + F.binary_cross_entropy_with_logits(logits, mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def synthetic_batch(batch: int, size: int) -> dict:
    """In-memory tensors on the GPU shaped like the loader's uint8 items."""
    g = torch.Generator().manual_seed(0)
    mask = torch.zeros(batch, 1, size, size)
    mask[:, :, size // 4 : size // 2, size // 4 : size // 2] = 1
    box = torch.tensor([size / 4, size / 4, size / 2, size / 2]).repeat(batch, 1)
    image = torch.randint(0, 256, (batch, 3, size, size), generator=g, dtype=torch.uint8)
    return {"image": image.cuda(), "mask": mask.cuda(), "box": box.cuda()}


def timed(step, batches, n: int, warmup: int) -> tuple[float, float]:
    """(images/s, peak GiB) over ``n`` steps after ``warmup`` steps; ``batches`` yields batch dicts."""
    it = iter(batches)
    for _ in range(warmup):
        step(next(it))
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    images = 0
    for _ in range(n):
        b = next(it)
        step(b)
        images += b["image"].shape[0]
    torch.cuda.synchronize()
    return images / (time.perf_counter() - t), torch.cuda.max_memory_allocated() / 2**30


def forever(loader):
    """Cycle a DataLoader endlessly."""
    while True:
        yield from loader


def build_store(work: Path, cases: int = 12) -> str:
    """Phantoms → ingest → prompt set → mixture; returns the store url."""
    from pipelines.mixtures import MixtureConfig, make_mixture
    from pipelines.prompt_sets import make_prompt_set
    from samdata.normalise import IngestConfig

    store = str(phantom_store(work, cases, IngestConfig(modality="CT", window="abdomen"), workers=4))
    make_prompt_set(store, "box:jitter=5", "boxes", seed=0)
    make_mixture(store, "bench", MixtureConfig(prompt_set="boxes", seed=0))
    return store


def main() -> None:
    """Run the grid and print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer configurations and steps")
    parser.add_argument("--workers", type=int, default=min(12, os.cpu_count() or 2))
    parser.add_argument("--store", help="an existing store with mixture 'bench' (default: build one here)")
    parser.add_argument("--litemedsam-weights", help="LiteMedSAM weights file (default: the packaged ones)")
    parser.add_argument("--models", default="litemedsam,sam_vit_b", help="comma-separated subset of the grid")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("bench/train_gpu.py needs a CUDA device")
    torch.backends.cuda.matmul.allow_tf32 = True
    from training.dataset import DatasetConfig, MixtureDataset, mixture_loader

    steps, warmup = (8, 3) if args.quick else (15, 4)
    grid = {
        "litemedsam": (256, ["decoder", "serial", "parallel", "lora:r=8", "lora:r=8+decoder"], [8, 32]),
        "sam_vit_b": (1024, ["decoder", "lora:r=8", "serial"], [2, 8]),
    }
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        t = time.perf_counter()
        store = args.store or build_store(work)
        print(f"store built in {time.perf_counter() - t:.0f} s", flush=True)
        loaders = {}  # one persistent loader per (size, batch), shared by the adapters
        for name, (size, adapters, batches) in grid.items():
            if name not in args.models.split(","):
                continue
            dataset = MixtureDataset(store, "bench", "train", DatasetConfig(size=size, dtype="uint8"))
            for adapter in adapters[: 2 if args.quick else None]:
                model, params, report = build(name, adapter, work, args.litemedsam_weights)
                step = make_step(model, params)
                for bs in batches:
                    mem_ips, peak = timed(
                        step, iter(lambda bs=bs, size=size: synthetic_batch(bs, size), None), steps, warmup
                    )
                    if (size, bs) not in loaders:
                        loader = mixture_loader(dataset, bs, num_workers=args.workers, shuffle=True)
                        loader.pin_memory = True
                        loaders[(size, bs)] = forever(loader)
                    store_ips, _ = timed(step, loaders[(size, bs)], steps, warmup)
                    row = {
                        "model": name,
                        "size": size,
                        "adapter": adapter,
                        "batch": bs,
                        "trainable": report.trainable,
                        "fraction": report.fraction,
                        "images_per_s_memory": mem_ips,
                        "images_per_s_store": store_ips,
                        "store_over_memory": store_ips / mem_ips,
                        "peak_gib": peak,
                    }
                    rows.append(row)
                    print(json.dumps(row), flush=True)
                del model, params, step
                torch.cuda.empty_cache()
    device = torch.cuda.get_device_name(0)
    print(f"\n{device}, torch {torch.__version__}, bf16 autocast, {steps} timed steps after {warmup}\n")
    print("| model | adapter | batch | trainable | img/s (memory) | img/s (store) | store/memory | peak GiB |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['model']} {r['size']}² | {r['adapter']} | {r['batch']} | {r['trainable']:,} "
            f"({100 * r['fraction']:.1f}%) | {r['images_per_s_memory']:.0f} | {r['images_per_s_store']:.0f} "
            f"| {r['store_over_memory']:.2f} | {r['peak_gib']:.1f} |"
        )
    write_json(OUT / "train_gpu.json", {"device": device, "rows": rows})


if __name__ == "__main__":  # guard: the loader's worker processes re-import this module
    main()
