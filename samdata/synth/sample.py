"""Drawing pairs from a trained noise-to-pair generator (``fastgan``), on the store's grid and intensity range.

Sample ``k`` of seed ``s`` comes from the latent ``N(0, 1)`` drawn by numpy from
``SeedSequence([s, k])`` (:func:`latents_for`), so the case ``syn-<generator>-<s>-<k>`` can be
regenerated alone, in any batch, on any device, and the medigan export draws the same latents.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from samdata.synth.checkpoint import GeneratorInfo, load_generator
from samdata.synth.medigan_package import latents
from samdata.synth.networks import PairedGenerator
from samdata.synth.pairs import to_store_grid
from samdata.synth.source import GeneratedBatch


def latents_for(seed: int, indices: range | list[int], latent: int) -> torch.Tensor:
    """(len(indices), latent) float32 latents of samples ``indices`` of ``seed`` (one SeedSequence each)."""
    return torch.from_numpy(latents(seed, indices, latent))


@torch.no_grad()
def generate_raw(generator: PairedGenerator, seed: int, indices: range | list[int]) -> torch.Tensor:
    """Raw generator output (N, 1 + K, S, S) (image in [-1, 1], mask logits) for samples ``indices``."""
    device = next(generator.parameters()).device
    return generator(latents_for(seed, indices, generator.config.latent).to(device)).cpu()


def generate_pairs(
    generator: PairedGenerator, info: GeneratorInfo, seed: int, indices: range | list[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Samples ``indices`` of ``seed`` on the store grid: ((N, H, W) uint8 images, (N, H, W) label maps)."""
    return to_store_grid(generate_raw(generator, seed, indices), info.grid, info.label_values)


class GanSource:
    """A noise-to-pair generator trained by ``samdata synth train --kind fastgan`` (folder GEN) as a pair
    source: samples of ``seed`` drawn on the store grid of the slices it learnt from (its chosen labels only)."""

    kind = "fastgan"
    seeded = True
    realistic = True

    def __init__(self, gen_dir: Path | str, device: torch.device | str = "cpu") -> None:
        self.generator, self.info, self.checkpoint_hash = load_generator(Path(gen_dir), device)
        self.generator_id = self.info.generator_id
        self.description = f"samdata:{self.kind}:{Path(gen_dir).resolve()}"

    def batch(self, seed: int, indices: list[int]) -> GeneratedBatch:
        """Draw samples ``indices`` of ``seed``."""
        images, labels = generate_pairs(self.generator, self.info, seed, indices)
        return GeneratedBatch(images, labels, recipes=tuple({"op": "fastgan"} for _ in indices))
