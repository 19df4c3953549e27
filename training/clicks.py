"""Interactive training (SAM, micro-sam): a box decode, then rounds of corrective clicks, each decoded again.

Each round thresholds the previous round's detached prediction, draws one corrective click per item on its
error (:func:`samdata.prompts.corrective_click`) and decodes the box and every click so far on the same
features (fed the previous low-res logits with ``feed_logits``); the trainer sums every round's loss. The
features are computed once per batch, since the image embedding does not depend on the prompt. Clicks come
from ``default_rng([seed, rank, step, micro-batch, round])``: same run, same clicks, resumed or not.
Written here rather than taken from micro-sam: it is a loop around this project's own
``corrective_click`` and decoder call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from samdata.errors import ValidationError
from samdata.prompts import corrective_click

#: a decode of prompts: (boxes, has_box, points, point_labels, mask_inputs) → (low-res logits, IoU or None)
Decode = Callable[..., tuple[torch.Tensor, torch.Tensor | None]]


def draw_clicks(
    pred: np.ndarray, truth: np.ndarray, rng: np.random.Generator, mode: str = "interior"
) -> tuple[np.ndarray, np.ndarray]:
    """One corrective click per item for (N, S, S) bool predictions of (N, S, S) bool truths (model pixels):
    ((N, 2) float32 (x, y), (N,) int64 label 1 in a miss, 0 in a false alarm, -1 where ``pred`` is exact)."""
    if pred.shape != truth.shape or pred.ndim != 3:
        raise ValidationError(
            f"draw_clicks needs (N, S, S) pred and truth of one shape; got {pred.shape} and {truth.shape}"
        )
    xy = np.zeros((len(pred), 2), dtype=np.float32)
    labels = np.full(len(pred), -1, dtype=np.int64)
    for i, (p, t) in enumerate(zip(pred, truth, strict=True)):
        if np.array_equal(p, t):
            continue
        click = corrective_click(t, p, rng, mode=mode)
        xy[i], labels[i] = click.points[0], int(click.point_labels[0])
    return xy, labels


def append_clicks(
    points: torch.Tensor, labels: torch.Tensor, xy: torch.Tensor, click_labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, P, 2) points and (N, P) labels (-1 = padding) with one (N, 2) click each appended after the item's
    own points: (N, P + 1, 2), (N, P + 1); a click labelled -1 stays padding."""
    order = torch.argsort((labels < 0).to(torch.int8), dim=1, stable=True)  # real points first, in order
    points = torch.cat([points.gather(1, order[..., None].expand(-1, -1, 2)), points.new_zeros((len(points), 1, 2))], 1)
    labels = torch.cat([labels.gather(1, order), labels.new_full((len(labels), 1), -1)], 1)
    rows = torch.nonzero(click_labels >= 0)[:, 0]
    slots = (labels[rows] >= 0).sum(1)
    points[rows, slots] = xy[rows].to(points)
    labels[rows, slots] = click_labels[rows].to(labels)
    return points, labels


@dataclass(frozen=True)
class ClickRounds:
    """The interactive session of a batch: ``rounds`` corrective clicks of ``mode`` after the first decode,
    each decode fed the previous low-res logits when ``feed_logits``."""

    rounds: int
    mode: str = "interior"
    feed_logits: bool = True

    def run(
        self,
        decode: Decode,
        prompts: tuple[torch.Tensor, ...],
        upsample: Callable[[torch.Tensor], torch.Tensor],
        truth: torch.Tensor,
        valid: torch.Tensor,
        rng: Callable[[int], np.random.Generator],
    ) -> list[tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]]:
        """(low-res logits, IoU, detached frame-size logits (N, 1, S, S)) of rounds 0..``rounds``.

        ``prompts``: :func:`training.loop.batch_prompt_tensors` output; ``upsample``: low-res logits (N, 1, L, L)
        to the frame (N, 1, S, S); ``truth``: (N, S, S) bool; ``valid``: (N, S, S) bool (padding False);
        ``rng(r)``: the generator of round ``r``. Without ``feed_logits`` every round gets round 0's mask
        input (the item's mask prompt, or none).
        """
        boxes, has_box, points, labels, masks = prompts
        truth_np = (truth & valid).cpu().numpy()
        out: list[tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]] = []
        for round_ in range(self.rounds + 1):
            feed = masks
            if round_:
                last, _, full = out[-1]
                pred = ((full[:, 0] > 0) & valid).cpu().numpy()
                xy, click = draw_clicks(pred, truth_np, rng(round_), self.mode)
                points, labels = append_clicks(
                    points, labels, torch.from_numpy(xy).to(points.device), torch.from_numpy(click).to(labels.device)
                )
                if self.feed_logits:
                    feed = last.detach().float()
            logits, iou = decode(boxes, has_box, points, labels, feed)
            with torch.no_grad():
                out.append((logits, iou, upsample(logits.detach().float())))
        return out
