"""Parallel ingest: discover a dataset, prepare each case, write it to the slice store, commit once.

One task per case: in-process for one worker, else on a local or an existing Dask cluster. Workers write
their case's chunks through a forked store session; this process, the single committer, merges them,
checkpoints every batch to a staging branch and publishes to ``main`` in one commit, so a killed run leaves
``main`` as it was and a re-run resumes from the staging branch. :func:`plan_ingest`, :func:`prepare_into`
and :func:`run_plan` are public so other front ends (the Prefect flows) can run the steps as tasks.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from nibabel.orientations import apply_orientation

from samdata.case import Case, Normalisation, Provenance, Volume
from samdata.errors import SamdataError, ValidationError
from samdata.io.headers import check_budget, check_pair, read_header
from samdata.io.layouts import SourceDataset, SourceItem, discover
from samdata.io.readers import (
    HASH_ALGORITHM,
    LEGACY_HASH_ALGORITHM,
    is_legacy_hash,
    match_label_grid,
    read_label,
    read_volume,
    source_hash,
)
from samdata.labels import as_label_array
from samdata.malloc import return_large_blocks
from samdata.normalise import IngestConfig, canonical_ornt, inverse_ornt, planned_window, reorient, window_transform
from samdata.prepare import CanonicalCase, assemble_case, canonical_case, clean_label_zyx, normalise_zyx, own_zyx
from storage import CaseWriter, SliceStore, StoreWriter

#: Called after each case with (case_id, status, detail); status is added/updated/skipped/failed.
ProgressFn = Callable[[str, str, str], None]


@dataclass(frozen=True)
class ClusterConfig:
    """Where the per-case tasks run: in-process (1 worker), a local cluster, or a scheduler address."""

    workers: int = 1
    scheduler: str | None = None
    batch: int = 0  # cases per checkpoint; 0 = 4 per worker (at least 4)
    # in-process: read + prepare the next case on a thread while this one is written (off: each case is
    # read on two threads already, and on two cores overlapping cases gained nothing steady for a
    # second case in memory; bench/ingest.py measures both)
    prefetch: bool = False


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


def item_hash(item: SourceItem, algorithm: str = HASH_ALGORITHM) -> str:
    """Content hash of a source item (image bytes, then label bytes when present)."""
    paths = [item.image] + ([item.label] if item.label is not None else [])
    return source_hash(*paths, algorithm=algorithm)


@dataclass(frozen=True)
class CleanedLabel:
    """A label map whose small objects :func:`clean_label` dropped before its image was read: the cleaned
    (Z, Y, X) map in the RAS+ layout of ``ornt`` (the orientation of the label's own affine) and the
    values present before cleaning."""

    ornt: np.ndarray
    label_zyx: np.ndarray
    present: np.ndarray


def clean_label(label: Volume, config: IngestConfig, case_id: str) -> CleanedLabel | None:
    """Clean a label map on its own, while its image is read (on the label's reader thread, so the cleaning
    overlaps the image's inflation); the map is given up and cleaned in place where its layout allows.
    :func:`stored_arrays` uses the result when the image's orientation is the label's (always, for a label
    on the image's grid, except near-45° obliques where the two affines may pick different axes: then the
    map is cleaned again on the image's layout). None when ``config.spacing`` asks for resampling (labels
    are cleaned after it)."""
    if config.spacing is not None:
        return None
    array = as_label_array(label.array, path=label.path)
    ornt = canonical_ornt(label.affine, array.shape)
    canon = reorient(Volume(array, label.affine, label.path), ornt)
    label_zyx, present = clean_label_zyx(own_zyx(canon.array), config, case_id)
    return CleanedLabel(ornt, label_zyx, present)


def _read_clean_label(path: Path, config: IngestConfig, case_id: str) -> tuple[Volume, CleanedLabel | None]:
    """A label file read (values checked) and cleaned on its own; see :func:`prepare_item`."""
    raw = read_label(path, None)
    return raw, clean_label(raw, config, case_id)


def _as_read(array_xyz: np.ndarray, normalised: Normalisation) -> tuple[np.ndarray, Normalisation]:
    """An image the reader normalised as it inflated: its (Z, Y, X) array, in its own memory where it can."""
    return own_zyx(array_xyz), normalised


def _stored_label(
    canonical: CanonicalCase, config: IngestConfig, cleaned: CleanedLabel | None
) -> tuple[np.ndarray, np.ndarray] | None:
    """The stored label of :func:`stored_arrays` (on the calling thread)."""
    if cleaned is None:
        if canonical.label is None:
            return None
        return clean_label_zyx(own_zyx(canonical.label.array), config, canonical.case_id)
    assert config.spacing is None, "labels to be resampled are cleaned after it, not early (clean_label)"
    if np.array_equal(cleaned.ornt, canonical.ornt):
        return cleaned.label_zyx, cleaned.present
    # cleaned on another layout: back to the file's index order (the map's memory may hold the label's own
    # RAS+ layout by now) and cleaned again on this one; the values read are kept
    path = canonical.label.path  # type: ignore[union-attr]
    restored = apply_orientation(cleaned.label_zyx.transpose(2, 1, 0), inverse_ornt(cleaned.ornt))
    label = reorient(Volume(as_label_array(restored, path=path), canonical.source.affine, path), canonical.ornt)
    return clean_label_zyx(own_zyx(label.array), config, canonical.case_id)[0], cleaned.present


def stored_arrays(
    canonical: CanonicalCase, config: IngestConfig, cleaned: CleanedLabel | None, normalised: Normalisation | None
) -> tuple[tuple[np.ndarray, Normalisation], tuple[np.ndarray, np.ndarray] | None]:
    """The stored image and label of a freshly read case for :func:`samdata.prepare.assemble_case`, as
    :func:`samdata.prepare.prepare_case` makes them but from arrays the readers gave up: they are rearranged
    and cleaned in place where their layout allows (no copy of either volume: the ingest path's largest
    saving). The intensities are normalised on a helper thread while this one cleans the labels (numpy and
    scipy's labelling release the GIL: the two overlap on two cores).

    ``cleaned``: the label map :func:`clean_label` cleaned on its reader thread (``canonical.label``, whose
    memory it took, is then only the grid). ``normalised``: the image holds its stored uint8 values under
    this normalisation already (a window the reader applied while inflating;
    :func:`~samdata.normalise.planned_window`); not with resampling."""
    source = canonical.source
    if normalised is not None and (config.spacing is not None or np.asarray(source.array).dtype != np.uint8):
        raise ValidationError(
            f"{source.path}: an image normalised while read ({normalised.method}) must be uint8 "
            f"(is {np.asarray(source.array).dtype}) and is not resampled (spacing {config.spacing})"
        )
    image_xyz = np.asarray(canonical.image.array)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="samdata-normalise") as pool:
        if normalised is None:
            pending = pool.submit(normalise_zyx, image_xyz, canonical.modality, config)
        else:
            pending = pool.submit(_as_read, image_xyz, normalised)
        label = _stored_label(canonical, config, cleaned)
        image = pending.result()
    return image, label


def prepare_item(item: SourceItem, dataset: SourceDataset, config: IngestConfig, content_hash: str) -> Case:
    """Read, validate and normalise one source item into a :class:`samdata.case.Case`.

    Both headers are checked first (voxel budget; the label's declared grid against the image's), so a
    file declaring a huge volume or a mismatched label fails before anything is decoded. The label file
    is read and its small objects dropped (:func:`clean_label`) on a helper thread while this one reads
    the image (zlib, numpy and scipy's labelling release the GIL); an unreadable image is reported before
    a bad label, as when read one after the other. The arrays read are this call's to give up: they are
    prepared as :func:`samdata.prepare.prepare_case` would, without copies (:func:`stored_arrays`)."""
    label: Volume | None = None
    cleaned: CleanedLabel | None = None
    image_header = read_header(item.image)  # every header checked before either file is decoded
    check_budget(image_header, config.max_voxels)
    if item.label is not None:
        label_header = read_header(item.label)
        check_budget(label_header, config.max_voxels)
        check_pair(image_header, label_header, config.affine_tolerance)
    modality = config.modality or dataset.modality
    # a CT window (or an explicit one) is known before the image is read: the reader applies it block by
    # block as it inflates, so the native volume is never whole in memory (not when resampling, which
    # interpolates native values)
    window = planned_window(config, modality) if modality and config.spacing is None else None
    transform = window_transform(window) if window is not None else None
    if item.label is None:
        image = read_volume(item.image, transform)
    else:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="samdata-label") as pool:
            early = pool.submit(_read_clean_label, item.label, config, item.case_id)
            try:
                image = read_volume(item.image, transform)
            finally:
                if not early.done():
                    early.cancel()
            raw, cleaned = early.result()
        label = match_label_grid(raw, image)  # a raster mask without geometry takes the image's affine
    provenance = Provenance(origin="real", source=str(item.image), source_hash=content_hash, name=item.name)
    canonical = canonical_case(image, label, case_id=item.case_id, config=config, modality=modality)
    stored_image, stored_label = stored_arrays(
        canonical, config, cleaned, window if image.meta.get("transformed") else None
    )
    return assemble_case(
        canonical, stored_image, stored_label, label_names=dataset.label_names, provenance=provenance, split=item.split
    )


def _describe(err: BaseException, item: SourceItem) -> str:
    """One line naming the file and the problem."""
    if isinstance(err, SamdataError):
        return str(err).splitlines()[0] if str(err) else type(err).__name__
    last = traceback.extract_tb(err.__traceback__)[-1] if err.__traceback__ else None
    where = f" at {Path(last.filename).name}:{last.lineno}" if last else ""
    return f"{item.image}: unexpected {type(err).__name__}: {err}{where}"


@contextmanager
def _client(cluster: ClusterConfig) -> Iterator[Any]:
    """Yield a dask.distributed Client (local processes or by address), or None for in-process; the
    cluster starts on a thread, and its workers import this module, while the caller goes on (the
    ingest plan hashes the sources meanwhile): call the yielded function for the client."""
    if cluster.scheduler is None and cluster.workers <= 1:
        yield lambda: None
        return
    with ExitStack() as stack, ThreadPoolExecutor(max_workers=1, thread_name_prefix="samdata-cluster") as pool:
        started = pool.submit(_start_client, cluster, stack)
        try:
            yield started.result
        finally:
            started.exception()  # wait for the start-up to end before closing what it opened


_TRIM, _DASK_TRIM = "MALLOC_TRIM_THRESHOLD_", "65536"  # see _start_client


def _start_client(cluster: ClusterConfig, stack: ExitStack) -> Any:
    """A dask.distributed Client, by scheduler address or of a local cluster of worker processes, closed
    by ``stack`` (explicitly: a Client used as a context manager must be left in the thread that
    entered it); every worker imports the ingest code."""
    import dask
    from distributed import Client, LocalCluster

    if cluster.scheduler is not None:
        client = Client(cluster.scheduler, set_as_default=False)
    else:
        # Dask's nanny sets MALLOC_TRIM_THRESHOLD_=65536 in its workers' environment; setting it freezes
        # glibc's mmap threshold at 128 kB, so every slice-sized array is a fresh mmap whose pages fault
        # in on first touch (measured: several times the system time, 2 workers no faster than 1;
        # BENCHMARKS.md, "Ingest"). The workers keep glibc's adaptive default instead. A nanny also leaves the variable
        # in its parent's os.environ, where later workers would inherit it: Dask's value is taken out
        # while ours start (a value of the user's own is kept).
        leaked = os.environ.get(_TRIM) == _DASK_TRIM and os.environ.pop(_TRIM)
        try:
            with dask.config.set({f"distributed.nanny.pre-spawn-environ.{_TRIM}": None}):
                local = LocalCluster(
                    n_workers=cluster.workers, threads_per_worker=1, processes=True, dashboard_address=None
                )
        finally:
            if leaked:
                os.environ[_TRIM] = _DASK_TRIM
        stack.callback(local.close)
        client = Client(local, set_as_default=False)
    stack.callback(client.close)
    client.run(importlib.import_module, __name__)
    client.run(return_large_blocks)  # in each worker before a store session starts its threads there
    return client


@dataclass(frozen=True)
class PlannedCase:
    """A source item still to ingest: its content hash and whether it replaces a stored case of that id."""

    item: SourceItem
    digest: str
    replaces: bool


@dataclass(frozen=True)
class IngestPlan:
    """What an ingest run has to do: the discovered dataset, its run name and the cases not yet stored."""

    source: Path
    store_url: str
    config: IngestConfig
    dataset: SourceDataset
    run_name: str
    todo: tuple[PlannedCase, ...]


#: Runs one wave of cases against a writer (forks from ``writer.fork()``) and returns, per fork used,
#: the fork (None if its work was lost) and case_id → error ('' when written); a case missing from
#: every result is reported failed.
WaveRunner = Callable[[list[PlannedCase], StoreWriter], list[tuple[CaseWriter | None, dict[str, str]]]]


def _hashes(
    items: list[SourceItem], threads: int, legacy: bool = False
) -> Iterator[tuple[SourceItem, tuple[str, ...] | BaseException]]:
    """Each item with its content hash (and, with ``legacy``, the bare SHA-256 that stores written
    before the hash prefix hold), or the error hashing it raised; on ``threads`` threads (hashlib and
    file reads release the GIL), in item order."""

    def one(item: SourceItem) -> tuple[str, ...] | BaseException:
        try:
            digest = item_hash(item)
            return (digest, item_hash(item, LEGACY_HASH_ALGORITHM)) if legacy else (digest,)
        except Exception as err:  # reported per item by the caller
            return err

    if threads <= 1 or len(items) <= 1:
        yield from ((item, one(item)) for item in items)
        return
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="samdata-hash") as pool:
        yield from zip(items, pool.map(one, items))


def plan_ingest(
    source: str | Path,
    store_url: str | Path,
    config: IngestConfig | None = None,
    *,
    progress: ProgressFn | None = None,
    threads: int = 1,
) -> tuple[IngestPlan, IngestReport]:
    """Discover ``source``, hash every item (on ``threads`` threads) and keep those whose content is not
    stored yet (creates the store if absent); the report already holds the skipped items and the ones
    that failed here."""
    config = config or IngestConfig()
    source = Path(source)
    dataset = discover(source)
    report = IngestReport(source=str(source), store=str(store_url), run_name=run_name_for(source, config))
    for problem in dataset.problems:
        report.failed[problem.split(":")[0]] = problem
    store = SliceStore.open(store_url, create=True)
    known = store.source_hashes()
    existing = set(store.case_ids())
    todo = []
    for item, digests in _hashes(list(dataset.items), threads, legacy=any(map(is_legacy_hash, known))):
        if isinstance(digests, BaseException):
            report.failed[item.case_id] = _describe(digests, item)
            if progress:
                progress(item.case_id, "failed", report.failed[item.case_id])
            continue
        digest = digests[0]
        if any(d in known for d in digests):
            report.skipped.append(item.case_id)
            if progress:
                progress(item.case_id, "skipped", "same content already stored")
            continue
        todo.append(PlannedCase(item, digest, item.case_id in existing))
    report.snapshot_id = store.snapshot_id
    plan = IngestPlan(source, store.url, config, dataset, report.run_name, tuple(todo))
    return plan, report


def prepare_into(
    cases: list[PlannedCase], dataset: SourceDataset, config: IngestConfig, fork: CaseWriter, *, prefetch: bool = False
) -> tuple[CaseWriter, dict[str, str]]:
    """Worker part: prepare each case and write it into ``fork``; returns the fork and case_id → error
    ('' when written). A case that cannot be read or prepared is reported, not raised.

    With ``prefetch``, case k+1 is read and prepared on a helper thread while case k is written (gzip
    inflation, numpy and the blosc/icechunk writes release the GIL, so reading overlaps writing when a
    second core is free); two cases are then in memory at once instead of one. The process's malloc
    setting (:func:`samdata.malloc.return_large_blocks`) is its front end's to make, before a store
    session starts its threads: :func:`ingest` does it for itself and for each Dask worker."""
    errors: dict[str, str] = {}
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="samdata-prepare") if prefetch else _Inline() as pool:
        pending = [pool.submit(prepare_item, case.item, dataset, config, case.digest) for case in cases[:1]]
        for k, case in enumerate(cases):
            future = pending.pop()
            try:
                prepared = future.result()
            except Exception as err:  # one bad case must not stop the others; reported with file and problem
                errors[case.item.case_id] = _describe(err, case.item)
                prepared = None
            if k + 1 < len(cases):
                following = cases[k + 1]
                pending.append(pool.submit(prepare_item, following.item, dataset, config, following.digest))
            if prepared is None:
                continue
            fork.write_case(prepared)
            errors[case.item.case_id] = ""
            del prepared
    return fork, errors


class _Inline:
    """The executor interface run in the caller's thread, when it is the caller's turn (no prefetch)."""

    def __enter__(self) -> _Inline:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def submit(self, fn: Callable[..., Any], *args: Any) -> _Deferred:
        return _Deferred(fn, args)


class _Deferred:
    """A call made when its result is asked for."""

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.fn, self.args = fn, args

    def result(self) -> Any:
        return self.fn(*self.args)


def run_plan(
    plan: IngestPlan, report: IngestReport, run_wave: WaveRunner, *, wave: int, progress: ProgressFn | None = None
) -> IngestReport:
    """The committer: run the plan's cases in waves of ``wave`` through ``run_wave``, merge and
    checkpoint each wave on the run's staging branch, and publish to ``main`` in one commit."""
    if not plan.todo:
        return report
    store = SliceStore.open(plan.store_url)
    message = f"ingest {len(plan.todo)} case(s) from {plan.source}"
    with store.writer(message, run_name=plan.run_name) as writer:
        # done: written by an interrupted run of this plan (the staging branch holds the case with this
        # content); a case id that is merely stored (older content, being updated) is not done
        done = writer.source_hashes()
        pending = []
        for case in plan.todo:
            if done.get(case.digest) == case.item.case_id:
                (report.updated if case.replaces else report.added).append(case.item.case_id)
                if progress:
                    progress(case.item.case_id, "added", "resumed from an interrupted run")
            else:
                pending.append(case)
        for start in range(0, len(pending), max(1, wave)):
            chunk = pending[start : start + max(1, wave)]
            results = run_wave(chunk, writer)
            outcome = {cid: error for _fork, errors in results for cid, error in errors.items()}
            forks = [fork for fork, _errors in results if fork is not None and fork.case_ids()]
            for case in chunk:
                case_id = case.item.case_id
                error = outcome.get(case_id, f"{case.item.image}: no result came back for case {case_id!r}")
                if error:
                    report.failed[case_id] = error
                    status, detail = "failed", error
                else:
                    (report.updated if case.replaces else report.added).append(case_id)
                    status, detail = ("updated" if case.replaces else "added"), ""
                if progress:
                    progress(case_id, status, detail)
            if forks:
                writer.merge(forks)
                writer.checkpoint(f"{plan.run_name}: {sum(len(f.case_ids()) for f in forks)} case(s)")
        report.snapshot_id = writer.finish()
    return report


def ingest(
    source: str | Path,
    store_url: str | Path,
    config: IngestConfig | None = None,
    *,
    cluster: ClusterConfig | None = None,
    progress: ProgressFn | None = None,
) -> IngestReport:
    """Ingest every case of ``source`` into the store at ``store_url``; returns the per-case report."""
    cluster = cluster or ClusterConfig()
    if cluster.scheduler is None and cluster.workers <= 1:
        return_large_blocks()  # before the store's runtime starts its threads (each would get its own arena)
    batch = cluster.batch or max(4, 4 * max(1, cluster.workers))
    with _client(cluster) as get_client:  # a local cluster starts while the sources are hashed
        # the sources are hashed here before any case is read, on up to four threads whatever the number
        # of workers (hashlib and file reads release the GIL)
        plan, report = plan_ingest(
            source, store_url, config, progress=progress, threads=max(cluster.workers, min(4, os.cpu_count() or 1))
        )
        if not plan.todo:
            return report
        client = get_client()

        def run_wave(chunk: list[PlannedCase], writer: StoreWriter) -> list[tuple[CaseWriter | None, dict[str, str]]]:
            if client is None:  # one fork for the wave, so the next case's read can overlap this one's write
                return [prepare_into(list(chunk), plan.dataset, plan.config, writer.fork(), prefetch=cluster.prefetch)]
            futures = [
                client.submit(prepare_into, [case], plan.dataset, plan.config, writer.fork(), pure=False)
                for case in chunk
            ]
            return client.gather(futures)

        return run_plan(plan, report, run_wave, wave=batch, progress=progress)
