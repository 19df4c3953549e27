"""Pairs per second of the generators without training and of the gate, at 256² on this machine, against
TorchIO's per-subject transforms doing the same work (measured in the same run).

``.venv/bin/python bench/synth_speed.py [--pairs 256] [--threads 2]``: the reference is 8 MNI152 T1 slices
(z = 50..137, WM / GM / other-brain labels) zero-padded to 256 x 256. Timed: ``deform`` and
``labels2image`` (near and random) drawing ``--pairs`` pairs in batches of 32, after building (the
registrations, timed apart); the gate on those pairs; and the baseline, TorchIO's
``RandomElasticDeformation`` + ``RandomAffine`` on image and label (deform's work) and
``RandomLabelsToImage`` + ``RandomBiasField`` + ``RandomBlur`` + ``RandomAnisotropy`` + ``RandomGamma`` +
``RandomNoise`` after them (labels2image's work), one subject at a time.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: this checkout's packages

SIDE = 256


def reference() -> object:
    """8 MNI152 T1 axial slices with their label maps, zero-padded to SIDE x SIDE, as RealPairs."""
    import nibabel as nib
    from nilearn import datasets

    from samdata.io.sample_data import _probabilities, mni152_labels
    from samdata.synth.pairs import RealPairs

    t1 = np.asarray(nib.load(datasets.MNI152_FILE_PATH).dataobj).astype(np.float32)
    brain = np.asarray(datasets.load_mni152_brain_mask(resolution=1).dataobj)
    label = mni152_labels(
        _probabilities(datasets.WM_MNI152_FILE_PATH), _probabilities(datasets.GM_MNI152_FILE_PATH), brain
    )
    zs = np.linspace(50, 137, 8).round().astype(int)
    images = np.zeros((8, SIDE, SIDE), np.uint8)
    labels = np.zeros((8, SIDE, SIDE), np.uint8)
    for i, z in enumerate(zs):
        img, lab = np.rot90(t1[:, :, z]), np.rot90(label[:, :, z])
        h, w = img.shape
        images[i, :h, :w] = np.clip(img / np.percentile(img[img > 0], 99.5) * 255, 0, 255).astype(np.uint8)
        labels[i, :h, :w] = lab
    return RealPairs(
        images,
        (labels == 1)[:, None],
        (1,),
        ("white_matter",),
        (1.0, 1.0, 1.0),
        "MR",
        tuple(("mni152", int(z)) for z in zs),
        full_labels=labels,
        all_labels=((0, "background"), (1, "white_matter"), (2, "grey_matter"), (3, "other_brain")),
    )


def timed(source: object, pairs: int) -> tuple[float, list]:
    """Seconds to draw ``pairs`` pairs in batches of 32, and the batches."""
    source.batch(99, [0])  # warm-up
    started, batches = time.perf_counter(), []
    for start in range(0, pairs, 32):
        batches.append(source.batch(0, list(range(start, min(start + 32, pairs)))))
    return time.perf_counter() - started, batches


def torchio_baseline(ref: object, pairs: int) -> tuple[float, float]:
    """Seconds per pair of TorchIO's shape transforms, and of shape + rendering transforms, one subject at a time."""
    import torchio as tio

    shape = tio.Compose(
        [
            tio.RandomElasticDeformation(num_control_points=(9, 9, 5), max_displacement=(4, 4, 0), locked_borders=2),
            tio.RandomAffine(
                scales=(0.92, 1.08, 0.92, 1.08, 1, 1), degrees=(0, 0, 0, 0, -10, 10), translation=(-8, 8, -8, 8, 0, 0)
            ),
        ]
    )
    render = tio.Compose(
        [
            tio.RandomLabelsToImage(label_key="label", image_key="image"),
            tio.RandomBiasField(),
            tio.RandomBlur(std=(0, 1.5, 0, 1.5, 0, 0)),
            tio.RandomAnisotropy(axes=(0, 1)),
            tio.RandomGamma(),
            tio.RandomNoise(),
        ]
    )
    n = max(8, pairs // 8)  # TorchIO is slow: time a share of the pairs

    def subject(i: int) -> tio.Subject:
        return tio.Subject(
            image=tio.ScalarImage(tensor=torch.from_numpy(ref.images[i % 8][None, ..., None].astype(np.float32))),
            label=tio.LabelMap(tensor=torch.from_numpy(ref.full_labels[i % 8][None, ..., None].astype(np.int64))),
        )

    started = time.perf_counter()
    for i in range(n):
        shape(subject(i))
    shape_s = (time.perf_counter() - started) / n
    started = time.perf_counter()
    for i in range(n):
        moved = shape(subject(i))
        render(tio.Subject(label=moved["label"]))
    return shape_s, (time.perf_counter() - started) / n


def main(argv: list[str] | None = None) -> None:
    """Measure and print one JSON line per figure, then the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from samdata.synth.deform import DeformGenerator
    from samdata.synth.gate import GateConfig, calibrate, run_gate
    from samdata.synth.render import LabelsToImageGenerator, RenderParams

    ref = reference()
    started = time.perf_counter()
    shapes = DeformGenerator(ref)
    build = time.perf_counter() - started
    results: dict[str, float] = {"deform_build_s": round(build, 2)}
    deform_s, batches = timed(shapes, args.pairs)
    results["deform_pairs_per_s"] = args.pairs / deform_s
    for mode in ("near", "random"):
        seconds, _ = timed(LabelsToImageGenerator(ref, RenderParams(mode=mode), shapes=shapes), args.pairs)
        results[f"labels2image_{mode}_pairs_per_s"] = args.pairs / seconds
    config, gate_ref = calibrate(GateConfig(), ref.images, ref.full_labels)
    started = time.perf_counter()
    for batch in batches:
        run_gate(batch.images, batch.labels, config, gate_ref, jacobians=batch.min_jacobian)
    results["gate_pairs_per_s"] = args.pairs / (time.perf_counter() - started)
    shape_s, both_s = torchio_baseline(ref, args.pairs)
    results["torchio_shape_pairs_per_s"] = 1 / shape_s
    results["torchio_shape_render_pairs_per_s"] = 1 / both_s
    results["deform_vs_torchio"] = results["deform_pairs_per_s"] * shape_s
    results["labels2image_near_vs_torchio"] = results["labels2image_near_pairs_per_s"] * both_s
    print(json.dumps({k: round(v, 2) for k, v in results.items()}, indent=1))


if __name__ == "__main__":
    sys.exit(main())
