"""What a file declares before anything is decoded: shape, voxel-to-world affine and voxel type.

:func:`read_header` reads only headers (nibabel's header of a NIfTI, inflating just its first bytes;
SimpleITK's ``ReadImageInformation`` for NRRD/MetaImage and the first file of a DICOM series times its
file count; Pillow's lazy open and tifffile's page table for 2D images). :func:`check_budget` refuses a
volume larger than the voxel budget, and :func:`check_pair` a label whose declared grid differs from its
image's, both before either is decoded: a 8 MB ``.nii.gz`` declaring 2048 x 2048 x 1024 voxels fails in
milliseconds instead of inflating to 8 GB.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk

from samdata.errors import CaseNotFoundError, InputFileError, ValidationError
from samdata.io.formats import ITK_SUFFIXES, NIFTI_SUFFIXES, RASTER_SUFFIXES, SUPPORTED_TEXT, reading, suffix_of
from samdata.io.itk import affine_from_sitk, largest_series

@dataclass(frozen=True)
class Header:
    """A file's declared (X, Y, Z) shape (trailing singleton axes dropped; 2D as Z = 1), affine (None when the
    format has no geometry: PNG/JPEG, TIFF without resolution) and voxel type."""

    path: str
    shape: tuple[int, ...]
    affine: np.ndarray | None
    dtype: str

    @property
    def voxels(self) -> int:
        """Number of voxels the file declares."""
        return int(np.prod(self.shape, dtype=np.int64))


def _squeezed(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Trailing singleton axes beyond three dropped; 2D as (X, Y, 1)."""
    shape = tuple(int(s) for s in shape)
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    return shape + (1,) if len(shape) == 2 else shape


def _itk_header(reader: sitk.ImageFileReader, path: Path, files: int = 1) -> Header:
    size = tuple(reader.GetSize())
    if files > 1:
        size = (*size[:2], files)
    components = reader.GetNumberOfComponents()
    shape = _squeezed(size + ((components,) if components > 1 else ()))
    return Header(str(path), shape, affine_from_sitk(reader), sitk.GetPixelIDValueAsString(reader.GetPixelID()))


def _raster_header(path: Path) -> Header:
    suffix = suffix_of(path)
    if suffix in (".tif", ".tiff"):
        import tifffile

        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            axes, shape = series.axes, series.shape
            planes = int(np.prod([n for a, n in zip(axes, shape) if a not in "YXS"], dtype=np.int64))
            width, height = shape[axes.index("X")], shape[axes.index("Y")]
            return Header(str(path), (int(width), int(height), max(planes, 1)), None, str(series.dtype))
    from PIL import Image

    try:
        with Image.open(path) as img:  # lazy: the size comes from the header, no pixel is decoded
            width, height = img.size
            frames = int(getattr(img, "n_frames", 1))
            return Header(str(path), (width, height, frames), None, img.mode)
    except Image.DecompressionBombError as err:  # Pillow refuses > 2 x MAX_IMAGE_PIXELS on open
        raise ValidationError(f"{path}: declares more than {2 * Image.MAX_IMAGE_PIXELS:,} pixels, Pillow's "
                              f"decompression-bomb limit ({err}); not decoded") from err


def read_header(path: str | Path) -> Header:
    """The declared shape, affine and type of an image or label file (or DICOM series folder), decoding nothing."""
    path = Path(path)
    if not path.exists():
        raise CaseNotFoundError(f"{path}: no such file or folder")
    suffix = suffix_of(path)
    if path.is_dir():
        with reading(path, "DICOM series"):
            files = largest_series(path)[1]
            reader = sitk.ImageFileReader()
            reader.SetFileName(files[0])
            reader.ReadImageInformation()
            return _itk_header(reader, path, len(files))
    if suffix in NIFTI_SUFFIXES:
        with reading(path, "NIfTI"):
            img = nib.load(path)  # reads the header only (the first bytes of a .gz)
            return Header(str(path), _squeezed(img.header.get_data_shape()), np.asarray(img.affine, dtype=np.float64),
                          str(img.header.get_data_dtype()))
    if suffix in ITK_SUFFIXES:
        with reading(path, "NRRD/MetaImage"):
            reader = sitk.ImageFileReader()
            reader.SetFileName(str(path))
            reader.ReadImageInformation()
            return _itk_header(reader, path)
    if suffix in RASTER_SUFFIXES:
        with reading(path, "image"):
            return _raster_header(path)
    raise InputFileError(f"{path}: unknown extension {suffix!r}; supported: {SUPPORTED_TEXT}")


def check_budget(header: Header, max_voxels: int) -> None:
    """ValidationError naming the file, its declared shape and the budget when it declares more voxels."""
    if header.voxels > max_voxels:
        raise ValidationError(f"{header.path}: declares shape {' x '.join(map(str, header.shape))} = "
                              f"{header.voxels:,} voxels, over the voxel budget of {max_voxels:,} "
                              "(--max-voxels); not decoded")


def check_pair(image: Header, label: Header, atol_mm: float) -> None:
    """ValidationError when a label's declared grid (shape; affine when both have one) differs from its image's."""
    if image.shape != label.shape:
        raise ValidationError(f"label {label.path} declares shape {label.shape} != image {image.path} shape "
                              f"{image.shape}; expected the label on the image's voxel grid (neither decoded)")
    if image.affine is not None and label.affine is not None and not np.allclose(
            image.affine, label.affine, rtol=0.0, atol=atol_mm):
        raise ValidationError(f"label {label.path} declares another voxel-to-world affine than image {image.path} "
                              f"(shapes {label.shape}; atol {atol_mm} mm); expected the same mapping "
                              "(neither decoded)")
