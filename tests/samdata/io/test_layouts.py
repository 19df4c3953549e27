"""Tests of samdata.io.layouts.discover: MSD, nnU-Net v2, plain, DICOM and single-file sources."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from samdata.errors import CaseNotFoundError, InputFileError
from samdata.io.layouts import SourceItem, discover
from samdata.io.readers import read_label, read_volume, write_nifti


def _touch(root: Path, *names: str) -> None:
    """Create small placeholder files (discover never reads pixels)."""
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"x")


def _json(root: Path, doc: object) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset.json").write_text(json.dumps(doc))


def test_msd_layout_with_test_split_and_problems(tmp_path):
    root = tmp_path / "Task03_Liver"
    labels = {"0": "background", "1": "liver", "2": "cancer"}
    _json(root, {"name": "Liver", "modality": {"0": "CT"}, "labels": labels, "numTraining": 3})
    _touch(
        root,
        "imagesTr/liver_0.nii.gz",
        "imagesTr/liver_1.nii.gz",
        "imagesTr/liver_2.nii.gz",
        "imagesTr/._liver_0.nii.gz",
        "imagesTr/notes.txt",
        "labelsTr/liver_0.nii.gz",
        "labelsTr/liver_1.nii.gz",
        "labelsTr/liver_9.nii.gz",
        "imagesTs/liver_50.nii.gz",
    )
    ds = discover(root)
    assert ds.layout == "msd" and ds.modality == "CT" and ds.root == root
    assert ds.label_names == {0: "background", 1: "liver", 2: "cancer"}
    assert ds.items == (
        SourceItem("liver_0", root / "imagesTr/liver_0.nii.gz", root / "labelsTr/liver_0.nii.gz", "train"),
        SourceItem("liver_1", root / "imagesTr/liver_1.nii.gz", root / "labelsTr/liver_1.nii.gz", "train"),
        SourceItem("liver_50", root / "imagesTs/liver_50.nii.gz", None, "test"),
    )
    text = "\n".join(ds.problems)
    assert "liver_2.nii.gz: no label" in text  # image without label: not an item
    assert "liver_9.nii.gz: label without an image" in text
    assert "hidden" in text and "notes.txt" in text and "numTraining 3 but 2" in text


def test_nnunet_v2_layout_strips_channels_and_notes_multichannel(tmp_path):
    root = tmp_path / "Dataset002_Heart"
    _json(
        root,
        {
            "channel_names": {"0": "T2", "1": "ADC"},
            "labels": {"background": 0, "left_atrium": 1, "whole": [1, 2]},
            "numTraining": 2,
            "file_ending": ".nii.gz",
        },
    )
    _touch(
        root,
        "imagesTr/la_003_0000.nii.gz",
        "imagesTr/la_003_0001.nii.gz",
        "imagesTr/la_004_0000.nii.gz",
        "imagesTr/la_005_0001.nii.gz",
        "labelsTr/la_003.nii.gz",
        "labelsTr/la_004.nii.gz",
        "labelsTr/la_005.nii.gz",
        "imagesTs/la_010_0000.nii.gz",
        "imagesTr/la_006_0000.mha",
    )
    ds = discover(root)
    assert ds.layout == "nnunet_v2" and ds.modality == "T2"
    assert ds.label_names == {0: "background", 1: "left_atrium"}
    assert [(i.case_id, i.image.name, i.split) for i in ds.items] == [
        ("la_003", "la_003_0000.nii.gz", "train"),
        ("la_004", "la_004_0000.nii.gz", "train"),
        ("la_010", "la_010_0000.nii.gz", "test"),
    ]
    text = "\n".join(ds.problems)
    assert "la_003: 2 channels" in text and "channel 0 used" in text
    assert "la_005: channels [1] but no _0000" in text
    assert "2 channels ('T2', 'ADC')" in text and "region label 'whole'" in text
    assert "la_006_0000.mha" in text  # not the dataset's file_ending


def test_msd_json_with_nnunet_v1_channel_suffix_and_case_names_ending_in_digits(tmp_path):
    v1 = tmp_path / "v1"
    _json(v1, {"modality": {"0": "MRI"}, "labels": {"0": "background", "1": "tumour"}})
    _touch(v1, "imagesTr/p_001_0000.nii.gz", "labelsTr/p_001.nii.gz")
    assert [(i.case_id, i.label.name) for i in discover(v1).items] == [("p_001", "p_001.nii.gz")]
    digits = tmp_path / "digits"
    _json(digits, {"modality": {"0": "CT"}, "labels": {"0": "background", "1": "kidney"}})
    _touch(digits, "imagesTr/case_0001.nii.gz", "labelsTr/case_0001.nii.gz")
    ds = discover(digits)
    assert [i.case_id for i in ds.items] == ["case_0001"] and ds.problems == ()


def test_plain_png_pairs_with_mask_suffix_and_optional_json(tmp_path):
    root = tmp_path / "polyps"
    _touch(root, "images/a.png", "images/b.png", "images/c.tif", "masks/a.png", "masks/b_mask.png")
    _json(root, {"modality": {"0": "endoscopy"}, "labels": {"0": "background", "1": "polyp"}})
    ds = discover(root)
    assert ds.layout == "plain" and ds.modality == "endoscopy" and ds.label_names[1] == "polyp"
    assert [(i.case_id, i.label.name) for i in ds.items] == [("a", "a.png"), ("b", "b_mask.png")]
    assert any("c.tif: no label" in p for p in ds.problems)


def test_plain_without_labels_folder_gives_unlabelled_test_items(tmp_path):
    _touch(tmp_path, "images/x.nii.gz", "images/y.nrrd")
    ds = discover(tmp_path)
    assert [(i.case_id, i.label, i.split) for i in ds.items] == [("x", None, "test"), ("y", None, "test")]
    assert "no labels/ folder" in ds.problems[0]


def test_dicom_layout_discovered_and_read_end_to_end(tmp_path, write_dicom_series):
    rng = np.random.default_rng(0)
    affine = np.diag([-0.7, -0.7, 3.0, 1.0])
    affine[:3, 3] = [10.0, 20.0, -5.0]
    for case in ("c1", "c2"):
        array = rng.integers(-100, 100, size=(6, 5, 4)).astype(np.int16)
        write_dicom_series(array, affine, tmp_path / "images" / case)
        write_nifti((array > 0).astype(np.uint8), affine, tmp_path / "labels" / f"{case}.nii.gz")
    ds = discover(tmp_path)
    assert ds.layout == "dicom" and [i.case_id for i in ds.items] == ["c1", "c2"]
    image = read_volume(ds.items[0].image)
    label = read_label(ds.items[0].label, like=image)
    np.testing.assert_array_equal(label.array, (image.array > 0).astype(np.uint8))
    single = discover(tmp_path / "images" / "c2")  # one DICOM folder on its own
    assert single.layout == "single"
    assert single.items == (SourceItem("c2", tmp_path / "images" / "c2", None, "test"),)


def test_single_image_file_is_a_dataset_of_one(tmp_path):
    Image.fromarray(np.arange(12, dtype=np.uint8).reshape(3, 4)).save(tmp_path / "scan.png")
    ds = discover(tmp_path / "scan.png")
    assert ds.layout == "single" and ds.items == (SourceItem("scan", tmp_path / "scan.png", None, "test"),)


def test_missing_empty_and_unknown_sources(tmp_path):
    with pytest.raises(CaseNotFoundError, match="gone"):
        discover(tmp_path / "gone")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputFileError, match="empty.*the folder is empty.*imagesTr.*images/"):
        discover(tmp_path / "empty")
    _touch(tmp_path, "other/readme.md", "other/data/x.nii.gz")
    with pytest.raises(InputFileError, match="other: unknown layout.*dataset.json.*labels/"):
        discover(tmp_path / "other")
    _touch(tmp_path, "notes.txt")
    with pytest.raises(InputFileError, match="notes.txt"):
        discover(tmp_path / "notes.txt")


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        "[1, 2]",
        json.dumps({"labels": ["liver"]}),
        json.dumps({"labels": {"liver": "one"}}),
        json.dumps({"modality": "CT"}),
        json.dumps({"file_ending": 3}),
    ],
)
def test_malformed_dataset_json_names_the_file(tmp_path, text):
    _touch(tmp_path, "imagesTr/a.nii.gz", "labelsTr/a.nii.gz")
    (tmp_path / "dataset.json").write_text(text)
    with pytest.raises(InputFileError, match=r"dataset\.json: malformed"):
        discover(tmp_path)


def test_layout_without_any_usable_case_is_an_error(tmp_path):
    _json(tmp_path, {"modality": {"0": "CT"}, "labels": {"0": "background"}})
    _touch(tmp_path, "imagesTr/a.nii.gz")
    with pytest.raises(InputFileError, match="no usable case.*labelsTr: missing"):
        discover(tmp_path)
    _json(tmp_path / "only_json", {"labels": {}})
    with pytest.raises(InputFileError, match="only_json: dataset.json but no imagesTr"):
        discover(tmp_path / "only_json" / "dataset.json")
