"""Open an exported OME-Zarr image in a real napari viewer (through the napari-ome-zarr plugin) and save a screenshot.

Run (needs ``pip install 'samdata[viewer]'``; napari draws with OpenGL, so on a machine without a display run it
under a virtual X server with Mesa, e.g. Debian's ``xvfb`` and ``libgl1-mesa-dri``)::

    xvfb-run -a python scripts/napari_screenshot.py OUT/mni152.ome.zarr --out shot.png

``QT_QPA_PLATFORM=offscreen`` is not enough: Qt's offscreen platform gives vispy no OpenGL context and napari
fails on its first image layer. The slice shown is ``--z`` or the one with the most labelled voxels.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import zarr


def busiest_slice(image: Path) -> int:
    """The z of the full-resolution label map with the most labelled voxels (0 without labels)."""
    group = zarr.open_group(image, mode="r")
    if "labels" not in group:
        return 0
    label = group["labels/label/s0"]
    counts = [int(np.count_nonzero(label[z])) for z in range(label.shape[0])]  # type: ignore[index, union-attr]
    return int(np.argmax(counts))


def screenshot(image: Path, out: Path, z: int | None = None, size: tuple[int, int] = (900, 800)) -> Path:
    """Open ``image`` in napari, show axial slice ``z`` with its labels, and write the canvas to ``out`` (PNG)."""
    import napari

    viewer = napari.Viewer(show=True, title=image.name)
    try:
        viewer.window.resize(*size)
        layers = viewer.open(str(image), plugin="napari-ome-zarr")
        labels = [layer for layer in layers if isinstance(layer, napari.layers.Labels)]
        if not labels:
            raise SystemExit(f"{image}: napari-ome-zarr found no label layer (layers: {[x.name for x in layers]})")
        for layer in labels:  # the plugin opens label images hidden
            layer.visible, layer.opacity = True, 0.5
        viewer.reset_view()
        viewer.dims.set_current_step(0, busiest_slice(image) if z is None else z)
        out.parent.mkdir(parents=True, exist_ok=True)
        viewer.screenshot(str(out), canvas_only=True)
        names = sorted({str(n) for layer in labels for n in layer.features.get("name", [])})
        print(
            f"{out}: {image.name}, z {viewer.dims.current_step[0]}, layers {[x.name for x in viewer.layers]}, "
            f"label names {names}"
        )
    finally:
        viewer.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "image", type=Path, help="An image folder written by `samdata export ome-zarr` (CASE.ome.zarr)."
    )
    parser.add_argument("--out", type=Path, required=True, help="PNG to write.")
    parser.add_argument("--z", type=int, default=None, help="Axial slice (default: the most labelled one).")
    args = parser.parse_args()
    screenshot(args.image, args.out, args.z)


if __name__ == "__main__":
    main()
