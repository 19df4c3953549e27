"""A local medigan package as a pair source: its outputs brought to the real slices' grid and labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from samdata.errors import ValidationError
from samdata.files import file_sha256
from samdata.synth.checkpoint import check_generator_id
from samdata.synth.medigan_io import MediganModel
from samdata.synth.pairs import RealPairs, grey_uint8, resize_pair
from samdata.synth.source import GeneratedBatch


def resize_nearest(index: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of an (h, w) integer map to ``grid``."""
    rows = (np.arange(grid[0]) * index.shape[0] // grid[0]).clip(0, index.shape[0] - 1)
    cols = (np.arange(grid[1]) * index.shape[1] // grid[1]).clip(0, index.shape[1] - 1)
    return index[rows][:, cols]


class MediganSource:
    """An opened :class:`~samdata.synth.medigan_io.MediganModel`; outputs are brought to the reference grid
    and mask indices to store label values (:meth:`mask_values`)."""

    kind = "medigan"
    realistic = True

    def __init__(self, model: MediganModel, work: Path | str, reference: RealPairs) -> None:
        self.model, self.work, self.reference = model, Path(work), reference
        self.generator_id = check_generator_id("medigan." + model.model_id)
        ex = model.entry["execution"]
        weights = [
            model.workdir / "models" / model.model_id / p / f"{ex['model_name']}{ex['extension']}"
            for p in (model.package_name, ".")
        ]
        found = next((w for w in weights if w.is_file()), None)
        self.checkpoint_hash = file_sha256(found) if found else "unknown"
        self.description = f"medigan:{model.model_id}:{model.package.resolve()}"
        custom = ex.get("generate_method", {}).get("args", {}).get("custom", {}) or {}
        self._custom_keys = set(custom)
        self.seeded = "seed" in custom

    def mask_values(self) -> np.ndarray:
        """Store label value of each mask index 0..K: by name when the metadata's ``selection.organ`` names
        labels the reference knows (mask k = organ k), else the k-th of the reference's chosen labels."""
        organs = self.model.entry.get("selection", {}).get("organ") or []
        by_name = {name: value for value, name in self.reference.label_table().items()}
        if organs and all(isinstance(o, str) and o in by_name for o in organs):
            return np.asarray((0, *(by_name[o] for o in organs)))
        return np.asarray((0, *self.reference.label_values))

    def batch(self, seed: int, indices: list[int]) -> GeneratedBatch:
        """Run the model for ``len(indices)`` samples and map images (grey) and masks (labels) to the grid."""
        reference = self.reference
        custom = {k: v for k, v in {"seed": seed, "start_index": indices[0]}.items() if k in self._custom_keys}
        pairs = self.model.generate(len(indices), self.work / f"seed{seed}-{indices[0]}", custom)
        if len(pairs) < len(indices):
            raise ValidationError(
                f"medigan model {self.model.model_id!r} returned {len(pairs)} samples for {len(indices)} asked"
            )
        images, labels, values = [], [], self.mask_values()
        for pair in pairs[: len(indices)]:
            image, _ = resize_pair(grey_uint8(pair.image), None, reference.grid)
            images.append(image)
            if pair.mask is not None:
                index = np.minimum(pair.mask, len(values) - 1)
                labels.append(values[resize_nearest(index, reference.grid)])
        has_masks = len(labels) == len(images)
        return GeneratedBatch(
            np.stack(images),
            np.stack(labels).astype(np.uint16) if has_masks else None,
            recipes=tuple({"op": "medigan", "model": self.model.model_id} for _ in images),
        )
