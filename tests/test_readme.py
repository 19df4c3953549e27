"""Every ``samdata`` command line in the README names a real command, real options, and real flows and flow
parameters: a documented command that no longer exists fails here, not in a user's shell."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import click
import pytest
import typer.main

from samdata.cli.main import app

README = Path(__file__).resolve().parent.parent / "README.md"
OPTION = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*|-p)(?=[\s=\]|,)]|$)")


def readme_commands() -> list[str]:
    """The README's ``samdata ...`` command lines (continuation lines joined; comments dropped)."""
    commands: list[str] = []
    in_code = False
    for raw in README.read_text(encoding="utf-8").splitlines():
        if raw.startswith("```"):
            in_code = not in_code
            continue
        if not in_code:
            continue
        line = raw.split("  #")[0].rstrip()
        found = re.search(r"(?:^|\s)(samdata\s.*)$", line)
        if found and not line.lstrip().startswith("#"):
            commands += ["samdata " + part if i else part for i, part in enumerate(found.group(1).split(" | samdata "))]
        elif commands and raw.startswith(" ") and line.strip().startswith(("[", "--", "(")):
            commands[-1] += " " + line.strip()
    return commands


def _resolve(words: list[str]) -> tuple[Any, list[str]]:
    """The command a line names (walking the groups of Typer's command tree) and the words after it."""
    command = typer.main.get_command(app)
    rest = list(words)
    while hasattr(command, "get_command") and rest:
        with click.Context(command) as ctx:  # get_command: the root group loads a command's module on demand
            sub = command.get_command(ctx, rest[0])
        if sub is None:
            break
        command = sub
        rest.pop(0)
    return command, rest


def _options(command: Any) -> set[str]:
    return {opt for param in command.params for opt in (*param.opts, *getattr(param, "secondary_opts", ()))} | {
        "--help"
    }


COMMANDS = readme_commands()


def test_the_readme_documents_the_commands() -> None:
    names = {" ".join(c.split()[:3]) for c in COMMANDS}
    assert len(COMMANDS) >= 20 and "samdata synth generate" in names and "samdata flows run" in names


@pytest.mark.parametrize("line", COMMANDS)
def test_each_readme_command_line_is_real(line: str) -> None:
    words = line.split()[1:]
    command, rest = _resolve(words)
    assert not hasattr(command, "commands") or not rest or rest[0].startswith("-"), (
        f"{line!r}: {rest[0] if rest else ''!r} is not a subcommand of {command.name!r}"
    )
    unknown = sorted(
        {o for o in OPTION.findall(line) if o not in _options(command)} - {"-p"}
        if command.name != "run"
        else {o for o in OPTION.findall(line) if o not in _options(command)}
    )
    assert not unknown, f"{line!r}: options {unknown} are not options of `{command.name}`"
    if command.name == "run" and words[:2] == ["flows", "run"]:
        from flows.deployments import FLOWS, load_flow

        flow_name = words[2]
        if flow_name.isupper():  # the usage line's metavariable FLOW, not a flow name
            return
        assert flow_name in FLOWS, f"{line!r}: no flow {flow_name!r}; flows: {sorted(FLOWS)}"
        accepted = set(inspect.signature(load_flow(flow_name).fn).parameters)
        for key in re.findall(r"-p\s+([A-Za-z_]\w*)=", line):
            assert key in accepted, (
                f"{line!r}: flow {flow_name!r} has no parameter {key!r}; it takes {sorted(accepted)}"
            )
