"""The store in a local folder: the store contract (tests/storage/contract.py), and the chunk bytes it writes.

The other tests of the local folder itself (errors on paths, verify after tampering, killed and forked
processes) are in test_store_errors.py, test_store_verify.py and test_store_transactions.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from samdata.errors import ValidationError
from storage.schema import image_codec, label_codec
from tests.storage.contract import StoreContract


class TestLocalStore(StoreContract):
    """The store contract on a folder: ``store_path`` is tests/storage/conftest.py's fresh store in tmp_path."""


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_slice_chunks_are_the_bytes_zarr_writes(tmp_path, dtype):
    """write_slice_chunks (the writer's batched path) stores exactly the chunk objects that
    ``arr[:] = data`` would, for every codec of the layout; a shape or dtype mismatch is refused."""
    import zarr

    from storage.casegroup import write_slice_chunks

    rng = np.random.default_rng(0)
    data = rng.integers(0, 40, (4, 9, 11)).astype(dtype)
    data[2] = 0  # an all-zero slice is stored too, not left to the fill value
    root = zarr.open_group(store=zarr.storage.MemoryStore(), mode="w")
    for codec in (image_codec(), label_codec()):
        ours = root.create_array(
            "ours", shape=data.shape, dtype=dtype, chunks=(1, 9, 11), compressors=codec, fill_value=0, overwrite=True
        )
        theirs = root.create_array(
            "theirs",
            shape=data.shape,
            dtype=dtype,
            chunks=(1, 9, 11),
            compressors=codec,
            fill_value=0,
            overwrite=True,
            config={"write_empty_chunks": True},
        )
        write_slice_chunks(ours, data, codec)
        theirs[:] = data
        store = root.store
        for z in range(4):
            key = ours.metadata.encode_chunk_key((z, 0, 0))
            mine = zarr.core.sync.sync(store.get(f"ours/{key}", zarr.core.buffer.default_buffer_prototype()))
            zarrs = zarr.core.sync.sync(store.get(f"theirs/{key}", zarr.core.buffer.default_buffer_prototype()))
            assert mine is not None and mine.to_bytes() == zarrs.to_bytes()
        np.testing.assert_array_equal(ours[:], data)
        with pytest.raises(ValidationError, match="slice by slice"):
            write_slice_chunks(ours, data[:, :, :5].copy(), codec)
