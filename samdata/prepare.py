"""Turn a read image Volume (and label Volume) into a stored :class:`~samdata.case.Case`, and back.

Forward: validate, reorient to RAS+, optionally resample, normalise intensities to uint8, clean
and cast labels, transpose (X, Y, Z) → (Z, Y, X). Backward: :func:`to_source_grid` puts a stored
mask back on the source file's grid so it can be written with the source affine.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import nibabel as nib
import numpy as np
from nibabel.orientations import apply_orientation, inv_ornt_aff

from samdata.case import Case, CaseMeta, Geometry, Normalisation, Provenance, Volume
from samdata.errors import ValidationError
from samdata.labels import as_label_array, clean_labels, label_boxes
from samdata.normalise import (
    IngestConfig,
    canonical_ornt,
    inverse_ornt,
    normalise_intensity,
    reorient,
    resample,
    resample_grid,
    resolve_modality,
    sample_grid,
)

logger = logging.getLogger(__name__)


def _matrix(affine: np.ndarray) -> tuple[tuple[float, ...], ...]:
    """A (4, 4) affine as nested tuples of Python floats (for the frozen, JSON-safe Geometry)."""
    return tuple(tuple(float(v) for v in row) for row in np.asarray(affine, dtype=float))


def _check_image(image: Volume) -> np.ndarray:
    """Validate an image volume's array and affine; return its (X, Y, Z) array."""
    arr = np.asarray(image.array)
    if arr.ndim != 3 or 0 in arr.shape:
        raise ValidationError(
            f"{image.path}: image has shape {arr.shape}; expected a non-empty (X, Y, Z) array (Z == 1 for 2D)"
        )
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValidationError(f"{image.path}: image dtype {arr.dtype} is not a real number type")
    if np.issubdtype(arr.dtype, np.floating):
        finite = np.isfinite(arr)
        if not finite.all():
            raise ValidationError(
                f"{image.path}: image has {int(arr.size - finite.sum())} non-finite values (NaN/inf); "
                "expected finite intensities"
            )
    affine = np.asarray(image.affine, dtype=float)
    if (
        affine.shape != (4, 4)
        or not np.isfinite(affine).all()
        or abs(np.linalg.det(affine[:3, :3])) < 1e-12
    ):
        raise ValidationError(
            f"{image.path}: affine {affine.tolist()} is not an invertible finite (4, 4) voxel-to-world matrix"
        )
    return arr


def _check_label(label: Volume, image: Volume, tolerance: float) -> np.ndarray:
    """Validate a label volume against its image; return the (X, Y, Z) labels cast to a label dtype."""
    arr = np.asarray(label.array)
    if arr.shape != np.shape(image.array):
        raise ValidationError(
            f"{label.path}: label shape {arr.shape} differs from image {image.path} shape "
            f"{np.shape(image.array)}; expected the same (X, Y, Z) grid"
        )
    label_affine = np.asarray(label.affine, dtype=float)
    image_affine = np.asarray(image.affine, dtype=float)
    if label_affine.shape != (4, 4) or not np.allclose(label_affine, image_affine, rtol=0.0, atol=tolerance):
        diff = np.abs(label_affine - image_affine).max() if label_affine.shape == (4, 4) else float("inf")
        raise ValidationError(
            f"{label.path}: label affine {label_affine.tolist()} differs from image {image.path} affine "
            f"{image_affine.tolist()} by {diff:.3g}; expected at most {tolerance:g}"
        )
    return as_label_array(arr, path=label.path)


def _label_names(given: dict[int, str], present: np.ndarray) -> dict[int, str]:
    """The given names (keys as ints) plus ``label_<k>`` for every present non-zero value without one."""
    names: dict[int, str] = {}
    for key, name in given.items():
        try:
            names[int(key)] = str(name)
        except (TypeError, ValueError) as err:
            raise ValidationError(f"label name key {key!r} ({name!r}) is not an integer label value") from err
    for value in (int(v) for v in present):
        if value != 0 and value not in names:
            names[value] = f"label_{value}"
    return dict(sorted(names.items()))


def _present_values(boxes: list[tuple[slice, ...] | None]) -> np.ndarray:
    """The non-zero values of an integer label map from its boxes (:func:`~samdata.labels.label_boxes`:
    no copy; a ``bincount`` of an F-ordered map copied and cast every voxel to int64: 0.48 s and 210 MB
    for 512x512x100). The same boxes serve :func:`~samdata.labels.clean_labels`."""
    return np.array([v for v, box in enumerate(boxes, start=1) if box is not None], dtype=np.int64)


def zyx_in_place(array_xyz: np.ndarray) -> np.ndarray | None:
    """The C-ordered (Z, Y, X) array of an (X, Y, Z) view, made in the view's own memory, or None.

    Works when the view only flips the axes of a Fortran-ordered array, which is what reorienting a
    NIfTI volume to RAS+ does unless it permutes axes (LPS, LAS, RAS...): the flips are undone slice
    by slice, so the cost is one slice-sized temporary instead of a copy of the volume. The view (and
    the array under it) must be the caller's to give up: their values are rearranged. None for a
    view that permutes axes, is read-only, or does not cover its memory exactly (then copy)."""
    view = array_xyz.transpose(2, 1, 0)
    if view.ndim != 3 or not view.flags.writeable:
        return None
    undo = tuple(slice(None, None, -1) if stride < 0 else slice(None) for stride in view.strides)
    base = view[undo]  # the same memory with positive strides
    if not base.flags.c_contiguous:
        return None
    flip_z = undo[0].step == -1
    flip_plane = tuple(s if s.step == -1 else slice(None) for s in undo[1:])
    depth = base.shape[0]
    if flip_z:
        for z in range(depth // 2):
            top = base[z].copy()
            base[z] = base[depth - 1 - z]
            base[depth - 1 - z] = top
    if any(s.step == -1 for s in flip_plane):
        for z in range(depth):
            base[z] = base[z][flip_plane].copy()
    return base


def _as_zyx(array_xyz: np.ndarray, consume: bool) -> np.ndarray:
    """The C-ordered (Z, Y, X) array of an (X, Y, Z) array: in its own memory when ``consume`` allows
    (:func:`zyx_in_place`), else a copy unless it already is one."""
    if consume:
        owned = zyx_in_place(array_xyz)
        if owned is not None:
            return owned
    return np.ascontiguousarray(array_xyz.transpose(2, 1, 0))


def _normalise_zyx(array_xyz: np.ndarray, modality: str, config: IngestConfig, done: Normalisation | None,
                   consume: bool):
    """The stored (Z, Y, X) uint8 image of an (X, Y, Z) array and its Normalisation (``done``: the
    array holds the stored values already; ``consume``: it may be rearranged in place)."""
    if done is not None:
        return _as_zyx(array_xyz, consume), done
    stored, normalisation = normalise_intensity(array_xyz, modality, config)
    return _as_zyx(stored, consume=True), normalisation  # ours: a new array


def _clean_label_zyx(label: Volume | None, shape_xyz: tuple[int, ...], config: IngestConfig, case_id: str,
                     consume: bool) -> tuple[np.ndarray, np.ndarray]:
    """The stored (Z, Y, X) label map (small objects dropped) and its present non-zero values; an
    all-zero uint8 map for a case without labels. ``consume``: ``label.array`` may be rearranged and
    cleaned in place (:func:`zyx_in_place`)."""
    if label is None:
        return np.zeros(tuple(reversed(shape_xyz)), dtype=np.uint8), np.zeros(0, dtype=np.uint8)
    # cleaned in place: the caller's array when it gives it up (rearranged to (Z, Y, X) in its own
    # memory where the layout allows), else always our copy
    label_zyx = _as_zyx(label.array, consume=True) if consume else np.array(label.array.transpose(2, 1, 0), order="C")
    boxes = label_boxes(label_zyx)
    present = _present_values(boxes)
    label_zyx, dropped = clean_labels(
        label_zyx,
        min_object_voxels=config.min_object_voxels,
        min_object_pixels=config.min_object_pixels,
        copy=False,
        boxes=boxes,
    )
    if dropped:
        logger.info("%s: dropped small objects (voxels per label) %s", case_id, dropped)
    return label_zyx, present


@dataclass(frozen=True)
class CleanedLabel:
    """A label map whose small objects :func:`clean_label` dropped before its image was read: the label
    Volume as read (for the grid checks), the cleaned (Z, Y, X) map in the RAS+ layout of ``ornt``
    (the orientation of the label's own affine) and the values present before cleaning."""

    volume: Volume
    ornt: np.ndarray
    label_zyx: np.ndarray
    present: np.ndarray


def clean_label(label: Volume, config: IngestConfig, case_id: str) -> CleanedLabel | None:
    """Clean a label map on its own, before or while its image is read (ingest does this on the
    label's reader thread, so the cleaning overlaps the image's inflation); the map is given up and
    cleaned in place where its layout allows. :func:`prepare_case` takes the result as ``label`` and
    uses the cleaned map when the image's orientation is the label's (always, for a label on the
    image's grid, except near-45° obliques where the two affines may pick different axes: then the
    map is cleaned again on the image's layout). None when ``config.spacing`` asks for resampling
    (labels are cleaned after it)."""
    if config.spacing is not None:
        return None
    array = as_label_array(label.array, path=label.path)
    ornt = canonical_ornt(label.affine, array.shape)
    canon = reorient(Volume(array, label.affine, label.path), ornt)
    label_zyx, present = _clean_label_zyx(canon, canon.array.shape, config, case_id, consume=True)
    return CleanedLabel(Volume(array, label.affine, label.path, dict(label.meta)), ornt, label_zyx, present)


def prepare_case(
    image: Volume,
    label: Volume | CleanedLabel | None,
    *,
    case_id: str,
    config: IngestConfig,
    label_names: dict[int, str],
    provenance: Provenance,
    split: str = "train",
    modality: str | None = None,
    consume: bool = False,
    normalised: Normalisation | None = None,
) -> Case:
    """Build a stored Case from an (X, Y, Z) image Volume and optional label Volume on the same grid.

    ``modality`` is the caller's declared modality (e.g. from dataset.json); ``config.modality``
    overrides it (see :class:`~samdata.normalise.IngestConfig`). A missing label gives an all-zero
    map. Small objects dropped by :func:`~samdata.labels.clean_labels` are logged (INFO) per label.
    Raises :class:`~samdata.errors.ValidationError` naming the file for a bad image or label.
    ``consume``: the caller gives up the image and label arrays, which are then rearranged and cleaned
    in place where their layout allows (no copy of either volume: the ingest path's largest saving).
    ``label`` may be the :class:`CleanedLabel` of :func:`clean_label` (its small objects already
    dropped). ``normalised``: the image already holds its stored uint8 values under this normalisation
    (a window the reader applied while inflating; :func:`~samdata.normalise.planned_window`); not with
    resampling.
    """
    if not case_id or "/" in case_id or "\\" in case_id:
        raise ValidationError(f"{image.path}: case id {case_id!r} must be non-empty and contain no path separator")
    cleaned = label if isinstance(label, CleanedLabel) else None
    if cleaned is not None:
        label = cleaned.volume
    source = _check_image(image)
    labels = None if label is None else _check_label(label, image, config.affine_tolerance)
    resolved = resolve_modality(source, config.modality, modality, image.meta.get("modality"))

    ornt = canonical_ornt(image.affine, source.shape)
    canon = reorient(image, ornt)
    present_as_read = None
    if cleaned is not None and (config.spacing is not None or not np.array_equal(cleaned.ornt, ornt)):
        # cleaned on another layout: back to the file's index order (the map's memory may hold the
        # label's own RAS+ layout by now) and cleaned again on this one; the values read are kept
        restored = apply_orientation(cleaned.label_zyx.transpose(2, 1, 0), inverse_ornt(cleaned.ornt))
        labels, present_as_read, cleaned = as_label_array(restored, path=label.path), cleaned.present, None
    canon_label = None if labels is None else reorient(Volume(labels, image.affine, label.path), ornt)  # type: ignore[union-attr]
    resampled = False
    if normalised is not None and (config.spacing is not None or source.dtype != np.uint8):
        raise ValidationError(f"{image.path}: an image normalised while read ({normalised.method}) must be uint8 "
                              f"(is {source.dtype}) and is not resampled (spacing {config.spacing})")
    if config.spacing is not None:
        new_affine, new_shape, _ = resample_grid(canon.affine, canon.array.shape, config.spacing)
        if new_shape != canon.array.shape or not np.allclose(new_affine, canon.affine, rtol=0.0, atol=1e-9):
            canon = resample(canon, config.spacing, order=config.image_order)
            if canon_label is not None:
                canon_label = resample(canon_label, config.spacing, order=0)
            resampled = True

    # the intensities are normalised on a helper thread while this one cleans the labels (numpy and
    # scipy's labelling release the GIL: the two overlap on two cores)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="samdata-normalise") as pool:
        pending = pool.submit(_normalise_zyx, np.asarray(canon.array), resolved, config, normalised, consume)
        if cleaned is not None:
            label_zyx, present = cleaned.label_zyx, cleaned.present
        else:
            label_zyx, present = _clean_label_zyx(canon_label, canon.array.shape, config, case_id, consume)
            present = present if present_as_read is None else present_as_read
        image_zyx, normalisation = pending.result()
    if image.meta.get("rgb_to_grey"):  # set by the raster reader
        normalisation = replace(normalisation, params={**normalisation.params, "rgb_to_grey": True})

    geometry = Geometry(
        affine=_matrix(canon.affine),
        spacing=canon.spacing,
        source_affine=_matrix(image.affine),
        source_shape=tuple(int(n) for n in source.shape),
        source_axcodes=tuple(str(c) for c in nib.aff2axcodes(np.asarray(image.affine, dtype=float))),
        resampled=resampled,
    )
    meta = CaseMeta(
        case_id=case_id,
        modality=resolved,
        label_names=_label_names(label_names, present),
        geometry=geometry,
        normalisation=normalisation,
        provenance=provenance,
        split=split,
    )
    return Case(meta=meta, image=image_zyx, label=label_zyx)


def to_source_grid(mask_zyx: np.ndarray, meta: CaseMeta) -> np.ndarray:
    """Put a stored (Z, Y, X) label map or mask back on the source file's (X, Y, Z) grid.

    Undoes the transpose, the resampling (nearest neighbour onto the canonical pre-resample grid)
    and the orientation transform, so the result can be written with ``geometry.source_affine``.
    The dtype is kept.
    """
    geometry = meta.geometry
    source_affine = np.asarray(geometry.source_affine, dtype=float)
    source_shape = tuple(int(n) for n in geometry.source_shape)
    ornt = canonical_ornt(source_affine, source_shape)
    canon_shape = [0, 0, 0]
    for axis, (target, _flip) in enumerate(ornt):
        canon_shape[int(target)] = source_shape[axis]
    canon_affine = source_affine @ inv_ornt_aff(ornt, source_shape)
    if geometry.resampled:
        _, stored_shape, _ = resample_grid(canon_affine, tuple(canon_shape), geometry.spacing)
    else:
        stored_shape = tuple(canon_shape)
    mask = np.asarray(mask_zyx)
    if mask.shape != tuple(reversed(stored_shape)):
        raise ValidationError(
            f"case {meta.case_id!r}: mask shape {mask.shape}; expected the stored (Z, Y, X) shape "
            f"{tuple(reversed(stored_shape))}"
        )
    canon = mask.transpose(2, 1, 0)
    if geometry.resampled:
        index_map = np.linalg.inv(np.asarray(geometry.affine, dtype=float)) @ canon_affine
        canon = sample_grid(canon, index_map, tuple(canon_shape), order=0)
    return np.ascontiguousarray(apply_orientation(canon, inverse_ornt(ornt)))


def invert_intensity(image_zyx: np.ndarray, meta: CaseMeta) -> np.ndarray:
    """Map a stored (Z, Y, X) uint8 image back to source intensities (float32, same grid)."""
    return meta.normalisation.invert(np.asarray(image_zyx))
