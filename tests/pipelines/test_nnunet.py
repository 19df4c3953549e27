"""nnU-Net v2 export: the raw layout and dataset.json, cases on their source grid, synthetic pairs as single-slice
volumes, the ignore label of train_slices, errors, and nnU-Net's own dataset check when nnunetv2 is installed."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from pipelines.mixtures import MixtureConfig, make_mixture
from pipelines.nnunet import NnunetExportConfig, export_nnunet
from samdata.case import Case, CaseMeta, Geometry, Normalisation, Provenance, Volume
from samdata.errors import ConfigError, RegistryError, ValidationError
from samdata.normalise import IngestConfig
from samdata.prepare import prepare_case
from storage import SliceStore

#: an LPS source grid (x and y flipped against RAS+) with anisotropic voxels, as a DICOM-derived NIfTI has
LPS = np.array([[-0.8, 0, 0, 30.0], [0, -0.9, 0, 20.0], [0, 0, 2.5, -10.0], [0, 0, 0, 1]])
WINDOW = IngestConfig(modality="CT", window=(40.0, 400.0), min_object_voxels=0, min_object_pixels=0)


def source_pair(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(X, Y, Z) = (20, 16, 6) HU image and a label map: 'liver' (1) a block on z 1..4, 'kidney' (3) on z 2."""
    rng = np.random.default_rng(seed)
    image = rng.integers(-300, 400, (20, 16, 6)).astype(np.int16)
    label = np.zeros((20, 16, 6), np.uint8)
    label[3:12, 2:9, 1:5] = 1
    label[14:18, 10:14, 2] = 3
    return image, label


def real_case(case_id: str, seed: int) -> Case:
    """A CT case prepared from an LPS source (windowed, reoriented to RAS+)."""
    image, label = source_pair(seed)
    return prepare_case(
        Volume(image, LPS, f"{case_id}.nii.gz"),
        Volume(label, LPS, f"{case_id}_seg.nii.gz"),
        case_id=case_id,
        config=WINDOW,
        label_names={1: "liver", 3: "kidney"},
        provenance=Provenance("real", f"{case_id}.nii.gz", f"h-{case_id}"),
    )


def synthetic_case(case_id: str, parent: str) -> Case:
    """A 2D (1, 16, 20) generated pair drawn from ``parent``'s slice 2 ('liver' as 1 only)."""
    eye = tuple(tuple(float(v) for v in row) for row in np.diag([0.8, 0.9, 2.5, 1.0]))
    label = np.zeros((1, 16, 20), np.uint8)
    label[0, 4:10, 5:15] = 1
    image = np.full((1, 16, 20), 51, np.uint8)  # 51/255 of the parent's window: -120 + 0.2 * 400 = -80 HU
    meta = CaseMeta(
        case_id,
        "CT",
        {1: "liver"},
        Geometry(eye, (0.8, 0.9, 2.5), eye, (20, 16, 1), ("R", "A", "S")),
        Normalisation("synthetic", 0.0, 255.0, {"generator": "deform"}),
        Provenance("synthetic", "deform", f"h-{case_id}", "deform", "ck", 0, parents=((parent, 2),)),
    )
    return Case(meta, image, label)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six real LPS cases and two synthetic pairs; mixture 'mix' (train/val/test 4/1/1, with the pairs) and
    'liver' (liver only)."""
    path = tmp_path_factory.mktemp("nnunet") / "store"
    with SliceStore.open(path, create=True).writer("cases") as writer:
        for i in range(6):
            writer.write_case(real_case(f"ct{i}", i))
        writer.write_case(synthetic_case("syn0", "ct0"))
        writer.write_case(synthetic_case("syn1", "ct1"))
    make_mixture(path, "mix", MixtureConfig(synthetic=0.5, splits=(0.7, 0.15, 0.15), seed=0))
    make_mixture(path, "liver", MixtureConfig(labels=("liver",), splits=(0.7, 0.15, 0.15), seed=0))
    return path


def split_of(store: Path, mixture: str) -> dict[str, list[str]]:
    """The mixture's case ids by split."""
    from storage.records import load_mixture

    record = load_mixture(SliceStore.open(store), mixture)
    return {split: record.split_cases(split) for split in ("train", "val", "test")}


def test_layout_and_dataset_json(store: Path, tmp_path: Path) -> None:
    folder = export_nnunet(store, tmp_path / "raw", "mix", NnunetExportConfig(dataset_id=7, name="Mix"))
    assert folder == tmp_path / "raw" / "Dataset007_Mix"
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == ["Dataset007_Mix"]  # no partial folder left
    splits = split_of(store, "mix")
    dataset = json.loads((folder / "dataset.json").read_text())
    assert dataset["channel_names"] == {"0": "CT"}
    assert dataset["labels"] == {"background": 0, "liver": 1, "kidney": 2}
    assert dataset["file_ending"] == ".nii.gz"
    assert dataset["numTraining"] == len(splits["train"]) == 6  # 4 real + 2 synthetic
    images = sorted(p.name for p in (folder / "imagesTr").iterdir())
    assert images == sorted(f"{c}_0000.nii.gz" for c in splits["train"])
    assert sorted(p.name for p in (folder / "labelsTr").iterdir()) == sorted(f"{c}.nii.gz" for c in splits["train"])
    assert sorted(p.name for p in (folder / "imagesTs").iterdir()) == [f"{c}_0000.nii.gz" for c in splits["test"]]
    assert sorted(p.name for p in (folder / "labelsTs").iterdir()) == [f"{c}.nii.gz" for c in splits["test"]]
    assert dataset["samdata"]["val_left_out"] == splits["val"]
    assert dataset["samdata"]["train"]["synthetic"] == ["syn0", "syn1"]
    cases_commit = next(s for s in SliceStore.open(store).snapshots() if s.message == "cases")
    assert dataset["samdata"]["snapshot_id"] == cases_commit.id  # the snapshot the mixture was drawn from


def test_cases_are_on_their_source_grid(store: Path, tmp_path: Path) -> None:
    folder = export_nnunet(store, tmp_path, "mix")
    for name in (p.name for p in (folder / "imagesTr").glob("ct*_0000.nii.gz")):
        case_id = name.removesuffix("_0000.nii.gz")
        source_image, source_label = source_pair(int(case_id[2:]))
        image = nib.load(folder / "imagesTr" / name)
        label = nib.load(folder / "labelsTr" / f"{case_id}.nii.gz")
        np.testing.assert_allclose(image.affine, LPS)
        np.testing.assert_allclose(label.affine, LPS)
        # back in HU, clipped to the window (-160..240) and within half a uint8 step (400 / 255 / 2)
        np.testing.assert_allclose(image.get_fdata(), np.clip(source_image, -160, 240), atol=400 / 255 / 2 + 1e-3)
        expected = np.select([source_label == 1, source_label == 3], [1, 2], 0)  # renumbered by name
        np.testing.assert_array_equal(np.asarray(label.dataobj), expected)


def test_synthetic_pairs_are_single_slice_volumes_in_their_parents_units(store: Path, tmp_path: Path) -> None:
    folder = export_nnunet(store, tmp_path, "mix")
    image = nib.load(folder / "imagesTr" / "syn0_0000.nii.gz")
    assert image.shape == (20, 16, 1)
    np.testing.assert_allclose(image.affine, np.diag([0.8, 0.9, 2.5, 1.0]))
    np.testing.assert_allclose(image.get_fdata(), -160 + 51 / 255 * 400, atol=1e-3)  # the parent's window
    label = np.asarray(nib.load(folder / "labelsTr" / "syn0.nii.gz").dataobj)
    assert label.shape == (20, 16, 1) and label.sum() == 60  # (Z, Y, X) 6 x 10 block, transposed to (X, Y, Z)

    plain = export_nnunet(store, tmp_path / "real", "mix", NnunetExportConfig(synthetic=False))
    dataset = json.loads((plain / "dataset.json").read_text())
    assert dataset["numTraining"] == 4
    assert not list((plain / "imagesTr").glob("syn*"))


def test_mixture_labels_and_the_ignore_label_of_train_slices(store: Path, tmp_path: Path) -> None:
    config = NnunetExportConfig(name="Liver", train_slices="2-3")
    folder = export_nnunet(store, tmp_path, "liver", config)
    dataset = json.loads((folder / "dataset.json").read_text())
    assert dataset["labels"] == {"background": 0, "liver": 1, "ignore": 2}  # kidney is background here
    splits = split_of(store, "liver")
    for case_id in splits["train"]:
        label = np.asarray(nib.load(folder / "labelsTr" / f"{case_id}.nii.gz").dataobj)
        source = source_pair(int(case_id[2:]))[1]
        # LPS keeps z: slices 2 and 3 keep their labels (liver 1, kidney dropped), every other voxel is ignored
        np.testing.assert_array_equal(label[..., 2:4], (source[..., 2:4] == 1).astype(np.uint8))
        assert (label[..., [0, 1, 4, 5]] == 2).all()
    for case_id in splits["test"]:  # test labels stay whole
        label = np.asarray(nib.load(folder / "labelsTs" / f"{case_id}.nii.gz").dataobj)
        assert set(np.unique(label)) == {0, 1}


def test_errors(store: Path, tmp_path: Path) -> None:
    export_nnunet(store, tmp_path, "mix", NnunetExportConfig(dataset_id=3, name="A"))
    with pytest.raises(ConfigError, match="already exists"):
        export_nnunet(store, tmp_path, "mix", NnunetExportConfig(dataset_id=3, name="A"))
    export_nnunet(store, tmp_path, "mix", NnunetExportConfig(dataset_id=3, name="A"), overwrite=True)
    with pytest.raises(ConfigError, match="dataset id 3 as Dataset003_A"):
        export_nnunet(store, tmp_path, "mix", NnunetExportConfig(dataset_id=3, name="B"))
    with pytest.raises(RegistryError, match="unknown mixture 'nope'.*mixtures there: liver, mix"):
        export_nnunet(store, tmp_path, "nope")
    with pytest.raises(ValidationError, match="none of the train slices 40..50 lies in its 6 slices"):
        export_nnunet(store, tmp_path, "mix", NnunetExportConfig(dataset_id=4, train_slices="40-50"))
    assert not list(tmp_path.glob("Dataset004*")) and not list(tmp_path.glob(".Dataset004*"))
    for bad in ({"name": "a b"}, {"dataset_id": 1000}, {"train_slices": "3-1"}):
        with pytest.raises(ConfigError):
            NnunetExportConfig(**bad)  # type: ignore[arg-type]


def test_nnunet_accepts_the_dataset(store: Path, tmp_path: Path) -> None:
    """nnU-Net v2's own check of a raw dataset (labels, shapes, spacings) passes, and its per-case check of
    origins and directions (run here in-process, where its warnings can be read) warns of nothing."""
    pytest.importorskip("nnunetv2", reason="the nnunet extra (nnunetv2) is not installed")
    from nnunetv2.experiment_planning.verify_dataset_integrity import check_cases, verify_dataset_integrity
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

    folder = export_nnunet(store, tmp_path, "mix", NnunetExportConfig(train_slices="1-4"))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        verify_dataset_integrity(str(folder), num_processes=1)
        for label in sorted((folder / "labelsTr").iterdir()):
            image = folder / "imagesTr" / label.name.replace(".nii.gz", "_0000.nii.gz")
            assert check_cases([str(image)], str(label), 1, SimpleITKIO)
    assert "verify_dataset_integrity Done" in printed.getvalue()
    assert "Error" not in printed.getvalue() and "Warning" not in printed.getvalue(), printed.getvalue()
