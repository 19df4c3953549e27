"""Typed records shared by every package: a read volume, a prepared case and its metadata.

Axis conventions (used everywhere in samdata):

* :class:`Volume` keeps nibabel's index order: ``array[i, j, k]`` = ``(X, Y, Z)``, with a 4x4
  ``affine`` mapping ``(i, j, k, 1)`` to world millimetres in RAS+ (nibabel's convention).
  2D images are volumes with ``Z == 1``.
* :class:`Case` keeps the store's order: ``image[z, y, x]`` = ``(Z, Y, X)``, so one slice is one
  contiguous ``(Y, X)`` plane and one store chunk. ``Case.image[z] == canonical.array[:, :, z].T``.
* Boxes are ``(x0, y0, x1, y1)`` in slice pixel coordinates, inclusive-exclusive
  (``x1 = max x + 1``), points are ``(x, y)``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

Origin = Literal["real", "synthetic"]
ORIGINS: tuple[str, ...] = ("real", "synthetic")


@dataclass(frozen=True)
class Volume:
    """An image or label volume as read from disk, before normalisation.

    ``array``: (X, Y, Z) any numeric dtype, nibabel index order. ``affine``: (4, 4) float64,
    voxel index to RAS+ mm. ``path``: the file or folder it came from (for error messages).
    """

    array: np.ndarray
    affine: np.ndarray
    path: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size along (X, Y, Z) in mm, from the affine's column norms."""
        cols = np.linalg.norm(np.asarray(self.affine, dtype=float)[:3, :3], axis=0)
        return (float(cols[0]), float(cols[1]), float(cols[2]))


@dataclass(frozen=True)
class Normalisation:
    """The intensity transform applied, invertible: ``stored = clip((x - lo) / (hi - lo), 0, 1) * 255``.

    ``method`` is e.g. ``"window:abdomen"``, ``"window:custom"``, ``"percentile"`` or ``"none"``;
    ``params`` records the method's own parameters (window level/width, percentiles, rgb→grey).
    """

    method: str
    lo: float
    hi: float
    params: dict[str, Any] = field(default_factory=dict)

    def invert(self, stored: np.ndarray) -> np.ndarray:
        """Map stored uint8 values back to source intensities (float32; clipped values saturate)."""
        return (self.lo + stored.astype(np.float32) / 255.0 * (self.hi - self.lo)).astype(np.float32)


@dataclass(frozen=True)
class Geometry:
    """Where the stored grid sits in patient space and how it relates to the source grid.

    ``affine``: (4, 4) voxel (x, y, z) → RAS+ mm of the stored (canonical, maybe resampled) grid.
    ``spacing``: (X, Y, Z) mm of the stored grid. ``source_affine`` / ``source_shape``: the file's own
    grid (X, Y, Z), so predictions can be written back onto it. ``source_axcodes``: e.g. ("L","P","S").
    """

    affine: tuple[tuple[float, ...], ...]
    spacing: tuple[float, float, float]
    source_affine: tuple[tuple[float, ...], ...]
    source_shape: tuple[int, ...]
    source_axcodes: tuple[str, ...]
    resampled: bool = False


@dataclass(frozen=True)
class Provenance:
    """Where a case came from: a real source file (with content hash) or a generator run.

    A synthetic case also names the real slices it was made from (``parents``, (case_id, z)) and how
    (``recipe``, JSON-safe: e.g. a morph's end slices and fraction). ``name``: a real case's name on disk
    when its case id had to be derived from it (``fall ü 01`` → ``fall_u_01-…``).
    """

    origin: str
    source: str
    source_hash: str
    generator: str | None = None
    checkpoint_hash: str | None = None
    seed: int | None = None
    scores: dict[str, float] = field(default_factory=dict)
    parents: tuple[tuple[str, int], ...] = ()
    recipe: dict[str, Any] = field(default_factory=dict)
    name: str = ""


@dataclass(frozen=True)
class CaseMeta:
    """Everything the store keeps about a case besides its pixels."""

    case_id: str
    modality: str
    label_names: dict[int, str]
    geometry: Geometry
    normalisation: Normalisation
    provenance: Provenance
    split: str = "train"

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict (label keys become strings)."""
        d = dataclasses.asdict(self)
        d["label_names"] = {str(k): v for k, v in self.label_names.items()}
        return json.loads(json.dumps(d))

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> CaseMeta:
        """Rebuild a CaseMeta from :meth:`to_json` output."""
        g = d["geometry"]
        geometry = Geometry(
            affine=tuple(tuple(float(v) for v in row) for row in g["affine"]),
            spacing=tuple(float(v) for v in g["spacing"]),  # type: ignore[arg-type]
            source_affine=tuple(tuple(float(v) for v in row) for row in g["source_affine"]),
            source_shape=tuple(int(v) for v in g["source_shape"]),
            source_axcodes=tuple(g["source_axcodes"]),
            resampled=bool(g.get("resampled", False)),
        )
        return cls(
            case_id=d["case_id"],
            modality=d["modality"],
            label_names={int(k): v for k, v in d["label_names"].items()},
            geometry=geometry,
            normalisation=Normalisation(**d["normalisation"]),
            provenance=Provenance(
                **{**d["provenance"], "parents": tuple((str(c), int(z)) for c, z in d["provenance"].get("parents", ()))}
            ),
            split=d.get("split", "train"),
        )


@dataclass(frozen=True)
class Case:
    """A prepared case ready for the store.

    ``image``: (Z, Y, X) uint8 normalised intensities. ``label``: (Z, Y, X) uint8 or uint16 label map
    (0 = background) on the same grid.
    """

    meta: CaseMeta
    image: np.ndarray
    label: np.ndarray

    def __post_init__(self) -> None:
        assert self.image.ndim == 3 and self.image.dtype == np.uint8, (self.image.shape, self.image.dtype)
        assert self.label.shape == self.image.shape, (self.label.shape, self.image.shape)


@dataclass(frozen=True)
class ObjectRow:
    """One object in the index: all pixels of one label in one slice of one case."""

    case_id: str
    z: int
    label: int
    x0: int
    y0: int
    x1: int
    y1: int
    area: int


def slice_objects(case_id: str, label: np.ndarray) -> list[ObjectRow]:
    """List every (slice, label) object of a (Z, Y, X) integer label map with its box and area."""
    from scipy import ndimage  # boxes and areas in C: one pass per slice instead of one per label

    rows: list[ObjectRow] = []
    row_any, col_any = label.any(axis=2), label.any(axis=1)  # (Z, Y), (Z, X); no volume-sized temporary
    for z in np.flatnonzero(row_any.any(axis=1)).tolist():
        # only the slice's labelled extent is scanned (organs cover a fraction of a CT slice)
        ys, xs = np.flatnonzero(row_any[z]), np.flatnonzero(col_any[z])
        y0, x0 = int(ys[0]), int(xs[0])
        plane = label[z, y0 : int(ys[-1]) + 1, x0 : int(xs[-1]) + 1]
        areas = np.bincount(plane.ravel())
        for value, box in enumerate(ndimage.find_objects(plane), start=1):
            if box is None:
                continue
            by, bx = box
            rows.append(
                ObjectRow(
                    case_id,
                    z,
                    value,
                    x0 + int(bx.start),
                    y0 + int(by.start),
                    x0 + int(bx.stop),
                    y0 + int(by.stop),
                    int(areas[value]),
                )
            )
    return rows
