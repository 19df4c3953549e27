"""The slice store's layout: names, codecs and the rules for case ids, table paths and run names.

A store is an Icechunk repository (transactional, versioned Zarr v3); the layout is in README.md ("The
store"). One chunk is one 2D slice, so a random slice read touches one image and one label object. Images
use blosc zstd-1 and labels zstd-3, both with byte shuffle: as small as higher levels or bitshuffle and
several times faster to write (BENCHMARKS.md, "Store"); the codec is recorded per array, so stores written
with older codecs read the same. The index is the single source for filtering and is rewritten by the one
committer (``StoreWriter``) at every commit, so every snapshot's index agrees with its pixels; parallel
``CaseWriter``s write only ``/cases/<id>``. A resumable run commits to ``staging.<run_name>`` (Icechunk
refuses ``/`` in branch names) and publishes by fast-forwarding ``main``.
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
    """The image compressor: blosc zstd level 1 with byte shuffle (as small as level 5 on CT, far faster)."""
    return BloscCodec(cname="zstd", clevel=1, shuffle="shuffle")


def label_codec() -> BloscCodec:
    """The label compressor: blosc zstd level 3 with byte shuffle (far faster than level 5 bitshuffle)."""
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
