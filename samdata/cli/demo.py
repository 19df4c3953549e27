"""``samdata demo``: the whole pipeline on the embedded sample data, through the Prefect flows, on CPU.

Runs :func:`flows.demo.demo_flow` (sample data → ingest → synthetic pairs → prompts → mixture →
LiteMedSAM decoder fine-tune → zero-shot vs adapted → ``OUT/demo-report/index.html``). No network is
needed: Prefect runs against a temporary local API server whose database lives in ``PREFECT_HOME``
(``OUT/.prefect-home`` unless set), so the runs and artifacts can be browsed afterwards with
``PREFECT_HOME=OUT/.prefect-home prefect server start``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated

import typer

from samdata.cli.common import out
from samdata.cli.flows import need_flows, prefect_env
from samdata.malloc import keep_freed_memory


def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for sample data, store, run and report.")] = Path(
        "demo-output"
    ),
    phantoms: Annotated[int, typer.Option(min=1, help="CT phantom cases to add beside MNI152.")] = 4,
    seed: Annotated[int, typer.Option(min=0, help="Seed of phantoms, generator, prompts, mixture and training.")] = 0,
    steps: Annotated[int, typer.Option(min=1, help="Fine-tuning steps (batch 4).")] = 100,
    generator: Annotated[str, typer.Option(help="Synthetic-pair generator kind (`samdata synth kinds`).")] = "deform",
    generator_steps: Annotated[
        int, typer.Option(min=1, help="Training steps, for a generator kind that trains.")
    ] = 300,
    synthetic: Annotated[int, typer.Option(min=0, help="Synthetic pairs to draw and gate (0: skip the step).")] = 32,
    workers: Annotated[int, typer.Option(min=1, help="Local Dask worker processes for ingest (1 = in-process).")] = 2,
) -> None:
    """Sample data → ingest → synthetic pairs → prompts → mixture → fine-tune → evaluate → HTML report."""
    started = time.perf_counter()
    need_flows()
    prefect_env(home=out_dir / ".prefect-home", workers=workers)
    keep_freed_memory()
    from flows.demo import REPORT, demo_flow
    from flows.settings import prefect_api

    with prefect_api():
        result = demo_flow(
            out=str(out_dir.resolve()),
            phantoms=phantoms,
            seed=seed,
            steps=steps,
            generator=generator,
            generator_steps=generator_steps,
            synthetic=synthetic,
        )
    trained = result.get("train") or {}
    overall = (trained.get("evaluation") or {}).get("overall", {})
    out.print(f"\nDemo finished in {time.perf_counter() - started:.0f} s.", highlight=False)
    out.print(
        "  peak memory per stage (this process): "
        + "; ".join(f"{name} {stage['peak_mb']:,.0f} MB" for name, stage in (result.get("memory") or {}).items()),
        highlight=False,
    )
    for name, scores in overall.items():
        out.print(
            f"  {name.replace('_', '-'):>9}: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items() if v is not None),
            highlight=False,
        )
    out.print(
        f"  report: {result.get('report') or out_dir / REPORT / 'index.html'}\n"
        f"  store:  {result['store']}  (try: samdata info {result['store']})\n"
        f"  run:    {trained.get('run_dir')}\n"
        f"  Prefect runs and artifacts: PREFECT_HOME={os.environ['PREFECT_HOME']} "
        "prefect server start",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    """Add the demo command."""
    app.command("demo")(demo)
