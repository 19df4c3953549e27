"""``ingest_flow``: ingest a dataset folder into the slice store with one Prefect task per batch of cases.

The flow is the committer of :mod:`pipelines.ingest`: ``plan-ingest`` (a task: discover, hash,
skip what is stored) and then :func:`pipelines.ingest.run_plan`, whose waves of cases run here as
``ingest-cases`` tasks on the flow's task runner (a Dask cluster, see :mod:`flows.settings`), each
writing its cases through a fork of the run's writer. Each wave is merged and checkpointed on the
run's staging branch and the run is published to ``main`` in one commit, so a flow run killed at
any point leaves ``main`` at its last snapshot and a re-run picks up the checkpointed cases
without writing them twice. A case that cannot be read, or a task that fails after its retries,
is reported in the artifact; the other cases go on.
"""

from __future__ import annotations

from typing import Annotated, Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE
from pydantic import Field

from flows.artifacts import markdown_table, publish
from flows.params import IngestParams
from flows.settings import parallel_slots, task_runner
from pipelines.ingest import IngestPlan, IngestReport, PlannedCase, plan_ingest, prepare_into, run_plan
from samdata.io.layouts import SourceDataset
from samdata.normalise import IngestConfig
from storage import CaseWriter, StoreWriter

IO_RETRIES = 2
IO_RETRY_DELAY_S = 2


@task(name="plan-ingest", retries=IO_RETRIES, retry_delay_seconds=IO_RETRY_DELAY_S, cache_policy=NONE)
def plan_task(source: str, store: str, config: IngestConfig) -> tuple[IngestPlan, IngestReport]:
    """Discover the source, hash its files and list the cases that are not stored yet."""
    return plan_ingest(source, store, config)


@task(
    name="ingest-cases",
    task_run_name="ingest-{label}",
    retries=IO_RETRIES,
    retry_delay_seconds=IO_RETRY_DELAY_S,
    cache_policy=NONE,
)
def ingest_cases_task(
    cases: list[PlannedCase], dataset: SourceDataset, config: IngestConfig, fork: CaseWriter, label: str
) -> tuple[CaseWriter, dict[str, str]]:
    """Prepare a batch of cases and write them into the fork (sent back to the committer)."""
    return prepare_into(cases, dataset, config, fork)


def _batch_label(cases: list[PlannedCase]) -> str:
    """A task-run label: the first case id, and how many more."""
    first = cases[0].item.case_id
    return first if len(cases) == 1 else f"{first}+{len(cases) - 1}"


def wave_runner(plan: IngestPlan, cases_per_task: int):
    """A WaveRunner that submits one ``ingest-cases`` task per ``cases_per_task`` cases and gathers them."""

    def run_wave(chunk: list[PlannedCase], writer: StoreWriter) -> list[tuple[CaseWriter | None, dict[str, str]]]:
        batches = [chunk[i : i + cases_per_task] for i in range(0, len(chunk), cases_per_task)]
        futures = [
            ingest_cases_task.submit(batch, plan.dataset, plan.config, writer.fork(), _batch_label(batch))
            for batch in batches
        ]
        results: list[tuple[CaseWriter | None, dict[str, str]]] = []
        for batch, future in zip(batches, futures):
            try:
                results.append(future.result())
            except Exception as err:  # the task failed after its retries: report its cases, keep the others
                reason = (
                    f"task ingest-{_batch_label(batch)} failed after {IO_RETRIES} retries: "
                    f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
                )
                results.append((None, {case.item.case_id: f"{case.item.image}: {reason}" for case in batch}))
        return results

    return run_wave


def ingest_markdown(report: IngestReport) -> str:
    """The artifact: counts, snapshot and one row per case with its status and problem."""
    rows: list[list[object]] = [[c, "added", ""] for c in report.added]
    rows += [[c, "updated", ""] for c in report.updated]
    rows += [[c, "skipped", "same content already stored"] for c in report.skipped]
    rows += [[c, "failed", why] for c, why in report.failed.items()]
    head = (
        f"## Ingest of `{report.source}`\n\nStore `{report.store}`: added {len(report.added)}, updated "
        f"{len(report.updated)}, skipped {len(report.skipped)} (already stored), failed "
        f"{len(report.failed)}; snapshot `{report.snapshot_id}`.\n\n"
    )
    return head + markdown_table(["case", "status", "detail"], sorted(rows, key=lambda r: str(r[0])))


@flow(name="ingest", task_runner=task_runner(), validate_parameters=True)
def ingest_flow(
    source: str, store: str, ingest: IngestParams = IngestParams(), cases_per_task: Annotated[int, Field(ge=1)] = 1
) -> dict[str, Any]:
    """Ingest the cases of ``source`` not yet in ``store`` (one task per ``cases_per_task`` cases, in
    parallel), one commit on main; the per-case report is the artifact ``ingest-<store>``."""
    logger = get_run_logger()
    config = ingest.config()
    plan, report = plan_task(source, store, config)
    logger.info(
        f"{len(plan.dataset.items)} case(s) in {source} ({plan.dataset.layout} layout): "
        f"{len(plan.todo)} to ingest, {len(report.skipped)} already stored, {len(report.failed)} unusable"
    )
    counter = {"done": 0}

    def progress(case_id: str, status: str, detail: str) -> None:
        counter["done"] += 1
        line = f"[{counter['done']}/{len(plan.todo)}] {case_id}: {status}" + (f" ({detail})" if detail else "")
        (logger.warning if status == "failed" else logger.info)(line)

    wave = max(2, 2 * parallel_slots()) * cases_per_task
    report = run_plan(plan, report, wave_runner(plan, cases_per_task), wave=wave, progress=progress)
    key = publish("ingest", store, ingest_markdown(report), f"ingest of {source}")
    logger.info(
        f"added {len(report.added)}, updated {len(report.updated)}, skipped {len(report.skipped)}, "
        f"failed {len(report.failed)}; snapshot {report.snapshot_id} (artifact {key})"
    )
    return report.to_json()
