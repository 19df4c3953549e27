"""Markdown for the flows' Prefect artifacts, and publishing them under a stable key per store."""

from __future__ import annotations

import re
from pathlib import Path

from prefect.artifacts import create_markdown_artifact


def cell(value: object) -> str:
    """A value as one Markdown table cell (pipes escaped, newlines folded)."""
    return str(value).replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    """A Markdown table of ``rows`` under ``header``."""
    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows])


def artifact_key(kind: str, where: str | Path) -> str:
    """A Prefect artifact key ``<kind>-<folder name>`` (lowercase letters, digits and dashes)."""
    name = Path(str(where).rstrip("/")).name or "store"
    slug = re.sub(r"[^a-z0-9]+", "-", f"{kind}-{name}".lower()).strip("-")
    return slug[:100] or kind


def publish(kind: str, where: str | Path, markdown: str, description: str) -> str:
    """Publish ``markdown`` as the flow run's artifact ``<kind>-<folder>``; returns the key."""
    key = artifact_key(kind, where)
    create_markdown_artifact(markdown=markdown, key=key, description=description)
    return key
