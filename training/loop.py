"""One optimizer step and one validation pass: prompts to tensors, forward, loss, AdamW + warm-up/cosine.

The loss is MedSAM's (Dice + BCE on the decoder's low-res logits) plus LiteMedSAM's IoU-head MSE. The
forward continues from the cached frozen encoder prefix and DDP wraps only the trainable
:class:`Segmenter`, so only trainable weights are reduced. SAM's prompt encoder takes boxes for all prompts
or none, so a batch that mixes kinds is decoded in groups. Prompt-free models (the U-Net) skip prompts and
the cache; with ``click_rounds`` a micro-batch is an interactive session whose decodes share features and
one backward (:mod:`training.clicks`). A non-finite loss stops every rank with TrainingError naming the step.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from samdata.errors import TrainingError, ValidationError
from training.augment import pixel_frames
from training.cache import PrefixCache
from training.clicks import ClickRounds
from training.config import TrainConfig
from training.models import SamModel

MASK_PROMPT_LOGIT = 10.0  # a {0, 1} mask prompt enters the decoder as logits -10 / +10


def warmup_cosine(step: int, *, warmup: int, total: int) -> float:
    """LR factor at scheduler step ``step`` (0-based): linear warm-up over ``warmup`` steps, cosine to 0."""
    if step < warmup:
        return (step + 1) / warmup
    span = max(total - warmup, 1)
    return 0.5 * (1.0 + math.cos(math.pi * min(step - warmup, span) / span))


def is_promptable(model: nn.Module) -> bool:
    """Whether ``model`` decodes prompts (SAM-shaped) rather than segmenting the image alone."""
    return bool(getattr(model, "promptable", True))


@dataclass(frozen=True)
class Dist:
    """This process's place in a (possibly one-process) distributed run."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        """Whether more than one process takes part."""
        return self.world > 1


def batch_prompt_tensors(batch: dict[str, Any], low_res: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """A collated dataset batch's prompts as :meth:`Segmenter.forward`'s inputs on ``device``:
    (boxes (N, 4), has_box (N,) bool, points (N, P, 2), point_labels (N, P), mask_inputs (N, 1, L, L) or empty).
    A list of :class:`~samdata.prompts.Prompt` goes through :func:`training.predict.prompt_tensors_for`."""
    boxes = batch["box"].to(device)
    has_box = torch.as_tensor(batch["has_box"], dtype=torch.bool).to(device)
    points, labels = batch["points"].to(device), batch["point_labels"].to(device)
    if "mask_prompt" in batch:
        masks = F.interpolate(batch["mask_prompt"].to(device), size=(low_res, low_res), mode="area")
        masks = (masks - 0.5) * (2.0 * MASK_PROMPT_LOGIT)
    else:
        masks = boxes.new_empty((0,))
    return boxes, has_box, points, labels, masks


class Segmenter(nn.Module):
    """The trainable forward: frozen-prefix features + prompts → low-res logits (N, 1, L, L), IoU (N, 1)."""

    def __init__(self, model: SamModel, from_block: int) -> None:
        super().__init__()
        self.model, self.from_block = model, from_block
        self.n_blocks = len(model.encoder_blocks()) if is_promptable(model) else 0
        encoder = getattr(model, "prompt_encoder", None) if is_promptable(model) else None
        self.prompt_params = [p for p in encoder.parameters() if p.requires_grad] if encoder is not None else []

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        """The image embeddings of frozen-prefix ``features``: the trainable encoder suffix applied (if any)."""
        return features if self.from_block >= self.n_blocks else self.model.encode_suffix(features, self.from_block)

    def forward(
        self,
        features: torch.Tensor,
        boxes: torch.Tensor,
        has_box: torch.Tensor | None = None,
        points: torch.Tensor | None = None,
        point_labels: torch.Tensor | None = None,
        masks: torch.Tensor | None = None,
        images: torch.Tensor | None = None,
        embedded: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Decode one prompt per item (see :func:`batch_prompt_tensors` for the arguments); for a prompt-free model
        ``features`` are the preprocessed frames and ``boxes`` each item's output channel (N,) int64.
        ``images``: the (N, 3, S, S) preprocessed frames, for a model with a refinement head. ``embedded``:
        ``features`` are already :meth:`embed`'s output (several decodes of one batch share one suffix pass)."""
        if not is_promptable(self.model):
            return self.model.segment(features, boxes), None
        assert has_box is not None and points is not None and point_labels is not None and masks is not None
        emb = features if embedded else self.embed(features)
        counts = (point_labels >= 0).sum(1)
        kinds = (has_box.long() * 2 + (counts > 0).long()).tolist()
        if not masks.numel() and 0 in kinds:
            raise ValidationError(f"item {kinds.index(0)} of the batch has no box, point or mask prompt")
        groups = sorted(set(kinds))
        if len(groups) == 1:
            return self._touch(
                *self._decode(emb, boxes, points, point_labels, masks, kinds[0], int(counts.max()), images)
            )
        logits: torch.Tensor | None = None
        iou: torch.Tensor | None = None
        for kind in groups:
            idx = torch.tensor([i for i, k in enumerate(kinds) if k == kind], device=emb.device)
            part = self._decode(
                emb[idx],
                boxes[idx],
                points[idx],
                point_labels[idx],
                masks[idx] if masks.numel() else masks,
                kind,
                int(counts[idx].max()),
                None if images is None else images[idx],
            )
            if logits is None:
                logits = part[0].new_empty((len(kinds), *part[0].shape[1:]))
                iou = part[1].new_empty((len(kinds), *part[1].shape[1:]))
            logits, iou = logits.index_copy(0, idx, part[0]), iou.index_copy(0, idx, part[1])  # type: ignore[union-attr]
        assert logits is not None and iou is not None
        return self._touch(logits, iou)

    def _touch(self, logits: torch.Tensor, iou: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """With a trainable prompt encoder (adapter ``prompt``), ``logits`` plus zero times each of its weights:
        a decode uses only some of them (point or box embeddings, mask input or not), and DDP needs every
        trainable weight in every step's graph; the unused ones get a zero gradient, in one process too."""
        if not self.prompt_params or not torch.is_grad_enabled():
            return logits, iou
        return logits + 0.0 * sum(p.sum() for p in self.prompt_params), iou

    def _decode(
        self,
        emb: torch.Tensor,
        boxes: torch.Tensor,
        points: torch.Tensor,
        labels: torch.Tensor,
        masks: torch.Tensor,
        kind: int,
        n_points: int,
        images: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        with_points = kind & 1
        return self.model.decode(
            emb,
            boxes=boxes if kind & 2 else None,
            points=points[:, :n_points] if with_points else None,
            point_labels=labels[:, :n_points] if with_points else None,
            mask_inputs=masks if masks.numel() else None,
            images=images,
        )


class SegLoss(nn.Module):
    """Dice (sigmoid, squared) + BCE on logits, plus ``iou_weight`` × MSE of the IoU head."""

    def __init__(self, iou_weight: float) -> None:
        from monai.losses import DiceLoss  # imported here: ``import monai`` loads all of MONAI (seconds of CPU)

        super().__init__()
        self.dice = DiceLoss(sigmoid=True, squared_pred=True, reduction="mean")
        self.bce = nn.BCEWithLogitsLoss()
        self.iou_weight = iou_weight

    def forward(
        self, logits: torch.Tensor, iou: torch.Tensor | None, target: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(total loss, (4,) [total, dice, bce, iou_mse] detached) for (N, 1, L, L) logits and {0,1} target."""
        logits = logits.float()
        if target.shape[-2:] != logits.shape[-2:]:
            target = F.interpolate(target, size=logits.shape[-2:], mode="area")
        dice, bce = self.dice(logits, target), self.bce(logits, target)
        total = dice + bce
        iou_mse = torch.zeros((), device=logits.device)
        if self.iou_weight > 0 and iou is not None:
            with torch.no_grad():
                pred, truth = logits > 0, target > 0.5
                inter = (pred & truth).flatten(1).sum(1).float()
                union = (pred | truth).flatten(1).sum(1).float()
                actual = torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))
            iou_mse = F.mse_loss(iou.float()[:, 0], actual)
            total = total + self.iou_weight * iou_mse
        return total, torch.stack([total, dice, bce, iou_mse]).detach()


def dice_scores(logits: torch.Tensor, masks: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """(N,) Dice of (N, 1, S, S) logits > 0 against (N, 1, S, S) masks inside (N, S, S) valid; 1 if both empty."""
    pred = (logits[:, 0] > 0) & valid
    truth = (masks[:, 0] > 0.5) & valid
    inter = (pred & truth).flatten(1).sum(1).float()
    size = pred.flatten(1).sum(1).float() + truth.flatten(1).sum(1).float()
    return torch.where(size > 0, 2 * inter / size.clamp(min=1), torch.ones_like(size))


def param_groups(model: nn.Module, config: TrainConfig) -> list[dict[str, Any]]:
    """The optimizer's parameter groups: every trainable weight at ``config.lr``, except a refinement head's
    (``refine`` adapter) at ``lr_scale`` times it."""
    head = getattr(model, "refiner", None)
    head_ids = {id(p) for p in head.parameters()} if head is not None else set()
    base = [p for p in model.parameters() if p.requires_grad and id(p) not in head_ids]
    groups: list[dict[str, Any]] = [{"params": base, "lr": config.lr}] if base else []
    if head is not None:
        groups.append({"params": [p for p in head.parameters() if p.requires_grad], "lr": config.lr * head.lr_scale})
    return groups


class Trainer:
    """Holds model, optimizer, scheduler, loss and cache; runs optimizer steps and validation."""

    def __init__(
        self,
        model: SamModel,
        first_block: int,
        config: TrainConfig,
        device: torch.device,
        cache: PrefixCache,
        ranks: Dist,
    ) -> None:
        self.model, self.config, self.device, self.cache, self.ranks = model, config, device, cache, ranks
        self.val_scores: list[float] = []
        self.segmenter = Segmenter(model, first_block)
        self.forward_module: nn.Module = self.segmenter
        if ranks.active:
            self.forward_module = DistributedDataParallel(
                self.segmenter, device_ids=[device.index] if device.type == "cuda" else None
            )
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(param_groups(model, config), lr=config.lr, weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, partial(warmup_cosine, warmup=config.warmup, total=config.steps)
        )
        self.loss = SegLoss(config.iou_loss)
        self.bf16 = config.bf16 and device.type == "cuda"
        self.clicks = ClickRounds(config.click_rounds, config.click_mode, config.click_feed_logits)

    def _autocast(self) -> Any:
        return torch.autocast("cuda", dtype=torch.bfloat16) if self.bf16 else nullcontext()

    def _features(self, batch: dict[str, Any], images: torch.Tensor) -> torch.Tensor:
        """The cached frozen-prefix output of the batch's ``images`` (on the device; call under autocast). Slice
        stacks (``depth_z``: a ``depth`` adapter) are cached per slice of each stack: (B·k, ...) rows."""
        views = batch["view"].tolist() if "view" in batch else [0] * len(batch["case_id"])
        if "depth_z" in batch:
            stacks = batch["depth_z"].tolist()
            keys = [
                (case_id, z, view) if view >= 0 else None
                for case_id, zs, view in zip(batch["case_id"], stacks, views, strict=True)
                for z in zs
            ]
            return self.cache(images.reshape(len(keys), -1, *images.shape[-2:]), keys)
        return self.cache(
            images,
            [
                (case_id, int(z), view) if view >= 0 else None
                for case_id, z, view in zip(batch["case_id"], batch["z"].tolist(), views, strict=True)
            ],
        )

    def _inputs(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The batch's images on the device, moved once: (cached prefix features, preprocessed frames when the
        model's refinement head reads them, else None); call under autocast."""
        images = batch["image"].to(self.device, non_blocking=True)
        frames = None
        if getattr(self.model, "refiner", None) is not None:
            frames = self.model.preprocess(pixel_frames(images))
        return self._features(batch, images), frames

    def _forward(self, module: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor | None]:
        with self._autocast():
            if not is_promptable(self.model):
                images = batch["image"].to(self.device, non_blocking=True)
                return module(self.model.preprocess(pixel_frames(images)), self.model.channels(batch["label_name"]))
            features, frames = self._inputs(batch)
            return module(features, *batch_prompt_tensors(batch, self.model.low_res_size, self.device), images=frames)

    def _click_loss(self, step: int, micro: int, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean loss over the box decode and ``click_rounds`` corrective-click decodes (:mod:`training.clicks`),
        on features computed once; parts (6,): [total, dice, bce, iou_mse] means, train Dice of rounds 0 and last."""
        target, valid = batch["mask"].to(self.device, torch.float32), batch["valid"].to(self.device)
        seed = [self.config.seed, self.ranks.rank, step, micro]
        with self._autocast():
            features, frames = self._inputs(batch)
            emb = self.segmenter.embed(features)  # the image's embedding is the same in every round: one suffix pass
            rounds = self.clicks.run(
                partial(self.forward_module, emb, images=frames, embedded=True),
                batch_prompt_tensors(batch, self.model.low_res_size, self.device),
                self.model.postprocess,
                target[:, 0] > 0.5,
                valid,
                lambda r: np.random.default_rng([*seed, r]),
            )
        losses = [self.loss(logits, iou, target) for logits, iou, _ in rounds]
        dice = [dice_scores(full, target, valid).mean() for _, _, full in (rounds[0], rounds[-1])]
        loss = torch.stack([total for total, _ in losses]).mean()
        return loss, torch.cat([torch.stack([parts for _, parts in losses]).mean(0), torch.stack(dice)])

    def step(self, step: int, batches: list[dict[str, Any]]) -> dict[str, float]:
        """One optimizer step (number ``step``, 1-based) over ``grad_accum`` collated micro-batches; with
        ``click_rounds`` each micro-batch's loss is the mean over its click rounds (one backward)."""
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        clicking = self.config.click_rounds > 0 and is_promptable(self.model)
        sums = torch.zeros(6 if clicking else 4, device=self.device)
        for micro, batch in enumerate(batches):
            last = micro == len(batches) - 1
            sync = nullcontext() if last or not self.ranks.active else self.forward_module.no_sync()
            with sync:
                if clicking:
                    loss, parts = self._click_loss(step, micro, batch)
                else:
                    logits, iou = self._forward(self.forward_module, batch)
                    loss, parts = self.loss(logits, iou, batch["mask"].to(self.device, torch.float32))
                if self.ranks.active:
                    dist.all_reduce(parts)
                    parts /= self.ranks.world
                if not bool(torch.isfinite(parts[0])):
                    raise TrainingError(
                        f"non-finite loss {float(parts[0])} at step {step} (micro-batch {micro + 1} "
                        f"of {len(batches)}; objects {list(zip(batch['case_id'], batch['z'].tolist()))})"
                    )
                (loss / len(batches)).backward()
            sums += parts
        norm = torch.nn.utils.clip_grad_norm_(self.params, max_norm=float("inf"))
        if not bool(torch.isfinite(norm)):
            raise TrainingError(f"non-finite gradient norm {float(norm)} at step {step}")
        lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        self.scheduler.step()
        mean = (sums / len(batches)).tolist()
        out = {
            "loss": mean[0],
            "dice_loss": mean[1],
            "bce": mean[2],
            "iou_mse": mean[3],
            "lr": lr,
            "grad_norm": float(norm),
        }
        if clicking:
            out.update(train_dice_box=mean[4], train_dice_clicks=mean[5])
        return out

    @torch.no_grad()
    def validate(self, batches: Iterable[dict[str, Any]]) -> dict[str, float]:
        """Mean Dice (at model input size, padding excluded) of the model over validation batches; the Dice of
        each object, in order, is kept in ``val_scores``."""
        self.model.eval()
        scores = []
        for batch in batches:
            logits, _ = self._forward(self.segmenter, batch)
            full = self.model.postprocess(logits.float()) if is_promptable(self.model) else logits.float()
            scores.append(
                dice_scores(full, batch["mask"].to(self.device, torch.float32), batch["valid"].to(self.device)).cpu()
            )
        self.model.train()
        values = torch.cat(scores) if scores else torch.zeros(0)
        self.val_scores = [round(float(v), 6) for v in values]
        return {"val_dice": float(values.mean()) if len(values) else float("nan"), "val_n": len(values)}

    def state_dict(self) -> dict[str, Any]:
        """Optimizer and scheduler state (trainable weights are saved by the caller)."""
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore optimizer and scheduler state from :meth:`state_dict` output."""
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
