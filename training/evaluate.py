"""Evaluation of a run on a split of its mixture: adapted vs zero-shot, per slice, per case & label, overall.

Each slice is encoded once per model and all its objects decoded against that embedding; probabilities are
scored on the stored slice grid. Objects are averaged per case & label, then over those pairs, so each
structure of each patient weighs the same however many slices it spans. :func:`evaluate_interactive` adds
corrective clicks one at a time (the RITM / micro-sam protocol), and :func:`region_ceiling` what k perfect
local corrections could give, which bounds what clicks can add where the error is many small boundary
slivers (white matter).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy import ndimage

from samdata.case import CaseMeta
from samdata.errors import ConfigError
from samdata.metrics import METRICS, dice, object_metrics
from samdata.prompts import Prompt, corrective_click, object_rng
from storage import SliceStore
from training.batches import SeededMixture
from training.dataset import MixtureDataset
from training.eval_config import EvalConfig as EvalConfig
from training.eval_config import check_clicks as check_clicks
from training.loop import MASK_PROMPT_LOGIT, is_promptable
from training.models import SamModel
from training.predict import decode_prompts, model_input, to_probabilities
from training.tta import View, flip_frames, flip_prompts, mean_of_views, tta_views, unflip

#: progress reporting: ``stages(description, total)`` starts a stage and returns ``advance(n)``
Stages = Callable[[str, int], Callable[[int], None]]


@dataclass(frozen=True)
class SliceBatch:
    """One slice's objects: dataset indices and item dicts, the stored (Y, X) image and label, spacing (Y, X)
    in mm, label names."""

    case_id: str
    z: int
    indices: list[int]
    items: list[dict]
    image: np.ndarray
    label: np.ndarray
    spacing: tuple[float, float]
    names: list[str]

    def prompt(self, i: int) -> Prompt:
        """The framed prompt of object ``i`` (model pixels) from its item."""
        item = self.items[i]
        keep = item["point_labels"] >= 0
        box = tuple(int(v) for v in item["box"].tolist()) if item["has_box"] else None
        return Prompt(box, item["points"][keep].numpy(), item["point_labels"][keep].numpy())  # type: ignore[arg-type]

    def mask_inputs(self, low_res: int, view: View = (False, False)) -> torch.Tensor | None:
        """The items' mask prompts as (n, 1, L, L) logits, as training feeds them, mirrored as ``view`` says
        (:mod:`training.tta`; a mask prompt covers the padded frame at its own size, so it is brought to the
        frame's S x S by nearest neighbour and flipped there); None without mask prompts."""
        if "mask_prompt" not in self.items[0]:
            return None
        frames = torch.stack([it["mask_prompt"] for it in self.items])
        if any(view):
            side = self.items[0]["image"].shape[-1]
            frames = flip_frames(
                F.interpolate(frames, size=(side, side), mode="nearest-exact"),
                [self.frame_geometry()[0]] * len(self.items),
                view,
            )
        masks = F.interpolate(frames, size=(low_res, low_res), mode="area")
        return (masks - 0.5) * (2.0 * MASK_PROMPT_LOGIT)

    def gt(self, i: int) -> np.ndarray:
        """(Y, X) bool reference mask of object ``i``."""
        return self.label == self.items[i]["label"]

    def frame_geometry(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """(unpadded frame size, original slice size) of this slice's items."""
        item = self.items[0]
        return tuple(item["input_size"].tolist()), tuple(item["original_size"].tolist())  # type: ignore[return-value]


class _Slices:
    """Reads stored slices and case spacing of a dataset's snapshot, grouping its items by slice.

    Val/test items carry the mixture's fixed prompts. Train-split items are drawn afresh on every
    read, so they must come from a :class:`training.batches.SeededMixture`, which is handed
    ``object_rng(seed, case, z, label)``: a fixed prompt per object, as a run's held-out validation.
    """

    def __init__(self, dataset: MixtureDataset, seed: int) -> None:
        if dataset.split == "train" and not isinstance(dataset, SeededMixture):
            raise ConfigError(
                "evaluating train-split items needs fixed prompts: open the split as "
                "training.batches.SeededMixture (held-out slices), or evaluate val/test"
            )
        self.dataset, self.seed = dataset, seed
        self.store = SliceStore.open(dataset.store_url, snapshot=dataset.snapshot_id)
        self._meta: dict[str, CaseMeta] = {}
        objects = dataset.objects()
        self.names = objects["label_name"].astype(str).tolist()
        self.labels = objects["label"].astype(int).tolist()
        self.keys = list(zip(objects["case_id"].astype(str), objects["z"].astype(int)))
        self.groups: dict[tuple[str, int], list[int]] = {}
        for index, key in enumerate(self.keys):
            self.groups.setdefault(key, []).append(index)

    def meta(self, case_id: str) -> CaseMeta:
        """Case metadata (cached)."""
        if case_id not in self._meta:
            self._meta[case_id] = self.store.case_meta(case_id)
        return self._meta[case_id]

    def item(self, index: int) -> dict:
        """Dataset item ``index`` with its fixed prompt."""
        if isinstance(self.dataset, SeededMixture):
            case_id, z = self.keys[index]
            return self.dataset.item(index, object_rng(self.seed, case_id, z, self.labels[index]))
        return self.dataset[index]

    def _todo(self, indices: list[int] | None) -> list[tuple[str, int, list[int]]]:
        wanted = None if indices is None else set(indices)
        todo = []
        for (case_id, z), members in self.groups.items():
            chosen = members if wanted is None else [i for i in members if i in wanted]
            if chosen:
                todo.append((case_id, z, chosen))
        return todo

    def batches(
        self, indices: list[int] | None, size: int, stages: Stages | None = None, what: str = "slices"
    ) -> Iterator[list[SliceBatch]]:
        """Lists of up to ``size`` SliceBatches covering ``indices`` (all items when None), in item order;
        ``stages`` hears of each batch done (a stage ``what`` over the slices)."""
        todo = self._todo(indices)
        advance = stages(what, len(todo)) if stages is not None else None
        for start in range(0, len(todo), size):
            out = []
            for case_id, z, members in todo[start : start + size]:
                image, label = self.store.read_slice(case_id, z)
                spacing = self.meta(case_id).geometry.spacing
                out.append(
                    SliceBatch(
                        case_id,
                        z,
                        members,
                        [self.item(i) for i in members],
                        image,
                        label,
                        (float(spacing[1]), float(spacing[0])),
                        [self.names[i] for i in members],
                    )
                )
            yield out
            if advance is not None:
                advance(len(out))


def _view_input(model: SamModel, batch: list[SliceBatch], frames: torch.Tensor, view: View) -> torch.Tensor:
    """The model input of the batch's (B, 3, S, S) ``frames`` in mirror view ``view``: each frame flipped inside
    its unpadded part before preprocessing (the model may resize it)."""
    return model_input(model, flip_frames(frames, [piece.frame_geometry()[0] for piece in batch], view))


def _predict_view(model: SamModel, batch: list[SliceBatch], frames: torch.Tensor, view: View) -> list[np.ndarray]:
    """Per slice (n, Y, X) probabilities of one mirrored view (:mod:`training.tta`) of the batch's (B, 3, S, S)
    ``frames``, flipped back onto the slice grid. A prompt-free model (the U-Net) segments each slice
    once and an object gets its label's channel; a SAM encodes each slice once and decodes its prompts."""
    x = _view_input(model, batch, frames, view)
    out = []
    if not is_promptable(model):
        logits = model(x)
        for j, piece in enumerate(batch):
            chosen = logits[j][model.channels(piece.names).to(logits.device)][:, None]
            out.append(unflip(to_probabilities(model, chosen, *piece.frame_geometry()), view))
        return out
    embeddings = model.encode(x)
    for j, piece in enumerate(batch):
        prompts = flip_prompts([piece.prompt(i) for i in range(len(piece.items))], piece.frame_geometry()[0], view)
        masks = piece.mask_inputs(model.low_res_size, view)
        low_res = decode_prompts(
            model, embeddings[j : j + 1], prompts, None if masks is None else masks.to(embeddings), images=x[j : j + 1]
        )
        out.append(unflip(to_probabilities(model, low_res, *piece.frame_geometry()), view))
    return out


@torch.no_grad()
def _predict(model: SamModel, batch: list[SliceBatch], tta: str = "none") -> list[np.ndarray]:
    """Per slice (n, Y, X) probabilities of a batch of slices: the mean over the ``tta`` views."""
    frames = torch.stack([s.items[0]["image"] for s in batch])
    views = [_predict_view(model, batch, frames, view) for view in tta_views(tta)]
    return [mean_of_views([probs[j] for probs in views]) for j in range(len(batch))]


def predict_objects(
    models: Mapping[str, SamModel], dataset: MixtureDataset, indices: list[int], config: EvalConfig = EvalConfig()
) -> dict[tuple[str, int, int], tuple[SliceBatch, int, dict]]:
    """Predictions of chosen dataset items: (case, z, label) → (SliceBatch, object index, {model: (Y, X) probs})."""
    out: dict[tuple[str, int, int], tuple[SliceBatch, int, dict]] = {}
    for batch in _Slices(dataset, config.prompt_seed).batches(sorted(set(indices)), config.batch_slices):
        probs = {name: _predict(model.eval(), batch, config.tta) for name, model in models.items()}
        for j, piece in enumerate(batch):
            for i, item in enumerate(piece.items):
                out[(piece.case_id, piece.z, int(item["label"]))] = (piece, i, {n: p[j][i] for n, p in probs.items()})
    return out


@dataclass(frozen=True)
class EvalResult:
    """Per-object rows (one per model and object) and timing of :func:`evaluate_models`."""

    rows: pd.DataFrame
    models: tuple[str, ...]
    seconds: dict[str, float] = field(default_factory=dict)


def evaluate_models(
    models: Mapping[str, SamModel],
    dataset: MixtureDataset,
    config: EvalConfig = EvalConfig(),
    *,
    indices: list[int] | None = None,
    stages: Stages | None = None,
    sink: Callable[[str, SliceBatch, np.ndarray], None] | None = None,
) -> EvalResult:
    """Score every object of ``dataset`` (or those at ``indices``) with every model, on the same prompts:
    rows of model, item, case, z, label, metrics (``stages``: progress, one stage over the slices; ``sink``
    hears each model's (n, Y, X) probabilities of each slice, e.g. :class:`training.volume_scores.SliceMaps`)."""
    if not models:
        raise ConfigError("evaluate_models needs at least one model")
    rows: list[dict] = []
    seconds = dict.fromkeys(models, 0.0)
    what = f"scoring {', '.join(models)}"
    for batch in _Slices(dataset, config.prompt_seed).batches(indices, config.batch_slices, stages, what):
        for name, model in models.items():
            start = time.perf_counter()
            probs = _predict(model.eval(), batch, config.tta)
            seconds[name] += time.perf_counter() - start
            for piece, prob in zip(batch, probs):
                if sink is not None:
                    sink(name, piece, prob)
                for i, item in enumerate(piece.items):
                    scores = object_metrics(prob[i], piece.gt(i), piece.spacing, config.metric)
                    rows.append(
                        {
                            "model": name,
                            "item": piece.indices[i],
                            "case_id": piece.case_id,
                            "z": piece.z,
                            "label": int(item["label"]),
                            "label_name": piece.names[i],
                            **scores,
                        }
                    )
    return EvalResult(pd.DataFrame(rows), tuple(models), seconds)


def aggregate(
    rows: pd.DataFrame, by: str, metrics: tuple[str, ...] = METRICS
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(per case & label, per label, overall) means of per-object ``rows``, each split by column ``by``.

    Per case & label: the mean over that structure's slices (with ``n_slices``); per label and
    overall: the mean over case & label pairs.
    """
    per_case = rows.groupby([by, "case_id", "label", "label_name"], sort=True)[list(metrics)].mean()
    per_case["n_slices"] = rows.groupby([by, "case_id", "label", "label_name"], sort=True).size()
    per_case = per_case.reset_index()
    per_label = per_case.groupby([by, "label_name"], sort=True)[list(metrics)].mean().reset_index()
    overall = per_case.groupby(by, sort=False)[list(metrics)].mean()
    return per_case, per_label, overall.reindex(list(dict.fromkeys(rows[by]))).reset_index()


def _clicked(prompt: Prompt, clicks: list[Prompt]) -> Prompt:
    """``prompt`` with the points of ``clicks`` appended."""
    if not clicks:
        return prompt
    points = np.concatenate([prompt.points, *[c.points for c in clicks]])
    labels = np.concatenate([prompt.point_labels, *[c.point_labels for c in clicks]])
    return Prompt(prompt.box, points, labels)


def region_ceiling(gt: np.ndarray, pred: np.ndarray, counts: tuple[int, ...]) -> list[float]:
    """Dice of (Y, X) bool ``pred`` against ``gt`` after its k largest 8-connected error regions are set right,
    for each k of ``counts`` (k = 0: the Dice of ``pred``; ties in size: the region met first in raster order)."""
    wrong = pred != gt
    regions, _ = ndimage.label(wrong, structure=np.ones((3, 3), dtype=bool))
    sizes = np.bincount(regions.ravel())[1:]
    order = np.argsort(-sizes, kind="stable") + 1  # region ids, largest first
    rank = np.zeros(len(sizes) + 1, dtype=np.int64)
    rank[order] = np.arange(1, len(sizes) + 1)  # 1 = largest; background keeps 0
    pixel_rank = rank[regions]
    return [dice(np.where((pixel_rank > 0) & (pixel_rank <= k), gt, pred), gt) for k in counts]


@dataclass(frozen=True)
class InteractiveResult:
    """Rows per object and round (Dice after ``clicks`` clicks and the click just added, in slice pixels, and
    ``ceiling_dice``: the 0-click prediction with that many largest error regions fixed), mean Dice and mean
    ceiling per requested count, and (with ``keep_masks``) each object's (rounds + 1, Y, X) predictions."""

    rows: pd.DataFrame
    summary: dict[int, float]
    masks: dict[tuple[str, int, int], np.ndarray] = field(default_factory=dict)
    ceiling: dict[int, float] = field(default_factory=dict)


def _click_rounds(
    model: SamModel,
    views: list[tuple[View, torch.Tensor, torch.Tensor]],
    piece: SliceBatch,
    rounds: int,
    seed: int,
    config: EvalConfig,
) -> tuple[list[list[np.ndarray]], list[list[Prompt]]]:
    """Predictions of a slice's objects after 0..rounds corrective clicks, and the clicks (slice pixels).
    ``views``: (mirror view, (1, 3, S, S) model input, its (1, C, h, w) embedding) per view of ``config.tta``;
    each round decodes every view with its mirrored prompt and its own previous logits, and the clicks answer
    the mean of the views' probabilities, flipped back."""
    n, size = len(piece.items), piece.items[0]["image"].shape[-1]
    frame_size, original = piece.frame_geometry()
    gts = [piece.gt(i) for i in range(n)]
    rngs = [object_rng(seed, piece.case_id, piece.z, int(it["label"])) for it in piece.items]
    history: list[list[np.ndarray]] = [[] for _ in range(n)]
    clicks: list[list[Prompt]] = [[] for _ in range(n)]
    low_res = []
    for view, _, embedding in views:
        masks = piece.mask_inputs(model.low_res_size, view)
        low_res.append(None if masks is None else masks.to(embedding))
    for round_ in range(rounds + 1):
        if round_:
            for i in range(n):
                clicks[i].append(corrective_click(gts[i], history[i][-1], rngs[i], mode="interior"))
        prompts = [_clicked(piece.prompt(i), [c.to_frame(original, size) for c in clicks[i]]) for i in range(n)]
        per_view = []
        for k, (view, image, embedding) in enumerate(views):
            feed = low_res[k] if config.feed_logits or not round_ else None
            low_res[k] = decode_prompts(
                model, embedding, flip_prompts(prompts, frame_size, view), mask_inputs=feed, images=image
            )
            per_view.append(unflip(to_probabilities(model, low_res[k], frame_size, original), view))
        preds = mean_of_views(per_view) > config.threshold
        for i in range(n):
            history[i].append(preds[i])
    return history, clicks


@torch.no_grad()
def evaluate_interactive(
    model: SamModel,
    dataset: MixtureDataset,
    clicks: tuple[int, ...] = (0, 1, 3, 5),
    *,
    seed: int = 0,
    config: EvalConfig = EvalConfig(),
    keep_masks: bool = False,
    indices: list[int] | None = None,
    stages: Stages | None = None,
) -> InteractiveResult:
    """Dice after 0, 1, 3, 5... corrective clicks added one at a time to each object's stored prompt.

    Each round clicks on the error of the previous prediction at the slice's resolution
    (``corrective_click(gt, pred, object_rng(seed, case, z, label), mode="interior")``), maps the
    click into the model frame, and decodes box + all clicks so far with the previous low-res
    logits as mask input (``config.feed_logits=False`` leaves it out: box-only models such as
    LiteMedSAM never trained their mask encoder). The summary aggregates like :func:`evaluate_models`
    (case & label, then mean).
    """
    counts = check_clicks(clicks)
    if not is_promptable(model):
        raise ConfigError(
            f"model {model.name!r} takes no prompt: corrective clicks cannot change its mask "
            "(score it once with evaluate_models)"
        )
    if not counts:
        raise ConfigError("evaluate_interactive needs at least one click count, e.g. (0, 1, 3, 5)")
    model = model.eval()
    rows: list[dict] = []
    masks: dict[tuple[str, int, int], np.ndarray] = {}
    what = f"clicks {model.name}"
    for batch in _Slices(dataset, config.prompt_seed).batches(indices, config.batch_slices, stages, what):
        frames = torch.stack([s.items[0]["image"] for s in batch])
        seen = []
        for view in tta_views(config.tta):
            x = _view_input(model, batch, frames, view)
            seen.append((view, x, model.encode(x)))
        for j, piece in enumerate(batch):
            views = [(view, x[j : j + 1], embeddings[j : j + 1]) for view, x, embeddings in seen]
            history, added = _click_rounds(model, views, piece, counts[-1], seed, config)
            rounds = tuple(range(counts[-1] + 1))
            ceilings = [region_ceiling(piece.gt(i), history[i][0], rounds) for i in range(len(piece.items))]
            for round_ in rounds:
                for i, item in enumerate(piece.items):
                    click = added[i][round_ - 1] if round_ else None
                    rows.append(
                        {
                            "case_id": piece.case_id,
                            "z": piece.z,
                            "label": int(item["label"]),
                            "label_name": piece.names[i],
                            "clicks": round_,
                            "dice": dice(history[i][round_], piece.gt(i)),
                            "ceiling_dice": ceilings[i][round_],
                            "click_x": float(click.points[0, 0]) if click is not None else np.nan,
                            "click_y": float(click.points[0, 1]) if click is not None else np.nan,
                            "click_label": int(click.point_labels[0]) if click is not None else -1,
                        }
                    )
            if keep_masks:
                for i, item in enumerate(piece.items):
                    masks[(piece.case_id, piece.z, int(item["label"]))] = np.stack(history[i])
    frame = pd.DataFrame(rows)
    _, _, overall = aggregate(frame[frame["clicks"].isin(counts)], "clicks", ("dice", "ceiling_dice"))
    summary = {int(c): float(d) for c, d in zip(overall["clicks"], overall["dice"])}
    ceiling = {int(c): float(d) for c, d in zip(overall["clicks"], overall["ceiling_dice"])}
    return InteractiveResult(frame, summary, masks, ceiling)
