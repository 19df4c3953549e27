"""Safe names: the rule for case ids and store names, and a stable case id for any file name.

Store paths, Zarr keys and command lines need plain names (letters, digits, ``._-``, starting with a
letter or digit, at most 200 characters). Hospital exports name files freely (``fall ü 01.nii.gz``);
such a name keeps its readable part, accents folded to ASCII, and gets an 8-hex digest of the original
so that two names never meet in one id and the same name always gives the same id. The original name
is kept in the case's provenance.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
_UNSAFE_RUN = re.compile(r"[^A-Za-z0-9._-]+")
_SLUG_MAX = 150


def is_safe_name(name: str) -> bool:
    """Whether ``name`` may be a case id or store name as it is."""
    return isinstance(name, str) and bool(SAFE_NAME.match(name))


def case_id_for_name(name: str) -> str | None:
    """``name`` itself when it is safe; otherwise its ASCII-folded readable part joined by '_' plus ``-`` and 8
    hex of its SHA-1 (``fall ü 01`` → ``fall_u_01-1b2c…``); None for a name with nothing in it (empty or blank)."""
    if is_safe_name(name):
        return name
    if not isinstance(name, str) or not name.strip():
        return None
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    slug = _UNSAFE_RUN.sub("_", folded).strip("._-")[:_SLUG_MAX].rstrip("._-")
    digest = hashlib.sha1(name.encode("utf-8")).hexdigest()[:8]
    return f"{slug}-{digest}" if slug else f"case-{digest}"
