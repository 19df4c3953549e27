"""Contrasts never seen: T1-trained models, with and without random-contrast pairs, scored on T2, FLAIR, inverted T1.

Protocol (``.venv/bin/python bench/synth_contrast.py``; ``--quick`` for a smoke run): a store of MNI152 in
four contrasts drawn from the same tissue maps; the T1 case trains on ``--shots`` labelled slices and the
other three form a val split no model sees. Arms: B (T1 with ``--augment``), R (B + ``labels2image:mode=random``
pairs at ``--share``), S (R, half drawn skull-stripped), R1 (R, one intensity class per tissue), T (R with
sub-classes clustered on a blurred image and every pair brain-extracted, as the real slices are) and E (B +
near-real ``labels2image``); ``--steps-scale`` trains every arm longer; a
``--share`` other than 1/2 tags run folders and mixtures with ``-p<share>``, a ``--count`` other than 200 with
``-c<count>``, an ``--augment`` other than flip,affine with ``-a<names>``. Score: per contrast, Dice on the
slice grid over the 15 held-out slices. Writes ``<out>/results.json`` and ``results.md``; finished runs and
evaluations are reused.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: bench.common, this checkout
from bench.common import (
    LABEL,
    MODELS,
    VAL_SLICES,
    args_record,
    build_store,
    generator_id,
    has_mixture,
    labelled,
    mean_sd,
    read_json,
    run_steps,
    train_config,
    train_or_reuse,
    upsert,
    write_results,
)

CONTRASTS = ("t1", "t2", "flair", "t1inv")
AUGMENT = "flip,affine"  # the default; others tag the run folders with ``-a<names>``
ARMS = {
    "B": None,
    "R": "labels2image:mode=random",
    "S": "labels2image:mode=random,strip=0.5",
    "R1": "labels2image:mode=random,clusters=1",
    "T": "labels2image:mode=random,smooth=1.5,strip=1",
    "E": "labels2image",
}


def t1_train_seed() -> int:
    """The first mixture seed that puts the T1 case in train (and so the other contrasts in val)."""
    from pipelines.mixtures import split_key

    for seed in range(1000):
        keys = {c: split_key(seed, c) for c in ("mni152", *(f"mni152_{c}" for c in CONTRASTS[1:]))}
        if min(keys, key=keys.get) == "mni152":
            return seed
    raise SystemExit("no mixture seed puts mni152 first")


def make_mixture(store: Path, name: str, kind: str | None, gid: str, share: float) -> None:
    """The mixture ``name``: T1 trains (with ``gid``'s pairs at ``share``), the other contrasts validate."""
    from pipelines.mixtures import MixtureConfig
    from pipelines.mixtures import make_mixture as make

    if has_mixture(store, name):
        return
    seed = t1_train_seed()
    record = make(
        store,
        name,
        MixtureConfig(
            real=1.0,
            synthetic=share / (1 - share) if kind else 0.0,
            generators={gid: 1.0} if kind else None,
            labels=(LABEL,),
            splits=(0.25, 0.75, 0.0),
            seed=seed,
        ),
    )
    train = set(record.cases.loc[(record.cases["split"] == "train") & (record.cases["origin"] == "real"), "case_id"])
    if train != {"mni152"}:
        raise SystemExit(f"mixture {name} trains on {sorted(train)}; expected the T1 case only")


def run_one(
    store: Path, out: Path, model: str, arm: str, n: str, seed: int, args: argparse.Namespace
) -> dict[str, Any]:
    """Generate (if needed), train and evaluate one (model, arm, n, seed); per-contrast Dice."""
    from pipelines.synthesize import SliceQuery, SynthConfig, build_source, synthesize
    from storage import SliceStore
    from training.eval_report import evaluate_run
    from training.run import load_run

    kind = ARMS[arm]
    pairs = f"-c{args.count}" if kind and args.count != 200 else ""  # the default keeps earlier runs' names
    gid = generator_id(kind, len(labelled(n)), seed) + pairs.replace("-", "_") if kind else ""
    if kind and not any(c.startswith(f"syn-{gid}-") for c in SliceStore.open(store).case_ids()):
        query = SliceQuery(labels=(LABEL,), cases=("mni152",), slices=tuple(labelled(n)))
        source, reference = build_source(store, query, kind, generator_id=gid)
        synthesize(store, source, reference, SynthConfig(count=args.count, seed=seed, batch_size=32))
    share = f"-p{args.share:g}" if kind and args.share != 0.5 else ""  # the default keeps earlier runs' names
    scale = ("" if args.steps_scale == 1 else f"-x{args.steps_scale:g}") + share + pairs
    scale += "" if args.augment == AUGMENT else "-a" + args.augment.replace(",", "+")  # the mixture stays
    mixture = f"c-{arm}-n{n}-s{seed}{share}{pairs}"
    make_mixture(store, mixture, kind, gid, args.share)
    base, adapter, steps, lr = MODELS[model]
    steps = run_steps(model, int(steps * args.steps_scale), n, args.quick)
    augment = tuple(a for a in args.augment.split(",") if a)
    config = train_config(
        store,
        mixture,
        base,
        adapter,
        steps=steps,
        lr=lr,
        seed=seed,
        augment=augment,
        slices=[0, *labelled(n)],
        batch_size=4,
        log_every=max(steps // 10, 1),
        device=args.device,
    )
    run_dir = out / "runs" / f"{model}-{arm}-n{n}-s{seed}{scale}"
    info = train_or_reuse(config, run_dir)
    per_case: dict[str, float] = {}
    for split, folder in (("train", "t1"), ("val", "contrasts")):  # T1's held-out slices, then the other contrasts
        metrics = run_dir / folder / "metrics.json"
        if not metrics.is_file():
            evaluate_run(
                load_run(run_dir, device=args.device), metrics.parent, split=split, zero_shot=False, slices=VAL_SLICES
            )
        report = json.loads(metrics.read_text())
        per_case.update({r["case_id"]: r["adapted"]["dice"] for r in report["per_case_label"]})
    return {
        "model": model,
        "arm": arm + scale,
        "n": n,
        "seed": seed,
        "t1_frame": info["val_dice"],
        **{c: per_case.get("mni152" if c == "t1" else f"mni152_{c}") for c in CONTRASTS},
        "seconds": info.get("seconds"),
        "run": str(run_dir),
    }


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown: mean ± sd Dice per contrast for each (model, arm, n)."""
    lines = [
        "| model | n | arm | seeds | " + " | ".join(CONTRASTS) + " |",
        "|---|---|---|---|" + "---|" * len(CONTRASTS),
    ]
    for key in sorted({(r["model"], r["n"], r["arm"]) for r in rows}):
        mine = [r for r in rows if (r["model"], r["n"], r["arm"]) == key]
        cells = []
        for c in CONTRASTS:
            values = [r[c] for r in mine if r[c] is not None]
            cells.append("{:.3f} ± {:.3f}".format(*mean_sd(values)) if values else "–")
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {len(mine)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Run the protocol and write results.json / results.md under ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench-output/synth_contrast"))
    parser.add_argument("--shots", default="all")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--models", default="unet")
    parser.add_argument("--arms", default="B,R,E")
    parser.add_argument("--share", type=float, default=0.5)
    parser.add_argument("--augment", default=AUGMENT)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps-scale", type=float, default=1.0)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.shots, args.seeds, args.count = "4", "0", 16
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    store = build_store(args.out, CONTRASTS)
    rows: list[dict[str, Any]] = []
    for seed in (int(s) for s in args.seeds.split(",")):
        for n in args.shots.split(","):
            for arm in args.arms.split(","):
                for model in args.models.split(","):
                    row = run_one(store, args.out, model, arm, n, seed, args)
                    # re-read: another invocation (another arm, run beside this one) may have written since
                    rows = read_json(args.out / "results.json").get("runs", [])
                    upsert(rows, row, ("model", "arm", "n", "seed"))
                    print(json.dumps(row), flush=True)
                    write_results(
                        args.out,
                        {"args": args_record(args), "runs": rows, "seconds": round(time.perf_counter() - started, 1)},
                        table(rows),
                    )
    print(table(rows))


if __name__ == "__main__":
    sys.exit(main())
