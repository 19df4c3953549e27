"""OME-Zarr export: written by ome-zarr-py, read back by independent readers (ome-zarr-models' validating models and
plain zarr) and by ome-zarr-py's Reader (what napari-ome-zarr uses): pixels, labels, scales, names, provenance."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

from samdata.case import Case, Geometry, Provenance
from samdata.errors import CaseNotFoundError, ConfigError
from samdata.extras import MissingExtraError
from storage import SliceStore
from storage.omezarr import ExportedCase, export_ome_zarr, pyramid_factors
from tests.storage.conftest import CaseFactory

ORIGIN = (-90.0, -126.0, -72.0)  # (X, Y, Z) mm of voxel (0, 0, 0)


def _geometry(case: Case, spacing: tuple[float, float, float]) -> Case:
    """``case`` on a grid of ``spacing`` (X, Y, Z) mm whose first voxel sits at ORIGIN."""
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = ORIGIN
    rows = tuple(tuple(float(v) for v in row) for row in affine)
    shape = case.image.shape[::-1]
    geometry = Geometry(rows, spacing, rows, shape, ("R", "A", "S"))
    return dataclasses.replace(case, meta=dataclasses.replace(case.meta, geometry=geometry))


@pytest.fixture
def store(store_path: Path, make_case: CaseFactory) -> SliceStore:
    """Three cases: 'iso' (1 mm isotropic, 8×160×136: the pyramid halves z too), 'ct' (0.8×0.8×2.5 mm) and
    'syn', a synthetic case with its generator and seed."""
    iso = _geometry(make_case("iso", 1, depth=8, height=160, width=136), (1.0, 1.0, 1.0))
    syn = make_case("syn", 3, origin="synthetic")
    provenance = dataclasses.replace(syn.meta.provenance, generator="deform_n4s0", seed=7)
    syn = dataclasses.replace(syn, meta=dataclasses.replace(syn.meta, provenance=provenance))
    with SliceStore.open(store_path).writer("three cases") as writer:
        for case in (iso, make_case("ct", 2), syn):
            writer.write_case(case)
        writer.finish()
    return SliceStore.open(store_path)


def test_pyramid_levels_follow_the_grid() -> None:
    # CT 512² × 100 at 0.7 mm in-plane, 2.5 mm slices: in-plane halves to 64 px; z halves once 8× in-plane ≥ 5 mm
    assert pyramid_factors((100, 512, 512), (2.5, 0.7, 0.7)) == [
        {"z": 1, "y": 2, "x": 2},
        {"z": 1, "y": 4, "x": 4},
        {"z": 2, "y": 8, "x": 8},
    ]
    assert pyramid_factors((189, 233, 197), (1.0, 1.0, 1.0)) == [{"z": 2, "y": 2, "x": 2}]  # isotropic: z too
    assert pyramid_factors((1, 256, 256), (1.0, 0.5, 0.5)) == [{"z": 1, "y": 2, "x": 2}, {"z": 1, "y": 4, "x": 4}]
    assert pyramid_factors((5, 24, 32), (2.5, 0.8, 0.8)) == []  # small enough to view whole


def test_export_reads_back_with_independent_readers(store: SliceStore, tmp_path: Path) -> None:
    from ome_zarr_models.v05.image import Image

    seen: list[ExportedCase] = []
    paths = export_ome_zarr(store.url, tmp_path / "out", on_case=seen.append)
    assert paths == [tmp_path / "out" / f"{c}.ome.zarr" for c in ("ct", "iso", "syn")]
    assert [(s.case_id, s.position, s.total) for s in seen] == [("ct", 1, 3), ("iso", 2, 3), ("syn", 3, 3)]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["ct.ome.zarr", "iso.ome.zarr", "syn.ome.zarr"]

    case = store.read_case("iso")
    group = zarr.open_group(paths[1], mode="r")
    image = Image.from_zarr(group)  # validates NGFF 0.5 image, labels group and label image
    multiscale = image.ome_attributes.multiscales[0]
    assert [(a.name, a.type, a.unit) for a in multiscale.axes] == [(n, "space", "millimeter") for n in "zyx"]
    # NGFF orders a level's transforms: scale, then translation
    scales = [d.coordinateTransformations[0].scale for d in multiscale.datasets]
    shifts = [d.coordinateTransformations[1].translation for d in multiscale.datasets]
    assert scales == [[1.0, 1.0, 1.0], [2.0, 2.0, 2.0]]
    # the first voxel's centre: ORIGIN reversed to (z, y, x); half a full voxel further at the 2× level
    assert shifts == [[-72.0, -126.0, -90.0], [-71.5, -125.5, -89.5]]
    levels = [group[d.path] for d in multiscale.datasets]
    assert [a.shape for a in levels] == [(8, 160, 136), (4, 80, 68)]
    assert levels[0].chunks == (1, 160, 136) and levels[1].chunks == (1, 80, 68)  # one axial slice per chunk
    np.testing.assert_array_equal(levels[0][:], case.image)
    coarse = case.image.astype(float).reshape(4, 2, 80, 2, 68, 2).mean(axis=(1, 3, 5))
    assert np.corrcoef(levels[1][:].astype(float).ravel(), coarse.ravel())[0, 1] > 0.9  # a smoothed downsample

    labels = image.labels
    assert labels is not None and labels.label_paths == ["label"]
    label_image = labels.get_image_labels_group("label")
    meta = label_image.ome_attributes.image_label
    assert [(p.label_value, p.name) for p in meta.properties] == [(1, "liver"), (2, "kidney")]
    assert [(c.label_value, c.rgba) for c in meta.colors] == [(1, (31, 119, 180, 255)), (2, (255, 127, 14, 255))]
    label_group = group["labels/label"]
    np.testing.assert_array_equal(label_group["s0"][:], case.label)
    assert label_group["s1"].shape == (4, 80, 68) and set(np.unique(label_group["s1"][:])) <= {0, 1, 2}  # nearest
    label_ms = label_image.ome_attributes.multiscales[0]
    assert [d.coordinateTransformations[0].scale for d in label_ms.datasets] == scales

    attrs = group.attrs["samdata"]
    assert attrs["origin"] == "real" and attrs["generator"] is None and attrs["split"] == "train"
    assert attrs["snapshot_id"] == store.snapshot_id and attrs["store"] == store.url and attrs["mixture"] is None
    assert attrs["meta"]["geometry"]["spacing"] == [1.0, 1.0, 1.0]

    syn = zarr.open_group(paths[2], mode="r").attrs["samdata"]
    assert (syn["origin"], syn["generator"], syn["meta"]["provenance"]["seed"]) == ("synthetic", "deform_n4s0", 7)
    ct = Image.from_zarr(zarr.open_group(paths[0], mode="r")).ome_attributes.multiscales[0]
    assert len(ct.datasets) == 1 and ct.datasets[0].coordinateTransformations[0].scale == [2.5, 0.8, 0.8]


def test_napari_reader_finds_image_and_named_labels(store: SliceStore, tmp_path: Path) -> None:
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    (path,) = export_ome_zarr(store, tmp_path / "out", cases=["iso"])
    nodes = {Path(str(n.zarr.path)).name: n for n in Reader(parse_url(str(path)))()}
    assert nodes["iso.ome.zarr"].metadata["name"] == "iso"
    assert [a.shape for a in nodes["iso.ome.zarr"].data] == [(8, 160, 136), (4, 80, 68)]
    label = nodes["label"]
    assert label.metadata["properties"] == {1: {"name": "liver"}, 2: {"name": "kidney"}}
    assert label.metadata["color"][2] == pytest.approx([1.0, 127 / 255, 14 / 255, 1.0])
    np.testing.assert_array_equal(np.asarray(label.data[0]), store.read_case("iso").label)


def test_ngff_04_for_older_readers(store: SliceStore, tmp_path: Path) -> None:
    # ome-zarr-models' 0.4 models do not build under pydantic 2.14; plain zarr and ome-zarr-py's Reader read it
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    (path,) = export_ome_zarr(store, tmp_path / "out", cases=["iso"], version="0.4")
    group = zarr.open_group(path, mode="r")
    assert group.metadata.zarr_format == 2
    multiscale = group.attrs["multiscales"][0]
    assert multiscale["version"] == "0.4" and [d["path"] for d in multiscale["datasets"]] == ["s0", "s1"]
    assert multiscale["datasets"][0]["coordinateTransformations"][1]["translation"] == [-72.0, -126.0, -90.0]
    image_label = group["labels/label"].attrs["image-label"]
    assert image_label["version"] == "0.4" and [p["name"] for p in image_label["properties"]] == ["liver", "kidney"]
    case = store.read_case("iso")
    np.testing.assert_array_equal(group["s0"][:], case.image)
    nodes = {Path(str(n.zarr.path)).name: n for n in Reader(parse_url(str(path)))()}
    np.testing.assert_array_equal(np.asarray(nodes["label"].data[0]), case.label)


def test_mixture_cases_at_its_snapshot_with_their_split(store: SliceStore, tmp_path: Path, make_case) -> None:
    from pipelines.configs import MixtureConfig
    from pipelines.mixtures import make_mixture

    record = make_mixture(store.url, "m", MixtureConfig(splits=(0.5, 0.5, 0.0), seed=0))
    with store.head().writer("one more case") as writer:  # after the mixture: not in it
        writer.write_case(make_case("late", 9))
        writer.finish()
    paths = export_ome_zarr(store.url, tmp_path / "out", mixture="m")
    assert [p.name for p in paths] == [f"{c}.ome.zarr" for c in sorted(record.cases["case_id"])]
    splits = dict(zip(record.cases["case_id"], record.cases["split"]))
    for path in paths:
        attrs = zarr.open_group(path, mode="r").attrs["samdata"]
        assert attrs["mixture"] == "m" and attrs["snapshot_id"] == record.snapshot_id
        assert attrs["split"] == splits[attrs["case_id"]]
    with pytest.raises(ConfigError, match="not in mixture 'm'"):
        export_ome_zarr(store.url, tmp_path / "out2", cases=["late"], mixture="m")


def test_bad_requests_name_the_problem(store: SliceStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(CaseNotFoundError, match=r"\['nope'\] not in store .* cases there: ct, iso, syn"):
        export_ome_zarr(store, tmp_path / "out", cases=["nope"])
    with pytest.raises(ConfigError, match="version '0.6' is not supported; expected one of 0.5, 0.4"):
        export_ome_zarr(store, tmp_path / "out", version="0.6")
    (first,) = export_ome_zarr(store, tmp_path / "out", cases=["ct"])
    with pytest.raises(ConfigError, match="already exist.*ct.ome.zarr.*--overwrite"):
        export_ome_zarr(store, tmp_path / "out", cases=["ct"])
    assert export_ome_zarr(store, tmp_path / "out", cases=["ct"], overwrite=True) == [first]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["ct.ome.zarr"]  # no partial folder left
    monkeypatch.setitem(sys.modules, "ome_zarr", None)
    with pytest.raises(MissingExtraError, match=r"samdata\[omezarr\]"):
        export_ome_zarr(store, tmp_path / "other")


def test_provenance_is_plain_json(store: SliceStore, tmp_path: Path) -> None:
    (path,) = export_ome_zarr(store, tmp_path / "out", cases=["syn"])
    attrs = zarr.open_group(path, mode="r").attrs.asdict()
    assert set(attrs) == {"ome", "samdata"}
    assert Provenance(**{**attrs["samdata"]["meta"]["provenance"], "parents": ()}).generator == "deform_n4s0"
