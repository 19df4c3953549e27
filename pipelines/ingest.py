"""Parallel ingest: discover a dataset, prepare each case, write it to the slice store, commit once.

One task per case. The default runs in-process (no cluster start-up) for one worker, a local Dask
cluster of worker processes for ``workers > 1``, or an existing cluster by scheduler address. Workers
write their case's chunks through a forked store session; the single committer (this process) merges
the returned sessions, checkpoints every batch to a staging branch, and publishes the run to ``main``
in one commit at the end. A run killed at any point leaves ``main`` at its last snapshot; the re-run
finds the staging branch (same source, same config → same run name) and does only what is missing.
"""

from __future__ import annotations

import hashlib
import json
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from samdata.case import Provenance
from samdata.errors import SamdataError
from samdata.io.layouts import SourceDataset, SourceItem, discover
from samdata.io.readers import read_label, read_volume, source_hash
from samdata.normalise import IngestConfig
from samdata.prepare import prepare_case
from storage import SliceStore

#: Called after each case with (case_id, status, detail); status is added/updated/skipped/failed.
ProgressFn = Callable[[str, str, str], None]


@dataclass(frozen=True)
class ClusterConfig:
    """Where the per-case tasks run: in-process (1 worker), a local cluster, or a scheduler address."""

    workers: int = 1
    scheduler: str | None = None
    batch: int = 0  # cases per checkpoint; 0 = 4 per worker (at least 4)


@dataclass
class IngestReport:
    """What an ingest run did, case by case."""

    source: str
    store: str
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    snapshot_id: str | None = None
    run_name: str = ""

    @property
    def ok(self) -> bool:
        """True when no case failed."""
        return not self.failed

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe summary."""
        return asdict(self)


def run_name_for(source: Path, config: IngestConfig) -> str:
    """A deterministic staging-run name: the same source folder and config resume the same run."""
    key = json.dumps({"source": str(source.resolve()), "config": asdict(config)}, sort_keys=True, default=str)
    return "ingest-" + hashlib.sha256(key.encode()).hexdigest()[:16]


def item_hash(item: SourceItem) -> str:
    """Content hash of a source item (image bytes, then label bytes when present)."""
    paths = [item.image] + ([item.label] if item.label is not None else [])
    return source_hash(*paths)


def prepare_item(item: SourceItem, dataset: SourceDataset, config: IngestConfig, content_hash: str):
    """Read, validate and normalise one source item into a :class:`samdata.case.Case`."""
    image = read_volume(item.image)
    label = read_label(item.label, like=image) if item.label is not None else None
    provenance = Provenance(origin="real", source=str(item.image), source_hash=content_hash)
    return prepare_case(
        image,
        label,
        case_id=item.case_id,
        config=config,
        label_names=dataset.label_names,
        provenance=provenance,
        split=item.split,
        modality=config.modality or dataset.modality,
    )


def _describe(err: BaseException, item: SourceItem) -> str:
    """One line naming the file and the problem."""
    if isinstance(err, SamdataError):
        return str(err).splitlines()[0] if str(err) else type(err).__name__
    last = traceback.extract_tb(err.__traceback__)[-1] if err.__traceback__ else None
    where = f" at {Path(last.filename).name}:{last.lineno}" if last else ""
    return f"{item.image}: unexpected {type(err).__name__}: {err}{where}"


def _task(item: SourceItem, dataset: SourceDataset, config: IngestConfig, content_hash: str, fork):
    """Worker task: prepare one case and write it through a forked store session."""
    try:
        case = prepare_item(item, dataset, config, content_hash)
    except Exception as err:  # one bad case must not stop the others; reported with file and problem
        return item.case_id, None, _describe(err, item)
    fork.write_case(case)
    return item.case_id, fork, ""


@contextmanager
def _client(cluster: ClusterConfig) -> Iterator[Any]:
    """Yield a dask.distributed Client (local processes or by address), or None for in-process."""
    if cluster.scheduler is None and cluster.workers <= 1:
        yield None
        return
    from distributed import Client, LocalCluster

    if cluster.scheduler is not None:
        with Client(cluster.scheduler) as client:
            yield client
        return
    with LocalCluster(n_workers=cluster.workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as local, Client(local) as client:
        yield client


def _plan(dataset: SourceDataset, store: SliceStore, report: IngestReport,
          progress: ProgressFn | None) -> list[tuple[SourceItem, str, bool]]:
    """Hash every item; return (item, hash, replaces_existing) for the ones not yet stored."""
    known = store.source_hashes()
    existing = set(store.case_ids())
    todo = []
    for item in dataset.items:
        try:
            digest = item_hash(item)
        except Exception as err:
            report.failed[item.case_id] = _describe(err, item)
            if progress:
                progress(item.case_id, "failed", report.failed[item.case_id])
            continue
        if digest in known:
            report.skipped.append(item.case_id)
            if progress:
                progress(item.case_id, "skipped", "same content already stored")
            continue
        todo.append((item, digest, item.case_id in existing))
    return todo


def ingest(source: str | Path, store_url: str | Path, config: IngestConfig | None = None, *,
           cluster: ClusterConfig | None = None, progress: ProgressFn | None = None) -> IngestReport:
    """Ingest every case of ``source`` into the store at ``store_url``; returns the per-case report."""
    config = config or IngestConfig()
    cluster = cluster or ClusterConfig()
    source = Path(source)
    dataset = discover(source)
    report = IngestReport(source=str(source), store=str(store_url), run_name=run_name_for(source, config))
    for problem in dataset.problems:
        report.failed[problem.split(":")[0]] = problem
    store = SliceStore.open(store_url, create=True)
    todo = _plan(dataset, store, report, progress)
    if not todo:
        report.snapshot_id = store.snapshot_id
        return report
    batch = cluster.batch or max(4, 4 * max(1, cluster.workers))
    with store.writer(f"ingest {len(todo)} case(s) from {source}", run_name=report.run_name) as writer:
        done = writer.done_case_ids()
        pending = []
        for item, digest, replaces in todo:
            if item.case_id in done:
                (report.updated if replaces else report.added).append(item.case_id)
                if progress:
                    progress(item.case_id, "added", "resumed from an interrupted run")
            else:
                pending.append((item, digest, replaces))
        with _client(cluster) as client:
            for start in range(0, len(pending), batch):
                chunk = pending[start:start + batch]
                results = _run_batch(client, chunk, dataset, config, writer)
                forks = []
                for (item, _digest, replaces), (case_id, fork, error) in zip(chunk, results):
                    if fork is None:
                        report.failed[case_id] = error
                        status, detail = "failed", error
                    else:
                        forks.append(fork)
                        (report.updated if replaces else report.added).append(case_id)
                        status, detail = ("updated" if replaces else "added"), ""
                    if progress:
                        progress(case_id, status, detail)
                if forks:
                    writer.merge(forks)
                    writer.checkpoint(f"{report.run_name}: {len(forks)} case(s)")
        report.snapshot_id = writer.finish()
    return report


def _run_batch(client, chunk, dataset, config, writer) -> list[tuple[str, Any, str]]:
    """Run one batch of case tasks in-process or on the cluster; results in input order."""
    if client is None:
        return [_task(item, dataset, config, digest, writer.fork()) for item, digest, _ in chunk]
    futures = [client.submit(_task, item, dataset, config, digest, writer.fork(), pure=False)
               for item, digest, _ in chunk]
    return client.gather(futures)
