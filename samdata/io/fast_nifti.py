"""The fast read of a gzipped NIfTI's voxels: zlib inflates straight into the result, and an intensity
transform (ingest's CT window) can be applied block by block as the data arrives.

:class:`samdata.io.nifti.NiftiReader` uses it for every plain ``.nii.gz``; nibabel reads everything else.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from samdata.errors import InputFileError
from samdata.io.formats import SlabTransform, check_values

_GZ_READ = 1 << 20  # compressed bytes read from a .nii.gz at a time
_GZ_PIECE = 1 << 22  # at most this many bytes inflated per zlib call (the only temporary of the read)
_GZ_SLACK = 1 << 20  # bytes past the declared data a .nii.gz may inflate to before it is refused


def _inflated(path: Path, skip: int, total: int) -> Iterator[bytes]:
    """The ``total`` bytes after the first ``skip`` of a gzip file's uncompressed stream, in pieces of at
    most 4 MB; the stream is read to its end (zlib checks every member's CRC and length; concatenated
    members are followed). InputFileError naming ``path`` if it ends early, or if it inflates more than
    1 MB (or a sixteenth of the data) past the declared data."""
    done = extra = 0
    slack = max(_GZ_SLACK, total // 16)
    inflater = zlib.decompressobj(wbits=31)
    with open(path, "rb") as stream:
        while True:
            if inflater.eof:  # a member ended: the data goes on in the next one, or the file is read
                data = inflater.unused_data or stream.read(_GZ_READ)
                if not data:
                    break
                inflater = zlib.decompressobj(wbits=31)
            else:
                data = inflater.unconsumed_tail or stream.read(_GZ_READ)
            wanted = skip + total - done
            piece = inflater.decompress(data, min(_GZ_PIECE, wanted) if wanted > 0 else _GZ_PIECE)
            if not data and not piece:
                break
            if skip:
                cut = min(skip, len(piece))
                piece, skip = piece[cut:], skip - cut
            take = min(len(piece), total - done)
            if take:
                yield piece if take == len(piece) else piece[:take]
                done += take
            extra += len(piece) - take
            if extra > slack:  # a gzip bomb: the stream goes on far past what the header declares
                raise InputFileError(
                    f"{path}: the gzip stream inflates more than {slack:,} bytes past the "
                    f"{total:,} its header declares; not a valid NIfTI file (or a gzip bomb)"
                )
    if done < total:
        raise InputFileError(f"{path}: data ends after {done} of {total} bytes (truncated NIfTI file?)")
    if not inflater.eof:
        raise InputFileError(f"{path}: the gzip stream has no end (truncated .gz file?)")


def _lookup_table(
    dtype: np.dtype, scaled: Callable[[np.ndarray], np.ndarray], transform: SlabTransform
) -> tuple[np.ndarray, np.dtype] | None:
    """``transform(scaled(v))`` for every value ``v`` of a native 8- or 16-bit integer type, indexed by
    the value's bits read as unsigned (and that unsigned type); None for other types. The transform
    is elementwise, so a lookup gives exactly its values, for a 65,536-entry table instead of six
    float32 passes over every voxel (measured faster for a CT window: BENCHMARKS.md, "Ingest")."""
    if dtype.kind not in "iu" or dtype.itemsize > 2 or not dtype.isnative:
        return None
    unsigned = np.dtype(f"u{dtype.itemsize}")
    every = np.arange(1 << (8 * dtype.itemsize), dtype=unsigned).view(dtype)  # all values, in bit order
    return np.ascontiguousarray(transform(scaled(every.reshape(-1, 1, 1))).reshape(-1)), unsigned


def gzip_data(img: Any, path: Path, transform: SlabTransform | None = None) -> np.ndarray | None:
    """The voxel array of a gzipped NIfTI, inflated by zlib in 4 MB pieces straight into the result;
    with ``transform``, each block of whole z slices is checked and transformed as it arrives (the
    native array is never whole in memory: a 512x512x100 int16 CT case stored as uint8 peaks at
    26 MB + two 4 MB blocks instead of 52 + 26 MB).

    Why not nibabel's own read: it fills the array with one ``readinto`` that Python's gzip module
    serves through a temporary ``bytes`` of the volume's size (peak twice the volume: 100 MB for a
    512x512x100 int16 case), inflating 8 kB of input per call and computing the CRC in a second pass
    (Python 3.11), measured much slower than zlib alone (BENCHMARKS.md, "Ingest"). Header, offset, dtype, byte
    order and scaling all come from nibabel's own proxy; None (use nibabel) for anything but a plain
    proxy on a ``.gz`` file, and, with ``transform``, anything but a 3D Fortran-ordered one."""
    proxy = img.dataobj
    if not str(path).endswith(".gz") or not isinstance(proxy, nib.arrayproxy.ArrayProxy):
        return None
    dtype = img.header.get_data_dtype()
    slope, inter = proxy.slope, proxy.inter

    def scaled(raw: np.ndarray) -> np.ndarray:
        return raw if (slope, inter) == (1.0, 0.0) else nib.volumeutils.apply_read_scaling(raw, slope, inter)

    total = int(np.prod(proxy.shape)) * dtype.itemsize
    if transform is None:
        out = np.empty(proxy.shape, dtype=dtype, order=proxy.order)
        view = memoryview(out.reshape(-1, order="A")).cast("B")
        done = 0
        for piece in _inflated(path, int(proxy.offset), total):
            view[done : done + len(piece)] = piece
            done += len(piece)
        return scaled(out)
    if len(proxy.shape) != 3 or proxy.order != "F" or 0 in proxy.shape:
        return None
    nx, ny, nz = proxy.shape
    slice_bytes = nx * ny * dtype.itemsize
    depth = max(1, min(nz, _GZ_PIECE // slice_bytes))  # whole z slices per block
    blocks = [np.empty((nx, ny, depth), dtype=dtype, order="F") for _ in range(2)]
    views = [memoryview(block.reshape(-1, order="F")).cast("B") for block in blocks]
    result: list[np.ndarray] = []
    bounds = [np.inf, -np.inf]

    table = _lookup_table(dtype, scaled, transform)

    def finish(block: np.ndarray, z: int) -> None:
        """Check, transform and store one block (on the helper thread, while the next one inflates)."""
        if table is not None:  # 8/16-bit integers: one table lookup per voxel; the checks on the raw codes
            lut, unsigned = table
            ends = scaled(np.array([block.min(), block.max()], dtype=dtype)).astype(float)
            bounds[:] = min(bounds[0], float(ends.min())), max(bounds[1], float(ends.max()))
            codes = block.view(unsigned)
            stored = np.empty(block.shape, dtype=lut.dtype, order="F")
            for k in range(block.shape[2]):  # slice by slice: the index array numpy makes is a slice's
                stored[:, :, k] = lut[codes[:, :, k]]
        else:
            values = check_values(scaled(block), path, as_label=False, constant_ok=True)
            bounds[:] = min(bounds[0], float(values.min())), max(bounds[1], float(values.max()))
            stored = transform(values)
        if not result:
            result.append(np.empty(proxy.shape, dtype=stored.dtype, order="F"))
        result[0][:, :, z : z + block.shape[2]] = stored

    # two blocks: this thread inflates into one while a helper transforms the other (zlib and numpy
    # release the GIL)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="samdata-block") as pool:
        pending: Future[None] | None = None
        current = z = filled = 0
        for data in _inflated(path, int(proxy.offset), total):
            piece, offset = memoryview(data), 0  # slices of a memoryview copy nothing
            while offset < len(piece):
                view = views[current]
                take = min(len(piece) - offset, len(view) - filled)
                view[filled : filled + take] = piece[offset : offset + take]
                filled, offset = filled + take, offset + take
                if filled == len(view) or z * slice_bytes + filled == total:
                    if pending is not None:
                        pending.result()  # the other block is free again, and its errors come out here
                    k = filled // slice_bytes
                    pending = pool.submit(finish, blocks[current][:, :, :k], z)
                    current, z, filled = 1 - current, z + k, 0
        if pending is not None:
            pending.result()
    if bounds[0] == bounds[1]:
        raise InputFileError(f"{path}: empty volume, every voxel is {bounds[0]:g}; expected an image")
    return result[0]
