"""One case in the store: the ``/cases/<case_id>`` group with its image, label and metadata."""

from __future__ import annotations

import numpy as np
import zarr

from samdata.case import Case, CaseMeta
from samdata.errors import CaseNotFoundError, ValidationError
from storage.index import CaseEntry
from storage.schema import (CASE_MARKER, CASES, IMAGE, LABEL, LABEL_DTYPES, LAYOUT_VERSION, case_path,
                            check_name, image_codec, label_codec)


def check_case(case: Case) -> None:
    """Raise ValidationError unless ``case`` can be stored (safe id, non-empty grid, label dtype)."""
    cid = check_name("case id", case.meta.case_id)
    if min(case.image.shape) < 1:
        raise ValidationError(f"case {cid!r} has image shape {case.image.shape}; expected (Z, Y, X) all >= 1")
    if case.label.dtype.name not in LABEL_DTYPES:
        raise ValidationError(f"case {cid!r} has label dtype {case.label.dtype}; expected one of {LABEL_DTYPES}")


def write_case_group(root: zarr.Group, case: Case) -> CaseEntry:
    """Write (or replace) a case's group: image, label, metadata; return its index rows."""
    check_case(case)
    cid = case.meta.case_id
    cases = root.require_group(CASES)
    if cid in cases:
        del cases[cid]
    group = cases.create_group(cid, attributes={"meta": case.meta.to_json(), CASE_MARKER: LAYOUT_VERSION})
    _, height, width = case.image.shape
    for name, data, codec in ((IMAGE, case.image, image_codec()), (LABEL, case.label, label_codec())):
        # write_empty_chunks: zarr would otherwise build a fill-value array per chunk and compare the
        # chunk with it (~1 ms per 512² slice, a sixth of an ingest's write); an all-zero slice is then
        # stored as a tiny compressed chunk instead of left absent, and reads the same.
        arr = group.create_array(
            name, shape=data.shape, dtype=data.dtype, chunks=(1, height, width), compressors=codec,
            fill_value=0, dimension_names=("z", "y", "x"), config={"write_empty_chunks": True},
        )
        arr[:] = np.ascontiguousarray(data)
    return CaseEntry.from_case(case)


def delete_case_group(root: zarr.Group, case_id: str, where: str) -> None:
    """Remove a case's group; CaseNotFoundError naming ``where`` if it is absent."""
    cases = root.require_group(CASES)
    if check_name("case id", case_id) not in cases:
        raise CaseNotFoundError(f"case {case_id!r} not in store {where!r}; cannot delete it")
    del cases[case_id]


def case_group(root: zarr.Group, case_id: str, where: str) -> zarr.Group:
    """The group of an existing case; CaseNotFoundError naming ``where`` if absent."""
    try:
        group = root[case_path(case_id)]
    except (KeyError, ValidationError) as err:
        raise CaseNotFoundError(f"case {case_id!r} not in store {where!r}") from err
    if not isinstance(group, zarr.Group):
        raise CaseNotFoundError(f"case {case_id!r} in store {where!r} is not a group")
    return group


def read_case_meta(group: zarr.Group) -> CaseMeta:
    """Rebuild the CaseMeta stored in a case group's attributes."""
    return CaseMeta.from_json(dict(group.attrs["meta"]))  # type: ignore[arg-type]


def read_case_group(group: zarr.Group) -> Case:
    """Read a whole case (metadata, (Z, Y, X) uint8 image and label) from its group."""
    image = np.asarray(group[IMAGE][:])  # type: ignore[index]
    label = np.asarray(group[LABEL][:])  # type: ignore[index]
    return Case(meta=read_case_meta(group), image=image, label=label)
