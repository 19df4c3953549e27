"""Shared fixtures of the slice store tests: tiny seeded cases and a fresh store in tmp_path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from samdata.case import Case, CaseMeta, Geometry, Normalisation, Provenance
from storage import SliceStore

CaseFactory = Callable[..., Case]


def build_case(
    case_id: str,
    seed: int,
    *,
    depth: int = 5,
    height: int = 24,
    width: int = 32,
    label_dtype: type = np.uint8,
    split: str = "train",
    origin: str = "real",
) -> Case:
    """A seeded case: noisy uint8 image (Z, Y, X) and a 2-label map with boxes that move with the seed."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (depth, height, width), dtype=np.uint8)
    label = np.zeros((depth, height, width), dtype=label_dtype)
    y0, x0 = int(rng.integers(0, height // 2)), int(rng.integers(0, width // 2))
    label[1 : depth - 1, y0 : y0 + 5, x0 : x0 + 7] = 1
    label[depth // 2, height - 6 : height - 2, width - 4 : width - 1] = 2
    label[depth // 2, 0, width - 1] = 1  # a second, disjoint piece of label 1 widens its box
    eye = tuple(tuple(float(v) for v in row) for row in np.diag([0.8, 0.8, 2.5, 1.0]))
    meta = CaseMeta(
        case_id=case_id,
        modality="CT",
        label_names={1: "liver", 2: "kidney"},
        geometry=Geometry(eye, (0.8, 0.8, 2.5), eye, (width, height, depth), ("R", "A", "S")),
        normalisation=Normalisation("window:abdomen", -160.0, 240.0, {"level": 40.0, "width": 400.0}),
        provenance=Provenance(origin, f"/data/{case_id}.nii.gz", f"sha256:{case_id}-{seed}"),
        split=split,
    )
    return Case(meta=meta, image=image, label=label)


@pytest.fixture
def make_case() -> CaseFactory:
    """The seeded case factory :func:`build_case`."""
    return build_case


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    """Path of a freshly created, empty store."""
    path = tmp_path / "store"
    SliceStore.open(path, create=True)
    return path
