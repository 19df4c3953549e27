"""The ``__init__.py`` of a samdata ``cgan`` exported as a medigan model package (mask to image).

Copied verbatim into the package by :func:`samdata.synth.medigan_export.export_medigan`. Unlike the
noise-to-pair template it imports samdata (a declared dependency of the package): the label maps it paints
are ``deform`` transforms of those shipped in ``labels.npz``, with their registration fields so nothing is
registered again, or the label maps in ``input_path``. The contract medigan calls is :func:`generate`.
"""

from __future__ import annotations

from pathlib import Path

LABELS_FILE = "labels.npz"


def _input_maps(folder: str) -> list:
    """Label maps from the ``*.png`` / ``*.npy`` files of ``folder``, in name order."""
    import numpy as np
    from PIL import Image

    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in (".png", ".npy"))
    return [np.load(p) if p.suffix.lower() == ".npy" else np.asarray(Image.open(p)) for p in files]


def generate(
    model_file: str,
    num_samples: int,
    output_path: str,
    save_images: bool,
    seed: int = 0,
    start_index: int = 0,
    input_path: str | None = None,
    device: str = "cpu",
):
    """medigan entry point: ``num_samples`` painted pairs.

    medigan's ``generate_method``: base args ``model_file, num_samples, output_path, save_images``; custom
    ``seed, start_index, input_path, device``. ``model_file`` is the generator's state dict
    (``generator.pt``), ``generator.json`` beside it the samdata description. Without ``input_path`` sample
    ``k`` of ``seed`` is the one ``samdata synth generate --generator GEN`` draws; with it, the ``*.png`` /
    ``*.npy`` label maps there (store label values) are painted in name order. With ``save_images`` it
    writes ``<k>_img.png`` (grey uint8) and ``<k>_mask.png`` (label values) and returns None; otherwise a
    list of ``(image uint8, mask uint8)``."""
    import numpy as np
    import torch

    from samdata.synth.cgan import CganSource
    from samdata.synth.medigan_package import save_pairs
    from samdata.synth.pairs import RealPairs

    here = Path(model_file).parent
    data = np.load(here / LABELS_FILE)
    labels = data["labels"]
    keys = tuple((str(c), int(z)) for c, z in zip(data["cases"], data["z"]))
    table = tuple((int(v), str(n)) for v, n in zip(data["values"], data["names"]))
    chosen = tuple(int(v) for v in data["chosen"])
    names = dict(table)
    reference = RealPairs(
        np.zeros(labels.shape, np.uint8),
        np.stack([labels == v for v in chosen], 1),
        chosen,
        tuple(names[v] for v in chosen),
        tuple(float(v) for v in data["spacing"]),
        str(data["modality"]),
        keys,
        full_labels=labels,
        all_labels=table,
    )
    fields = {(int(i), int(j)): f for i, j, f in zip(data["pair_i"], data["pair_j"], data["fields"])}
    source = CganSource(here, reference, device, fields=fields)
    indices = list(range(int(start_index), int(start_index) + int(num_samples)))
    if input_path:
        maps = _input_maps(input_path)[: int(num_samples)]
        indices = indices[: len(maps)]
        classes = torch.stack([source.shapes.classes.encode(np.asarray(m)[None])[0] for m in maps]) if maps else None
        images = source.paint(classes, seed, indices) if maps else np.zeros((0, 1, 1), np.uint8)
        masks = np.stack([np.asarray(m) for m in maps]) if maps else np.zeros((0, 1, 1), np.uint8)
    else:
        batch = source.batch(int(seed), indices)
        images, masks = batch.images, batch.labels
    pairs = [(img, np.asarray(msk).astype(np.uint8)) for img, msk in zip(images, masks)]
    if not save_images:
        return pairs
    save_pairs(pairs, indices, output_path)
    return None
