"""Figures: a slice with its label outlines and prompts, and grids of such slices, written as PNG.

Pure arrays in, a PNG path out. Built on matplotlib's object API (``Figure`` and its Agg canvas),
never ``pyplot``, so no global backend or figure registry is touched and it runs in worker threads.
Drawing conventions: grey image (0..255), one outline per label in a distinct colour with a legend
of label names, prompt boxes as dashed rectangles on pixel edges, positive points as green stars, negative points
as red crosses; prompts keyed by label draw their box and star outline in that label's colour.
Label colours skip green and red so they never look like points.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from samdata.errors import ValidationError
from samdata.prompts import Prompt

#: Outline colours by label (1 → first); matplotlib's tab10 without green, red and grey.
PALETTE: tuple[str, ...] = ("#1f77b4", "#ff7f0e", "#9467bd", "#17becf", "#e377c2", "#bcbd22", "#8c564b")
UNKEYED_BOX = "#ffd700"
POSITIVE = "#2ca02c"
NEGATIVE = "#d62728"
PANEL_INCHES = 4.0

Prompts = Prompt | Mapping[int, Prompt] | None
Sample = tuple[np.ndarray, np.ndarray, Prompts, str]


def label_colour(label: int) -> str:
    """The outline colour of label value ``label`` (>= 1) as a hex string."""
    return PALETTE[(int(label) - 1) % len(PALETTE)]


def _check(image: np.ndarray, mask: np.ndarray) -> None:
    """Raise ValidationError unless image is (Y, X) uint8 and mask an integer map of the same shape."""
    if image.ndim != 2 or image.dtype != np.uint8:
        raise ValidationError(f"figure image must be (Y, X) uint8; got shape {image.shape}, dtype {image.dtype}")
    if mask.shape != image.shape or not (np.issubdtype(mask.dtype, np.integer) or mask.dtype == bool):
        raise ValidationError(
            f"figure mask must be an integer (Y, X) map shaped like the image {image.shape}; "
            f"got shape {mask.shape}, dtype {mask.dtype}"
        )


def _draw_prompt(ax: Axes, prompt: Prompt, colour: str | None) -> None:
    """Draw one prompt's box (pixel edges) and points on ``ax``; ``colour`` is its label's (None: unkeyed)."""
    edge = colour or "black"
    if prompt.box is not None:
        x0, y0, x1, y1 = prompt.box
        ax.add_patch(
            Rectangle(
                (x0 - 0.5, y0 - 0.5),
                x1 - x0,
                y1 - y0,
                fill=False,
                edgecolor=colour or UNKEYED_BOX,
                linewidth=1.8,
                linestyle="--",
            )
        )
    pos = prompt.point_labels == 1
    if pos.any():
        ax.scatter(
            prompt.points[pos, 0],
            prompt.points[pos, 1],
            marker="*",
            s=170,
            c=POSITIVE,
            edgecolors=edge,
            linewidths=1.0,
            zorder=3,
        )
    if (~pos).any():
        ax.scatter(
            prompt.points[~pos, 0], prompt.points[~pos, 1], marker="x", s=90, c=NEGATIVE, linewidths=2.2, zorder=3
        )


def _draw_axes(ax: Axes, image: np.ndarray, mask: np.ndarray, prompts: Prompts, title: str) -> set[int]:
    """Draw one panel (image, outlines, prompts, title) on ``ax``; returns the label values drawn."""
    image, mask = np.asarray(image), np.asarray(mask)
    _check(image, mask)
    ax.imshow(image, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    labels = {int(v) for v in np.unique(mask) if v != 0}
    for label in sorted(labels):
        ax.contour((mask == label).astype(np.float32), levels=[0.5], colors=[label_colour(label)], linewidths=1.6)
    if isinstance(prompts, Prompt):
        _draw_prompt(ax, prompts, None)
    elif prompts is not None:
        for label, prompt in sorted(prompts.items()):
            _draw_prompt(ax, prompt, label_colour(label))
    ax.set_xlim(-0.5, image.shape[1] - 0.5)
    ax.set_ylim(image.shape[0] - 0.5, -0.5)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    return labels


def _legend_handles(labels: set[int], label_names: Mapping[int, str] | None, prompts: list[Prompts]) -> list[Line2D]:
    """Legend entries: one per label drawn, then the prompt marks that appear."""
    names = label_names or {}
    handles = [
        Line2D([], [], color=label_colour(lab), linewidth=2, label=names.get(lab, f"label {lab}"))
        for lab in sorted(labels)
    ]
    flat = [
        p for item in prompts if item is not None for p in ([item] if isinstance(item, Prompt) else list(item.values()))
    ]
    if any(p.box is not None for p in flat):
        handles.append(Line2D([], [], color="black", linestyle="--", linewidth=1.5, label="box prompt"))
    if any((p.point_labels == 1).any() for p in flat):
        handles.append(
            Line2D(
                [],
                [],
                color=POSITIVE,
                marker="*",
                markersize=11,
                markeredgecolor="black",
                linestyle="none",
                label="positive point",
            )
        )
    if any((p.point_labels == 0).any() for p in flat):
        handles.append(
            Line2D(
                [],
                [],
                color=NEGATIVE,
                marker="x",
                markersize=9,
                markeredgewidth=2,
                linestyle="none",
                label="negative point",
            )
        )
    return handles


def _panel_size(shape: tuple[int, ...]) -> tuple[float, float]:
    """(width, height) inches of one panel for a (Y, X) image, longest side PANEL_INCHES."""
    height, width = shape[0], shape[1]
    scale = PANEL_INCHES / max(height, width)
    return max(width * scale, 1.5), max(height * scale, 1.5)


def _save(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` as PNG to ``path`` (parent folders created) and return the path."""
    out = Path(path)
    if out.suffix.lower() != ".png":
        raise ValidationError(f"figure path {str(out)!r} must end in .png")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png", dpi=100, bbox_inches="tight")
    return out


def draw_slice(
    image: np.ndarray,
    mask: np.ndarray,
    prompt: Prompts,
    title: str,
    path: str | Path,
    *,
    label_names: Mapping[int, str] | None = None,
) -> Path:
    """Draw a (Y, X) uint8 slice with the outlines of its (Y, X) integer label map and its prompt(s)
    (one Prompt, or {label: Prompt}) to a PNG at ``path``."""
    fig = Figure(figsize=_panel_size(np.shape(image)))
    ax = fig.add_subplot()
    labels = _draw_axes(ax, image, mask, prompt, title)
    handles = _legend_handles(labels, label_names, [prompt])
    if handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    return _save(fig, path)


def draw_grid(
    samples: Sequence[Sample], path: str | Path, cols: int = 4, *, label_names: Mapping[int, str] | None = None
) -> Path:
    """Draw (image, mask, prompt(s), title) samples as a grid of ``cols`` columns with one legend, to PNG."""
    if not samples:
        raise ValidationError("draw_grid needs at least one sample; got none")
    if cols < 1:
        raise ValidationError(f"draw_grid cols={cols}; expected >= 1")
    cols = min(cols, len(samples))
    rows = -(-len(samples) // cols)
    width, height = _panel_size(np.shape(samples[0][0]))
    fig = Figure(figsize=(width * cols, height * rows + 0.6))
    axes = fig.subplots(rows, cols, squeeze=False)
    labels: set[int] = set()
    for ax, (image, mask, prompt, title) in zip(axes.flat, samples):
        labels |= _draw_axes(ax, image, mask, prompt, title)
    for ax in axes.flat[len(samples) :]:
        ax.set_axis_off()
    handles = _legend_handles(labels, label_names, [s[2] for s in samples])
    if handles:
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=8, frameon=False)
        fig.subplots_adjust(bottom=0.6 / (height * rows + 0.6) + 0.02)
    return _save(fig, path)
