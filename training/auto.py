"""Prompt-free SAM: a cascade in which a prompt-free proposer (the run's U-Net) gives the boxes and the adapted
SAM segments from them, slices linked in 3D.

For every slice and label the proposer's prediction is split into 8-connected components; a component gets its
mean probability as confidence and is dropped below ``min_area`` pixels or ``min_confidence``. The box of a
(slice, label) is the tight box of its kept components, as the store's objects (and so SAM's training prompts)
box a label's every piece on a slice. Slices with boxes are grouped into runs along z (gaps of up to
``max_gap`` slices bridged); each run is walked by :func:`training.predict.propagate_box` from its most
confident slice (among those at least half as large as its largest) to its ends: with ``boxes="proposer"``
each slice uses the proposer's box where it has one and the neighbour's SAM mask box in its gaps; with
``boxes="propagate"`` only the seed's box is the proposer's (MedSAM's 3D propagation). Where two labels
overlap, the one the proposer finds more probable wins. Nothing here reads a label map: the input is an
image volume.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from samdata.errors import ConfigError
from samdata.io.readers import read_volume
from samdata.io.segmentations import check_output
from samdata.prompts.regions import tight_box
from samdata.spec import Box
from training.eval_config import AutoConfig
from training.loop import is_promptable
from training.models import SamModel, UNetModel
from training.predict import (
    Advance,
    PredictReport,
    Stages,
    label_map,
    prepare_image,
    propagate_box,
    volume_probabilities,
    write_prediction,
)
from training.run import LoadedRun
from training.tta import tta_views

EIGHT = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True)
class Proposal:
    """The proposer's box of one (slice, label): tight box of its kept components, their pixels and mean
    probability, and how many components it has."""

    box: Box
    area: int
    confidence: float
    components: int


@dataclass(frozen=True)
class AutoResult:
    """A cascade's (Z, Y, X) uint8 label map (value i + 1 for the proposer's label i), the proposals
    ``{label value: {z: Proposal}}`` and the 3D runs walked ``{label value: [(seed z, first z, last z)]}``."""

    labels: np.ndarray
    names: dict[int, str]
    proposals: dict[int, dict[int, Proposal]] = field(default_factory=dict)
    runs: dict[int, list[tuple[int, int, int]]] = field(default_factory=dict)

    def summary(self) -> dict:
        """A JSON-safe record: per label name its runs and how many slices had a proposer box."""
        return {
            self.names[value]: {
                "runs": [{"seed": s, "first": a, "last": b} for s, a, b in self.runs.get(value, [])],
                "proposed_slices": len(self.proposals.get(value, {})),
            }
            for value in self.names
        }


def propose(probs: np.ndarray, config: AutoConfig = AutoConfig()) -> dict[int, dict[int, Proposal]]:
    """(C, Z, Y, X) float32 proposer probabilities → ``{label value c + 1: {z: Proposal}}`` (see the module
    docstring); a pixel belongs to its most probable channel when that probability > ``config.threshold``."""
    labels = label_map(probs, config.threshold)
    out: dict[int, dict[int, Proposal]] = {}
    for c in range(probs.shape[0]):
        found: dict[int, Proposal] = {}
        mine = labels == c + 1
        for z in np.flatnonzero(mine.reshape(mine.shape[0], -1).any(axis=1)):
            pieces, n = ndimage.label(mine[z], structure=EIGHT)
            index = np.arange(1, n + 1)
            areas = ndimage.sum_labels(np.ones_like(pieces), pieces, index)
            means = ndimage.mean(probs[c, z], pieces, index)
            keep = index[(areas >= config.min_area) & (means >= config.min_confidence)]
            if keep.size:
                region = np.isin(pieces, keep)
                found[int(z)] = Proposal(
                    tight_box(region), int(region.sum()), float(probs[c, z][region].mean()), int(keep.size)
                )
        out[c + 1] = found
    return out


def z_runs(slices: list[int], max_gap: int) -> list[list[int]]:
    """Sorted slice numbers grouped into runs whose consecutive members are at most ``max_gap`` + 1 apart."""
    runs: list[list[int]] = []
    for z in sorted(slices):
        if runs and z - runs[-1][-1] <= max_gap + 1:
            runs[-1].append(z)
        else:
            runs.append([z])
    return runs


def seed_slice(run: list[int], proposals: dict[int, Proposal]) -> int:
    """The run's most confident slice among those at least half as large as its largest (a confident sliver
    at an end of the structure is a poor seed); ties: the larger, then the lower z."""
    largest = max(proposals[z].area for z in run)
    wide = [z for z in run if 2 * proposals[z].area >= largest]
    return max(wide, key=lambda z: (proposals[z].confidence, proposals[z].area, -z))


def auto_segment(
    sam: SamModel,
    proposer: UNetModel,
    image_zyx: np.ndarray,
    *,
    sam_frame: tuple[int, bool] | None = None,
    proposer_frame: tuple[int, bool] | None = None,
    config: AutoConfig = AutoConfig(),
    tta: str = "none",
    advance: Advance | None = None,
) -> AutoResult:
    """Segment a (Z, Y, X) uint8 image volume without a user prompt: the proposer's boxes, SAM's masks, slices
    linked in 3D (the module docstring). ``*_frame``: (input side, context channels) each model trained with
    (default: its own size, no context); ``tta``: test-time mirroring of both; ``advance(n)``: n more slices."""
    p_size, p_context = (proposer_frame or (proposer.img_size, False))[:2]
    s_size, s_context = (sam_frame or (sam.img_size, False))[:2]  # a depth frame adds k (propagate_box stacks)
    probs = volume_probabilities(proposer.eval(), image_zyx, context=p_context, size=p_size, tta=tta, advance=advance)
    proposals = propose(probs, config)
    masks, runs = {}, {}
    for value, found in proposals.items():
        masks[value] = np.zeros(image_zyx.shape, dtype=bool)
        runs[value] = []
        for run in z_runs(list(found), config.max_gap):
            seed = seed_slice(run, found)
            given = {z: p.box for z, p in found.items() if run[0] <= z <= run[-1]}
            masks[value] |= propagate_box(
                sam.eval(),
                image_zyx,
                found[seed].box,
                seed,
                context=s_context,
                threshold=config.threshold,
                size=s_size,
                z_range=(run[0], run[-1]),
                tta=tta,
                boxes=given if config.boxes == "proposer" else None,
            )
            runs[value].append((seed, run[0], run[-1]))
    labels = np.zeros(image_zyx.shape, dtype=np.uint8)
    if masks:
        values = sorted(masks)
        stacked = np.stack([masks[v] for v in values])
        score = np.where(stacked, probs[[v - 1 for v in values]], np.float32(-1))  # overlaps: the likelier label
        labels = np.where(stacked.any(0), np.asarray(values, dtype=np.uint8)[score.argmax(0)], 0).astype(np.uint8)
    names = {i + 1: name for i, name in enumerate(proposer.label_names)}
    return AutoResult(labels, names, proposals, runs)


def frame_of(run: LoadedRun) -> tuple[int, bool]:
    """(input side, context channels) a run trained with."""
    return int(run.config.size or run.model.img_size), bool(run.config.context)


def check_auto(run: LoadedRun) -> None:
    """ConfigError unless ``run`` is a SAM run (the auto path prompts SAM; a U-Net run needs no prompt)."""
    if not is_promptable(run.model):
        raise ConfigError(
            f"--auto prompts a SAM run from a proposer's boxes; run of model {run.config.model!r} takes no prompt "
            "(predict, evaluate or compare it without --auto)"
        )


def predict_auto_file(
    run: LoadedRun,
    proposer: LoadedRun,
    image: Path | str,
    out: Path | str,
    *,
    config: AutoConfig = AutoConfig(),
    store_url: str | None = None,
    tta: str = "none",
    stages: Stages | None = None,
    out_format: str = "nifti",
) -> PredictReport:
    """Segment a NIfTI/NRRD/DICOM image with SAM run ``run`` prompted by ``proposer`` (no user prompt, no label
    file read) and write the label map (value i + 1: the proposer's label i) on the image's grid to ``out`` as
    ``out_format`` (as :func:`training.predict.predict_file` writes)."""
    check_auto(run)
    tta_views(tta)
    check_output(out_format, image, out)
    start = time.perf_counter()
    volume = read_volume(image)
    case = prepare_image(run, image, store_url, volume=volume)
    advance = stages("proposer over the slices", case.image.shape[0]) if stages else None
    result = auto_segment(
        run.model,
        proposer.model,
        case.image,
        sam_frame=frame_of(run),
        proposer_frame=frame_of(proposer),
        config=config,
        tta=tta,
        advance=advance,
    )
    record = {"proposer": proposer.info.get("run_dir"), "config": asdict(config), "labels": result.summary()}
    seconds = time.perf_counter() - start
    return write_prediction(
        case,
        result.labels,
        image,
        out,
        seconds,
        frame_of(run)[1],
        tta,
        result.names,
        record,
        volume=volume,
        out_format=out_format,
    )
