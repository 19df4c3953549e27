"""Prediction with a trained run: slices through the model, 3D box propagation, masks back on the source grid.

A new image is prepared with the normalisation (and spacing) recorded for the run's training cases and each
slice is framed as training framed it, so the model sees what it learnt from; probabilities come back on
the stored slice grid and the mask is written on the source image's own grid and affine. Boxes are given in
the stored (RAS+-canonical) slice frame. From the prompted slice the box is propagated up and down, each
slice prompted with the tight box of its neighbour's prediction (MedSAM's 3D practice), stopping at an
empty prediction or the end of ``--z-range``: LiteMedSAM finds something even in a box of background, so
without a range the walk usually reaches the volume's end. A prompt-free run (the U-Net) segments every
slice of the range, labels numbered in the order of the run's label names.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from samdata.case import Case, CaseMeta, Normalisation, Provenance, Volume
from samdata.errors import ConfigError, RegistryError, ValidationError
from samdata.io.readers import read_label, read_volume, source_hash, write_nifti
from samdata.io.segmentations import check_output, segments_for, write_segmentation
from samdata.normalise import WINDOWS, IngestConfig
from samdata.prepare import prepare_case, to_source_grid
from samdata.prompts import Prompt, frame_shape
from samdata.prompts.regions import tight_box
from samdata.spec import Box
from storage import SliceStore
from storage.records import load_mixture, mixture_view
from training.adapters.depth import stack_channels
from training.augment import pixel_frames
from training.dataset import resize_pad
from training.loop import is_promptable
from training.models import SamModel, UNetModel
from training.run import LoadedRun
from training.tta import flip_frames, flip_prompts, mean_of_views, tta_views, unflip

# ----------------------------------------------------------------------------- model plumbing
#: progress: ``advance(n)`` after n more slices
Advance = Callable[[int], None]
#: progress stages: ``stages(description, total)`` starts one and returns its ``advance``
Stages = Callable[[str, int], Advance]


def model_input(model: SamModel, frames: torch.Tensor) -> torch.Tensor:
    """(B, 3, S, S) frames as :func:`resize_pad` makes them (float in [0, 1], or uint8) → the model's
    normalised input."""
    return model.preprocess(pixel_frames(frames.to(model.pixel_mean.device)))


def to_probabilities(
    model: SamModel, low_res: torch.Tensor, input_size: tuple[int, int], original: tuple[int, int]
) -> np.ndarray:
    """(N, 1, L, L) logits → (N, Y, X) float32 foreground probabilities on the original slice grid.

    The model's own upsampling (SAM: its low-res logits to the frame) stays on logits; the frame → slice
    resampling is done on probabilities, as MedSAM's inference and nnU-Net's export do. Resampling logits
    there moves the 0.5 boundary towards the less confident side (a U-Net's background logits are smaller
    than its white-matter ones): on MNI152 white matter it grew a U-Net's masks and cost it Dice
    (BENCHMARKS.md, "Test-time mirroring", Resampling)."""
    up = model.postprocess(low_res.float())[..., : input_size[0], : input_size[1]]
    probs = F.interpolate(torch.sigmoid(up), size=tuple(int(v) for v in original), mode="bilinear", align_corners=False)
    return probs[:, 0].cpu().numpy()


def prompt_tensors_for(prompts: list[Prompt], device: torch.device) -> dict[str, torch.Tensor | None]:
    """Framed prompts that all have a box or all lack one → ``decode`` keyword tensors: boxes (N, 4),
    points (N, K, 2) and point_labels (N, K) padded with label -1 (SAM's "not a point"). A collated
    dataset batch goes through :func:`training.loop.batch_prompt_tensors`."""
    with_box = {p.box is not None for p in prompts}
    if len(with_box) != 1:
        raise ValidationError("prompts decoded together must all have a box or all lack one")
    boxes = torch.tensor([p.box for p in prompts], dtype=torch.float32, device=device) if with_box == {True} else None
    k = max(p.n_points for p in prompts)
    if k == 0:
        return {"boxes": boxes, "points": None, "point_labels": None}
    points = torch.zeros((len(prompts), k, 2), dtype=torch.float32)
    labels = torch.full((len(prompts), k), -1, dtype=torch.int64)
    for i, p in enumerate(prompts):
        points[i, : p.n_points] = torch.tensor(p.points)
        labels[i, : p.n_points] = torch.tensor(p.point_labels, dtype=torch.int64)
    return {"boxes": boxes, "points": points.to(device), "point_labels": labels.to(device)}


def decode_prompts(
    model: SamModel,
    embedding: torch.Tensor,
    prompts: list[Prompt],
    mask_inputs: torch.Tensor | None = None,
    images: torch.Tensor | None = None,
) -> torch.Tensor:
    """Decode N framed prompts against one (1, C, h, w) embedding: (N, 1, L, L) logits in prompt order.

    Prompts with and without a box are decoded in two calls; ``mask_inputs`` (N, 1, L, L) are
    previous logits fed back as SAM's mask prompt; ``images``: the (1, 3, S, S) model input the
    embedding came from (read by a refinement head, see ``SamModel.decode``).
    """
    out: torch.Tensor | None = None
    for has_box in (True, False):
        index = [i for i, p in enumerate(prompts) if (p.box is not None) == has_box]
        if not index:
            continue
        masks = None if mask_inputs is None else mask_inputs[index]
        low_res, _ = model.decode(
            embedding,
            **prompt_tensors_for([prompts[i] for i in index], embedding.device),
            mask_inputs=masks,
            images=images,
        )
        if out is None:
            out = low_res.new_empty((len(prompts), *low_res.shape[1:]))
        out[index] = low_res
    assert out is not None, "decode_prompts needs at least one prompt"
    return out


def slice_channels(image_zyx: np.ndarray, z: int, context: bool, stack: int = 1) -> np.ndarray:
    """(C, Y, X) uint8 model channels of slice ``z``: C = 3 ``[z-1, z, z+1]`` (edges repeated) or 1; with
    ``stack`` k > 1 (a ``depth`` adapter's ``model.depth``) the 3k channels of the k slices centred on z, clamped
    at the volume ends, 3 per slice (its context channels, or its grey value three times), as the dataset
    makes them."""
    if stack > 1:
        return stack_channels(partial(slice_channels, image_zyx, context=context), z, stack, image_zyx.shape[0])
    if not context:
        return image_zyx[z][None]
    depth = image_zyx.shape[0]
    return np.stack([image_zyx[max(z - 1, 0)], image_zyx[z], image_zyx[min(z + 1, depth - 1)]])


@torch.no_grad()
def segment_slice(
    model: SamModel, channels: np.ndarray, prompts: list[Prompt], size: int | None = None, tta: str = "none"
) -> np.ndarray:
    """Encode one (C, Y, X) uint8 slice once (once per mirrored view of ``tta``, :mod:`training.tta`) and
    decode every prompt (slice pixels) in a ``size`` frame (default: the model's input size, as training
    does): (N, Y, X) float32 probabilities, averaged over the views."""
    size = size or model.img_size
    height, width = channels.shape[1:]
    frame = frame_shape((height, width), size)
    frames = resize_pad(channels, size, channels=max(3, len(channels)))[None]
    framed = [p.to_frame((height, width), size) for p in prompts]
    per_view = []
    for view in tta_views(tta):
        seen = model_input(model, flip_frames(frames, [frame], view))  # flipped in the frame: the model may resize it
        low_res = decode_prompts(model, model.encode(seen), flip_prompts(framed, frame, view), images=seen)
        per_view.append(unflip(to_probabilities(model, low_res, frame, (height, width)), view))
    return mean_of_views(per_view)


@torch.no_grad()
def volume_probabilities(
    model: UNetModel,
    image_zyx: np.ndarray,
    *,
    context: bool = False,
    size: int | None = None,
    z_range: tuple[int, int] | None = None,
    batch: int = 8,
    tta: str = "none",
    advance: Advance | None = None,
) -> np.ndarray:
    """(C, Z, Y, X) float32 probabilities of a prompt-free model's C label channels over slices ``z_range``
    (inclusive; default all; 0 outside it), averaged over the mirrored views of ``tta``."""
    size = size or model.img_size
    depth, height, width = image_zyx.shape
    lo, hi = z_range if z_range is not None else (0, depth - 1)
    views = tta_views(tta)
    out = np.zeros((len(model.label_names), *image_zyx.shape), dtype=np.float32)
    frame = frame_shape((height, width), size)
    for start in range(lo, hi + 1, batch):
        zs = range(start, min(start + batch, hi + 1))
        frames = torch.stack([resize_pad(slice_channels(image_zyx, z, context), size) for z in zs])
        per_view = []
        for view in views:
            logits = model(model_input(model, flip_frames(frames, [frame] * len(zs), view)))
            per_view.append(
                [
                    unflip(to_probabilities(model, logits[j][:, None], frame, (height, width)), view)
                    for j in range(len(zs))
                ]
            )
        for j, z in enumerate(zs):
            out[:, z] = mean_of_views([found[j] for found in per_view])
        if advance is not None:
            advance(len(zs))
    return out


def label_map(probs: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """(C, ...) channel probabilities → a uint8 label map: 1 + the most probable channel where its
    probability > ``threshold``, else 0 (:func:`most_probable` with labels 1..C)."""
    return most_probable(probs, list(range(1, len(probs) + 1)), threshold).astype(np.uint8)


def segment_volume(
    model: UNetModel,
    image_zyx: np.ndarray,
    *,
    context: bool = False,
    size: int | None = None,
    z_range: tuple[int, int] | None = None,
    batch: int = 8,
    tta: str = "none",
    advance: Advance | None = None,
) -> np.ndarray:
    """(Z, Y, X) uint8 label map of a prompt-free model over slices ``z_range`` (inclusive; default all):
    per voxel 1 + the most probable channel if its probability > 0.5, else 0 (probabilities averaged over
    the mirrored views of ``tta``)."""
    probs = volume_probabilities(
        model, image_zyx, context=context, size=size, z_range=z_range, batch=batch, tta=tta, advance=advance
    )
    return label_map(probs)


# ----------------------------------------------------------------------------- volumes
def check_box(box: Box, z: int, shape: tuple[int, int, int], where: str) -> None:
    """Raise ValidationError unless ``box`` at slice ``z`` lies inside a (Z, Y, X) canonical volume."""
    depth, height, width = shape
    if not 0 <= z < depth:
        raise ValidationError(
            f"{where}: slice z={z} is out of range; the canonical (Z, Y, X) shape is {shape}, expected 0 <= z < {depth}"
        )
    x0, y0, x1, y1 = box
    if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
        raise ValidationError(
            f"{where}: box {box} is not inside the {width}x{height} (X x Y) canonical slice; "
            f"expected 0 <= x0 < x1 <= {width} and 0 <= y0 < y1 <= {height} "
            f"(canonical (Z, Y, X) shape {shape})"
        )


def propagate_box(
    model: SamModel,
    image_zyx: np.ndarray,
    box: Box,
    z: int,
    *,
    context: bool = False,
    threshold: float = 0.5,
    size: int | None = None,
    z_range: tuple[int, int] | None = None,
    tta: str = "none",
    advance: Advance | None = None,
    boxes: Mapping[int, Box] | None = None,
) -> np.ndarray:
    """Segment one object through a (Z, Y, X) uint8 volume from ``box`` on slice ``z``: (Z, Y, X) bool
    (each slice through :func:`segment_slice` with test-time mirroring ``tta``).

    Slice ``z`` uses ``box``; each further slice up and down uses the tight box of its neighbour's
    prediction, and each direction stops at the first empty prediction (MedSAM's 3D inference) or
    at the ends of ``z_range`` (inclusive; default the whole volume). SAM-style models tend to
    segment *something* in any box, so on real volumes a ``z_range`` (the extent of MedSAM's 3D
    box) keeps the walk from running past the object. ``boxes``: slice → box given for that slice
    (e.g. a proposer's), used there instead of the neighbour's box; the walk goes on through them.
    """
    given = boxes or {}
    check_box(box, z, image_zyx.shape, "propagate_box")
    lo, hi = z_range if z_range is not None else (0, image_zyx.shape[0] - 1)
    if not 0 <= lo <= z <= hi < image_zyx.shape[0]:
        raise ValidationError(
            f"propagate_box: z range {lo}-{hi} must hold the start slice z={z} and lie in "
            f"0..{image_zyx.shape[0] - 1} (canonical (Z, Y, X) shape {image_zyx.shape})"
        )
    out = np.zeros(image_zyx.shape, dtype=bool)

    def segment(k: int, prompt_box: Box) -> np.ndarray:
        channels = slice_channels(image_zyx, k, context, model.depth)
        found = segment_slice(model, channels, [Prompt(box=prompt_box)], size, tta)[0] > threshold
        if advance is not None:
            advance(1)
        return found

    out[z] = segment(z, box)
    for step in (1, -1):
        k = z + step
        while lo <= k <= hi and (k in given or out[k - step].any()):
            out[k] = segment(k, given[k] if k in given else tight_box(out[k - step]))
            k += step
    return out


def most_probable(probs: np.ndarray, labels: list[int], threshold: float = 0.5) -> np.ndarray:
    """(Y, X) int64 label map of one slice's (N, Y, X) object probabilities: ``labels[i]`` where object i is the
    most probable one and above ``threshold``, else 0 (where two predictions overlap, the more probable wins)."""
    best = probs.argmax(axis=0)
    return np.where(probs.max(axis=0) > threshold, np.asarray(labels, dtype=np.int64)[best], 0)


def predict_from_masks(
    model: SamModel,
    image_zyx: np.ndarray,
    prompt_zyx: np.ndarray,
    *,
    context: bool = False,
    threshold: float = 0.5,
    size: int | None = None,
    tta: str = "none",
    advance: Advance | None = None,
) -> np.ndarray:
    """Segment every (slice, label) of a (Z, Y, X) integer prompt map from its tight box: a label map like it
    (test-time mirroring ``tta`` as :func:`segment_slice`).

    Each slice is encoded once and all its labels' boxes decoded together; where two predictions
    overlap, the label with the higher probability wins.
    """
    out = np.zeros(prompt_zyx.shape, dtype=prompt_zyx.dtype)
    for z in np.flatnonzero(prompt_zyx.reshape(prompt_zyx.shape[0], -1).any(axis=1)):
        labels = [int(v) for v in np.unique(prompt_zyx[z]) if v != 0]
        boxes = [tight_box(prompt_zyx[z] == value) for value in labels]
        probs = segment_slice(
            model, slice_channels(image_zyx, int(z), context, model.depth), [Prompt(box=b) for b in boxes], size, tta
        )
        out[z] = most_probable(probs, labels, threshold).astype(prompt_zyx.dtype)
        if advance is not None:
            advance(1)
    return out


# ----------------------------------------------------------------------------- normalisation of new images
def ingest_config_for(meta: CaseMeta) -> IngestConfig:
    """The IngestConfig that normalises a new image as ``meta``'s case was (labels kept whole)."""
    norm = meta.normalisation
    spacing = tuple(meta.geometry.spacing) if meta.geometry.resampled else None
    if norm.method.startswith("window:"):
        preset = norm.method.split(":", 1)[1]
        window = preset if preset in WINDOWS else (float(norm.params["level"]), float(norm.params["width"]))
        return IngestConfig(
            modality=meta.modality,
            window=window,
            spacing=spacing,  # type: ignore[arg-type]
            min_object_voxels=0,
            min_object_pixels=0,
        )
    if norm.method == "percentile":
        low, high = (float(v) for v in norm.params["percentiles"])
        return IngestConfig(
            modality=meta.modality,
            percentiles=(low, high),
            spacing=spacing,  # type: ignore[arg-type]
            min_object_voxels=0,
            min_object_pixels=0,
        )
    if norm.method == "none":
        return IngestConfig(
            modality=meta.modality,
            keep_uint8=True,
            spacing=spacing,  # type: ignore[arg-type]
            min_object_voxels=0,
            min_object_pixels=0,
        )
    raise ConfigError(
        f"case {meta.case_id!r} records normalisation {norm.method!r}; expected window:<name>, percentile or none"
    )


def _mixture_cases(store: SliceStore, mixture: str) -> list[str]:
    """Real train case ids of a mixture (read at ``store``'s snapshot, else at the head: see
    :func:`storage.records.mixture_view`)."""
    try:
        cases = load_mixture(mixture_view(store, mixture), mixture).cases
    except RegistryError as err:
        raise ConfigError(f"{err}; cannot tell how the run's images were normalised") from err
    real_train = cases[(cases["split"] == "train") & (cases["origin"] == "real")]
    return sorted(real_train["case_id"])


def run_normalisation(run: LoadedRun, store_url: str | None = None) -> tuple[IngestConfig, CaseMeta]:
    """The ingest rule of the run's training data and the train case whose metadata it comes from."""
    store = SliceStore.open(
        store_url or run.info.get("store_url") or run.config.store,
        snapshot=run.info.get("snapshot_id") or run.config.snapshot,
    )
    case_ids = _mixture_cases(store, run.info.get("mixture") or run.config.mixture)
    if not case_ids:
        raise ConfigError(f"mixture {run.config.mixture!r} has no real train cases in store {store.url!r}")
    metas = [store.case_meta(cid) for cid in case_ids]
    key = Counter((m.modality, m.normalisation.method, repr(sorted(m.normalisation.params.items()))) for m in metas)
    common = key.most_common(1)[0][0]
    meta = next(
        m for m in metas if (m.modality, m.normalisation.method, repr(sorted(m.normalisation.params.items()))) == common
    )
    return ingest_config_for(meta), meta


# ----------------------------------------------------------------------------- files
def write_on_source_grid(mask_zyx: np.ndarray, meta: CaseMeta, out: Path | str) -> tuple[Path, np.ndarray]:
    """Write a stored-grid (Z, Y, X) label map on ``meta``'s source grid with the source affine (NIfTI):
    the file written and the source-grid (X, Y, Z) array."""
    source = to_source_grid(mask_zyx, meta)
    return write_nifti(source, np.asarray(meta.geometry.source_affine), out), source


@dataclass(frozen=True)
class PredictReport:
    """What :func:`predict_file` did: output, canonical (Z, Y, X) shape, voxels per label, slices, timing."""

    out: str
    image: str
    canonical_shape: tuple[int, int, int]
    source_shape: tuple[int, ...]
    normalisation: Normalisation
    context: bool
    voxels: dict[int, int]
    slices: tuple[int, ...]
    seconds: float
    labels: dict[int, str] = field(default_factory=dict)  # label value → segment name (:func:`segment_names`)
    tta: str = "none"
    out_format: str = "nifti"
    auto: dict = field(default_factory=dict)  # prompt-free SAM (--auto): the proposer and the boxes it gave


def segment_names(
    run: LoadedRun, store_names: dict[int, str], prompt_values: tuple[int, ...] | None = None
) -> dict[int, str]:
    """Names of the label values a prediction writes: a prompt-free run's labels in order; for a box (value 1)
    the one label the run trained on (``--labels``, else the store's only label), else "object"; for a prompt
    mask's values the training store's names of them (``label <value>`` where it has none)."""
    if not is_promptable(run.model):
        return {i + 1: name for i, name in enumerate(run.model.label_names)}
    if prompt_values is not None:
        return {v: store_names.get(v, f"label {v}") for v in prompt_values}
    trained = run.config.labels or tuple(store_names.values())
    return {1: trained[0] if len(trained) == 1 else "object"}


def predict_file(
    run: LoadedRun,
    image: Path | str,
    out: Path | str,
    *,
    box: tuple[Box, int] | None = None,
    prompt_mask: Path | str | None = None,
    context: bool | None = None,
    store_url: str | None = None,
    z_range: tuple[int, int] | None = None,
    tta: str = "none",
    stages: Stages | None = None,
    out_format: str = "nifti",
) -> PredictReport:
    """Segment a NIfTI/NRRD/DICOM image with a run from a box at a slice (propagated) or a prompt mask's
    boxes, and write the label map on the image's own grid and affine to ``out`` as ``out_format``
    (:data:`samdata.io.segmentations.OUTPUT_FORMATS`: nifti, nrrd, dicom-seg); ``tta``: test-time mirroring
    (:mod:`training.tta`); ``stages(description, total)`` starts a progress stage over slices."""
    tta_views(tta)  # a bad mode fails before the image is read
    check_output(out_format, image, out)  # so does a format that cannot be written for this image
    promptable = is_promptable(run.model)
    if not promptable and (box is not None or prompt_mask is not None):
        raise ConfigError(
            f"run of model {run.config.model!r} takes no prompt (it segments its labels "
            f"{list(run.model.label_names)} everywhere): give no box or prompt mask"
        )
    if promptable and (box is None) == (prompt_mask is None):
        raise ConfigError(
            "predict needs exactly one prompt: a box ('x0,y0,x1,y1@z'), a prompt mask file, or --auto "
            "(boxes from the run's proposer)"
        )
    start = time.perf_counter()
    volume = read_volume(image)
    normalisation = run_normalisation(run, store_url)
    case = prepare_image(run, image, store_url, prompt_mask, volume=volume, normalisation=normalisation)
    use_context = run.config.context if context is None else bool(context)
    model, size = run.model.eval(), run.config.size or run.model.img_size
    lo, hi = z_range if z_range is not None else (0, case.image.shape[0] - 1)
    if not promptable:
        advance = stages("segmenting slices", hi - lo + 1) if stages else None
        mask = segment_volume(
            model, case.image, context=use_context, size=size, z_range=z_range, tta=tta, advance=advance
        )
    elif box is not None:
        check_box(box[0], box[1], case.image.shape, f"image {str(image)!r}")
        advance = stages("propagating the box (at most)", hi - lo + 1) if stages else None
        mask = propagate_box(
            model, case.image, box[0], box[1], context=use_context, size=size, z_range=z_range, tta=tta, advance=advance
        ).astype(np.uint8)
    else:
        if not case.label.any():
            raise ValidationError(
                f"prompt mask {str(prompt_mask)!r} is empty (all background); expected at least "
                "one labelled voxel to take boxes from"
            )
        prompted = int(case.label.reshape(case.label.shape[0], -1).any(axis=1).sum())
        advance = stages("segmenting prompted slices", prompted) if stages else None
        mask = predict_from_masks(
            model, case.image, case.label, context=use_context, size=size, tta=tta, advance=advance
        )
    prompt_values = None if prompt_mask is None else tuple(int(v) for v in np.unique(case.label) if v != 0)
    names = segment_names(run, normalisation[1].label_names, prompt_values)
    seconds = time.perf_counter() - start
    return write_prediction(
        case, mask, image, out, seconds, use_context, tta, names, volume=volume, out_format=out_format
    )


def prepare_image(
    run: LoadedRun,
    image: Path | str,
    store_url: str | None,
    prompt_mask: Path | str | None = None,
    *,
    volume: Volume | None = None,
    normalisation: tuple[IngestConfig, CaseMeta] | None = None,
) -> Case:
    """A new image (and its prompt mask, if any) read and normalised as the run's training cases were: a Case
    on the canonical grid; without a prompt mask no label file is read (its label map is then empty).
    ``volume`` / ``normalisation``: the image already read and :func:`run_normalisation`, if the caller has them."""
    volume = volume if volume is not None else read_volume(image)
    config, _ = normalisation if normalisation is not None else run_normalisation(run, store_url)
    label = read_label(prompt_mask, volume) if prompt_mask is not None else None
    return prepare_case(
        volume,
        label,
        case_id=Path(image).name.split(".")[0] or "image",
        config=config,
        label_names={},
        provenance=Provenance("real", str(image), source_hash(image)),
    )


def write_prediction(
    case: Case,
    mask: np.ndarray,
    image: Path | str,
    out: Path | str,
    seconds: float,
    context: bool,
    tta: str,
    labels: dict[int, str],
    auto: dict | None = None,
    *,
    volume: Volume,
    out_format: str = "nifti",
) -> PredictReport:
    """Write the (Z, Y, X) canonical label map ``mask`` of ``case`` on its source grid and affine to ``out`` as
    ``out_format`` (segments named by ``labels``; ``volume``: the source image as the caller read it) and report it."""
    source = to_source_grid(mask, case.meta)
    affine = np.asarray(case.meta.geometry.source_affine)
    written = write_segmentation(out_format, source, affine, out, segments_for(labels), volume)
    values, counts = np.unique(mask[mask != 0], return_counts=True)
    return PredictReport(
        out=str(written),
        image=str(image),
        canonical_shape=tuple(int(n) for n in case.image.shape),  # type: ignore[arg-type]
        source_shape=tuple(int(n) for n in source.shape),
        normalisation=case.meta.normalisation,
        context=context,
        voxels={int(v): int(c) for v, c in zip(values, counts)},
        slices=tuple(int(z) for z in np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1))),
        seconds=seconds,
        labels=labels,
        tta=tta,
        out_format=out_format,
        auto=auto or {},
    )
