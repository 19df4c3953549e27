"""What a file declares before anything is decoded: shape, voxel-to-world affine and voxel type.

:func:`read_header` reads only headers, by the reader of the path's format (:mod:`samdata.io.registry`:
nibabel's header of a NIfTI, inflating just its first bytes; SimpleITK's ``ReadImageInformation`` for
NRRD/MetaImage and the first file of a DICOM series times its file count; Pillow's lazy open and
tifffile's page table for 2D images). :func:`check_budget` refuses a volume larger than the voxel
budget, and :func:`check_pair` a label whose declared grid differs from its image's, both before either
is decoded: a 8 MB ``.nii.gz`` declaring 2048 x 2048 x 1024 voxels fails in milliseconds instead of
inflating to 8 GB.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from samdata.errors import ValidationError
from samdata.io.formats import Header
from samdata.io.registry import reader_for


def read_header(path: str | Path) -> Header:
    """The declared shape, affine and type of an image or label file (or DICOM series folder), decoding nothing."""
    return reader_for(path).header(Path(path))


def check_budget(header: Header, max_voxels: int) -> None:
    """ValidationError naming the file, its declared shape and the budget when it declares more voxels."""
    if header.voxels > max_voxels:
        raise ValidationError(
            f"{header.path}: declares shape {' x '.join(map(str, header.shape))} = "
            f"{header.voxels:,} voxels, over the voxel budget of {max_voxels:,} "
            "(--max-voxels); not decoded"
        )


def check_pair(image: Header, label: Header, atol_mm: float) -> None:
    """ValidationError when a label's declared grid (shape; affine when both have one) differs from its image's."""
    if image.shape != label.shape:
        raise ValidationError(
            f"label {label.path} declares shape {label.shape} != image {image.path} shape "
            f"{image.shape}; expected the label on the image's voxel grid (neither decoded)"
        )
    if (
        image.affine is not None
        and label.affine is not None
        and not np.allclose(image.affine, label.affine, rtol=0.0, atol=atol_mm)
    ):
        raise ValidationError(
            f"label {label.path} declares another voxel-to-world affine than image {image.path} "
            f"(shapes {label.shape}; atol {atol_mm} mm); expected the same mapping "
            "(neither decoded)"
        )
