"""Synthetic pairs for the store: read the real slices, train or build a generator, generate, gate, commit.

:func:`load_real_pairs` reads what a generator starts from and the gate compares against; :func:`build_source`
and :func:`train_generator` make a generator (the registry is :mod:`samdata.synth.kinds`); :func:`synthesize`
gates every batch and writes the accepted pairs as 2D cases of origin ``synthetic``, with their provenance,
in one commit (nothing on failure). Case ids ``syn-<generator>-<seed>-<k>`` make a re-run with the same seed
add nothing; mixtures put these cases in train only.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.configs import SliceQuery as SliceQuery
from pipelines.configs import SynthConfig as SynthConfig
from samdata.case import Case, CaseMeta, Geometry, Normalisation, Provenance
from samdata.errors import CaseNotFoundError, ConfigError, SnapshotNotFoundError, ValidationError
from samdata.synth.checkpoint import read_info
from samdata.synth.gate import calibrate, run_gate
from samdata.synth.kinds import build_source as _build_source
from samdata.synth.kinds import open_trained as _open_trained
from samdata.synth.kinds import train_kind
from samdata.synth.medigan_source import resize_nearest
from samdata.synth.pairs import RealPairs, resize_pair
from samdata.synth.source import PairSource
from samdata.synth.train import StepFn
from storage import SliceStore

#: Called after each batch with (samples done, samples in all, batch summary).
BatchFn = Callable[[int, int, dict[str, Any]], None]


def _open(store_url: str | Path, snapshot: str | None) -> SliceStore:
    store = SliceStore.open(store_url)
    return store.at(snapshot) if snapshot is not None else store


def _label_values(objects: Any, labels: tuple[str, ...], where: str) -> tuple[int, ...]:
    """The most common store value of each label name."""
    known = set(objects["label_name"].astype(str))
    missing = [n for n in labels if n not in known]
    if missing:
        raise ConfigError(
            f"unknown label name(s) {missing} for store {where}; expected some of: "
            f"{', '.join(sorted(known)) or '(no objects)'}"
        )
    return tuple(int(objects.loc[objects["label_name"] == n, "label"].mode().iloc[0]) for n in labels)


def read_pairs(
    store: SliceStore, keys: list[tuple[str, int]], labels: tuple[str, ...], values: tuple[int, ...]
) -> RealPairs:
    """Real pairs of the (case_id, z) ``keys``: one mask channel per label name and the full label maps (values
    unified by label name across cases), resized to the commonest grid."""
    if not keys:
        raise ValidationError(f"no real slices to read from store {store.url!r} at {store.snapshot_id}")
    slices = [(cid, z, *store.read_slice(cid, z)) for cid, z in keys]
    metas = {cid: store.case_meta(cid) for cid in dict.fromkeys(cid for cid, *_ in slices)}
    grid = Counter(img.shape for *_, img, _ in slices).most_common(1)[0][0]
    table: dict[str, int] = {name: value for value, name in zip(values, labels)}
    for meta in metas.values():
        for value, name in sorted(meta.label_names.items()):
            if name not in table and value not in table.values():
                table[name] = int(value)
            elif name not in table:
                table[name] = max(table.values(), default=0) + 1
    images, masks, full = [], [], []
    for cid, _z, image, label in slices:
        by_name = {name: value for value, name in metas[cid].label_names.items()}
        masks.append([resize_pair(image, label == by_name.get(name, -1), grid)[1] for name in labels])
        images.append(resize_pair(image, None, grid)[0])
        lookup = np.zeros(int(label.max()) + 1, dtype=np.int64)
        for value, name in metas[cid].label_names.items():
            if value < len(lookup):
                lookup[value] = table[name]
        full.append(resize_nearest(lookup[label], grid))
    first = metas[next(cid for cid, *_, img, _l in slices if img.shape == grid)]
    modality = Counter(m.modality for m in metas.values()).most_common(1)[0][0]
    dtype = np.uint8 if max(table.values(), default=0) < 256 else np.uint16
    return RealPairs(
        np.stack(images),
        np.asarray(masks, dtype=bool),
        values,
        labels,
        first.geometry.spacing,
        modality,
        tuple((c, int(z)) for c, z in keys),
        store.url,
        store.snapshot_id,
        np.stack(full).astype(dtype),
        tuple(sorted((v, n) for n, v in table.items())),
    )


def load_real_pairs(store_url: str | Path, query: SliceQuery) -> RealPairs:
    """The real slices of ``query`` that hold at least one of its labels, sorted by (case, z)."""
    store = _open(store_url, query.snapshot)
    where = f"{store.url!r} at {store.snapshot_id}"
    objects = store.objects()
    objects = objects[objects["origin"].astype(str) == "real"]
    values = _label_values(objects, query.labels, where)
    chosen = objects[objects["label_name"].isin(query.labels) & objects["split"].isin(query.splits)]
    if query.cases is not None:
        chosen = chosen[chosen["case_id"].isin(query.cases)]
    if query.slices is not None:
        chosen = chosen[chosen["z"].isin(query.slices)]
    keys = sorted({(str(c), int(z)) for c, z in zip(chosen["case_id"], chosen["z"])})
    if not keys:
        raise ValidationError(
            f"store {where} has no real slices of labels {list(query.labels)} in splits "
            f"{list(query.splits)}{'' if query.slices is None else f' at z {list(query.slices)}'}"
        )
    if query.max_slices is not None and len(keys) > query.max_slices:
        keys = [keys[int(i)] for i in np.linspace(0, len(keys) - 1, query.max_slices).round()]
    return read_pairs(store, keys, query.labels, values)


def train_generator(
    store_url: str | Path,
    gen_dir: Path | str,
    query: SliceQuery,
    kind: str,
    config: Any,
    *,
    generator_id: str,
    resume: bool = False,
    on_step: StepFn | None = None,
) -> Any:
    """Train a generator of ``kind`` (``cgan``, ``fastgan``) on the real slices of ``query`` into ``gen_dir``."""
    return train_kind(
        kind,
        load_real_pairs(store_url, query),
        gen_dir,
        config,
        generator_id=generator_id,
        resume=resume,
        on_step=on_step,
    )


def build_source(
    store_url: str | Path, query: SliceQuery, spec: str, *, generator_id: str | None = None
) -> tuple[PairSource, RealPairs]:
    """A generator that needs no training (spec ``deform[:key=value,...]`` or ``labels2image:...``) built on
    the real slices of ``query``, and those slices."""
    reference = load_real_pairs(store_url, query)
    return _build_source(spec, reference, generator_id=generator_id), reference


def open_trained(store_url: str | Path, gen_dir: Path | str, device: str = "cpu") -> tuple[PairSource, RealPairs]:
    """A trained generator folder as a pair source, with the real slices it learnt from."""
    reference = reference_for(store_url, gen_dir)
    return _open_trained(gen_dir, reference, device), reference


def reference_for(store_url: str | Path, gen_dir: Path | str) -> RealPairs:
    """The real slices a trained generator learnt from (its snapshot; else this store's head)."""
    info = read_info(Path(gen_dir))
    store = SliceStore.open(store_url)
    try:
        store = store.at(info.snapshot_id)
    except SnapshotNotFoundError:
        pass
    try:
        return read_pairs(store, [tuple(k) for k in info.train_keys], info.label_names, info.label_values)
    except CaseNotFoundError as err:
        raise ValidationError(
            f"store {store.url!r} lacks slices generator {info.generator_id!r} learnt from; "
            f"generate into the store it was trained on ({info.source})"
        ) from err


# ----------------------------------------------------------------------------------- generation
@dataclass
class SynthReport:
    """What a generation run did: counts, rejections by reason, per-batch Fréchet distances, timing."""

    generator_id: str
    checkpoint_hash: str
    seed: int
    requested: int
    generated: int = 0
    already_stored: int = 0
    accepted: int = 0
    rejected: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    batches: list[dict[str, Any]] = field(default_factory=list)
    case_ids: list[str] = field(default_factory=list)
    thresholds: dict[str, Any] = field(default_factory=dict)
    reference: dict[str, Any] = field(default_factory=dict)
    generate_seconds: float = 0.0
    gate_seconds: float = 0.0
    snapshot_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe summary with throughput (pairs/s) added."""
        return {
            **asdict(self),
            "pairs_per_s": self.generated / self.generate_seconds if self.generate_seconds else None,
            "gate_pairs_per_s": self.generated / self.gate_seconds if self.gate_seconds else None,
        }


def case_id_for(generator_id: str, seed: int, k: int) -> str:
    """The id of sample ``k`` of ``seed`` of a generator: ``syn-<generator>-<seed>-<k>``."""
    return f"syn-{generator_id}-{int(seed)}-{int(k)}"


def synthetic_case(
    source: PairSource,
    reference: RealPairs,
    seed: int,
    k: int,
    image: np.ndarray,
    label: np.ndarray | None,
    scores: dict[str, float],
    parents: tuple[tuple[str, int], ...] = (),
    recipe: dict[str, Any] | None = None,
) -> Case:
    """A generated (H, W) pair as a store case: Z = 1, diagonal affine, 'synthetic' normalisation, provenance."""
    sx, sy, sz = reference.spacing
    affine = tuple(tuple(float(v) for v in row) for row in np.diag([sx, sy, sz, 1.0]))
    height, width = image.shape
    geometry = Geometry(affine, (sx, sy, sz), affine, (width, height, 1), ("R", "A", "S"))
    normalisation = Normalisation("synthetic", 0.0, 255.0, {"generator": source.generator_id})
    provenance = Provenance(
        "synthetic",
        source.description,
        hashlib.sha256(f"{source.checkpoint_hash}:{seed}:{k}".encode()).hexdigest(),
        source.generator_id,
        source.checkpoint_hash,
        int(seed),
        {key: float(v) for key, v in scores.items() if math.isfinite(v)},
        tuple(parents),
        dict(recipe or {}),
    )
    names = reference.label_table()
    dtype = np.uint8 if max(names) < 256 else np.uint16
    label_map = np.zeros_like(image, dtype=dtype) if label is None else label.astype(dtype)
    meta = CaseMeta(
        case_id_for(source.generator_id, seed, k), reference.modality, names, geometry, normalisation, provenance
    )
    return Case(meta, image[None].astype(np.uint8), label_map[None])


def synthesize(
    store_url: str | Path,
    source: PairSource,
    reference: RealPairs,
    config: SynthConfig,
    *,
    progress: BatchFn | None = None,
) -> SynthReport:
    """Draw ``config.count`` pairs from ``source``, gate each batch against ``reference`` and commit the
    accepted ones in one commit (none with ``dry_run``); see the module docstring."""
    store = SliceStore.open(store_url)
    report = SynthReport(source.generator_id, source.checkpoint_hash, config.seed, config.count)
    gate_cfg, ref = calibrate(config.gate, reference.images, reference.label_map())
    report.thresholds, report.reference = asdict(gate_cfg), ref.describe()
    present = set(store.case_ids())
    todo = [k for k in range(config.count) if case_id_for(source.generator_id, config.seed, k) not in present]
    report.already_stored = config.count - len(todo)
    reasons: Counter[str] = Counter()
    accepted: list[Case] = []
    for start in range(0, len(todo), config.batch_size):
        indices = todo[start : start + config.batch_size]
        t0 = time.perf_counter()
        batch = source.batch(config.seed, indices)
        report.generate_seconds += time.perf_counter() - t0
        gated = run_gate(
            batch.images, batch.labels, gate_cfg, ref, jacobians=batch.min_jacobian, realistic=source.realistic
        )
        report.gate_seconds += gated.seconds
        for i, (k, verdict) in enumerate(zip(indices, gated.verdicts)):
            if verdict.accepted:
                scores = {**verdict.scores, "frechet_batch": gated.frechet}
                accepted.append(
                    synthetic_case(
                        source,
                        reference,
                        config.seed,
                        k,
                        batch.images[i],
                        None if batch.labels is None else batch.labels[i],
                        scores,
                        batch.parents[i] if batch.parents else (),
                        batch.recipes[i] if batch.recipes else None,
                    )
                )
        reasons.update(gated.reasons())
        summary = {"indices": [indices[0], indices[-1]], **gated.summary()}
        summary.pop("thresholds"), summary.pop("reference")
        report.batches.append(summary)
        report.generated += len(indices)
        if progress is not None:
            progress(start + len(indices), len(todo), summary)
    report.accepted, report.rejected, report.reasons = len(accepted), report.generated - len(accepted), dict(reasons)
    report.case_ids = [c.meta.case_id for c in accepted]
    if config.dry_run or not accepted:
        report.snapshot_id = store.snapshot_id
        return report
    message = (
        f"synthetic: {len(accepted)} pair(s) from {source.generator_id} seed {config.seed} "
        f"({report.generated} generated, {report.rejected} rejected by the gate)"
    )
    with store.writer(message) as writer:
        for case in accepted:
            writer.write_case(case)
        report.snapshot_id = writer.finish()
    return report
