"""``prompts_flow`` and ``curate_flow``: a seeded prompt set and a curated mixture, each committed to the store.

Each is one task around the pipeline function (:func:`pipelines.prompt_sets.make_prompt_set`,
:func:`pipelines.mixtures.make_mixture`): both read the whole store index and write one table in one
commit, cheap next to ingest, so there is nothing to split into parallel tasks. Both are store
I/O and are retried; a retry after a failed commit finds the table absent (the commit is atomic)
or, with ``overwrite``, replaces it with the same content (prompts are seeded per object).
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE

from flows.artifacts import markdown_table, publish
from flows.ingest import IO_RETRIES, IO_RETRY_DELAY_S
from flows.params import MixtureParams, PromptParams
from pipelines.mixtures import SPLITS, MixtureConfig, MixtureRecord, make_mixture
from pipelines.prompt_sets import PromptSetReport, make_prompt_set


@task(name="prompt-set", retries=IO_RETRIES, retry_delay_seconds=IO_RETRY_DELAY_S, cache_policy=NONE)
def prompt_set_task(store: str, prompts: PromptParams, overwrite: bool) -> PromptSetReport:
    """Draw one seeded prompt per object of the store's head and commit the set."""
    labels = list(prompts.labels) if prompts.labels is not None else None
    return make_prompt_set(store, prompts.scheme, prompts.name, prompts.seed, labels=labels, overwrite=overwrite)


@task(name="mixture", retries=IO_RETRIES, retry_delay_seconds=IO_RETRY_DELAY_S, cache_policy=NONE)
def mixture_task(store: str, name: str, config: MixtureConfig, snapshot: str | None, overwrite: bool) -> MixtureRecord:
    """Split and weight the store's cases and commit the mixture."""
    return make_mixture(store, name, config, snapshot=snapshot, overwrite=overwrite)


def prompt_markdown(store: str, report: PromptSetReport) -> str:
    """The artifact of a prompt set: scheme, seed, counts, snapshots and examples of skipped objects."""
    text = f"## Prompt set `{report.name}` in `{store}`\n\n" + markdown_table(
        ["scheme", "seed", "objects", "skipped", "drawn from", "committed"],
        [
            [
                report.scheme,
                report.seed,
                report.n_objects,
                report.n_skipped,
                report.source_snapshot_id,
                report.snapshot_id,
            ]
        ],
    )
    if report.skipped_examples:
        text += "\n\nSkipped (too small for the scheme), first ones:\n\n" + "\n".join(
            f"- {line}" for line in report.skipped_examples[:10]
        )
    return text


def mixture_markdown(store: str, record: MixtureRecord) -> str:
    """The artifact of a mixture: cases, objects and weight per split and origin, and its warnings."""
    rows = []
    for split in SPLITS:
        cases = record.cases[record.cases["split"] == split]
        rows.append(
            [
                split,
                record.counts[split]["real"],
                record.counts[split]["synthetic"],
                int(cases["n_objects"].sum()),
                f"{cases['weight'].sum():.3g}",
            ]
        )
    text = (
        f"## Mixture `{record.name}` in `{store}`\n\nCases of snapshot `{record.snapshot_id}`, prompt set "
        f"`{record.prompt_set}`, labels {list(record.labels) if record.labels else 'all'}; real "
        f"{record.real:g}, synthetic {record.synthetic:g}.\n\n"
        + markdown_table(["split", "real cases", "synthetic cases", "objects", "weight"], rows)
    )
    if record.generators:
        text += "\n\nGenerator shares: " + ", ".join(f"{g} {s:.3g}" for g, s in record.generators.items())
    if record.warnings:
        text += "\n\nWarnings:\n\n" + "\n".join(f"- {w}" for w in record.warnings)
    return text


@flow(name="prompts", validate_parameters=True)
def prompts_flow(store: str, prompts: PromptParams = PromptParams(), overwrite: bool = False) -> dict[str, Any]:
    """Commit a seeded prompt set of every object in ``store`` (artifact ``prompts-<store>``)."""
    report = prompt_set_task(store, prompts, overwrite)
    publish("prompts", store, prompt_markdown(store, report), f"prompt set {report.name}")
    get_run_logger().info(
        f"prompt set {report.name}: {report.n_objects} objects ({report.n_skipped} skipped), "
        f"scheme {report.scheme}, seed {report.seed}; committed {report.snapshot_id}"
    )
    return report.to_json()


@flow(name="curate", validate_parameters=True)
def curate_flow(
    store: str,
    mixture: MixtureParams = MixtureParams(),
    prompt_set: str | None = None,
    snapshot: str | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Commit a curated mixture of ``store`` (splits by case, weights), training with ``prompt_set``
    (artifact ``mixture-<store>``)."""
    logger = get_run_logger()
    record = mixture_task(store, mixture.name, mixture.config(prompt_set), snapshot, overwrite)
    publish("mixture", store, mixture_markdown(store, record), f"mixture {record.name}")
    summary = ", ".join(f"{split} {sum(record.counts[split].values())}" for split in SPLITS)
    logger.info(f"mixture {record.name} of snapshot {record.snapshot_id}: {summary} case(s)")
    for warning in record.warnings:
        logger.warning(warning)
    return dict(record.attrs)
