"""Figures and tables of :mod:`training.compare`: Dice per model beside the click curves, the error
overlay of an adapted SAM against a prompt-free baseline, and the cells of the model and clicks tables
(shared by ``compare.md`` and the CLI).

Records and arrays in, a PNG out, drawn with matplotlib's object API (``Figure`` on the Agg canvas,
never ``pyplot``) like :mod:`samdata.figures`, so no global backend or figure registry is touched.
The error overlay colours, per pixel of a slice's evaluated objects, who is right: both models, neither,
only the baseline (the SAM is wrong) or only the SAM (the baseline is wrong); background that both
leave empty stays uncoloured.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from samdata.errors import ValidationError
from samdata.figures import _save  # PNG writing shared with samdata's figures

ZERO_SHOT, ADAPTED, BASELINE = "zero-shot", "adapted", "baseline"  # the kinds of compared model
KIND_COLOURS: dict[str, str] = {ZERO_SHOT: "#7f7f7f", ADAPTED: "#1f77b4", BASELINE: "#ff7f0e"}
#: error-map values → colour: 1 both right, 2 both wrong, 3 only the SAM wrong, 4 only the baseline wrong
ERROR_COLOURS: dict[int, str] = {1: "#2ca02c", 2: "#d62728", 3: "#9467bd", 4: "#ffbf00"}
#: click-curve colours of promptable models (no orange: that is the baseline's line)
CURVE_COLOURS: tuple[str, ...] = ("#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
OVERLAY_ALPHA = 0.6


def draw_scores(rows: Sequence[Mapping[str, Any]], clicks: Sequence[int], path: str | Path) -> Path:
    """Bars of Dice per model (error bars: ``dice_sd_over_cases``; hatched: trained with synthetic data) and,
    with ``clicks``, Dice after each click count per promptable model, baselines as horizontal lines."""
    if not rows:
        raise ValidationError("draw_scores needs at least one model row; got none")
    curves = [r for r in rows if r["clicks"]] if clicks else []
    fig = Figure(figsize=(6.5 + (4.5 if curves else 0.0), 4.6), layout="constrained")
    left = fig.add_subplot(1, 2 if curves else 1, 1)
    x = np.arange(len(rows))
    sd = [r["dice_sd_over_cases"] or 0.0 for r in rows]
    bars = left.bar(
        x,
        [r["dice"] for r in rows],
        yerr=sd,
        capsize=4,
        edgecolor="black",
        linewidth=0.6,
        color=[KIND_COLOURS.get(r["kind"], "#bcbd22") for r in rows],
        error_kw={"elinewidth": 1.0},
    )
    for bar, row in zip(bars, rows):
        if row.get("synthetic"):
            bar.set_hatch("//")
        left.annotate(
            f"{row['dice']:.3f}",
            (bar.get_x() + bar.get_width() / 2, row["dice"]),
            ha="center",
            va="bottom",
            fontsize=8,
            xytext=(0, 2),
            textcoords="offset points",
        )
    left.set_xticks(x, [str(r["name"]) for r in rows], rotation=20, ha="right", fontsize=8)
    left.set_ylim(0.0, 1.05)
    left.set_ylabel("Dice (mean over case & label; bar: sd)")
    left.grid(axis="y", alpha=0.3)
    kinds = list(dict.fromkeys(r["kind"] for r in rows))
    handles = [Patch(facecolor=KIND_COLOURS.get(k, "#bcbd22"), edgecolor="black", label=k) for k in kinds]
    if any(r.get("synthetic") for r in rows):
        handles.append(Patch(facecolor="white", edgecolor="black", hatch="//", label="+ synthetic data"))
    left.legend(
        handles=handles, fontsize=8, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=len(handles)
    )
    left.set_title("Dice per model", fontsize=10)
    if curves:
        right = fig.add_subplot(1, 2, 2)
        for i, row in enumerate(curves):
            counts = sorted(row["clicks"])
            colour = KIND_COLOURS[ZERO_SHOT] if row["kind"] == ZERO_SHOT else CURVE_COLOURS[i % len(CURVE_COLOURS)]
            right.plot(
                counts,
                [row["clicks"][c] for c in counts],
                marker="o",
                linewidth=1.4,
                color=colour,
                label=str(row["name"]),
            )
            ceiling = row.get("click_ceiling") or {}
            if ceiling and row["kind"] != ZERO_SHOT:
                right.plot(
                    counts,
                    [ceiling[c] for c in counts],
                    linestyle=":",
                    linewidth=1.2,
                    color=colour,
                    label=f"{row['name']}: region ceiling",
                )
        for row in rows:
            if row["kind"] == BASELINE:
                right.axhline(
                    row["dice"],
                    color=KIND_COLOURS[BASELINE],
                    linestyle="--",
                    linewidth=1.4,
                    label=f"{row['name']} (no prompts)",
                )
        right.set_xticks(list(clicks))
        right.set_xlabel("corrective clicks")
        right.set_ylabel("Dice")
        right.set_ylim(0.0, 1.05)
        right.grid(alpha=0.3)
        right.legend(fontsize=8, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2)
        right.set_title("Interactive: Dice after corrective clicks", fontsize=10)
    return _save(fig, path)


def error_map(gt: np.ndarray, sam: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    """(Y, X) uint8 map of who is right from a slice's per-object (N, Y, X) bool reference and two models'
    predictions: 0 background both leave empty, 1 both right, 2 both wrong, 3 only SAM wrong, 4 only baseline wrong."""
    gt, sam, baseline = (np.asarray(a, dtype=bool) for a in (gt, sam, baseline))
    if gt.ndim != 3 or sam.shape != gt.shape or baseline.shape != gt.shape:
        raise ValidationError(
            f"error_map needs three (N, Y, X) masks of one shape; got {gt.shape}, {sam.shape}, {baseline.shape}"
        )
    sam_wrong, base_wrong = (sam != gt).any(0), (baseline != gt).any(0)
    shown = (gt | sam | baseline).any(0)
    out = np.zeros(gt.shape[1:], dtype=np.uint8)
    out[shown & ~sam_wrong & ~base_wrong] = 1
    out[sam_wrong & base_wrong] = 2
    out[sam_wrong & ~base_wrong] = 3
    out[base_wrong & ~sam_wrong] = 4
    return out


def draw_errors(panels: Sequence[tuple[np.ndarray, np.ndarray, str]], names: tuple[str, str], path: str | Path) -> Path:
    """Draw (image (Y, X) uint8, :func:`error_map` (Y, X) uint8, title) panels in a row with the colour legend;
    ``names``: (SAM, baseline) as the legend names them."""
    if not panels:
        raise ValidationError("draw_errors needs at least one slice panel; got none")
    height, width = panels[0][0].shape
    side = 4.0 / max(height, width)
    fig = Figure(figsize=(max(width * side, 2.0) * len(panels), max(height * side, 2.0) + 0.9), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    lut = np.zeros((len(ERROR_COLOURS) + 1, 4))
    for value, colour in ERROR_COLOURS.items():
        lut[value] = to_rgba(colour, OVERLAY_ALPHA)
    for ax, (image, errors, title) in zip(axes, panels):
        if image.shape != errors.shape or image.dtype != np.uint8:
            raise ValidationError(
                f"error panel {title!r}: image must be (Y, X) uint8 shaped like its error map; "
                f"got {image.shape} {image.dtype} and {errors.shape}"
            )
        ax.imshow(image, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.imshow(lut[errors], interpolation="nearest")
        ax.set_title(title, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    sam, base = names
    labels = {1: "both right", 2: "both wrong", 3: f"only {sam} wrong", 4: f"only {base} wrong"}
    handles = [
        Line2D([], [], color=ERROR_COLOURS[v], marker="s", markersize=10, linestyle="none", label=text)
        for v, text in labels.items()
    ]
    fig.legend(handles=handles, loc="outside lower center", ncol=4, fontsize=8, frameon=False)
    return _save(fig, path)


def _count(n: int) -> str:
    """A parameter count as 9.79M / 12.3k / 512."""
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.1f}k" if n >= 1e3 else str(n)


def _duration(seconds: float | None) -> str:
    """Seconds as '42 s', '12.5 min' or '1.2 h' ('-' when unknown)."""
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def _num(value: float | None) -> str:
    """A metric cell (3 decimals, '-' for None)."""
    return "-" if value is None else f"{value:.3f}"


TABLE_HEADER = ("model", "kind", "data", "Dice ± sd", "IoU", "NSD", "HD95 (mm)", "trainable params", "train time")


def table_cells(row: dict[str, Any]) -> list[str]:
    """The model-table cells of a row: model, kind, data, Dice ± sd, IoU, NSD, HD95, trainable params, train time."""
    data = "-" if row["kind"] == ZERO_SHOT else "real + synthetic" if row["synthetic"] else "real"
    sd = row["dice_sd_over_cases"]
    share = f" ({100 * row['trainable'] / row['total']:.1f}%)" if row["total"] and row["trainable"] else ""
    return [
        row["name"],
        row["kind"],
        data,
        _num(row["dice"]) + ("" if sd is None else f" ± {sd:.3f}"),
        _num(row["iou"]),
        _num(row["nsd"]),
        _num(row["hd95"]),
        _count(row["trainable"]) + share,
        _duration(row["train_seconds"]),
    ]


def json_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A model row with its click-count keys as strings (for JSON)."""
    return {
        **row,
        **{key: {str(c): d for c, d in row[key].items()} for key in ("clicks", "click_ceiling") if key in row},
    }


def click_table(rows: Sequence[dict[str, Any]], clicks: Sequence[int]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the clicks table; each adapted model's region ceiling (k largest error regions of
    its 0-click mask fixed, :func:`training.evaluate.region_ceiling`) follows it; a baseline's single Dice
    repeats as a reference row."""
    header = ["model", *[f"{c} click{'s' if c != 1 else ''}" for c in clicks]]
    body = []
    for r in rows:
        if r["clicks"]:
            body.append([r["name"], *[_num(r["clicks"].get(c)) for c in clicks]])
            if r.get("click_ceiling") and r["kind"] != ZERO_SHOT:
                body.append(
                    [
                        f"{r['name']} (ceiling: k largest error regions fixed)",
                        *[_num(r["click_ceiling"].get(c)) for c in clicks],
                    ]
                )
    body += [
        [f"{r['name']} (no prompts; reference)", *[_num(r["dice"])] * len(clicks)]
        for r in rows
        if r["kind"] == BASELINE
    ]
    return header, body
