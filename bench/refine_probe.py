"""Probe a refinement head on a trained run's frozen SAM logits: how much full-resolution detail it adds.

Run: ``.venv/bin/python bench/refine_probe.py RUN_DIR [--steps 300 --batch 4 --lr 2e-4,1e-3]``, where
RUN_DIR is a ``samdata train`` run with ``val_slices`` (e.g. a ``bench/low_data.py`` run). The run's
model (frozen) predicts low-res logits for its training objects and its held-out validation objects,
once; then :class:`training.adapters.RefineHead` (width 16) is trained on (image, logits) → mask with
Dice + BCE inside the valid region, AdamW with cosine decay, at each learning rate given, and once
more on the image alone (logits zeroed: what the head does without SAM). Prints held-out Dice at the
model input size (as the trainer's validation) for SAM alone and each head; writes
``bench/out/refine_probe.json``. This is how the refinement head was found (BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: bench.common, this checkout
from bench.common import OUT, write_json
from samdata.prompts import object_rng
from training.adapters import RefineHead
from training.batches import build_data
from training.predict import model_input
from training.run import load_run


@torch.no_grad()
def collect(run, dataset, indices) -> tuple[torch.Tensor, ...]:
    """(frames (N, 3, S, S) preprocessed, logits (N, 1, L, L), masks (N, 1, S, S), valid (N, 1, S, S)) of items."""
    objects = dataset.objects()
    out: list[list[torch.Tensor]] = [[], [], [], []]
    for i in indices:
        row = objects.iloc[int(i)]
        item = dataset.item(int(i), object_rng(run.config.seed, str(row["case_id"]), int(row["z"]), int(row["label"])))
        x = model_input(run.model, item["image"][None])
        logits, _ = run.model.decode(run.model.encode(x), boxes=item["box"][None], images=x)
        for bucket, value in zip(
            out, (x[0], logits[0].float(), item["mask"].float(), item["valid"][None].float()), strict=True
        ):
            bucket.append(value)
    return tuple(torch.stack(b) for b in out)


def dice(logits: torch.Tensor, masks: torch.Tensor, valid: torch.Tensor) -> float:
    """Mean Dice of (N, 1, S, S) logits > 0 against masks inside the valid region."""
    pred = (logits > 0).float() * valid
    return float(
        (2 * (pred * masks).sum((1, 2, 3)) / (pred.sum((1, 2, 3)) + (masks * valid).sum((1, 2, 3))).clamp_min(1)).mean()
    )


def train_head(train, val, lr: float, steps: int, batch: int, with_logits: bool) -> tuple[float, float]:
    """Train a RefineHead; (train Dice, held-out Dice) at the end."""
    head = RefineHead(16, torch.Generator().manual_seed(0))
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=0.01)
    g = torch.Generator().manual_seed(0)

    def forward(frames: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return head(logits if with_logits else torch.zeros_like(logits), frames)

    for step in range(1, steps + 1):
        idx = torch.randint(len(train[0]), (batch,), generator=g)
        frames, logits, masks, valid = (t[idx] for t in train)
        out = forward(frames, logits)
        prob = torch.sigmoid(out) * valid
        dice_loss = 1 - (2 * (prob * masks).sum((1, 2, 3)) + 1) / (
            prob.sum((1, 2, 3)) + (masks * valid).sum((1, 2, 3)) + 1
        )
        bce = (F.binary_cross_entropy_with_logits(out, masks, reduction="none") * valid).sum() / valid.sum()
        opt.zero_grad()
        (dice_loss.mean() + bce).backward()
        opt.step()
        for group in opt.param_groups:
            group["lr"] = lr * 0.5 * (1 + np.cos(np.pi * step / steps))
    head.eval()
    with torch.no_grad():
        return dice(forward(*train[:2]), *train[2:]), dice(forward(*val[:2]), *val[2:])


def main() -> None:
    """Collect the run's logits, train the heads, print and save the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run", type=Path)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--lr", default="2e-4,1e-3")
    args = parser.parse_args()
    torch.manual_seed(0)
    run = load_run(args.run)
    data = build_data(run.config, run.info.get("snapshot_id"))
    assert data.val is not None, "the run needs held-out validation slices (val_slices)"
    t = time.perf_counter()
    train, val = collect(run, data.train, data.candidates), collect(run, data.val, data.val_indices)
    print(f"{len(train[0])} training / {len(val[0])} held-out objects, logits in {time.perf_counter() - t:.0f} s")
    rows = [{"variant": "SAM alone (the run)", "train_dice": dice(*train[1:]), "val_dice": dice(*val[1:])}]
    lrs = [float(v) for v in args.lr.split(",")]
    for lr, with_logits in [(lr, True) for lr in lrs] + [(lrs[-1], False)]:
        t = time.perf_counter()
        train_dice, val_dice = train_head(train, val, lr, args.steps, args.batch, with_logits)
        what = "image + SAM logits" if with_logits else "image alone"
        rows.append(
            {
                "variant": f"head on {what}, {args.steps} steps, batch {args.batch}, lr {lr:g}",
                "train_dice": train_dice,
                "val_dice": val_dice,
                "seconds": time.perf_counter() - t,
            }
        )
    print(f"\n{'variant':<62}{'train Dice':>11}{'held-out':>10}")
    for r in rows:
        print(f"{r['variant']:<62}{r['train_dice']:11.4f}{r['val_dice']:10.4f}")
    write_json(OUT / "refine_probe.json", {"run": str(args.run), "rows": rows})


if __name__ == "__main__":
    main()
