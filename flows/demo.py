"""``demo_flow``: the whole pipeline on the embedded sample data with small CPU settings.

Sample data (the real MNI152 T1 with WM/GM/brain labels, and seeded CT phantoms) → ingest both →
synthetic pairs from the 30 labelled axial slices (``deform`` by default: smooth deformations and
in-between morphs at the store's resolution) through the quality gate →
a box prompt set → a white-matter mixture (real and synthetic) → LiteMedSAM with a fine-tuned mask
decoder (frozen encoder, embeddings cached), ``steps`` steps on 30 axial slices → adapted vs
zero-shot on 15 held-out axial slices (z 51..135 step 6, never trained on; the generator never
sees them either) → ``<out>/demo-report/index.html``. Everything runs through
:func:`flows.build.build_and_train`, so the demo is the production path with small numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE
from pydantic import Field

from flows.build import build_and_train
from flows.ingest import IO_RETRIES, IO_RETRY_DELAY_S
from flows.params import IngestParams, MixtureParams, PromptParams, SourceParams
from flows.synthesize import SynthParams
from flows.train_params import EvalParams, TrainParams
from samdata.io.sample_data import write_mni152, write_phantoms

REPORT = "demo-report"
WM = ("white_matter",)
TRAIN_SLICES, HELD_OUT = "50-139:3", "51-135:6"  # REFERENCES.md's axial protocol: 30 train, 15 held-out slices
#: training's z filter applies to every case; synthetic pairs are 2D (their one slice is z 0, where MNI152
#: has no white matter), so z 0 is added to let them train beside the 30 real slices
TRAIN_WITH_SYNTHETIC = "0," + TRAIN_SLICES


@task(name="sample-data", retries=IO_RETRIES, retry_delay_seconds=IO_RETRY_DELAY_S, cache_policy=NONE)
def sample_data_task(out: str, phantoms: int, seed: int) -> tuple[str, str]:
    """Write the MNI152 and phantom datasets under ``out/data`` (kept when already there)."""
    logger = get_run_logger()
    mni, ct = Path(out) / "data" / "mni152", Path(out) / "data" / "phantoms"
    if (mni / "dataset.json").is_file():
        logger.info(f"MNI152 sample data already in {mni}")
    else:
        write_mni152(mni)
        logger.info(f"wrote the real MNI152 T1 template with white matter / grey matter / other brain labels to {mni}")
    if (ct / "dataset.json").is_file():
        logger.info(f"phantoms already in {ct}")
    else:
        write_phantoms(ct, cases=phantoms, seed=seed)
        logger.info(f"wrote {phantoms} seeded CT phantoms (HU, six organs) to {ct}")
    return str(mni), str(ct)


@flow(name="demo", validate_parameters=True)
def demo_flow(
    out: str,
    phantoms: Annotated[int, Field(ge=1)] = 4,
    seed: Annotated[int, Field(ge=0)] = 0,
    steps: Annotated[int, Field(ge=1)] = 100,
    generator: str = "deform",
    generator_steps: Annotated[int, Field(ge=1)] = 300,
    synthetic: Annotated[int, Field(ge=0)] = 32,
) -> dict[str, Any]:
    """Run build_and_train on the sample data into ``out`` (store, run, report in ``out/demo-report``);
    ``synthetic`` pairs come from a ``generator`` kind (trained ``generator_steps`` steps if it trains;
    0 pairs: no synthetic step)."""
    mni, ct = sample_data_task(out, phantoms, seed)
    synth = None
    if synthetic:
        synth = SynthParams(
            kind=generator, labels=WM, slices=TRAIN_SLICES, steps=generator_steps, count=synthetic, seed=seed
        )
        synth = synth.model_copy(update={"generator_id": f"{synth.name}_wm"})
    train = TrainParams(
        model="litemedsam",
        adapter="decoder",
        steps=steps,
        batch_size=4,
        lr=1e-4,
        seed=seed,
        labels=WM,
        train_slices=TRAIN_WITH_SYNTHETIC if synthetic else TRAIN_SLICES,
        val_slices=HELD_OUT,
        val_max=0,
        eval_every=max(1, steps // 4),
        save_every=max(1, steps // 4),
        log_every=5,
        device="cpu",
    )
    return build_and_train(
        sources=[
            SourceParams(path=mni, ingest=IngestParams(modality="MR")),
            SourceParams(path=ct, ingest=IngestParams(modality="CT", window="abdomen")),
        ],
        store=str(Path(out) / "store"),
        out=out,
        prompts=PromptParams(name="boxes", scheme="box:jitter=5", seed=seed),
        mixture=MixtureParams(name="mni-wm", labels=WM, real=1.0, synthetic=0.25 if synthetic else 0.0, seed=seed),
        train=train,
        evaluate=EvalParams(split="train", slices=HELD_OUT),
        synthesize=synth,
        report=REPORT,
    )
