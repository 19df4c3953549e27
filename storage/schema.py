"""The slice store's layout: names, codecs and the rules for case ids, table paths and run names.

A store is an Icechunk repository (transactional, versioned Zarr v3). Every commit has an Icechunk
snapshot id; readers open any snapshot. Inside a snapshot the Zarr hierarchy is::

    /                                   group  attrs: {"samdata_store": 1}  (layout version)
    /cases/<case_id>/                   group  attrs: {"meta": CaseMeta.to_json(), "samdata_case": 1}
    /cases/<case_id>/image              (Z, Y, X) uint8, chunks (1, Y, X), blosc zstd-1 shuffle
    /cases/<case_id>/label              (Z, Y, X) uint8|uint16, chunks (1, Y, X), blosc zstd-3 shuffle
    /index/cases/<column>               1-D, one row per case, sorted by case_id:
                                        case_id, split, origin, modality, source_hash (str),
                                        label_names (str, JSON {"1": "liver"}), depth, height, width (int32)
    /index/slices/<column>              1-D, one row per slice: case (int32 row of /index/cases), z, n_objects
    /index/objects/<column>             1-D, one row per (case, slice, label): case, z, label, x0, y0, x1, y1
                                        (int32, boxes inclusive-exclusive), area (int64 pixels)
    /tables/<path...>/                  group  attrs: {"samdata_table": {"columns": [...], "n_rows": n,
                                        "attrs": {...user attrs...}}}
    /tables/<path...>/<column>          1-D, equal length, numeric or str (prompt sets, mixtures, ...)

One chunk is one 2D slice, so a random slice read touches one image and one label object.
Compression (measured with ``BloscCodec(cname="zstd", clevel=5)`` on a 64x256x256 CT-like phantom
windowed to uint8 and its 2-label map, one chunk per slice): image byte ``shuffle`` 997 kB (4.21x;
for uint8 it equals no shuffle) vs ``bitshuffle`` 1,457 kB (2.88x), so images use ``shuffle``;
labels ``bitshuffle`` 6.8 kB vs ``shuffle`` 7.5 kB (uint8 and uint16 alike), so labels use
``bitshuffle``. MNI152 T1 (uint8): 5.35x either way.

Levels (measured later with numcodecs ``Blosc`` single-threaded, ms per slice and ratio; 512x512
int16 CT phantom windowed to uint8, 100 slices, and the 189x233x197 MNI152 store): images zstd-1
1.23 ms 2.78x, zstd-3 3.85 ms 2.74x, zstd-5 7.49 ms 2.75x on the phantom, and 0.34 ms 5.07x / 0.82 ms
5.21x / 0.88 ms 5.26x on MNI152; labels zstd-3 ``shuffle`` 0.18 ms 407x vs zstd-5 ``bitshuffle``
0.83 ms 447x (MNI152: 0.19 ms 37x vs 1.02 ms 42x). Level 5 cost a quarter of ingest time for < 4 %
fewer bytes, so images use zstd-1 and labels zstd-3 with byte shuffle. Stores written with the older
codecs read the same (the codec is recorded per array).

The index is the single source for filtering (``SliceStore.objects()`` / ``slices()``) and is
rewritten in full by the one committer (``StoreWriter``) at every commit, so every snapshot's index
agrees with its pixels (``SliceStore.verify`` checks this). Parallel workers (``CaseWriter``) write
only ``/cases/<id>``; their index rows travel back with them. A resumable run commits checkpoints to
the branch ``staging.<run_name>`` (Icechunk refuses ``/`` in branch names) and publishes by
fast-forwarding ``main`` to it.
"""

from __future__ import annotations

from zarr.codecs import BloscCodec

from samdata.errors import ValidationError
from samdata.names import is_safe_name

LAYOUT_VERSION = 1
ROOT_MARKER = "samdata_store"
CASE_MARKER = "samdata_case"
TABLE_MARKER = "samdata_table"

CASES = "cases"
INDEX = "index"
TABLES = "tables"
IMAGE = "image"
LABEL = "label"

PROMPT_SETS = "prompt_sets"
MIXTURES = "mixtures"
STAGING_PREFIX = "staging."
LABEL_DTYPES = ("uint8", "uint16")


def image_codec() -> BloscCodec:
    """The image compressor: blosc zstd level 1 with byte shuffle (as small as level 5 on CT, 6x faster)."""
    return BloscCodec(cname="zstd", clevel=1, shuffle="shuffle")


def label_codec() -> BloscCodec:
    """The label compressor: blosc zstd level 3 with byte shuffle (5x faster than level 5 bitshuffle)."""
    return BloscCodec(cname="zstd", clevel=3, shuffle="shuffle")


def column_codec() -> BloscCodec:
    """The compressor of index and table columns."""
    return BloscCodec(cname="zstd", clevel=5, shuffle="shuffle")


def check_name(kind: str, name: str) -> str:
    """Return ``name`` if it is a safe store name (letters, digits, ``._-``; not leading), else raise."""
    if not is_safe_name(name):
        raise ValidationError(
            f"invalid {kind} {name!r}: expected 1-200 characters of letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def check_table_path(path: str) -> str:
    """Return a table path like ``prompt_sets/boxes-v1`` if every segment is a safe name, else raise."""
    if not isinstance(path, str) or not path:
        raise ValidationError(f"invalid table path {path!r}: expected 'name' or 'folder/name'")
    for part in path.split("/"):
        check_name(f"segment of table path {path!r}", part)
    return path


def case_path(case_id: str) -> str:
    """The group path of a case inside the store."""
    return f"{CASES}/{check_name('case id', case_id)}"


def staging_branch(run_name: str) -> str:
    """The Icechunk branch a resumable run commits its checkpoints to."""
    return STAGING_PREFIX + check_name("run name", run_name)
