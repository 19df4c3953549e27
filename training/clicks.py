"""Interactive training (SAM, micro-sam): a box decode, then rounds of corrective clicks, each decoded again.

Round 0 decodes each item's training prompt. Round ``r`` (1..``rounds``) thresholds the previous
round's detached prediction at the model frame size (logits > 0, inside the item's ``valid``
region), draws one corrective click per item on its error with
:func:`samdata.prompts.corrective_click` (positive in a false negative, negative in a false
positive), appends it to the item's points, and decodes box + every click so far on the same
features, with the previous round's low-res logits as mask input when ``feed_logits`` is on (as
SAM's training and :func:`training.evaluate.evaluate_interactive` do). An item whose prediction is
already exact gets no click that round (a padding point, label -1). The trainer adds the loss of
every round (:meth:`training.loop.Trainer.step`). The frozen prefix and the trainable encoder suffix
of encoder-adapted runs are computed once per batch (the image embedding does not depend on the
prompt; the suffix's gradient sums every round's); each round reruns the prompt encoder, the mask
decoder and a refinement head.

Clicks are drawn in model-frame pixels on the frame-size mask the loss also sees; evaluation draws
them on the stored slice and maps them into the frame (``Prompt.to_frame``); the two differ only by
that resampling (MNI152's 233 x 197 slices are 1.1x larger in LiteMedSAM's 256 frame). One generator per round,
``default_rng([seed, rank, step, micro-batch, round])``, draws the clicks of the batch's items in
order: same run, same clicks, resumed or not. Written here rather than taken from micro-sam: it is
a loop around this project's own ``corrective_click`` and decoder call.
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


def draw_clicks(pred: np.ndarray, truth: np.ndarray, rng: np.random.Generator, mode: str = "interior"
                ) -> tuple[np.ndarray, np.ndarray]:
    """One corrective click per item for (N, S, S) bool predictions of (N, S, S) bool truths (model pixels):
    ((N, 2) float32 (x, y), (N,) int64 label 1 in a miss, 0 in a false alarm, -1 where ``pred`` is exact)."""
    if pred.shape != truth.shape or pred.ndim != 3:
        raise ValidationError(f"draw_clicks needs (N, S, S) pred and truth of one shape; got {pred.shape} and "
                              f"{truth.shape}")
    xy = np.zeros((len(pred), 2), dtype=np.float32)
    labels = np.full(len(pred), -1, dtype=np.int64)
    for i, (p, t) in enumerate(zip(pred, truth, strict=True)):
        if np.array_equal(p, t):
            continue
        click = corrective_click(t, p, rng, mode=mode)
        xy[i], labels[i] = click.points[0], int(click.point_labels[0])
    return xy, labels


def append_clicks(points: torch.Tensor, labels: torch.Tensor, xy: torch.Tensor, click_labels: torch.Tensor
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

    def run(self, decode: Decode, prompts: tuple[torch.Tensor, ...], upsample: Callable[[torch.Tensor], torch.Tensor],
            truth: torch.Tensor, valid: torch.Tensor, rng: Callable[[int], np.random.Generator]
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
                points, labels = append_clicks(points, labels, torch.from_numpy(xy).to(points.device),
                                               torch.from_numpy(click).to(labels.device))
                if self.feed_logits:
                    feed = last.detach().float()
            logits, iou = decode(boxes, has_box, points, labels, feed)
            with torch.no_grad():
                out.append((logits, iou, upsample(logits.detach().float())))
        return out
