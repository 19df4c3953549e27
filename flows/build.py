"""``build_and_train`` (sources → store → synthetic pairs → prompts → mixture → training → evaluation
→ report) and ``watch_flow`` (the scheduled one: ingest only the new cases of a watched folder,
refresh the prompt set and the mixture, and retrain when asked).

Both are compositions of the other flows, run as subflows so each step is a flow run of its own in
the UI with its own artifact. Re-running either after a crash repeats nothing that was committed:
ingest skips stored content and resumes its staging branch, the prompt set and the mixture are
rewritten with the same seeded content, and training continues the run folder's last checkpoint.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from prefect import flow, get_run_logger
from pydantic import Field

from flows.curate import curate_flow, prompts_flow
from flows.export import ExportParams, export_flow
from flows.ingest import ingest_flow
from flows.params import IngestParams, MixtureParams, PromptParams, SourceParams
from flows.report import ReportInputs, report_task
from flows.settings import FlowSettings, with_runner
from flows.synthesize import SynthParams, synthesize_flow
from flows.train import train_flow
from flows.train_params import EvalParams, TrainParams
from pipelines.prompt_sets import table_names
from samdata.memory import StageMemory
from storage import SliceStore
from storage.schema import MIXTURES, PROMPT_SETS
from training.config import TrainConfig
from training.run import RunLayout

RUN_FOLDER, GENERATOR_FOLDER = "run", "generator"


def _ingest_all(sources: list[SourceParams], store: str) -> list[dict[str, Any]]:
    """Ingest every source (a subflow each, on the task runner of the current settings)."""
    ingest = with_runner(ingest_flow, FlowSettings.from_env())
    return [ingest(source.path, store, source.ingest) for source in sources]


def _failures(reports: list[dict[str, Any]]) -> dict[str, str]:
    """case id → problem over ingest reports."""
    return {case: why for report in reports for case, why in report["failed"].items()}


@flow(name="build-and-train", validate_parameters=True)
def build_and_train(
    sources: Annotated[list[SourceParams], Field(min_length=1)],
    store: str,
    out: str,
    prompts: PromptParams = PromptParams(),
    mixture: MixtureParams = MixtureParams(),
    train: TrainParams | None = TrainParams(),  # type: ignore[valid-type]
    evaluate: EvalParams | None = EvalParams(),
    synthesize: SynthParams | None = None,
    report: str | None = "report",
    exports: list[ExportParams] = [],  # type: ignore[valid-type]  # noqa: B006 (Prefect parameters: never mutated)
) -> dict[str, Any]:
    """Ingest ``sources`` into ``store``, add gated synthetic pairs from a generator trained in ``out/generator``
    (if ``synthesize``), commit a prompt set and a mixture, write each of ``exports`` (default folder
    ``out/<format>``; an nnU-Net export without a mixture writes the curated one), train into ``out/run``
    (unless ``train`` is None), evaluate, and write the HTML report into ``out/<report>`` (unless None)."""
    logger = get_run_logger()
    Path(out).mkdir(parents=True, exist_ok=True)
    memory = StageMemory()  # this process's peak per stage (ingest workers run in their own processes)
    with memory.stage("ingest"):
        reports = _ingest_all(sources, store)
    for case, why in _failures(reports).items():
        logger.warning(f"case {case} not ingested: {why}")
    synthetic = None
    if synthesize is not None:
        with memory.stage("synthetic pairs"):
            synthetic = synthesize_flow(store, str(Path(out) / GENERATOR_FOLDER), synthesize)
        if mixture.synthetic > 0 and not _has_synthetic(store, mixture):
            logger.warning(
                f"no synthetic pair of labels {list(mixture.labels or ['any'])} passed the gate; "
                f"mixture {mixture.name!r} trains on real cases only (synthetic weight 0)"
            )
            mixture = mixture.model_copy(update={"synthetic": 0.0})
    with memory.stage("prompts and mixture"):
        prompt_report = prompts_flow(store, prompts, overwrite=True)
        mixture_attrs = curate_flow(store, mixture, prompt_set=prompts.name, overwrite=True)
    result: dict[str, Any] = {
        "store": str(store),
        "ingest": reports,
        "synthesize": synthetic,
        "prompts": prompt_report,
        "mixture": mixture_attrs,
        "exports": [],
        "train": None,
        "report": None,
    }
    for export in exports:
        if export.format == "nnunet" and not export.mixture:
            export = export.model_copy(update={"mixture": mixture.name})
        with memory.stage(f"export {export.format}"):
            result["exports"].append(export_flow(store, export, out))
    if train is not None:
        run_dir = Path(out) / RUN_FOLDER
        result["train"] = train_flow(
            store, mixture.name, str(run_dir), pinned(train, store, run_dir), evaluate, resume=True
        )
        memory.stages.update(result["train"].get("memory") or {})
    if report is not None:
        trained = result["train"] or {}
        inputs = ReportInputs(
            title=f"samdata: {Path(out).name}",
            store=str(store),
            prompt_set=prompts.name,
            mixture=mixture.name,
            run_dir=trained.get("run_dir"),
            evaluation_json=(trained.get("evaluation") or {}).get("json"),
            memory=dict(memory.stages),
        )
        with memory.stage("report"):
            result["report"] = report_task(inputs, str(Path(out) / report))
        logger.info(f"report: {result['report']}")
    result["memory"] = memory.stages
    for line in memory.lines():
        logger.info(f"memory of {line}")
    return result


def pinned(train: Any, store: str, run_dir: Path) -> Any:
    """``train`` reading the store's head (the commit of the mixture just curated) unless it names a snapshot,
    or the snapshot of the run already in ``run_dir`` (a re-run resumes on the data it started with).

    The mixture's own ``snapshot_id`` is the commit before its table was written; when a mixture is
    re-curated under the same name, that commit still holds the previous version of the table, and
    training's dataset reads the table at the data snapshot. The head right after curation has the
    same data and the new table, so pinning to it trains and evaluates on the mixture just made.
    """
    if train.snapshot is not None:
        return train
    layout = RunLayout(run_dir)
    snapshot = TrainConfig.read(layout.config).snapshot if layout.exists() else None
    return train.model_copy(update={"snapshot": snapshot or SliceStore.open(store).snapshot_id})


def _has_synthetic(store: str, mixture: MixtureParams) -> bool:
    """Whether the store's head has synthetic objects of the mixture's labels."""
    objects = SliceStore.open(store).objects()
    chosen = objects[objects["origin"].astype(str) == "synthetic"]
    if mixture.labels is not None:
        chosen = chosen[chosen["label_name"].isin(mixture.labels)]
    return not chosen.empty


def _has_table(store: str, folder: str, name: str) -> bool:
    """Whether the store's head has table ``folder/name``."""
    return name in table_names(SliceStore.open(store), folder)


@flow(name="watch-folder", validate_parameters=True)
def watch_flow(
    folder: str,
    store: str,
    ingest: IngestParams = IngestParams(),
    prompts: PromptParams = PromptParams(),
    mixture: MixtureParams = MixtureParams(),
    retrain_into: str | None = None,
    train: TrainParams = TrainParams(),  # type: ignore[valid-type]
    evaluate: EvalParams = EvalParams(),
) -> dict[str, Any]:
    """Ingest the new cases of ``folder``; if any came (or the tables are missing) redraw the prompt set and
    re-curate the mixture; with ``retrain_into`` train and evaluate a new run in ``<retrain_into>/<UTC time>``."""
    logger = get_run_logger()
    report = _ingest_all([SourceParams(path=folder, ingest=ingest)], store)[0]
    new = report["added"] + report["updated"]
    stale = (not _has_table(store, PROMPT_SETS, prompts.name)) or (not _has_table(store, MIXTURES, mixture.name))
    result: dict[str, Any] = {"ingest": report, "new_cases": new, "prompts": None, "mixture": None, "train": None}
    if not new and not stale:
        logger.info(f"no new cases in {folder}; prompt set {prompts.name!r} and mixture {mixture.name!r} are current")
    else:
        logger.info(
            f"{len(new)} new case(s) in {folder}: refreshing prompt set {prompts.name!r} and mixture {mixture.name!r}"
        )
        result["prompts"] = prompts_flow(store, prompts, overwrite=True)
        result["mixture"] = curate_flow(store, mixture, prompt_set=prompts.name, overwrite=True)
    if retrain_into is not None:
        run_dir = Path(retrain_into) / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        result["train"] = train_flow(
            store, mixture.name, str(run_dir), pinned(train, store, run_dir), evaluate, resume=True
        )
    return result
