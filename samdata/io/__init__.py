"""File I/O of samdata: volume/label readers, dataset layouts, bundled and synthetic sample data."""

from samdata.io.layouts import SourceDataset, SourceItem, discover
from samdata.io.readers import read_label, read_volume, source_hash, write_nifti
from samdata.io.sample_data import write_mni152, write_phantoms

__all__ = [
    "SourceDataset",
    "SourceItem",
    "discover",
    "read_label",
    "read_volume",
    "source_hash",
    "write_mni152",
    "write_nifti",
    "write_phantoms",
]
