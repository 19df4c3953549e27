"""2D raster readers (PNG, JPEG, BMP via Pillow; TIFF via tifffile) giving (X, Y, 1) volumes.

Images: colour (RGB, RGBA, palette, CMYK) becomes grey by ITU-R 601 luminance
(0.299 R + 0.587 G + 0.114 B), recorded as ``meta["rgb_to_grey"] = True``; alpha is dropped.
Masks: a palette PNG keeps its indices; a grey mask keeps its values; an RGB(A) mask must be grey
stored as RGB or hold one colour on black (-> binary); a mask of {0, 255} (or {0, 65535}) becomes
{0, 1}; a JPEG mask (lossy, so never exactly {0, 255}) is thresholded at half its range.
Rows are image Y and columns X, so ``array[:, :, 0] == pixels.T``; the affine is diagonal with the
pixel size from the TIFF resolution tags (inch, cm, mm, um) or 1 mm.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from PIL import Image

from samdata.errors import InputFileError, ValidationError
from samdata.io.formats import Decoded, Header, Reader, SlabTransform, reading

LUMA = np.array([0.299, 0.587, 0.114])
_COLOUR_MODES = {"RGB", "RGBA", "RGBX", "P", "PA", "CMYK", "YCbCr", "LAB", "HSV"}
_MM_PER_UNIT = {2: 25.4, 3: 10.0, 4: 1.0, 5: 1e-3}  # TIFF ResolutionUnit: inch, cm, mm, um
_TIFF = (".tif", ".tiff")  # read by tifffile; the other endings by Pillow
_IMAGEJ_MM = {"mm": 1.0, "millimeter": 1.0, "cm": 10.0, "micron": 1e-3, "um": 1e-3, "\\u00B5m": 1e-3}


def _grey(rgb: np.ndarray) -> np.ndarray:
    """Luminance of a (..., 3+) colour array, in the input's dtype for integers, float32 otherwise."""
    grey = rgb[..., :3].astype(np.float64) @ LUMA
    if np.issubdtype(rgb.dtype, np.integer):
        return np.rint(grey).astype(rgb.dtype)
    return grey.astype(np.float32)


def _colour_mask(rgb: np.ndarray, path: Path) -> np.ndarray:
    """A (..., 3+) colour mask as an integer mask: grey-as-RGB keeps values, one colour on black -> 0/1."""
    rgb = rgb[..., :3]
    if (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 0] == rgb[..., 2]).all():
        return rgb[..., 0]
    colours = np.unique(rgb.reshape(-1, 3), axis=0)
    non_black = [tuple(int(v) for v in c) for c in colours if c.any()]
    if len(non_black) == 1 and len(colours) == 2:
        return rgb.any(axis=-1).astype(np.uint8)
    raise ValidationError(
        f"{path}: colour-coded RGB mask with {len(non_black)} colours {non_black[:6]}; "
        "expected a grey/index mask or a single colour on black"
    )


def _pillow_pixels(path: Path, as_label: bool) -> tuple[np.ndarray, bool]:
    """Pixels (rows, cols[, 3]) of a Pillow-readable file and whether they are colour."""
    with reading(path, "image"), Image.open(path) as img:
        img.load()
        mode = img.mode
        if mode == "1":
            return np.asarray(img, dtype=np.uint8), False
        if mode in ("LA", "La"):
            return np.asarray(img.convert("L")), False
        if mode == "P" and as_label:
            return np.asarray(img), False
        if mode in _COLOUR_MODES:
            return np.asarray(img.convert("RGB")), True
        return np.asarray(img), False


def _tiff_pixels(path: Path) -> tuple[np.ndarray, str, tuple[float, float, float] | None]:
    """TIFF pixels, their tifffile axes, and the (x, y, z) voxel size in mm when the tags give one."""
    with reading(path, "TIFF"), tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        data = series.asarray()
        axes = series.axes
        page = tif.pages[0]
        unit = int(page.tags.valueof(296, default=1))
        xres, yres = page.get_resolution()
        ij = tif.imagej_metadata or {}
    spacing = None
    if unit in _MM_PER_UNIT and xres > 0 and yres > 0:
        spacing = (_MM_PER_UNIT[unit] / xres, _MM_PER_UNIT[unit] / yres, 1.0)
    elif str(ij.get("unit", "")).lower() in _IMAGEJ_MM and xres > 0 and yres > 0:
        scale = _IMAGEJ_MM[str(ij["unit"]).lower()]
        spacing = (scale / xres, scale / yres, float(ij.get("spacing", 1.0 / scale)) * scale)
    keep = [i for i, (a, n) in enumerate(zip(axes, data.shape, strict=True)) if n > 1 or a in "YX"]
    data = data.reshape([data.shape[i] for i in keep])
    axes = "".join(axes[i] for i in keep)
    return data, axes, spacing


def _tiff_to_planes(data: np.ndarray, axes: str, path: Path) -> tuple[np.ndarray, bool]:
    """TIFF data as (planes, rows, cols[, samples]) and whether it carries colour samples."""
    colour = axes.endswith("S") and data.shape[-1] in (3, 4)
    core = axes[:-1] if colour else axes
    if core == "YX":
        return data[None], colour
    if len(core) == 3 and core.endswith("YX") and core[0] in "ZIQ":
        return data, colour
    raise InputFileError(
        f"{path}: TIFF with axes {axes!r} and shape {data.shape}; expected YX, YXS (RGB) "
        "or a plane stack ZYX (extra channels or time points are not supported)"
    )


def _label_values(planes: np.ndarray, path: Path, jpeg: bool) -> tuple[np.ndarray, dict[str, Any]]:
    """Binary conventions of 2D masks: {0, 255} -> {0, 1}; JPEG masks thresholded at half range."""
    meta: dict[str, Any] = {}
    values = np.unique(planes)
    if np.issubdtype(planes.dtype, np.unsignedinteger):
        top = np.iinfo(planes.dtype).max
        if values.size <= 2 and set(values.tolist()) <= {0, top} and top in values:
            return (planes == top).astype(np.uint8), {"binarised_from": int(top)}
        if jpeg and values.size > 2:
            meta["thresholded_at"] = (top + 1) // 2
            return (planes >= (top + 1) // 2).astype(np.uint8), meta
    return planes, meta


def read_raster(path: Path, as_label: bool) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Read a 2D image or mask (or a TIFF plane stack): (X, Y, Z) array, diagonal affine, meta."""
    name = path.name.lower()
    spacing = None
    if name.endswith(_TIFF):
        data, axes, spacing = _tiff_pixels(path)
        planes, colour = _tiff_to_planes(data, axes, path)
    else:
        pixels, colour = _pillow_pixels(path, as_label)
        planes = pixels[None]
    meta: dict[str, Any] = {"format": "raster", "rgb_to_grey": False}
    meta["spacing_source"] = "tiff_resolution" if spacing else "default_1mm"
    if colour and as_label:
        planes = _colour_mask(planes, path)
    elif colour:
        planes = _grey(planes)
        meta["rgb_to_grey"] = True
    if as_label:
        planes, extra = _label_values(planes, path, jpeg=name.endswith((".jpg", ".jpeg")))
        meta.update(extra)
    affine = np.diag([*(spacing or (1.0, 1.0, 1.0)), 1.0])
    return np.ascontiguousarray(planes.transpose(2, 1, 0)), affine, meta


def _raster_header(path: Path) -> Header:
    """Pillow's lazy open or tifffile's page table."""
    if path.name.lower().endswith(_TIFF):
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            axes, shape = series.axes, series.shape
            planes = int(np.prod([n for a, n in zip(axes, shape) if a not in "YXS"], dtype=np.int64))
            width, height = shape[axes.index("X")], shape[axes.index("Y")]
            return Header(str(path), (int(width), int(height), max(planes, 1)), None, str(series.dtype))
    try:
        with Image.open(path) as img:  # lazy: the size comes from the header, no pixel is decoded
            width, height = img.size
            frames = int(getattr(img, "n_frames", 1))
            return Header(str(path), (width, height, frames), None, img.mode)
    except Image.DecompressionBombError as err:  # Pillow refuses > 2 x MAX_IMAGE_PIXELS on open
        raise ValidationError(
            f"{path}: declares more than {2 * Image.MAX_IMAGE_PIXELS:,} pixels, Pillow's "
            f"decompression-bomb limit ({err}); not decoded"
        ) from err


class RasterReader(Reader):
    """2D images and masks (and TIFF plane stacks): :func:`read_raster`."""

    endings = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")

    def header(self, path: Path) -> Header:
        """The size and frame count, no pixel decoded."""
        with reading(path, "image"):
            return _raster_header(path)

    def read(self, path: Path, as_label: bool, transform: SlabTransform | None) -> Decoded:
        """:func:`read_raster`."""
        return read_raster(path, as_label)
