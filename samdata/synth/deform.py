"""``deform``: new anatomy from the few labelled slices by smooth deformation and in-between morphs.

Each sample starts from one labelled real slice or (probability ``morph``) from an in-between morph of two
neighbouring labelled slices of a case (:mod:`samdata.synth.morph`), then gets a random smooth field and a
small affine. Image and full label map are sampled through the same coordinates, so they agree by
construction, and each transform's smallest Jacobian determinant goes to the gate (≤ 0 = folded). No
training: :class:`DeformGenerator` registers the neighbouring pairs once when built (or takes the fields of
an earlier build, as a medigan package of a cgan does).
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from samdata.errors import ValidationError
from samdata.synth import fields
from samdata.synth.configs import DeformParams as DeformParams
from samdata.synth.morph import DemonsConfig, label_levels, register
from samdata.synth.pairs import RealPairs
from samdata.synth.source import GeneratedBatch, content_hash, sample_rng


@dataclass(frozen=True)
class Plan:
    """Where each of n samples reads from: ``sources`` (n,) reference index, ``coords`` (n, H, W, 2) source
    pixel coordinates, ``min_jacobian`` (n,), and a JSON-safe recipe per sample."""

    sources: np.ndarray
    coords: torch.Tensor
    min_jacobian: np.ndarray
    recipes: tuple[dict[str, Any], ...]


def neighbour_pairs(keys: tuple[tuple[str, int], ...], max_gap: int) -> list[tuple[int, int]]:
    """(i, j) index pairs of consecutive labelled slices of one case (by z), at most ``max_gap`` apart."""
    order = sorted(range(len(keys)), key=lambda i: keys[i])
    return [
        (i, j)
        for i, j in itertools.pairwise(order)
        if keys[i][0] == keys[j][0] and 0 < keys[j][1] - keys[i][1] <= max_gap
    ]


class Classes:
    """Label values ↔ dense class indices 0..C-1 (class 0 = value 0, background)."""

    def __init__(self, values: list[int]) -> None:
        self.values = np.array(sorted({0, *(int(v) for v in values)}), dtype=np.int64)
        self.lookup = np.zeros(int(self.values.max()) + 1, dtype=np.int64)
        self.lookup[self.values] = np.arange(len(self.values))

    def __len__(self) -> int:
        return len(self.values)

    def encode(self, label_maps: np.ndarray) -> torch.Tensor:
        """(n, H, W) label values → (n, H, W) int64 class indices."""
        return torch.from_numpy(self.lookup[np.asarray(label_maps, dtype=np.int64)])

    def decode(self, classes: torch.Tensor, dtype: type) -> np.ndarray:
        """(n, H, W) class indices → label values of ``dtype``."""
        return self.values[classes.numpy()].astype(dtype)


class DeformGenerator:
    """The ``deform`` pair source over the real slices of ``reference`` (see the module docstring)."""

    kind = "deform"
    seeded = True
    realistic = True

    def __init__(
        self,
        reference: RealPairs,
        params: DeformParams = DeformParams(),
        *,
        generator_id: str = "deform",
        demons: DemonsConfig = DemonsConfig(),
        fields: dict[tuple[int, int], np.ndarray] | None = None,
    ) -> None:
        self.reference, self.params, self.generator_id = reference, params, generator_id
        self.label_maps = reference.label_map()
        table = reference.label_table()
        self.classes = Classes(list(table))
        self.dtype = np.uint8 if max(table) < 256 else np.uint16
        self.spacing = (float(reference.spacing[0]), float(reference.spacing[1]))
        self.pairs = (
            neighbour_pairs(reference.keys, params.max_gap) if len(reference.keys) == len(self.label_maps) else []
        )
        # fields[(i, j)]: u with slice_i(x + u) ≈ slice_j(x), both ways for every neighbour pair
        if fields is None:
            levels = label_levels(reference.images, self.label_maps, tuple(int(v) for v in self.classes.values))
            fields = {}
            for i, j in self.pairs:
                fields[(i, j)] = register(self.label_maps[j], self.label_maps[i], levels, demons)
                fields[(j, i)] = register(self.label_maps[i], self.label_maps[j], levels, demons)
        missing = [(i, j) for i, j in self.pairs if (i, j) not in fields or (j, i) not in fields]
        if missing:
            raise ValidationError(f"deform: no registration field for neighbour slice pair(s) {missing}")
        self.fields = {
            key: torch.as_tensor(np.asarray(value, dtype=np.float32)).contiguous()  # stacked per batch
            for key, value in fields.items()
        }
        self.checkpoint_hash = content_hash(
            self.kind, {**asdict(params), **asdict(demons)}, reference.images, self.label_maps
        )
        self.description = f"samdata:{self.kind}"

    @property
    def grid(self) -> tuple[int, int]:
        """(H, W) of the generated pairs (the reference grid)."""
        return self.reference.grid

    def _draw(self, seed: int, k: int) -> tuple[np.ndarray, np.ndarray, tuple[int, int, float] | None, int]:
        """Sample ``k`` of ``seed``: control displacements, affine, morph (source, target, fraction) or None,
        and the source index."""
        rng, p = sample_rng(seed, k), self.params
        control = fields.control_field(rng, self.grid, self.spacing, p.max_mm, p.control_mm)
        matrix = fields.affine_matrix(rng, p.rotation_deg, p.scale, p.shift_mm, self.spacing)
        if self.pairs and rng.random() < p.morph:
            i, j = self.pairs[int(rng.integers(len(self.pairs)))]
            t = float(rng.uniform(p.t_min, p.t_max))
            return control, matrix, ((i, j, t) if t <= 0.5 else (j, i, t)), (i if t <= 0.5 else j)
        return control, matrix, None, int(rng.integers(len(self.reference.images)))

    def _recipe(self, morph: tuple[int, int, float] | None, source: int) -> dict[str, Any]:
        keys = self.reference.keys
        if morph is None:
            return {"op": "deform", "from": list(keys[source]), "parents": (source,)}
        a, b, t = morph
        first, second = (a, b) if t <= 0.5 else (b, a)
        return {"op": "morph", "from": list(keys[first]), "to": list(keys[second]), "t": round(t, 4), "parents": (a, b)}

    def plan(self, seed: int, indices: list[int]) -> Plan:
        """The transforms of samples ``indices`` of ``seed`` (drawn per sample, applied as one batch)."""
        height, width = self.grid
        drawn = [self._draw(seed, k) for k in indices]
        if not drawn:
            return Plan(np.zeros(0, np.int64), torch.zeros((0, height, width, 2)), np.zeros(0), ())
        control = torch.from_numpy(np.stack([d[0] for d in drawn]))
        coords = fields.identity(height, width, len(drawn))
        coords += fields.upsample_field(control, (height, width)).permute(0, 2, 3, 1)
        coords = fields.apply_affine(coords, torch.from_numpy(np.stack([d[1] for d in drawn])))
        morphs = [n for n, d in enumerate(drawn) if d[2] is not None]
        if morphs:
            stack = torch.stack([self.fields[drawn[n][2][:2]] for n in morphs])
            frac = torch.tensor([min(drawn[n][2][2], 1 - drawn[n][2][2]) for n in morphs])
            rows = torch.tensor(morphs)
            moved = fields.sample_field(stack, coords.index_select(0, rows)).permute(0, 2, 3, 1)
            coords.index_add_(0, rows, frac[:, None, None, None] * moved)
        jac = fields.jacobian_det(coords).amin(dim=(1, 2)).numpy()
        return Plan(
            np.array([d[3] for d in drawn], dtype=np.int64), coords, jac, tuple(self._recipe(d[2], d[3]) for d in drawn)
        )

    def warp_images(self, plan: Plan, images: np.ndarray) -> np.ndarray:
        """(n, H, W) uint8: reference ``images`` (N, H, W) sampled through ``plan``."""
        src = torch.from_numpy(np.asarray(images, dtype=np.float32)[plan.sources])[:, None]
        out = fields.warp(src, plan.coords)[:, 0]
        return out.round().clamp(0, 255).to(torch.uint8).numpy()

    def warp_classes(self, plan: Plan, classes: torch.Tensor, count: int) -> torch.Tensor:
        """(n, H, W) int64: (N, H, W) class maps of the reference sampled through ``plan``."""
        return fields.warp_labels(classes[torch.from_numpy(plan.sources)], plan.coords, count)

    def parents(self, plan: Plan) -> tuple[tuple[tuple[str, int], ...], ...]:
        """Per sample, the (case_id, z) of the real slices it was made from."""
        keys = self.reference.keys
        return tuple(tuple(keys[p] for p in r["parents"]) if keys else () for r in plan.recipes)

    def batch(self, seed: int, indices: list[int]) -> GeneratedBatch:
        """Samples ``indices`` of ``seed``: warped real images and full label maps."""
        plan = self.plan(seed, indices)
        images = self.warp_images(plan, self.reference.images)
        classes = self.warp_classes(plan, self.classes.encode(self.label_maps), len(self.classes))
        recipes = tuple({k: v for k, v in r.items() if k != "parents"} for r in plan.recipes)
        return GeneratedBatch(
            images, self.classes.decode(classes, self.dtype), plan.min_jacobian, self.parents(plan), recipes
        )
