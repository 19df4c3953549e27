"""Where the flows' parallel tasks run, from settings (environment variables).

``SAMDATA_DASK_ADDRESS`` names an existing Dask scheduler (``tcp://host:8786``) to run them on; otherwise
``SAMDATA_DASK_WORKERS`` (default: the CPU count, at most 4) worker processes of a local cluster live as long
as the flow run, and ``1`` runs the tasks in a thread of the flow's own process (no cluster to start). The
decorators read these when ``flows`` is imported, so a served deployment follows its environment;
:func:`with_runner` applies other settings for one call (the CLI's ``--workers`` / ``--address``, and
parent flows passing them to subflows).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Annotated, Any

from prefect.task_runners import ThreadPoolTaskRunner
from prefect_dask import DaskTaskRunner
from pydantic import Field

from samdata.config import Count, config
from samdata.errors import ConfigError

ADDRESS_ENV = "SAMDATA_DASK_ADDRESS"
WORKERS_ENV = "SAMDATA_DASK_WORKERS"


def default_workers() -> int:
    """Local Dask worker processes when none are configured: the CPU count, at most 4."""
    return max(1, min(4, os.cpu_count() or 1))


@config
class FlowSettings:
    """The task runner settings: an existing Dask scheduler's address, or the local worker count."""

    dask_address: Annotated[
        Annotated[str, Field(pattern=r"^.*://")] | None,
        Field(description=f"a scheduler address such as tcp://127.0.0.1:8786 ({ADDRESS_ENV})"),
    ] = None
    #: 0 = default_workers()
    dask_workers: Annotated[
        Count, Field(description=f"local worker count, {WORKERS_ENV}; 1 = run tasks in the flow's own process")
    ] = 0

    @property
    def workers(self) -> int:
        """The local worker count in effect."""
        return self.dask_workers or default_workers()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> FlowSettings:
        """Settings from ``SAMDATA_DASK_ADDRESS`` / ``SAMDATA_DASK_WORKERS`` (``os.environ`` by default)."""
        env = os.environ if env is None else env
        raw = env.get(WORKERS_ENV, "").strip()
        try:
            workers = int(raw) if raw else 0
        except ValueError as err:
            raise ConfigError(f"{WORKERS_ENV}={raw!r}; expected an integer >= 1") from err
        if raw and workers < 1:
            raise ConfigError(f"{WORKERS_ENV}={raw!r}; expected an integer >= 1")
        return cls(dask_address=env.get(ADDRESS_ENV) or None, dask_workers=workers)

    def to_env(self) -> dict[str, str]:
        """These settings as environment variables (for subprocesses and served flow runs)."""
        env = {WORKERS_ENV: str(self.workers)}
        if self.dask_address:
            env[ADDRESS_ENV] = self.dask_address
        return env

    def describe(self) -> str:
        """One line for logs: where the parallel tasks run."""
        if self.dask_address:
            return f"Dask cluster at {self.dask_address}"
        if self.workers == 1:
            return "the flow's own process (1 worker)"
        return f"a local Dask cluster of {self.workers} worker processes"


def task_runner(settings: FlowSettings | None = None) -> Any:
    """The task runner for the flows' parallel parts: a DaskTaskRunner (by address or a local cluster of
    processes), or a one-thread runner in the flow's process for one worker."""
    settings = settings or FlowSettings.from_env()
    if settings.dask_address:
        return DaskTaskRunner(address=settings.dask_address)
    if settings.workers == 1:
        return ThreadPoolTaskRunner(max_workers=1)
    return DaskTaskRunner(
        cluster_class="distributed.LocalCluster",
        cluster_kwargs={
            "n_workers": settings.workers,
            "threads_per_worker": 1,
            "processes": True,
            "dashboard_address": None,
        },
    )


def with_runner(flow_obj: Any, settings: FlowSettings | None = None) -> Any:
    """``flow_obj`` with the task runner of ``settings`` (default: the current environment's)."""
    return flow_obj.with_options(task_runner=task_runner(settings))


def parallel_slots() -> int:
    """How many tasks the current flow run's task runner runs at once (Dask threads, or pool size)."""
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    runner = context.task_runner if context is not None else None
    if isinstance(runner, DaskTaskRunner):
        return max(1, sum(runner.client.nthreads().values()))
    return max(1, int(getattr(runner, "_max_workers", None) or 1))


@contextmanager
def prefect_api(startup_timeout_s: int = 180) -> Iterator[str]:
    """The Prefect API flow runs report to: ``PREFECT_API_URL`` when set, else Prefect's temporary local
    server, started here and exported as ``PREFECT_API_URL`` so that Dask worker processes and
    subprocesses report to it too (left alone, each would start a temporary server of its own)."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    given = PREFECT_API_URL.value()
    if given:
        yield str(given)
        return
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    server.start(timeout=startup_timeout_s)
    os.environ[PREFECT_API_URL.name] = server.api_url
    try:
        with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
            yield server.api_url
    finally:
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=10)  # send the last log lines while the server is still up
        os.environ.pop(PREFECT_API_URL.name, None)
        server.stop()
