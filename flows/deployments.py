"""The flow registry, and the deployments of ``prefect.yaml`` as served deployments with their schedules.

``flows/prefect.yaml`` (shipped inside the package) is the one place deployments and their cron schedules are
written: ``prefect deploy --all`` reads it for a work pool, and ``samdata flows serve`` reads it
here and serves the same deployments from one long-running process (:func:`serve_deployments`),
no work pool needed. Placeholders ``{{ $VAR }}`` are filled from the environment, the syntax
``prefect deploy`` uses (its :func:`prefect.utilities.templating.apply_values` reads ``os.environ``
only; this module takes any mapping so the file can be checked against a given environment); one
left unset is an error naming the variable. A schedule can be overridden per deployment (``--cron NAME=EXPR``)
or paused (``--pause NAME``) without editing the file.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from prefect.schedules import Cron

from samdata.errors import ConfigError, unknown_name

#: Flow name → entrypoint ``module:function`` (the names ``samdata flows run`` accepts).
FLOWS: dict[str, str] = {
    "ingest": "flows.ingest:ingest_flow",
    "synthesize": "flows.synthesize:synthesize_flow",
    "prompts": "flows.curate:prompts_flow",
    "curate": "flows.curate:curate_flow",
    "export": "flows.export:export_flow",
    "train": "flows.train:train_flow",
    "build-and-train": "flows.build:build_and_train",
    "watch-folder": "flows.build:watch_flow",
    "demo": "flows.demo:demo_flow",
}
DEFAULT_CONFIG = Path(__file__).resolve().parent / "prefect.yaml"
_ENV_PLACEHOLDER = re.compile(r"\{\{\s*\$([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def load_flow(name: str) -> Any:
    """The flow object registered as ``name``; RegistryError listing the names otherwise."""
    if name not in FLOWS:
        raise unknown_name("flow", name, tuple(FLOWS))
    module, _, attr = FLOWS[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def _entrypoint_flow(entrypoint: str, where: str) -> Any:
    """The flow of a prefect.yaml entrypoint ``flows/build.py:watch_flow`` (or ``flows.build:watch_flow``)."""
    path, _, attr = entrypoint.partition(":")
    module = path[:-3].replace("/", ".") if path.endswith(".py") else path
    for name, target in FLOWS.items():
        if target == f"{module}:{attr}":
            return load_flow(name)
    known = sorted(target.replace(".", "/", 1).replace(":", ".py:") for target in FLOWS.values())
    raise ConfigError(f"{where}: entrypoint {entrypoint!r} is not a samdata flow; expected one of {', '.join(known)}")


@dataclass(frozen=True)
class DeploymentSpec:
    """One deployment of prefect.yaml: name, flow entrypoint, cron schedules, parameters, description, tags."""

    name: str
    entrypoint: str
    crons: tuple[tuple[str, str, bool], ...]  # (cron, timezone, active)
    parameters: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    tags: tuple[str, ...] = ()


def fill_env(value: Any, env: Mapping[str, str]) -> Any:
    """``value`` with every ``{{ $VAR }}`` in its strings replaced by ``env[VAR]`` where set (kept otherwise)."""
    if isinstance(value, str):
        return _ENV_PLACEHOLDER.sub(lambda m: env.get(m.group(1), m.group(0)), value)
    if isinstance(value, Mapping):
        return {k: fill_env(v, env) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [fill_env(v, env) for v in value]
    return value


def _unresolved(value: Any) -> list[str]:
    """Placeholders ``{{ ... }}`` still present anywhere in ``value``."""
    if isinstance(value, str):
        return [value] if "{{" in value else []
    if isinstance(value, Mapping):
        return [p for v in value.values() for p in _unresolved(v)]
    if isinstance(value, list | tuple):
        return [p for v in value for p in _unresolved(v)]
    return []


def read_specs(path: str | Path = DEFAULT_CONFIG, env: Mapping[str, str] | None = None) -> list[DeploymentSpec]:
    """The deployments of a prefect.yaml, placeholders filled from ``env`` (``os.environ`` by default)."""
    where = str(path)
    try:
        document = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"cannot read deployments file {where!r}: {err}") from err
    entries = (document or {}).get("deployments")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{where}: no 'deployments' list; expected Prefect's prefect.yaml format")
    specs = []
    for entry in entries:
        name = entry.get("name") if isinstance(entry, dict) else None
        if not name or not entry.get("entrypoint"):
            raise ConfigError(f"{where}: deployment {entry!r} needs a name and an entrypoint")
        filled = fill_env(
            {k: v for k, v in entry.items() if k in ("parameters", "schedules")}, os.environ if env is None else env
        )
        crons = []
        for schedule in filled.get("schedules") or []:
            if "cron" not in schedule:
                raise ConfigError(
                    f"{where}: deployment {name!r} has schedule {schedule!r}; only cron schedules "
                    "are served (expected a 'cron' key)"
                )
            crons.append(
                (str(schedule["cron"]), str(schedule.get("timezone") or "UTC"), bool(schedule.get("active", True)))
            )
        specs.append(
            DeploymentSpec(
                name=str(name),
                entrypoint=str(entry["entrypoint"]),
                crons=tuple(crons),
                parameters=dict(filled.get("parameters") or {}),
                description=str(entry.get("description") or ""),
                tags=tuple(entry.get("tags") or ()),
            )
        )
    return specs


def to_deployments(
    specs: list[DeploymentSpec],
    *,
    cron: Mapping[str, str] | None = None,
    paused: tuple[str, ...] = (),
    only: tuple[str, ...] = (),
) -> list[Any]:
    """RunnerDeployments of ``specs`` (``only`` these names if given), with ``cron`` overrides by name and
    ``paused`` names' schedules inactive; ConfigError for unknown names or unfilled placeholders."""
    names = [s.name for s in specs]
    for given in (*(cron or {}), *paused, *only):
        if given not in names:
            raise unknown_name("deployment", given, tuple(names))
    out = []
    for spec in specs:
        if only and spec.name not in only:
            continue
        missing = _unresolved(spec.parameters)
        if missing:
            raise ConfigError(
                f"deployment {spec.name!r}: parameters still hold {missing}; set the environment "
                "variables they name (or pass the matching samdata flows serve option)"
            )
        if cron and spec.name in cron:
            crons = [(cron[spec.name], spec.crons[0][1] if spec.crons else "UTC", True)]
        else:
            crons = list(spec.crons)
        try:
            schedules = [
                Cron(expr, timezone=tz, active=active and spec.name not in paused) for expr, tz, active in crons
            ]
        except ValueError as err:
            raise ConfigError(f"deployment {spec.name!r}: bad schedule {crons}: {err}") from err
        flow_obj = _entrypoint_flow(spec.entrypoint, spec.name)
        try:
            flow_obj.validate_parameters(spec.parameters)
        except Exception as err:  # Prefect's ParameterTypeError: say which deployment and why
            raise ConfigError(
                f"deployment {spec.name!r}: parameters {spec.parameters} do not fit flow {flow_obj.name!r}: {err}"
            ) from err
        out.append(
            flow_obj.to_deployment(
                name=spec.name,
                schedules=schedules or None,
                parameters=spec.parameters,
                description=spec.description or None,
                tags=list(spec.tags) or None,
            )
        )
    return out


def serve_deployments(deployments: list[Any], limit: int | None = None) -> None:
    """Serve the deployments from this process until interrupted (runs each flow run in a subprocess)."""
    from prefect import serve

    serve(*deployments, limit=limit)
