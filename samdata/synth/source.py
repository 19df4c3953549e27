"""What every synthetic pair source hands the gate and the store: :class:`GeneratedBatch`, :class:`PairSource`.

A source draws samples ``k`` of a ``seed`` (each from its own ``SeedSequence([seed, k])``, so one
sample can be redrawn alone) on the grid of the real slices it imitates, with full label maps in
the store's label values. ``realistic`` says whether its images claim the real slices' contrast
(the gate then compares intensity statistics; a random-contrast renderer does not claim it).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from samdata.errors import ValidationError


@dataclass(frozen=True, eq=False)
class GeneratedBatch:
    """Generated pairs: ``images`` (n, H, W) uint8, ``labels`` (n, H, W) label maps (None: image only).

    ``min_jacobian``: (n,) smallest Jacobian determinant of each pair's spatial transform (None when the
    source has no field; <= 0 means it folded). ``parents``: per pair, the (case_id, z) of the real slices
    it was made from; ``recipes``: per pair, a JSON-safe description of how (kept in its provenance).
    """

    images: np.ndarray
    labels: np.ndarray | None
    min_jacobian: np.ndarray | None = None
    parents: tuple[tuple[tuple[str, int], ...], ...] = ()
    recipes: tuple[dict[str, Any], ...] = ()
    extras: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        images = np.asarray(self.images)
        if images.ndim != 3 or images.dtype != np.uint8:
            raise ValidationError(f"generated images must be (n, H, W) uint8; got {images.shape} {images.dtype}")
        if self.labels is not None and np.shape(self.labels) != images.shape:
            raise ValidationError(f"generated label maps {np.shape(self.labels)} differ from images {images.shape}")
        n = len(images)
        for name in ("parents", "recipes"):
            value = getattr(self, name)
            if value and len(value) != n:
                raise ValidationError(f"generated batch has {n} images but {len(value)} {name}")
        if self.min_jacobian is not None and len(self.min_jacobian) != n:
            raise ValidationError(f"generated batch has {n} images but {len(self.min_jacobian)} Jacobians")

    def __len__(self) -> int:
        return len(self.images)


class PairSource(Protocol):
    """A seeded source of pairs: identity for provenance and a batch draw on the reference grid."""

    generator_id: str
    checkpoint_hash: str
    description: str
    kind: str
    seeded: bool
    realistic: bool

    def batch(self, seed: int, indices: list[int]) -> GeneratedBatch:
        """Samples ``indices`` of ``seed``."""
        ...


def sample_rng(seed: int, k: int, stream: int = 0) -> np.random.Generator:
    """The numpy generator of sample ``k`` of ``seed`` (``stream`` separates independent draws of one sample)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(k), int(stream)]))


def content_hash(kind: str, params: dict[str, Any], *arrays: np.ndarray) -> str:
    """SHA-256 over a generator's kind, its parameters and the arrays it was built from (its 'checkpoint')."""
    digest = hashlib.sha256(json.dumps({"kind": kind, "params": params}, sort_keys=True, default=str).encode())
    for array in arrays:
        digest.update(str((array.shape, str(array.dtype))).encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()
