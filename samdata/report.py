"""The run report: a training-curve figure and a static ``index.html`` of sections, figures and tables.

Pure file writing: records and numbers in, a PNG or an HTML file out (the flows gather the content
from the store and the run folders). The page is one self-contained HTML file with inline CSS that
links its PNGs by relative name, so the report folder can be copied, zipped or served as it is.
Written with :mod:`html` escaping rather than a template engine: the page is a handful of fixed
elements and the project has no template dependency.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from matplotlib.figure import Figure

from samdata.errors import ValidationError

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; }
h2 { font-size: 1.25em; border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .8em 0; } caption { text-align: left; font-weight: 600; padding: .3em 0; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f3f3f3; } figure { margin: 1em 0; } img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: .9em; } .meta { color: #666; font-size: .9em; } code { background: #f5f5f5; }
"""


@dataclass(frozen=True)
class ReportFigure:
    """A PNG in the report folder (``file`` is its name there) with a caption."""

    file: str
    caption: str


@dataclass(frozen=True)
class ReportTable:
    """A table: caption, header and rows of already formatted cells."""

    caption: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class ReportSection:
    """A titled section: paragraphs, then tables, then figures."""

    title: str
    paragraphs: tuple[str, ...] = ()
    tables: tuple[ReportTable, ...] = ()
    figures: tuple[ReportFigure, ...] = ()


@dataclass(frozen=True)
class Report:
    """A whole report page: title, summary lines and sections."""

    title: str
    summary: tuple[str, ...]
    sections: tuple[ReportSection, ...]
    meta: Mapping[str, str] = field(default_factory=dict)


def fmt(value: object, digits: int = 3) -> str:
    """A cell: floats with ``digits`` decimals ('-' for None or NaN), other values as text."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def draw_training_curve(
    steps: Sequence[int],
    losses: Sequence[float],
    val_steps: Sequence[int],
    val_dice: Sequence[float],
    path: str | Path,
    *,
    title: str = "training",
) -> Path:
    """Plot the training loss per logged step and the validation Dice per validation step to a PNG."""
    if len(steps) != len(losses) or len(val_steps) != len(val_dice):
        raise ValidationError(
            f"training curve needs equal-length series; got {len(steps)} steps, "
            f"{len(losses)} losses, {len(val_steps)} validation steps, {len(val_dice)} Dice"
        )
    if not steps and not val_steps:
        raise ValidationError(f"training curve {str(path)!r}: no logged steps and no validations to draw")
    out = Path(path)
    if out.suffix.lower() != ".png":
        raise ValidationError(f"figure path {str(out)!r} must end in .png")
    fig = Figure(figsize=(7.0, 3.8))
    ax = fig.add_subplot()
    if steps:
        ax.plot(list(steps), list(losses), color="#1f77b4", linewidth=1.4, label="train loss (Dice + BCE)")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss", color="#1f77b4")
    ax.grid(alpha=0.3)
    right = ax.twinx()
    if val_steps:
        right.plot(
            list(val_steps),
            list(val_dice),
            color="#ff7f0e",
            marker="o",
            linewidth=1.4,
            label="validation Dice (step 0 = zero-shot)",
        )
    right.set_ylabel("validation Dice", color="#ff7f0e")
    right.set_ylim(0.0, 1.0)
    handles = ax.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="center right", fontsize=8, frameon=False)
    ax.set_title(title)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png", dpi=100, bbox_inches="tight")
    return out


def _table_html(table: ReportTable) -> str:
    """One table as HTML."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in table.header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in table.rows)
    return f"<table><caption>{html.escape(table.caption)}</caption><tr>{head}</tr>{body}</table>"


def _section_html(section: ReportSection, folder: Path) -> str:
    """One section as HTML; every figure must exist in ``folder``."""
    parts = [f"<h2>{html.escape(section.title)}</h2>"]
    parts += [f"<p>{html.escape(text)}</p>" for text in section.paragraphs]
    parts += [_table_html(table) for table in section.tables]
    for figure in section.figures:
        if not (folder / figure.file).is_file():
            raise ValidationError(f"report figure {figure.file!r} is not in the report folder {str(folder)!r}")
        parts.append(
            f'<figure><img src="{html.escape(figure.file)}" alt="{html.escape(figure.caption)}">'
            f"<figcaption>{html.escape(figure.caption)}</figcaption></figure>"
        )
    return "\n".join(parts)


def write_report(report: Report, folder: str | Path) -> Path:
    """Write ``folder/index.html`` for ``report`` (its figures already in ``folder``); returns the path."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    meta = " · ".join(f"{html.escape(k)}: {html.escape(v)}" for k, v in {**report.meta, "written": stamp}.items())
    body = [f"<h1>{html.escape(report.title)}</h1>", f'<p class="meta">{meta}</p>']
    if report.summary:
        body.append("<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in report.summary) + "</ul>")
    body += [_section_html(section, out) for section in report.sections]
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(report.title)}</title><style>{STYLE}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )
    path = out / "index.html"
    path.write_text(page, encoding="utf-8")
    return path
