"""``synthesize_flow``: synthetic image/mask pairs from the store's labelled slices, gated and committed.

``kind`` names the generator (:mod:`samdata.synth.kinds`): a kind without training (``deform``,
the default; ``labels2image[:mode=random]``) is built on the real slices inside the ``generate``
task; a kind that trains (``cgan``, ``fastgan``) is first trained by ``train-generator`` in the
generator folder (resuming its last checkpoint, so a re-run after a crash continues and a finished
generator is reused). ``generate`` (:func:`pipelines.synthesize.synthesize`) gates every batch
against the real slices and commits the accepted pairs in one commit; sample ids already stored are
not drawn again, so a re-run adds nothing twice. Both tasks compute in the flow's own process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE
from pydantic import create_model, model_validator

from flows.artifacts import markdown_table, publish
from flows.params import Params
from pipelines.synthesize import (
    SliceQuery,
    SynthConfig,
    SynthReport,
    build_source,
    open_trained,
    synthesize,
    train_generator,
)
from samdata.config import model_fields
from samdata.spec import parse_slices, split_spec
from samdata.synth.gate import GateConfig
from samdata.synth.kinds import kind_entry, parse_kind
from samdata.synth.train import GanConfig

DEFAULT_KIND = "deform"


class _SynthFields(Params):
    """Base of :class:`SynthParams`: the generator kind and id, validation and the configs they make."""

    kind: str = DEFAULT_KIND
    generator_id: str | None = None

    @model_validator(mode="after")
    def _valid(self) -> _SynthFields:
        self.query(), self.synth()
        if not self.trains:
            parse_kind(self.kind)
        else:
            self.train_config()
        return self

    @property
    def name(self) -> str:
        """The kind's name (the spec before ':')."""
        return split_spec(self.kind)[0]

    @property
    def trains(self) -> bool:
        """Whether the kind needs training before it generates."""
        return kind_entry(self.name).trains

    @property
    def gid(self) -> str:
        """The generator id in case ids: ``generator_id`` or the kind's name."""
        return self.generator_id or self.name

    def query(self) -> SliceQuery:
        """The real slices the generator starts from (train split)."""
        return SliceQuery(
            labels=self.labels, slices=parse_slices(self.slices) if self.slices else None, max_slices=self.max_slices
        )

    def train_config(self) -> Any:
        """The training config of a kind that trains (small CPU defaults; ``size`` overrides the frame)."""
        every = max(1, self.steps // 4)
        if self.name == "cgan":
            from samdata.synth.cgan import CganConfig

            return CganConfig(
                size=self.size or 128,
                steps=self.steps,
                seed=self.seed,
                save_every=every,
                log_every=max(1, self.steps // 20),
                device=self.device,
            )
        return GanConfig(
            size=self.size or GanConfig().size,
            steps=self.steps,
            seed=self.seed,
            sample_every=0,
            save_every=every,
            log_every=max(1, self.steps // 20),
            device=self.device,
        )

    def synth(self) -> SynthConfig:
        """The generation config: ``count`` samples of ``seed`` through the gate."""
        return SynthConfig(
            count=self.count,
            seed=self.seed,
            batch_size=min(32, self.count),
            gate=GateConfig(frechet_max=self.frechet_max),
        )


#: A generator (kind spec, id, the real slices it starts from; steps and size for kinds that train) and a
#: generation run (count, seed, gate's Fréchet limit): fields of SliceQuery, GanConfig, SynthConfig, GateConfig.
SynthParams = create_model(
    "SynthParams",
    __base__=_SynthFields,
    __doc__=(
        "A generator (kind spec, id, the real slices it starts from; steps and size for kinds that train) and a "
        "generation run (count, seed, gate's Fréchet limit)."
    ),
    **model_fields(SliceQuery, ["labels"]),
    slices=(str | None, None),
    **model_fields(SliceQuery, ["max_slices"]),
    **model_fields(GanConfig, ["steps"]),
    size=(int | None, None),
    **model_fields(SynthConfig, ["count", "seed"], count=64),
    **model_fields(GateConfig, ["frechet_max"]),
    **model_fields(GanConfig, ["device"]),
)


@task(name="train-generator", cache_policy=NONE)
def train_generator_task(store: str, gen_dir: str, params: SynthParams) -> dict[str, Any]:
    """Train (or resume, or reuse when finished) the generator of a training kind in ``gen_dir``."""
    logger = get_run_logger()
    total = params.steps
    every = max(1, total // 10)

    def on_step(step: int, steps: int, metrics: dict[str, float]) -> None:
        if step % every == 0 or step == steps:
            logger.info(f"{params.name} step {step}/{steps}: D {metrics['loss_d']:.3f}, G {metrics['loss_g']:.3f}")

    result = train_generator(
        store,
        gen_dir,
        params.query(),
        params.name,
        params.train_config(),
        generator_id=params.gid,
        resume=True,
        on_step=on_step,
    )
    return {
        "gen_dir": str(result.gen_dir),
        "steps": result.step,
        "checkpoint_hash": result.checkpoint_hash,
        "seconds": result.seconds,
    }


@task(name="generate", cache_policy=NONE)
def generate_task(store: str, gen_dir: str | None, params: SynthParams) -> SynthReport:
    """Generate ``count`` pairs, gate them against the real slices, commit the accepted ones."""
    logger = get_run_logger()

    def progress(done: int, total: int, batch: dict[str, Any]) -> None:
        logger.info(f"generated {done}/{total}: batch accepted {batch['accepted']}/{batch['generated']}")

    if gen_dir is not None:
        source, reference = open_trained(store, gen_dir, params.device)
    else:
        source, reference = build_source(store, params.query(), params.kind, generator_id=params.gid)
    return synthesize(store, source, reference, params.synth(), progress=progress)


def synth_markdown(store: str, params: SynthParams, trained: dict[str, Any] | None, report: SynthReport) -> str:
    """The artifact: generator, counts, rejections by reason, thresholds and per-batch Fréchet distance."""
    rows = [
        [
            report.generator_id,
            params.kind,
            report.seed,
            report.requested,
            report.already_stored,
            report.generated,
            report.accepted,
            report.rejected,
            report.snapshot_id,
        ]
    ]
    text = f"## Synthetic pairs in `{store}`\n\n"
    if trained is not None:
        text += (
            f"Generator `{trained['gen_dir']}`: {trained['steps']} steps, checkpoint sha256 "
            f"`{trained['checkpoint_hash'][:16]}`.\n\n"
        )
    text += markdown_table(
        ["generator", "kind", "seed", "requested", "already stored", "generated", "accepted", "rejected", "snapshot"],
        rows,
    )
    if report.reasons:
        text += "\n\nRejected by reason:\n\n" + markdown_table(["reason", "pairs"], sorted(report.reasons.items()))
    frechet = [b.get("frechet") for b in report.batches]
    text += f"\n\nThresholds: {report.thresholds}.\n\nFréchet distance per batch: {frechet}."
    return text


@flow(name="synthesize", validate_parameters=True)
def synthesize_flow(store: str, generator_dir: str, synth: SynthParams) -> dict[str, Any]:
    """Build (or train into ``generator_dir``) the generator of ``synth.kind`` on ``store``'s real slices and
    commit gated synthetic pairs (artifact ``synthesize-<store>``)."""
    logger = get_run_logger()
    trained = None
    if synth.trains:
        trained = train_generator_task(store, generator_dir, synth)
        logger.info(f"generator {trained['gen_dir']}: {trained['steps']} steps ({trained['seconds']:.0f} s this run)")
    report = generate_task(store, str(Path(generator_dir)) if synth.trains else None, synth)
    publish("synthesize", store, synth_markdown(store, synth, trained, report), f"synthetic pairs of {synth.gid}")
    logger.info(
        f"synthetic pairs: {report.accepted} accepted, {report.rejected} rejected "
        f"{dict(report.reasons) or ''}, {report.already_stored} already stored; snapshot {report.snapshot_id}"
    )
    return report.to_json()
