"""prefect.yaml's deployments load, carry their cron schedules to the server, and accept overrides."""

from __future__ import annotations

from pathlib import Path

import pytest
from prefect.client.orchestration import get_client

from flows.deployments import DEFAULT_CONFIG, FLOWS, load_flow, read_specs, to_deployments
from samdata.errors import ConfigError, RegistryError

ENV = {"SAMDATA_WATCH_DIR": "/data/incoming", "SAMDATA_STORE": "/data/store", "SAMDATA_RUNS": "/data/runs"}
SCHEDULED = {"nightly-ingest": "0 2 * * *", "weekly-retrain": "0 3 * * 0"}


def test_registry_loads_every_flow() -> None:
    for name in FLOWS:
        assert load_flow(name).name == name
    with pytest.raises(RegistryError, match="valid flows: .*build-and-train"):
        load_flow("bild-and-train")


def test_prefect_yaml_deployments_carry_their_schedules() -> None:
    specs = read_specs(DEFAULT_CONFIG, env=ENV)
    assert {s.name for s in specs} == {*SCHEDULED, "build-and-train"}
    deployments = {d.name: d for d in to_deployments(specs)}
    for name, cron in SCHEDULED.items():
        (schedule,) = deployments[name].schedules
        assert schedule.schedule.cron == cron and schedule.active
        assert deployments[name].parameters["folder"] == "/data/incoming"
    assert deployments["weekly-retrain"].parameters["retrain_into"] == "/data/runs"
    assert not deployments["build-and-train"].schedules
    with get_client(sync_client=True) as client:
        deployment_id = deployments["nightly-ingest"].apply()
        stored = client.read_deployment(deployment_id)
    assert [s.schedule.cron for s in stored.schedules] == ["0 2 * * *"]
    assert stored.parameters["store"] == "/data/store"


def test_schedule_overrides_pause_and_errors(tmp_path: Path) -> None:
    specs = read_specs(DEFAULT_CONFIG, env=ENV)
    (nightly,) = to_deployments(
        specs, cron={"nightly-ingest": "30 1 * * 1-5"}, paused=("nightly-ingest",), only=("nightly-ingest",)
    )
    (schedule,) = nightly.schedules
    assert schedule.schedule.cron == "30 1 * * 1-5" and not schedule.active
    with pytest.raises(RegistryError, match="nightly-ingest"):
        to_deployments(specs, cron={"nighty": "0 1 * * *"})
    with pytest.raises(ConfigError, match="bad schedule"):
        to_deployments(specs, cron={"nightly-ingest": "every night"})
    with pytest.raises(ConfigError, match="SAMDATA_WATCH_DIR"):
        to_deployments(read_specs(DEFAULT_CONFIG, env={}))
    bad = tmp_path / "prefect.yaml"
    bad.write_text("deployments:\n  - name: x\n    entrypoint: flows/nowhere.py:nothing\n")
    with pytest.raises(ConfigError, match="not a samdata flow"):
        to_deployments(read_specs(bad, env={}))
    bad.write_text(
        "deployments:\n  - name: x\n    entrypoint: flows/ingest.py:ingest_flow\n"
        "    parameters: {source: a, store: b, ingest: {window: abdomn}}\n"
    )
    with pytest.raises(ConfigError, match="abdomn"):
        to_deployments(read_specs(bad, env={}))
