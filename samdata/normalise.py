"""Ingest transforms on plain arrays: CT windows, percentile scaling, RAS+ orientation, resampling.

Orientation uses ``nibabel.orientations``. Resampling is written here on top of
``scipy.ndimage.affine_transform`` with an explicit index map (destination voxel → source voxel)
instead of torchio/SimpleITK: the same map, inverted, is what
:func:`samdata.prepare.to_source_grid` needs to put a mask back on the pre-resample grid, and it
works on nibabel-ordered (X, Y, Z) arrays without a round trip through LPS images.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import numpy as np
from nibabel.orientations import apply_orientation, inv_ornt_aff, io_orientation
from scipy import ndimage

from samdata.case import Normalisation, Volume
from samdata.errors import ConfigError, ValidationError, unknown_name
from samdata.ingest_config import DEFAULT_MAX_VOXELS as DEFAULT_MAX_VOXELS
from samdata.ingest_config import IngestConfig as IngestConfig

WINDOWS: dict[str, tuple[float, float]] = {
    "abdomen": (40.0, 400.0),
    "brain": (40.0, 80.0),
    "bone": (400.0, 1800.0),
    "lung": (-600.0, 1500.0),
    "liver": (60.0, 150.0),
    "mediastinum": (50.0, 350.0),
}
"""CT window presets, name → (level, width) in HU."""

DEFAULT_CT_WINDOW = "abdomen"

MODALITIES: tuple[str, ...] = (
    "CT",
    "MR",
    "PET",
    "US",
    "XR",
    "MG",
    "NM",
    "ENDOSCOPY",
    "DERMOSCOPY",
    "FUNDUS",
    "OCT",
    "MICROSCOPY",
    "OTHER",
)
"""Canonical modality names stored in ``CaseMeta.modality``."""

MODALITY_ALIASES: dict[str, str] = {
    # dataset.json (MSD "modality", nnU-Net "channel_names") spellings
    "MRI": "MR",
    "T1": "MR",
    "T1W": "MR",
    "T1C": "MR",
    "T1GD": "MR",
    "T1CE": "MR",
    "T2": "MR",
    "T2W": "MR",
    "FLAIR": "MR",
    "ADC": "MR",
    "DWI": "MR",
    "PD": "MR",
    "ULTRASOUND": "US",
    "XRAY": "XR",
    "X-RAY": "XR",
    "MAMMOGRAPHY": "MG",
    "SPECT": "NM",
    "ZSCORE": "OTHER",
    "NONORM": "OTHER",
    "RESCALE_TO_0_1": "OTHER",
    "RGB_TO_0_1": "OTHER",
    # DICOM (0008,0060) Modality codes
    "PT": "PET",
    "CR": "XR",
    "DX": "XR",
    "RG": "XR",
    "XA": "XR",
    "RF": "XR",
    "PX": "XR",
    "IO": "XR",
    "ES": "ENDOSCOPY",
    "OP": "FUNDUS",
    "OPT": "OCT",
    "SM": "MICROSCOPY",
    "OT": "OTHER",
    "SC": "OTHER",
    "XC": "OTHER",
}
"""Spellings found in dataset.json files and DICOM Modality tags, mapped to :data:`MODALITIES`."""

HU_GUESS_THRESHOLD = -500.0
"""A volume whose minimum is below this is guessed to be CT in Hounsfield units."""

_ROUND_EPS = 1e-6  # so that n * old / new == k + 0.5 rounds the same way after float noise


def check_spacing(values: tuple[float, ...], what: str) -> tuple[float, float, float]:
    """Validate a (X, Y, Z) spacing: three finite numbers > 0."""
    try:
        spacing = tuple(float(v) for v in values)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{what} {values!r}: expected three numbers (X, Y, Z) in mm") from err
    if len(spacing) != 3 or not all(math.isfinite(v) and v > 0 for v in spacing):
        raise ConfigError(f"{what} {values!r}: expected three finite numbers > 0 (X, Y, Z) in mm")
    return spacing  # type: ignore[return-value]


def resolve_window(window: str | tuple[float, float]) -> tuple[str, float, float]:
    """Turn a preset name or (level, width) into (method, level, width); method is "window:<name>"."""
    if isinstance(window, str):
        key = window.strip().lower()
        if key not in WINDOWS:
            raise unknown_name("window", window, tuple(WINDOWS))
        level, width = WINDOWS[key]
        return f"window:{key}", level, width
    try:
        level, width = (float(v) for v in window)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"window {window!r}: expected a preset name or a (level, width) pair") from err
    if not (math.isfinite(level) and math.isfinite(width) and width > 0):
        raise ConfigError(f"window {window!r}: expected a finite level and a width > 0")
    return "window:custom", level, width


def canonical_modality(name: str) -> str:
    """Map a modality spelling ("ct", "MRI", "T2", "PT"...) to one of :data:`MODALITIES`."""
    key = str(name).strip().upper()
    key = MODALITY_ALIASES.get(key, key)
    if key not in MODALITIES:
        raise unknown_name("modality", str(name), MODALITIES)
    return key


def resolve_modality(array: np.ndarray, *candidates: str | None) -> str:
    """The first non-empty candidate as a canonical modality, else a guess from (X, Y, Z) values.

    The guess is ``"CT"`` when the minimum is below :data:`HU_GUESS_THRESHOLD`, else ``"OTHER"``.
    """
    for candidate in candidates:
        if candidate is not None and str(candidate).strip():
            return canonical_modality(candidate)
    if array.size and float(np.min(array)) < HU_GUESS_THRESHOLD:
        return "CT"
    return "OTHER"


def canonical_ornt(affine: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The (3, 2) nibabel orientation transform taking an (X, Y, Z) array of `shape` to RAS+.

    2D images (``shape[2] == 1``) keep axis 2 as the slice axis; their two in-plane axes are
    ordered and flipped as close to RAS+ as they can be.
    """
    ornt = io_orientation(np.asarray(affine, dtype=float))
    if np.isnan(ornt).any():
        raise ValidationError(
            f"affine {np.asarray(affine).tolist()} has a degenerate axis; expected an invertible voxel-to-world matrix"
        )
    if len(shape) >= 3 and shape[2] == 1 and ornt[2, 0] != 2:
        first, second = sorted((0, 1), key=lambda axis: ornt[axis, 0])
        ornt[first, 0], ornt[second, 0], ornt[2, 0] = 0, 1, 2
    return ornt


def inverse_ornt(ornt: np.ndarray) -> np.ndarray:
    """The orientation transform that undoes `ornt` (for ``nibabel.orientations.apply_orientation``)."""
    inverse = np.empty_like(ornt)
    for axis, (target, flip) in enumerate(np.asarray(ornt)):
        inverse[int(target)] = (axis, flip)
    return inverse


def reorient(vol: Volume, ornt: np.ndarray) -> Volume:
    """Apply an orientation transform to a volume's (X, Y, Z) array and update its affine."""
    array = apply_orientation(vol.array, ornt)
    affine = np.asarray(vol.affine, dtype=float) @ inv_ornt_aff(ornt, vol.array.shape)
    return Volume(array, affine, vol.path, dict(vol.meta))


def to_canonical(vol: Volume) -> Volume:
    """Reorder and flip a volume's (X, Y, Z) array to RAS+ (2D images keep Z); meta is kept."""
    return reorient(vol, canonical_ornt(vol.affine, vol.array.shape))


def resample_grid(
    affine: np.ndarray, shape: tuple[int, ...], spacing: tuple[float, float, float]
) -> tuple[np.ndarray, tuple[int, int, int], np.ndarray]:
    """The grid covering the same field of view at `spacing`: (affine, shape, new→old index map).

    The new grid has ``round(n * old / new)`` voxels per axis and the same centre; axes of length 1
    (the Z of a 2D image) are left alone.
    """
    affine = np.asarray(affine, dtype=float)
    old = np.linalg.norm(affine[:3, :3], axis=0)
    target = np.asarray(check_spacing(spacing, "target spacing"), dtype=float)
    n = np.asarray(shape[:3], dtype=float)
    new_n = np.where(n > 1, np.maximum(1.0, np.floor(n * old / target + 0.5 + _ROUND_EPS)), n)
    ratio = np.where(n > 1, target / old, 1.0)
    index_map = np.eye(4)
    index_map[:3, :3] = np.diag(ratio)
    index_map[:3, 3] = (n - 1) / 2 - (new_n - 1) / 2 * ratio
    new_shape = tuple(int(v) for v in new_n)
    return affine @ index_map, new_shape, index_map  # type: ignore[return-value]


def sample_grid(array: np.ndarray, index_map: np.ndarray, shape: tuple[int, ...], *, order: int) -> np.ndarray:
    """Sample a 3D array at ``index_map @ (i, j, k, 1)`` for every voxel of `shape`, keeping its dtype.

    ``order`` 0 is nearest neighbour (labels); higher orders interpolate in floating point and
    integer inputs are rounded and clipped back to their dtype. Edges replicate the nearest voxel.
    """
    matrix = np.asarray(index_map[:3, :3], dtype=float)
    if np.allclose(matrix, np.diag(np.diag(matrix))):
        matrix = np.diag(matrix)  # scipy's faster zoom-like path
    offset = np.asarray(index_map[:3, 3], dtype=float)
    source = np.asarray(array)
    work = source.view(np.uint8) if source.dtype == np.bool_ else source
    if order == 0:
        out = ndimage.affine_transform(work, matrix, offset=offset, output_shape=shape, order=0, mode="nearest")
        return out.view(np.bool_) if source.dtype == np.bool_ else out
    float_type = np.result_type(work.dtype, np.float32)
    out = ndimage.affine_transform(
        work.astype(float_type, copy=False),
        matrix,
        offset=offset,
        output_shape=shape,
        order=order,
        mode="nearest",
        output=float_type,
    )
    if source.dtype == np.bool_:
        return out >= 0.5
    if np.issubdtype(source.dtype, np.integer):
        info = np.iinfo(source.dtype)
        return np.clip(np.rint(out), info.min, info.max).astype(source.dtype)
    return out.astype(source.dtype, copy=False)


def resample(vol: Volume, spacing: tuple[float, float, float], *, order: int) -> Volume:
    """Resample an (X, Y, Z) volume to `spacing` mm over the same field of view; dtype and meta kept."""
    affine, shape, index_map = resample_grid(vol.affine, vol.array.shape, spacing)
    return Volume(sample_grid(vol.array, index_map, shape, order=order), affine, vol.path, dict(vol.meta))


_SLAB_VOXELS = 1 << 20  # float32 working memory of _to_uint8: 4 MB, whatever the volume's size


def _to_uint8(array: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``rint(clip((x - lo) / (hi - lo), 0, 1) * 255)`` as uint8, computed in float32.

    Done in slabs along the array's slowest axis, so a 512x512x100 int16 volume needs 4 MB of float
    temporaries instead of two 105 MB float32 copies; the output keeps the input's memory order."""
    array = np.asarray(array)
    out = np.empty_like(array, dtype=np.uint8, order="K")
    if array.ndim == 0 or array.size == 0:
        out[...] = _scale(np.array(array, dtype=np.float32, ndmin=1), lo, hi).reshape(array.shape)
        return out
    axis = int(np.argmax(np.abs(array.strides)))
    step = max(1, _SLAB_VOXELS // max(1, array.size // array.shape[axis]))
    for start in range(0, array.shape[axis], step):
        index = (slice(None),) * axis + (slice(start, start + step),)
        out[index] = _scale(array[index].astype(np.float32), lo, hi)
    return out


def _scale(scaled: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """In place on a float32 array: shift, scale, clip to [0, 255] and round."""
    scaled -= np.float32(lo)
    scaled *= np.float32(255.0 / (hi - lo))
    np.clip(scaled, 0.0, 255.0, out=scaled)
    return np.rint(scaled, out=scaled)


def planned_window(config: IngestConfig, modality: str | None) -> Normalisation | None:
    """The window normalisation of a CT image, or of any image under an explicit ``config.window``,
    known before its intensities are read (None otherwise: percentiles need the values). ``modality``
    is the one resolved without looking at the values (``config.modality`` or the declared one)."""
    if config.window is None and (modality is None or canonical_modality(modality) != "CT"):
        return None
    method, level, width = resolve_window(config.window if config.window is not None else DEFAULT_CT_WINDOW)
    return Normalisation(method, level - width / 2.0, level + width / 2.0, {"level": level, "width": width})


def window_transform(window: Normalisation) -> Callable[[np.ndarray], np.ndarray]:
    """The intensities → uint8 map of a window, for any block of voxels (a reader applies it block by
    block while it inflates a file); the same values as :func:`normalise_intensity`."""
    return partial(_to_uint8, lo=window.lo, hi=window.hi)


def normalise_intensity(array: np.ndarray, modality: str, config: IngestConfig) -> tuple[np.ndarray, Normalisation]:
    """Map an image array (any shape, numeric, finite) to uint8 [0, 255] and record how.

    CT, or any modality with ``config.window``: the window [level - width/2, level + width/2].
    Other modalities: ``config.percentiles`` of the non-zero voxels (of all voxels if none is
    non-zero); uint8 inputs are kept unchanged when ``config.keep_uint8``. A constant image gets
    ``hi = lo + 1`` so the transform stays invertible.
    """
    modality = canonical_modality(modality)
    window = planned_window(config, modality)
    if window is not None:
        return _to_uint8(array, window.lo, window.hi), window
    if config.keep_uint8 and array.dtype == np.uint8:
        return np.array(array, dtype=np.uint8), Normalisation("none", 0.0, 255.0, {"input_dtype": "uint8"})
    values = array[array != 0]
    nonzero = bool(values.size)
    if not nonzero:
        values = np.ravel(array)
    lo, hi = (float(v) for v in np.percentile(values, config.percentiles))
    if hi <= lo:
        hi = lo + 1.0
    params = {"percentiles": [float(p) for p in config.percentiles], "nonzero": nonzero}
    return _to_uint8(array, lo, hi), Normalisation("percentile", float(lo), float(hi), params)
