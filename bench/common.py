"""What the benchmark scripts share: the MNI152 low-data protocol, store building, one training run that
is reused once finished, result files, and the table helpers.

Heavy packages (torch, the pipelines, matplotlib) are imported inside the functions that use them, so a
script's ``--help`` stays fast and a store built earlier needs no readers.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from samdata.normalise import IngestConfig
    from training.config import TrainConfig

#: Where a script that writes one JSON file puts it (git-ignored).
OUT = Path(__file__).resolve().parent / "out"

# The MNI152 low-data protocol (low_data, adapters, synth_gain, synth_contrast).
LABEL = "white_matter"
VAL_SLICES = "51-135:6"
HELD_OUT = list(range(51, 136, 6))  # VAL_SLICES as z values
POOL = list(range(50, 140, 3))  # the labelled slices are drawn from here
MIXTURE = "wm"  # the real-only mixture of low_data and adapters
#: model name → (model, adapter, steps, lr) of the synthetic-data benches
MODELS = {"unet": ("unet", "full", 1200, 1e-3), "sam": ("litemedsam", "serial:blocks=8-9+decoder+refine", 300, 2e-4)}


@dataclass(frozen=True)
class ModelSpec:
    """One row of a table: a name and how to train it."""

    name: str
    model: str
    adapter: str
    steps: int
    lr: float
    augment: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> ModelSpec:
        """``name|model|adapter|steps|lr|augment`` (augment comma-separated, may be empty)."""
        parts = text.split("|")
        if len(parts) != 6:
            raise SystemExit(f"--models entry {text!r}: expected name|model|adapter|steps|lr|augment")
        name, model, adapter, steps, lr, augment = parts
        return cls(name, model, adapter, int(steps), float(lr), tuple(a for a in augment.split(",") if a))

    @classmethod
    def parse_list(cls, text: str) -> list[ModelSpec]:
        """A ``;``-separated list of :meth:`parse` entries."""
        return [cls.parse(t) for t in text.split(";") if t.strip()]

    @property
    def promptable(self) -> bool:
        """Whether the model takes a prompt (SAM) or not (the U-Net)."""
        return self.model != "unet"


def shots(n: int, pool: Sequence[int] = POOL) -> list[int]:
    """``n`` evenly spaced z from the training pool."""
    return [int(pool[int(i)]) for i in np.linspace(0, len(pool) - 1, n).round()]


@dataclass(frozen=True)
class Protocol:
    """What a synthetic-data bench trains and scores: the store, its labels, the pool the n labelled slices
    come from and the held-out slices (a ``--slices`` spec) no generator, registration or gate sees."""

    name: str
    store: Path
    labels: tuple[str, ...]
    pool: tuple[int, ...]
    val_slices: str
    title: str

    def shots(self, n: int) -> list[int]:
        """``n`` evenly spaced z from the pool."""
        return shots(n, self.pool)


def mni152_protocol(out: Path) -> Protocol:
    """MNI152 white matter: the low-data protocol of bench/low_data.py (:data:`POOL`, :data:`VAL_SLICES`)."""
    return Protocol("mni152", build_store(out), (LABEL,), tuple(POOL), VAL_SLICES, "MNI152 white matter")


def phantom_protocol(out: Path) -> Protocol:
    """The CT phantoms' organs, a sanity check: one seeded phantom (its five organs; the lesion is not one)
    ingested into ``out/phantom/store``; of its slices with an organ, every third is the pool and every sixth from the
    second on is held out (disjoint, as MNI152's 50..139:3 and 51..135:6)."""
    from samdata.io.sample_data import PHANTOM_LABELS
    from samdata.normalise import IngestConfig
    from storage import SliceStore

    store = out / "phantom" / "store"
    if not store.exists():
        phantom_store(out / "phantom", 1, IngestConfig(modality="CT"))
    names = tuple(name for value, name in sorted(PHANTOM_LABELS.items()) if name not in ("background", "lesion"))
    view = SliceStore.open(store)
    (case_id,) = view.case_ids()
    case = view.read_case(case_id)
    organs = [v for v, name in case.meta.label_names.items() if name in names]
    shown = np.isin(case.label, organs).reshape(case.label.shape[0], -1).any(axis=1)
    present = [int(z) for z in np.flatnonzero(shown)]
    pool, held_out = present[::3], present[1::6]
    assert not set(pool) & set(held_out)
    return Protocol("phantom", store, names, tuple(pool), ",".join(map(str, held_out)), "CT phantom organs")


def labelled(n: int | str) -> list[int]:
    """The labelled z of ``n`` (an int, or ``all`` for the whole pool)."""
    return list(POOL) if n == "all" else shots(int(n))


def generator_id(kind: str, n: int, seed: int) -> str:
    """The store generator id of a kind spec for (n, seed)."""
    name = re.sub(r"[^A-Za-z0-9_.]+", "_", kind.replace(":mode=", "_").replace(":", "_"))
    return f"{name}_n{n}s{seed}"


def run_steps(model: str, steps: int, n: int | str | None, quick: bool, least: int = 1) -> int:
    """Training steps of a run: the U-Net of REFERENCES.md took half as many with fewer than 10 labelled
    slices; ``--quick`` divides by 50 (at least ``least``)."""
    if model == "unet" and n not in (None, "all") and int(n) < 10:
        steps //= 2
    return max(least, steps // (50 if quick else 1))


def build_store(out: Path, contrasts: Sequence[str] = ()) -> Path:
    """Ingest MNI152 (MR) into ``out/store`` once: the T1 template, or one case per contrast given."""
    store = out / "store"
    if not store.exists():  # imported only here: a prepared store needs no readers (nibabel, SimpleITK)
        from pipelines.ingest import ingest
        from samdata.io.sample_data import write_mni152
        from samdata.normalise import IngestConfig

        if not contrasts:
            ingest(write_mni152(out / "mni152"), store, IngestConfig(modality="MR"))
        for contrast in contrasts:
            ingest(write_mni152(out / "data" / contrast, contrast), store, IngestConfig(modality="MR"))
    return store


def phantom_store(
    work: Path, cases: int, config: IngestConfig, *, shape: tuple[int, int, int] | None = None, workers: int = 1
) -> Path:
    """Seeded CT phantoms written to ``work/src`` and ingested into ``work/store``; every case must pass."""
    from pipelines.ingest import ClusterConfig, ingest
    from samdata.io.sample_data import write_phantoms

    src = write_phantoms(work / "src", cases=cases, seed=0, shape=shape)
    report = ingest(src, work / "store", config, cluster=ClusterConfig(workers=workers))
    if not report.ok:
        raise SystemExit(f"phantom ingest failed: {report.failed}")
    return work / "store"


def has_mixture(store: Path, name: str) -> bool:
    """Whether the store holds mixture ``name``."""
    from pipelines.mixtures import list_mixtures
    from storage import SliceStore

    return name in {m["name"] for m in list_mixtures(SliceStore.open(store))}


def real_mixture(store: Path) -> None:
    """The real-only mixture :data:`MIXTURE` (every case in train), made once."""
    from pipelines.mixtures import MixtureConfig, make_mixture

    if not has_mixture(store, MIXTURE):
        make_mixture(store, MIXTURE, MixtureConfig(labels=(LABEL,), splits=(1.0, 0.0, 0.0), seed=0))


def train_config(
    store: Path,
    mixture: str,
    model: str,
    adapter: str,
    *,
    steps: int,
    lr: float,
    seed: int,
    augment: tuple[str, ...],
    slices: Iterable[int],
    batch_size: int,
    log_every: int,
    device: str,
    labels: tuple[str, ...] = (LABEL,),
    val_slices: str = VAL_SLICES,
    **options: Any,
) -> TrainConfig:
    """A run of the protocol: ``labels`` (:data:`LABEL`), trained on ``slices``, scored once at the end on
    every object of the held-out ``val_slices`` (:data:`VAL_SLICES`); ``options`` are further ``TrainConfig``
    fields."""
    from training.config import TrainConfig

    return TrainConfig(
        store=str(store),
        mixture=mixture,
        model=model,
        adapter=adapter,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        augment=augment,
        labels=labels,
        train_slices=",".join(map(str, slices)),
        val_slices=val_slices,
        val_max=0,
        save_every=steps,
        log_every=log_every,
        device=device,
        **options,
    )


def train_or_reuse(config: TrainConfig, run_dir: Path) -> dict[str, Any]:
    """The run's ``run.json`` record: read back when the run finished, else trained (an interrupted run
    resumes)."""
    from training.train import train

    done = read_json(run_dir / "run.json")
    if done.get("val_dice") is None:
        done = dict(train(config, run_dir, resume=run_dir.exists()).info)
    return done


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object written earlier, or ``{}`` when there is none."""
    return json.loads(path.read_text()) if path.is_file() else {}


def du(path: Path) -> int:
    """Total bytes of the files under ``path``."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def phantom_args(parser: argparse.ArgumentParser, work: str) -> None:
    """The options of the phantom benchmarks (ingest, export): --cases, --shape, --work (under bench/out)."""
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--shape", default="512,512,100", help="X,Y,Z of each phantom")
    parser.add_argument("--work", type=Path, default=OUT / work)


def write_json(path: Path, data: Any) -> Path:
    """Write ``data`` as indented JSON (its folder made if needed); the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    return path


def write_results(out: Path, results: dict[str, Any], markdown: str) -> None:
    """``out/results.json`` and ``out/results.md``: written after every run, so an interrupted bench keeps
    what it measured."""
    write_json(out / "results.json", results)
    (out / "results.md").write_text(markdown + "\n", encoding="utf-8")


def args_record(args: argparse.Namespace) -> dict[str, str]:
    """The command's arguments as strings, for a results file."""
    return {k: str(v) for k, v in vars(args).items()}


def upsert(rows: list[dict[str, Any]], entry: dict[str, Any], key: Sequence[str]) -> None:
    """Replace the row with ``entry``'s values at ``key`` (in place), appending ``entry`` last."""
    rows[:] = [r for r in rows if tuple(r[k] for k in key) != tuple(entry[k] for k in key)] + [entry]


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def bootstrap(diffs: dict[int, np.ndarray], reps: int = 10000, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of the mean paired difference, resampling seeds and objects within each."""
    rng = np.random.default_rng(seed)
    seeds = list(diffs)
    means = np.empty(reps)
    for r in range(reps):
        chosen = rng.choice(seeds, size=len(seeds))
        means[r] = np.mean([diffs[s][rng.integers(0, len(diffs[s]), len(diffs[s]))].mean() for s in chosen])
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


@contextmanager
def figure(path: Path, ncols: int = 1, figsize: tuple[float, float] = (6, 4)) -> Iterator[Any]:
    """A matplotlib figure (Agg) of ``ncols`` axes, yielded as (fig, axes) and saved to ``path`` on exit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=figsize, dpi=120)
    try:
        yield fig, axes
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
