"""Writing files whole or not at all, with the permissions any other file of the user's would get.

:func:`atomic_write` writes through a temporary file in the target's folder and renames it into place,
so a crash leaves the previous file whole. ``tempfile.mkstemp`` creates that file 0600; the final file
gets ``0666 & ~umask`` instead (what ``open(path, "w")`` would give), so run records, checkpoints and
masks stay readable by the group or others as the user's umask allows. Every atomic write in samdata
goes through here. :func:`file_sha256` is the one file hash (checkpoints, generators).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def current_umask() -> int:
    """The process umask (read from /proc on Linux; else set and restored at once)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: Path | str, write: Callable[[str], Any], suffix: str = ".tmp") -> Path:
    """Call ``write(tmp_path)`` on a temporary file next to ``path`` (named with ``suffix``, for writers that
    choose a format by it), give it the umask's permissions and ``os.replace`` it into place; the temporary
    file is removed on any error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text(path: Path | str, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def write_json(path: Path | str, data: Any) -> Path:
    """Write ``data`` as indented JSON to ``path`` atomically."""
    return write_text(path, json.dumps(data, indent=2, default=str) + "\n")


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
