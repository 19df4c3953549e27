"""A flow run whose parallel tasks go to an existing Dask cluster, given by its address."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from flows.ingest import ingest_flow
from flows.params import IngestParams
from flows.settings import FlowSettings, task_runner, with_runner
from samdata.errors import ConfigError
from storage import SliceStore

INGEST = IngestParams(modality="CT", window="abdomen", min_voxels=20, min_pixels=10)


def test_settings_from_environment() -> None:
    assert FlowSettings.from_env({}).dask_address is None
    settings = FlowSettings.from_env({"SAMDATA_DASK_ADDRESS": "tcp://10.0.0.5:8786", "SAMDATA_DASK_WORKERS": "3"})
    assert settings.dask_address == "tcp://10.0.0.5:8786" and settings.workers == 3
    assert type(task_runner(settings)).__name__ == "DaskTaskRunner"
    assert type(task_runner(FlowSettings(dask_workers=1))).__name__ == "ThreadPoolTaskRunner"
    for bad in ({"SAMDATA_DASK_WORKERS": "zero"}, {"SAMDATA_DASK_WORKERS": "0"}, {"SAMDATA_DASK_ADDRESS": "host:1"}):
        with pytest.raises(ConfigError):
            FlowSettings.from_env(bad)


def test_ingest_flow_on_a_local_cluster_by_address(phantoms: Path, tmp_path: Path) -> None:
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=True, dashboard_address=None) as cluster:
        flow_on_cluster = with_runner(ingest_flow, FlowSettings(dask_address=cluster.scheduler_address))
        report = flow_on_cluster(str(phantoms), str(tmp_path / "store"), INGEST, cases_per_task=2)
        with Client(cluster.scheduler_address) as client:
            handled = sum(len(log) for log in client.run(lambda dask_worker: dask_worker.state.log).values())
    assert len(report["added"]) == 4 and not report["failed"]
    assert handled > 0  # the worker process ran the ingest tasks
    store = SliceStore.open(tmp_path / "store")
    assert store.verify() == [] and sorted(store.case_ids()) == sorted(report["added"])
    serial = ingest_flow(str(phantoms), str(tmp_path / "serial"), INGEST)
    other = SliceStore.open(tmp_path / "serial")
    for case_id in serial["added"]:
        np.testing.assert_array_equal(store.read_case(case_id).image, other.read_case(case_id).image)
