"""``synthesize_flow``: train a few-shot paired generator on the store's real slices, then generate
synthetic image/mask pairs through the quality gate and commit the accepted ones.

Two tasks, both compute in the flow's own process (one generator, one gate model; not retried):
``train-generator`` (:func:`pipelines.synthesize.train_generator`, resuming the generator folder's
last checkpoint, so a re-run after a crash continues and a finished generator is reused) and
``generate`` (:func:`pipelines.synthesize.synthesize`: batches of pairs gated against the real
slices, accepted pairs committed in one commit; sample ids already stored are not drawn again, so
a re-run adds nothing twice). The gate's segmenter and feature extractor are the same
:class:`~samdata.cli.synth.SamGate` that ``samdata synth generate`` uses (LiteMedSAM by default).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE
from pydantic import Field, model_validator

from flows.artifacts import markdown_table, publish
from flows.params import Params
from pipelines.synthesize import (GateModels, SliceQuery, SynthConfig, SynthReport, TrainedSource, reference_for,
                                  synthesize, train_generator)
from samdata.synth.gate import GateConfig
from samdata.synth.train import GanConfig, GanResult
from training.config import parse_slices

GATE_MODELS: tuple[str, ...] = ("litemedsam", "tiny", "none")


class SynthParams(Params):
    """A generator (id, real slices it learns from, GAN settings) and a generation run (count, seed, gate)."""

    generator_id: str = "fastgan"
    labels: tuple[str, ...] = Field(min_length=1)
    slices: str | None = None
    max_slices: int | None = Field(None, ge=1)
    steps: int = Field(1000, ge=1)
    size: int = 64
    width: int = 8
    batch_size: int = Field(8, ge=1)
    count: int = Field(32, ge=1)
    seed: int = Field(0, ge=0)
    gate_model: str = "litemedsam"
    device: str = "cpu"

    @model_validator(mode="after")
    def _valid(self) -> SynthParams:
        if self.gate_model not in GATE_MODELS:
            raise ValueError(f"gate_model {self.gate_model!r}; expected one of {', '.join(GATE_MODELS)}")
        self.query(), self.gan(), self.synth()
        return self

    def query(self) -> SliceQuery:
        """The real slices the generator learns from (train split)."""
        return SliceQuery(labels=self.labels, slices=parse_slices(self.slices) if self.slices else None,
                          max_slices=self.max_slices)

    def gan(self) -> GanConfig:
        """The GAN training config."""
        every = max(1, self.steps // 4)
        return GanConfig(size=self.size, width=self.width, steps=self.steps, batch_size=self.batch_size,
                         seed=self.seed, sample_every=0, save_every=every, log_every=max(1, self.steps // 20),
                         device=self.device)

    def synth(self) -> SynthConfig:
        """The generation config: ``count`` samples of ``seed``, gate thresholds calibrated on the real slices."""
        gate = GateConfig(consistency=self.gate_model != "none")
        return SynthConfig(count=self.count, seed=self.seed, batch_size=min(16, self.count), gate=gate)


@task(name="train-generator", cache_policy=NONE)
def train_generator_task(store: str, gen_dir: str, params: SynthParams) -> GanResult:
    """Train (or resume, or reuse when finished) the paired generator in ``gen_dir``."""
    logger = get_run_logger()
    every = max(1, params.steps // 10)

    def on_step(step: int, total: int, metrics: dict[str, float]) -> None:
        if step % every == 0 or step == total:
            logger.info(f"generator step {step}/{total}: D {metrics['loss_d']:.3f}, G {metrics['loss_g']:.3f}")

    return train_generator(store, gen_dir, params.query(), params.gan(), generator_id=params.generator_id,
                           resume=True, on_step=on_step)


def gate_models(name: str, device: str) -> GateModels:
    """The gate's segmenter and feature extractor from model ``name`` (``none``: mask checks only)."""
    if name == "none":
        return GateModels()
    from samdata.cli.synth import SamGate

    gate = SamGate(name, device=device)
    return GateModels(segment=gate.segment, features=gate.features)


@task(name="generate", cache_policy=NONE)
def generate_task(store: str, gen_dir: str, params: SynthParams) -> SynthReport:
    """Generate ``count`` pairs, gate them against the generator's real slices, commit the accepted ones."""
    logger = get_run_logger()
    source = TrainedSource(gen_dir, params.device)

    def progress(done: int, total: int, batch: dict[str, Any]) -> None:
        logger.info(f"generated {done}/{total}: batch accepted {batch['accepted']}/{batch['generated']}")

    return synthesize(store, source, reference_for(store, source.info), params.synth(),
                      gate_models(params.gate_model, params.device), progress=progress)


def synth_markdown(store: str, gan: GanResult, report: SynthReport) -> str:
    """The artifact: generator, counts, rejections by reason, thresholds and per-batch Fréchet distance."""
    rows = [[report.generator_id, report.seed, report.requested, report.already_stored, report.generated,
             report.accepted, report.rejected, report.snapshot_id]]
    text = (f"## Synthetic pairs in `{store}`\n\nGenerator `{gan.gen_dir}`: {gan.step} steps, checkpoint sha256 "
            f"`{gan.checkpoint_hash[:16]}`.\n\n"
            + markdown_table(["generator", "seed", "requested", "already stored", "generated", "accepted",
                              "rejected", "snapshot"], rows))
    if report.reasons:
        text += "\n\nRejected by reason:\n\n" + markdown_table(["reason", "pairs"], sorted(report.reasons.items()))
    frechet = [b.get("frechet") for b in report.batches]
    text += f"\n\nThresholds: {report.thresholds}.\n\nFréchet distance per batch: {frechet}."
    return text


@flow(name="synthesize", validate_parameters=True)
def synthesize_flow(store: str, generator_dir: str, synth: SynthParams) -> dict[str, Any]:
    """Train the generator in ``generator_dir`` on ``store``'s real slices and commit gated synthetic pairs
    (artifact ``synthesize-<store>``)."""
    logger = get_run_logger()
    gan = train_generator_task(store, generator_dir, synth)
    logger.info(f"generator {gan.gen_dir}: {gan.step} steps ({gan.seconds:.0f} s this run)")
    report = generate_task(store, str(Path(generator_dir)), synth)
    publish("synthesize", store, synth_markdown(store, gan, report), f"synthetic pairs of {synth.generator_id}")
    logger.info(f"synthetic pairs: {report.accepted} accepted, {report.rejected} rejected "
                f"{dict(report.reasons) or ''}, {report.already_stored} already stored; snapshot {report.snapshot_id}")
    return report.to_json()
