"""The ``__init__.py`` of a samdata generator exported as a medigan model package.

This file is copied verbatim into the package by :func:`samdata.synth.medigan_export.export_medigan`, so it
imports nothing from samdata: only numpy, torch and Pillow (the package's declared dependencies). samdata
itself draws latents with :func:`latents`, so sample ``k`` of seed ``s`` is the same pair whether it comes
from ``samdata synth generate`` or from medigan. The contract medigan calls is :func:`generate`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SIDECAR = "generator.json"


def latents(seed: int, indices: range | list[int], latent: int) -> np.ndarray:
    """(len(indices), latent) float32 N(0, 1) latents; sample k from ``SeedSequence([seed, k])``."""
    rows = [np.random.default_rng(np.random.SeedSequence([int(seed), int(k)])).standard_normal(latent) for k in indices]
    return np.stack(rows).astype(np.float32) if rows else np.zeros((0, latent), np.float32)


def decode(output: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Raw (B, 1 + K, S, S) output → (image uint8, mask uint8) per sample (see :func:`generate`)."""
    images = np.clip(np.rint((output[:, 0] + 1.0) * 127.5), 0, 255).astype(np.uint8)
    logits = output[:, 1:]
    if logits.shape[1] == 1:
        masks = np.where(logits[:, 0] > 0, 255, 0).astype(np.uint8)
    else:
        masks = np.where(logits.max(axis=1) > 0, logits.argmax(axis=1) + 1, 0).astype(np.uint8)
    return list(zip(images, masks))


def generate(
    model_file: str,
    num_samples: int,
    output_path: str,
    save_images: bool,
    seed: int = 0,
    start_index: int = 0,
    device: str = "cpu",
):
    """medigan entry point: draw ``num_samples`` image/mask pairs.

    medigan's ``generate_method`` with base args ``model_file, num_samples, output_path, save_images`` and
    custom args ``seed, start_index``: ``model_file`` is a ``torch.export`` program (``<model_name>.pt2``)
    mapping latents (B, L) to (B, 1 + K, S, S), image in [-1, 1] then K mask logits; ``generator.json``
    beside it gives L and K. With ``save_images`` it writes ``<k>_img.png`` (grey uint8) and
    ``<k>_mask.png`` ({0, 255} for one label, else the label index 1..K per pixel) for ``k = start_index
    ... start_index + num_samples - 1`` and returns None; otherwise a list of ``(image (S, S) uint8,
    mask (S, S) uint8)`` tuples."""
    import torch

    if int(num_samples) <= 0:
        return None if save_images else []
    info = json.loads((Path(model_file).parent / SIDECAR).read_text())
    program = torch.export.load(model_file).module().to(device)
    indices = range(int(start_index), int(start_index) + int(num_samples))
    with torch.no_grad():
        output = program(torch.from_numpy(latents(seed, indices, int(info["net"]["latent"]))).to(device))
    pairs = decode(output.float().cpu().numpy())
    if not save_images:
        return pairs
    save_pairs(pairs, indices, output_path)
    return None


def save_pairs(pairs: list, indices: range | list[int], output_path: str) -> None:
    """Write ``<k>_img.png`` and ``<k>_mask.png`` of each (image, mask) pair under ``output_path``."""
    from PIL import Image

    out = Path(output_path)
    out.mkdir(parents=True, exist_ok=True)
    for k, (image, mask) in zip(indices, pairs):
        Image.fromarray(image).save(out / f"{k}_img.png")
        Image.fromarray(mask).save(out / f"{k}_mask.png")
