"""One case in the store: the ``/cases/<case_id>`` group with its image, label and metadata."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import zarr
from numcodecs import Blosc
from zarr.codecs import BloscCodec
from zarr.codecs.blosc import BloscShuffle
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync

from samdata.case import Case, CaseMeta
from samdata.errors import CaseNotFoundError, ValidationError
from storage.index import CaseEntry
from storage.schema import (
    CASE_MARKER,
    CASES,
    IMAGE,
    LABEL,
    LABEL_DTYPES,
    LAYOUT_VERSION,
    case_path,
    check_name,
    image_codec,
    label_codec,
)


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
    arrays = [
        (
            group.create_array(
                name,
                shape=data.shape,
                dtype=data.dtype,
                chunks=(1, height, width),
                compressors=codec,
                fill_value=0,
                dimension_names=("z", "y", "x"),
            ),
            np.ascontiguousarray(data),
            codec,
        )
        for name, data, codec in ((IMAGE, case.image, image_codec()), (LABEL, case.label, label_codec()))
    ]
    # the label's chunks and the index rows (a scan of the label map) on helper threads while the
    # image's chunks are encoded and stored here (blosc and the store release the GIL)
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="samdata-write") as pool:
        entry = pool.submit(CaseEntry.from_case, case)
        label_done = pool.submit(write_slice_chunks, *arrays[1])
        write_slice_chunks(*arrays[0])
        label_done.result()
        return entry.result()


_SHUFFLE = {
    BloscShuffle.noshuffle: Blosc.NOSHUFFLE,
    BloscShuffle.shuffle: Blosc.SHUFFLE,
    BloscShuffle.bitshuffle: Blosc.BITSHUFFLE,
}


def write_slice_chunks(arr: zarr.Array, data: np.ndarray, codec: BloscCodec) -> None:
    """Store a (Z, Y, X) C-ordered array whose chunks are single z slices and whose only codec after
    the byte layout is ``codec``: each slice blosc-encoded and all chunks set in one batch.

    Why not ``arr[:] = data``: zarr's codec pipeline runs each chunk through its own asyncio task
    (measured as a large share of a case's ingest beyond blosc's own time: BENCHMARKS.md, "Ingest"); and
    it would compare every chunk with the fill value. The chunks written here are exactly zarr's (the same blosc
    frame, the chunk key from the array's metadata); every slice is stored, an all-zero one as a
    ~100-byte chunk, and reads back through zarr like any other (tested against ``arr[:] = data``)."""
    if (
        data.shape != arr.shape
        or data.dtype != arr.dtype
        or arr.chunks != (1, *arr.shape[1:])
        or not data.flags.c_contiguous
    ):
        raise ValidationError(
            f"write_slice_chunks: array {arr.shape} {arr.dtype} chunks {arr.chunks} cannot take "
            f"{data.shape} {data.dtype} slice by slice"
        )
    encoder = Blosc(
        cname=codec.cname.value, clevel=codec.clevel, shuffle=_SHUFFLE[codec.shuffle], blocksize=codec.blocksize
    )
    prototype = default_buffer_prototype()
    store, path = arr.store_path.store, arr.store_path.path
    chunks = [
        (f"{path}/{arr.metadata.encode_chunk_key((z, 0, 0))}", prototype.buffer.from_bytes(encoder.encode(data[z])))
        for z in range(data.shape[0])
    ]

    async def put() -> None:
        await asyncio.gather(*(store.set(key, buffer) for key, buffer in chunks))

    sync(put())


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
