"""NIfTI files (``.nii``, ``.nii.gz``) with nibabel; a gzipped file's voxels are inflated by
:mod:`samdata.io.fast_nifti`."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from samdata.io.fast_nifti import gzip_data
from samdata.io.formats import Decoded, Header, Reader, SlabTransform, reading, squeezed


class NiftiReader(Reader):
    """NIfTI-1/2 by nibabel (scaling applied); ``transform`` is applied while a ``.nii.gz`` inflates."""

    endings = (".nii.gz", ".nii")

    def header(self, path: Path) -> Header:
        """nibabel's header (the first bytes of a .gz)."""
        with reading(path, "NIfTI"):
            img = nib.load(path)  # reads the header only (the first bytes of a .gz)
            return Header(
                str(path),
                squeezed(img.header.get_data_shape()),
                np.asarray(img.affine, dtype=np.float64),
                str(img.header.get_data_dtype()),
            )

    def read(self, path: Path, as_label: bool, transform: SlabTransform | None) -> Decoded:
        """Array, affine, meta (``meta["transformed"]``: ``transform`` was applied while reading)."""
        with reading(path, "NIfTI"):
            img = nib.load(path)
            array = gzip_data(img, path, transform)
            transformed = array is not None and transform is not None
            if array is None:
                array = np.asarray(img.dataobj)
            affine = np.asarray(img.affine, dtype=np.float64)
        header = img.header
        meta = {
            "format": "nifti",
            "qform_code": int(header["qform_code"]),
            "sform_code": int(header["sform_code"]),
        }
        if transformed:
            meta.update(transformed=True, source_dtype=str(header.get_data_dtype()))
        return array, affine, meta
