"""Export store cases as OME-Zarr (OME-NGFF) images for viewers: napari, Fiji/BigDataViewer, Neuroglancer, vizarr.

One image per case, ``OUT/<case_id>.ome.zarr``: the normalised image as a multiscale pyramid with axes
(z, y, x) in millimetres, scale from the case's spacing and translation from its affine's origin (per level,
so the coarse levels sit where the full one does), and the label map as the NGFF label image
``labels/label`` with one colour and one ``name`` property per label value (the colours of
:mod:`samdata.figures`). The case's provenance (real or synthetic, generator, source hash, the store and
snapshot it came from, the mixture and split when exported from one) is in the image group's ``samdata``
attribute beside the ``ome`` metadata.

Written with ome-zarr-py (``ome_zarr.writer``): the OME consortium's reference implementation and the
reader napari-ome-zarr uses, it writes NGFF 0.5 (Zarr v3) and 0.4 (Zarr v2, for readers that need it) from
the same call and builds the pyramid with dask, chunk by chunk. ngff-zarr would bring a WebAssembly runtime
(itkwasm, wasmtime) for its downsampling; ome-zarr-models validates metadata but writes no pixels (the tests
read the export back with it, an independent implementation).

Memory is bounded by one case: cases are read and written one at a time. The in-plane sides halve per level
down to about 64 pixels, and z halves too where that keeps the voxels no coarser along z than in-plane; the
image's levels are local means (box averages: 7× faster here than ome-zarr's default anti-aliased resize),
the label's nearest samples. Chunks are one axial slice (up to 512×512 pixels) at every level, what a
viewer's default 2D view reads; in NGFF 0.5 they are grouped in shards of 16 slices (Zarr v3's
``sharding_indexed``), so a case is a few dozen files and writes 2× faster than one file per chunk. Level
scales are the library's (full shape / level shape), so coarse levels of odd-sized grids sit within one
full-resolution voxel of exact. NGFF 0.4/0.5 transforms are scale and translation only: an oblique affine is
exported axis-aligned (its spacing and origin) and kept whole in the ``samdata`` attribute. Each image is
written to a hidden folder and renamed when complete, so an interrupted export leaves no partial image under
its final name.
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from samdata.case import Case
from samdata.errors import CaseNotFoundError, ConfigError
from samdata.extras import require
from samdata.figures import label_colour
from storage.records import load_mixture, mixture_view
from storage.schema import image_codec, label_codec
from storage.store import SliceStore

VERSIONS: tuple[str, ...] = ("0.5", "0.4")
SUFFIX = ".ome.zarr"
LABEL_IMAGE = "label"  # the label image's name under labels/ (napari's layer name)
TILE = 512  # largest chunk side in y and x
SHARD_DEPTH = 16  # slices per shard (Zarr v3)
COARSEST = 64  # stop halving in-plane once the longer side would fall below this
AXES = ("z", "y", "x")
EXTRA = "omezarr"


@dataclass(frozen=True)
class ExportedCase:
    """One written image: its case id, folder, the bytes of its image plus label voxels, and its place in the
    export (``position`` of ``total``, from 1)."""

    case_id: str
    path: Path
    voxel_bytes: int
    position: int
    total: int


def pyramid_factors(shape: Sequence[int], spacing_zyx: Sequence[float]) -> list[dict[str, int]]:
    """Downsampling factors of each level below the full one, relative to it (ome-zarr's convention).

    ``shape``: (Z, Y, X). In-plane factors double while the longer in-plane side stays >= COARSEST; z
    doubles only where its voxel size would stay <= the in-plane one and at least one slice remains."""
    depth, height, width = (int(s) for s in shape)
    sz, sy, sx = (float(s) for s in spacing_zyx)
    levels, xy, z = [], 2, 1
    while max(height, width) // xy >= COARSEST:
        if depth // (z * 2) >= 1 and sz * z * 2 <= min(sy, sx) * xy:
            z *= 2
        levels.append({"z": z, "y": xy, "x": xy})
        xy *= 2
    return levels


def _storage_options(shape: Sequence[int], factors: list[dict[str, int]], codec: Any) -> list[dict[str, Any]]:
    """Per level: chunks of one axial slice (tiles of at most TILE²); with a codec (Zarr v3) also that codec
    and shards of SHARD_DEPTH slices, so a case is written in a few large objects; without (Zarr v2, which has
    no shards), the library's default compressor."""
    options = []
    for f in [{"z": 1, "y": 1, "x": 1}, *factors]:
        height, width = max(1, shape[1] // f["y"]), max(1, shape[2] // f["x"])
        chunks = (1, min(TILE, height), min(TILE, width))
        level: dict[str, Any] = {"chunks": chunks}
        if codec is not None:  # a shard holds whole chunks: its sides are multiples of the chunk's
            level |= {
                "compressors": codec,
                "shards": (SHARD_DEPTH, *(-(-n // c) * c for n, c in zip((height, width), chunks[1:]))),
            }
        options.append(level)
    return options


def _translate(group: zarr.Group, origin_zyx: Sequence[float], spacing_zyx: Sequence[float]) -> None:
    """Append a translation to every level's transforms: the world position of its first voxel's centre.

    A level ``f`` times coarser than the full one covers the same extent, so its first voxel's centre lies
    (f - 1) / 2 full voxels further along each axis."""
    from ome_zarr.writer import add_metadata, get_metadata

    multiscales = get_metadata(group)["multiscales"]
    for dataset in multiscales[0]["datasets"]:
        scale = dataset["coordinateTransformations"][0]["scale"]
        shift = [o + (s - s0) / 2 for o, s, s0 in zip(origin_zyx, scale, spacing_zyx)]
        dataset["coordinateTransformations"] = [
            dataset["coordinateTransformations"][0],
            {"type": "translation", "translation": shift},
        ]
    add_metadata(group, {"multiscales": multiscales})


def _label_metadata(label_names: dict[int, str]) -> dict[str, Any]:
    """NGFF image-label metadata: a colour and a ``name`` property per label value, the source image."""
    values = sorted(v for v in label_names if v > 0)
    rgba = {v: [int(label_colour(v)[i : i + 2], 16) for i in (1, 3, 5)] + [255] for v in values}
    return {
        "colors": [{"label-value": v, "rgba": rgba[v]} for v in values],
        "properties": [{"label-value": v, "name": label_names[v]} for v in values],
        "source": {"image": "../../"},
    }


def provenance(case: Case, store: SliceStore, mixture: str | None, split: str) -> dict[str, Any]:
    """The ``samdata`` attribute of an exported image: where the case came from and the whole CaseMeta."""
    meta = case.meta
    return {
        "case_id": meta.case_id,
        "origin": meta.provenance.origin,
        "generator": meta.provenance.generator,
        "source_hash": meta.provenance.source_hash,
        "store": store.url,
        "snapshot_id": store.snapshot_id,
        "mixture": mixture,
        "split": split,
        "modality": meta.modality,
        "meta": meta.to_json(),
    }


def write_case(case: Case, path: Path, attrs: dict[str, Any], version: str = "0.5") -> None:
    """Write one case as an OME-Zarr image with its label image at ``path`` (a new folder).

    ``case.image``: (Z, Y, X) uint8; ``case.label``: (Z, Y, X) uint8|uint16; ``attrs`` go under ``samdata``."""
    require("ome_zarr", EXTRA, "OME-Zarr export")
    import dask
    import dask.array as da
    from ome_zarr.format import format_from_version
    from ome_zarr.scale import Methods

    with warnings.catch_warnings():  # ome-zarr 0.17 builds a deprecated Scaler as a default argument on import
        warnings.simplefilter("ignore", DeprecationWarning)
        from ome_zarr.writer import add_metadata, write_image, write_labels

    fmt = format_from_version(version)
    geometry = case.meta.geometry
    spacing = tuple(float(s) for s in reversed(geometry.spacing))  # (X, Y, Z) → (z, y, x)
    origin = tuple(float(np.asarray(geometry.affine)[i, 3]) for i in (2, 1, 0))
    factors = pyramid_factors(case.image.shape, spacing)
    # dask blocks hold whole shards and whole multiples of the deepest z factor: each downsamples on its own
    depth_block = min(case.image.shape[0], max([f["z"] for f in factors], default=1) * SHARD_DEPTH)
    common = {
        "fmt": fmt,
        "axes": list(AXES),
        "scale": dict(zip(AXES, spacing)),
        "axes_units": dict.fromkeys(AXES, "millimeter"),
    }
    root = zarr.open_group(str(path), mode="w-", zarr_format=fmt.zarr_format)
    with dask.config.set(scheduler="threads"):
        write_image(
            da.from_array(case.image, chunks=(depth_block, -1, -1)),
            root,
            scale_factors=[dict(f) for f in factors],  # ome-zarr rewrites the list it is given
            method=Methods.LOCAL_MEAN,
            storage_options=_storage_options(case.image.shape, factors, image_codec() if version == "0.5" else None),
            name=case.meta.case_id,
            **common,
        )
        write_labels(
            da.from_array(case.label, chunks=(depth_block, -1, -1)),
            root,
            LABEL_IMAGE,
            scaler=None,
            scale_factors=[dict(f) for f in factors],
            method=Methods.NEAREST,
            storage_options=_storage_options(case.label.shape, factors, label_codec() if version == "0.5" else None),
            label_metadata=_label_metadata(case.meta.label_names),
            **common,
        )
    if fmt.zarr_format == 3:  # ome-zarr leaves out the version NGFF 0.5 requires in every "ome" (labels group)
        add_metadata(root["labels"], {"version": fmt.version}, fmt=fmt)  # type: ignore[arg-type]
    _translate(root, origin, spacing)
    _translate(root[f"labels/{LABEL_IMAGE}"], origin, spacing)  # type: ignore[arg-type]
    add_metadata(root, {"omero": _omero(case)}, fmt=fmt)
    root.attrs["samdata"] = attrs


def _omero(case: Case) -> dict[str, Any]:
    """NGFF's transitional display settings: one grey channel named after the modality, window 0-255."""
    window = {"min": 0, "max": 255, "start": 0, "end": 255}
    channel = {"label": case.meta.modality, "color": "FFFFFF", "window": window, "active": True}
    return {"name": case.meta.case_id, "channels": [channel], "rdefs": {"model": "greyscale"}}


def _selection(
    view: SliceStore, cases: Sequence[str] | None, mixture: str | None, snapshot: str | None
) -> tuple[SliceStore, list[str], dict[str, str]]:
    """The view to read pixels from, the case ids to export in order, and each one's split.

    With a mixture: its cases at the snapshot it was drawn from (or ``snapshot`` when given), split from
    the mixture; ``cases`` must then be among its cases."""
    if mixture is not None:
        record = load_mixture(mixture_view(view, mixture), mixture)
        source = view if snapshot is not None else view.at(record.snapshot_id)
        splits = dict(zip(record.cases["case_id"], record.cases["split"]))
        chosen = list(cases) if cases else sorted(splits)
        outside = [c for c in chosen if c not in splits]
        if outside:
            raise ConfigError(
                f"case(s) {outside} are not in mixture {mixture!r} of store {view.url!r}; "
                f"its cases: {', '.join(sorted(splits))}"
            )
    else:
        source, chosen = view, list(cases) if cases else view.case_ids()
        splits = {}
    known = set(source.case_ids())
    missing = [c for c in chosen if c not in known]
    if missing:
        raise CaseNotFoundError(
            f"case(s) {missing} not in store {source.url!r} at {source.snapshot_id}; "
            f"cases there: {', '.join(sorted(known)) or 'none'}"
        )
    return source, list(dict.fromkeys(chosen)), splits


def export_ome_zarr(
    store: str | Path | SliceStore,
    out: str | Path,
    cases: Sequence[str] | None = None,
    snapshot: str | None = None,
    mixture: str | None = None,
    *,
    version: str = "0.5",
    overwrite: bool = False,
    on_case: Callable[[ExportedCase], None] | None = None,
) -> list[Path]:
    """Write ``OUT/<case_id>.ome.zarr`` for each case (default: every case of the snapshot, or of ``mixture``).

    ``snapshot``: the store snapshot to read (default: the head, or the snapshot a mixture was drawn from).
    ``version``: NGFF "0.5" (Zarr v3) or "0.4" (Zarr v2). An existing image is an error unless ``overwrite``.
    ``on_case`` is called after each image is complete. Returns the image folders in export order."""
    if version not in VERSIONS:
        raise ConfigError(f"OME-Zarr version {version!r} is not supported; expected one of {', '.join(VERSIONS)}")
    require("ome_zarr", EXTRA, "OME-Zarr export")
    view = store if isinstance(store, SliceStore) else SliceStore.open(store, snapshot=snapshot)
    if isinstance(store, SliceStore) and snapshot is not None:
        view = store.at(snapshot)
    source, chosen, splits = _selection(view, cases, mixture, snapshot)
    out = Path(out)
    targets = {cid: out / f"{cid}{SUFFIX}" for cid in chosen}
    existing = [str(p) for p in targets.values() if p.exists()]
    if existing and not overwrite:
        raise ConfigError(f"{len(existing)} image(s) already exist, e.g. {existing[0]!r}; pass --overwrite to replace")
    out.mkdir(parents=True, exist_ok=True)
    for position, (cid, target) in enumerate(targets.items(), start=1):
        case = source.read_case(cid)
        partial = out / f".{cid}{SUFFIX}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        split = splits.get(cid, case.meta.split)
        write_case(case, partial, provenance(case, source, mixture, split), version)
        if target.exists():
            shutil.rmtree(target)
        partial.rename(target)
        if on_case is not None:
            on_case(ExportedCase(cid, target, case.image.nbytes + case.label.nbytes, position, len(targets)))
        del case
    return list(targets.values())
