"""Turn a read image Volume (and label Volume) into a stored :class:`~samdata.case.Case`, and back.

Forward: validate, reorient to RAS+, optionally resample, normalise intensities to uint8, clean
and cast labels, transpose (X, Y, Z) → (Z, Y, X). Backward: :func:`to_source_grid` puts a stored
mask back on the source file's grid so it can be written with the source affine.
"""

from __future__ import annotations

import logging
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
    if affine.shape != (4, 4) or not np.isfinite(affine).all() or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
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
    no copy; a ``bincount`` of an F-ordered map copied and cast every voxel to int64, measured far slower
    and larger: BENCHMARKS.md, "Ingest"). The same boxes serve :func:`~samdata.labels.clean_labels`."""
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


def own_zyx(array_xyz: np.ndarray) -> np.ndarray:
    """The C-ordered (Z, Y, X) array of an (X, Y, Z) array the caller gives up: made in its own memory where
    the layout allows (:func:`zyx_in_place`), else a copy unless it already is one."""
    owned = zyx_in_place(array_xyz)
    return owned if owned is not None else np.ascontiguousarray(array_xyz.transpose(2, 1, 0))


def normalise_zyx(array_xyz: np.ndarray, modality: str, config: IngestConfig) -> tuple[np.ndarray, Normalisation]:
    """The stored (Z, Y, X) uint8 image of an (X, Y, Z) array (left untouched) and its Normalisation."""
    stored, normalisation = normalise_intensity(array_xyz, modality, config)
    return own_zyx(stored), normalisation  # ours: a new array


def clean_label_zyx(label_zyx: np.ndarray, config: IngestConfig, case_id: str) -> tuple[np.ndarray, np.ndarray]:
    """Drop the small objects of a C-ordered (Z, Y, X) label map, in place (the map is the caller's to give
    up); return the map and its non-zero values present before cleaning. Drops are logged (INFO) per label."""
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
class CanonicalCase:
    """A case checked and on its stored grid, its values not yet stored: the image and label (X, Y, Z) in
    RAS+ order (resampled when ``config.spacing`` asks), the image as read (its grid is the Geometry's
    source), the resolved modality and the orientation transform ``ornt`` applied."""

    case_id: str
    source: Volume
    image: Volume
    label: Volume | None
    modality: str
    ornt: np.ndarray
    resampled: bool


def canonical_case(
    image: Volume, label: Volume | None, *, case_id: str, config: IngestConfig, modality: str | None = None
) -> CanonicalCase:
    """Check an (X, Y, Z) image Volume and optional label Volume on the same grid, reorient both to RAS+
    and resample them when ``config.spacing`` asks (the first steps of :func:`prepare_case`); the
    arrays are views of the inputs where no resampling is done."""
    if not case_id or "/" in case_id or "\\" in case_id:
        raise ValidationError(f"{image.path}: case id {case_id!r} must be non-empty and contain no path separator")
    source = _check_image(image)
    labels = None if label is None else _check_label(label, image, config.affine_tolerance)
    resolved = resolve_modality(source, config.modality, modality, image.meta.get("modality"))
    ornt = canonical_ornt(image.affine, source.shape)
    canon = reorient(image, ornt)
    canon_label = None if labels is None else reorient(Volume(labels, image.affine, label.path), ornt)  # type: ignore[union-attr]
    resampled = False
    if config.spacing is not None:
        new_affine, new_shape, _ = resample_grid(canon.affine, canon.array.shape, config.spacing)
        if new_shape != canon.array.shape or not np.allclose(new_affine, canon.affine, rtol=0.0, atol=1e-9):
            canon = resample(canon, config.spacing, order=config.image_order)
            if canon_label is not None:
                canon_label = resample(canon_label, config.spacing, order=0)
            resampled = True
    return CanonicalCase(case_id, image, canon, canon_label, resolved, ornt, resampled)


def assemble_case(
    canonical: CanonicalCase,
    image: tuple[np.ndarray, Normalisation],
    label: tuple[np.ndarray, np.ndarray] | None,
    *,
    label_names: dict[int, str],
    provenance: Provenance,
    split: str,
) -> Case:
    """The Case of a canonical case from its stored image (:func:`normalise_zyx`: (Z, Y, X) uint8 and its
    Normalisation) and label (:func:`clean_label_zyx`: the cleaned map and the values present; None for a
    case without labels, stored as an all-zero map)."""
    image_zyx, normalisation = image
    if label is None:
        shape_zyx = tuple(reversed(canonical.image.array.shape))
        label_zyx, present = np.zeros(shape_zyx, dtype=np.uint8), np.zeros(0, dtype=np.uint8)
    else:
        label_zyx, present = label
    source = canonical.source
    if source.meta.get("rgb_to_grey"):  # set by the raster reader
        normalisation = replace(normalisation, params={**normalisation.params, "rgb_to_grey": True})
    geometry = Geometry(
        affine=_matrix(canonical.image.affine),
        spacing=canonical.image.spacing,
        source_affine=_matrix(source.affine),
        source_shape=tuple(int(n) for n in np.shape(source.array)),
        source_axcodes=tuple(str(c) for c in nib.aff2axcodes(np.asarray(source.affine, dtype=float))),
        resampled=canonical.resampled,
    )
    meta = CaseMeta(
        case_id=canonical.case_id,
        modality=canonical.modality,
        label_names=_label_names(label_names, present),
        geometry=geometry,
        normalisation=normalisation,
        provenance=provenance,
        split=split,
    )
    return Case(meta=meta, image=image_zyx, label=label_zyx)


def prepare_case(
    image: Volume,
    label: Volume | None,
    *,
    case_id: str,
    config: IngestConfig,
    label_names: dict[int, str],
    provenance: Provenance,
    split: str = "train",
    modality: str | None = None,
) -> Case:
    """Build a stored Case from an (X, Y, Z) image Volume and optional label Volume on the same grid.

    ``modality`` is the caller's declared modality (e.g. from dataset.json); ``config.modality``
    overrides it (see :class:`~samdata.normalise.IngestConfig`). A missing label gives an all-zero
    map. Small objects dropped by :func:`~samdata.labels.clean_labels` are logged (INFO) per label.
    Raises :class:`~samdata.errors.ValidationError` naming the file for a bad image or label. The
    inputs are left untouched. The steps are public for ingest, which overlaps them on freshly read
    arrays (:func:`pipelines.ingest.prepare_item`): :func:`canonical_case`, :func:`normalise_zyx`,
    :func:`clean_label_zyx`, :func:`assemble_case`.
    """
    canonical = canonical_case(image, label, case_id=case_id, config=config, modality=modality)
    stored = normalise_zyx(canonical.image.array, canonical.modality, config)
    cleaned = None
    if canonical.label is not None:  # cleaned in place: our copy
        cleaned = clean_label_zyx(np.array(canonical.label.array.transpose(2, 1, 0), order="C"), config, case_id)
    return assemble_case(canonical, stored, cleaned, label_names=label_names, provenance=provenance, split=split)


def to_source_grid(mask_zyx: np.ndarray, meta: CaseMeta, *, order: int = 0) -> np.ndarray:
    """Put a stored (Z, Y, X) label map, mask or image back on the source file's (X, Y, Z) grid.

    Undoes the transpose, the resampling (onto the canonical pre-resample grid: nearest neighbour, or
    spline ``order`` for an image) and the orientation transform, so the result can be written with
    ``geometry.source_affine``. The dtype is kept.
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
        canon = sample_grid(canon, index_map, tuple(canon_shape), order=order)
    return np.ascontiguousarray(apply_orientation(canon, inverse_ornt(ornt)))


def invert_intensity(image_zyx: np.ndarray, meta: CaseMeta) -> np.ndarray:
    """Map a stored (Z, Y, X) uint8 image back to source intensities (float32, same grid)."""
    return meta.normalisation.invert(np.asarray(image_zyx))
