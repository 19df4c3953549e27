"""``samdata flows``: run a Prefect flow now (``run``), list flows and deployments (``list``), or serve the
deployments of ``prefect.yaml`` on their cron schedules (``serve``).

Prefect reads its settings when it is first imported, so every command sets its environment
defaults first (:func:`prefect_env`) and imports ``flows`` inside its body. ``--workers`` and
``--address`` become ``SAMDATA_DASK_WORKERS`` / ``SAMDATA_DASK_ADDRESS`` for the flows (and for the
subprocesses a served deployment runs its flows in).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from samdata.cli.common import console, fail, out
from samdata.cli.options import AddressOpt, WorkersOpt
from samdata.errors import ConfigError, SamdataError
from samdata.malloc import KEEP_LIMIT, keep_freed_memory
from samdata.spec import split_assignment

#: Environment defaults for Prefect, Dask and the processes they start (set only where unset).
ENV_DEFAULTS: dict[str, str] = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",  # the temporary API server on a busy 2-core box
    "DASK_LOGGING__DISTRIBUTED": "warning",  # keep Dask's INFO lines out of the flow logs
    "MALLOC_MMAP_THRESHOLD_": str(KEEP_LIMIT),  # child processes: what keep_freed_memory() does for this one
    "MALLOC_TRIM_THRESHOLD_": str(4 * KEEP_LIMIT),
    "MALLOC_ARENA_MAX": "1",
}

flows_app = typer.Typer(
    help="Prefect flows: run one now, list them, or serve the scheduled deployments.", no_args_is_help=True
)
ConfigOpt = Annotated[
    Optional[Path], typer.Option("--config", help="Deployments file (default: the repo's prefect.yaml).")
]


def prefect_env(home: str | Path | None = None, workers: int | None = None, address: str | None = None) -> None:
    """Set Prefect/Dask/malloc environment defaults where unset, ``PREFECT_HOME`` to ``home`` if unset, and the
    Dask settings given; call before ``prefect`` is imported."""
    for key, value in ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)
    if home is not None:
        os.environ.setdefault("PREFECT_HOME", str(Path(home).resolve()))
    if os.environ.get("PREFECT_HOME"):  # Prefect makes the folder itself, but not its parents
        Path(os.environ["PREFECT_HOME"]).expanduser().mkdir(parents=True, exist_ok=True)
    if workers is not None:
        os.environ["SAMDATA_DASK_WORKERS"] = str(workers)
    if address is not None:
        os.environ["SAMDATA_DASK_ADDRESS"] = address


def parse_params(text: str | None, items: list[str] | None) -> dict[str, Any]:
    """Flow parameters from a JSON object and ``key=value`` items (values read as JSON when they parse)."""
    params: dict[str, Any] = {}
    if text:
        try:
            loaded = json.loads(Path(text[1:]).read_text() if text.startswith("@") else text)
        except (OSError, json.JSONDecodeError) as err:
            raise ConfigError(f"--params {text!r}: not a JSON object or @file.json ({err})") from err
        if not isinstance(loaded, dict):
            raise ConfigError(f'--params {text!r}: expected a JSON object such as \'{{"store": "store"}}\'')
        params.update(loaded)
    for item in items or []:
        key, raw = split_assignment(item) or ("", "")
        if not key:
            raise ConfigError(f"-p {item!r}: expected KEY=VALUE, e.g. -p store=demo-output/store")
        try:
            params[key] = json.loads(raw)
        except json.JSONDecodeError:
            params[key] = raw
    return params


def need_flows() -> None:
    """Raise the install hint (a SamdataError) when the ``flows`` extra (Prefect) is missing."""
    from samdata.extras import check_installed

    for module in ("prefect", "prefect_dask"):
        check_installed(module, "flows", "the Prefect flows")


def run_flow(name: str, params: dict[str, Any]) -> Any:
    """Run the registered flow ``name`` with ``params`` in this process; SamdataError for bad input."""
    from prefect.exceptions import ParameterTypeError

    from flows.deployments import load_flow

    flow_obj = load_flow(name)
    try:
        return flow_obj(**params)
    except ParameterTypeError as err:
        raise ConfigError(f"flow {name!r}: {err}") from err
    except TypeError as err:
        if "argument" not in str(err):
            raise
        raise ConfigError(f"flow {name!r}: {err}") from err


@flows_app.command("run")
def run_command(
    name: Annotated[
        str,
        typer.Argument(help="Flow: ingest, synthesize, prompts, curate, train, build-and-train, watch-folder or demo."),
    ],
    params: Annotated[
        Optional[str], typer.Option("--params", help="Parameters as a JSON object, or @file.json.")
    ] = None,
    param: Annotated[
        Optional[list[str]], typer.Option("-p", "--param", help="KEY=VALUE (VALUE read as JSON if it parses).")
    ] = None,
    workers: WorkersOpt = None,
    address: AddressOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the flow's result as JSON.")] = False,
) -> None:
    """Run one flow now, in this process (a temporary Prefect server starts unless PREFECT_API_URL is set)."""
    need_flows()
    prefect_env(workers=workers, address=address)
    keep_freed_memory()
    values = parse_params(params, param)
    from flows.settings import prefect_api

    with prefect_api():
        result = run_flow(name, values)
    if json_out:
        out.print_json(json.dumps(result, default=str))
    else:
        out.print(f"flow {name} finished", highlight=False)


@flows_app.command("list")
def list_command(config: ConfigOpt = None) -> None:
    """The registered flows, and the deployments of prefect.yaml with their schedules."""
    need_flows()
    prefect_env()
    from rich.table import Table

    from flows.deployments import DEFAULT_CONFIG, FLOWS, read_specs

    flows_table = Table(title="flows (samdata flows run NAME)")
    flows_table.add_column("name")
    flows_table.add_column("entrypoint")
    for name, target in FLOWS.items():
        flows_table.add_row(name, target)
    out.print(flows_table)
    specs = read_specs(config or DEFAULT_CONFIG, env={})
    table = Table(title=f"deployments in {config or DEFAULT_CONFIG}")
    for col in ("name", "entrypoint", "schedule", "description"):
        table.add_column(col)
    for spec in specs:
        when = "; ".join(f"{c} ({tz}{'' if active else ', paused'})" for c, tz, active in spec.crons) or "on demand"
        table.add_row(spec.name, spec.entrypoint, when, spec.description)
    out.print(table)


def parse_crons(items: list[str] | None) -> dict[str, str]:
    """``["nightly-ingest=0 1 * * *"]`` → {deployment: cron}."""
    crons: dict[str, str] = {}
    for item in items or []:
        name, expr = split_assignment(item) or ("", "")
        if not name or not expr.strip():
            raise ConfigError(f'--cron {item!r}: expected NAME="CRON", e.g. --cron nightly-ingest="0 1 * * *"')
        crons[name] = expr.strip()
    return crons


@flows_app.command("serve")
def serve_command(
    config: ConfigOpt = None,
    watch: Annotated[Optional[Path], typer.Option(help="Watched folder of new cases (sets SAMDATA_WATCH_DIR).")] = None,
    store: Annotated[Optional[str], typer.Option(help="Store folder or s3://bucket/prefix (SAMDATA_STORE).")] = None,
    runs: Annotated[Optional[Path], typer.Option(help="Folder for training runs (sets SAMDATA_RUNS).")] = None,
    cron: Annotated[Optional[list[str]], typer.Option(help='NAME="CRON": another schedule for a deployment.')] = None,
    pause: Annotated[Optional[list[str]], typer.Option(help="Serve this deployment with its schedule paused.")] = None,
    only: Annotated[Optional[list[str]], typer.Option(help="Serve only these deployments.")] = None,
    limit: Annotated[Optional[int], typer.Option(min=1, help="At most N flow runs at once.")] = None,
    workers: WorkersOpt = None,
    address: AddressOpt = None,
) -> None:
    """Serve the deployments of prefect.yaml with their cron schedules until Ctrl-C (needs a Prefect server:
    `prefect server start` and PREFECT_API_URL=http://127.0.0.1:4200/api)."""
    need_flows()
    prefect_env(workers=workers, address=address)
    keep_freed_memory()
    for key, value in (("SAMDATA_WATCH_DIR", watch), ("SAMDATA_STORE", store), ("SAMDATA_RUNS", runs)):
        if value is not None:
            os.environ[key] = str(Path(value).resolve()) if isinstance(value, Path) else value
    from flows.deployments import DEFAULT_CONFIG, read_specs, serve_deployments, to_deployments

    specs = read_specs(config or DEFAULT_CONFIG)
    deployments = to_deployments(specs, cron=parse_crons(cron), paused=tuple(pause or ()), only=tuple(only or ()))
    if not os.environ.get("PREFECT_API_URL"):
        console.print(
            "[yellow]PREFECT_API_URL is not set:[/] serving against a temporary server that stops with "
            "this process; start `prefect server start` for the UI and a lasting schedule",
            highlight=False,
        )
    for deployment in deployments:
        crons = ", ".join(s.schedule.cron for s in deployment.schedules or []) or "on demand"
        out.print(f"serving {deployment.name} ({deployment.flow_name}): {crons}", highlight=False)
    from flows.settings import prefect_api

    with prefect_api():
        try:
            serve_deployments(deployments, limit=limit)
        except SamdataError as err:
            fail(str(err))


def register(app: typer.Typer) -> None:
    """Add the ``flows`` command group to the top-level app."""
    app.add_typer(flows_app, name="flows")
