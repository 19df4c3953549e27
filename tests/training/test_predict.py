"""Tests of prediction: NIfTI round trip on a non-RAS grid, box propagation, mask prompts, normalisation, faults."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import nibabel as nib
import nrrd
import numpy as np
import pydicom
import pytest
import torch
from typer.testing import CliRunner

from pipelines.mixtures import MixtureConfig, make_mixture
from samdata.case import CaseMeta, Geometry, Normalisation, Provenance, Volume
from samdata.cli.main import app
from samdata.errors import CaseNotFoundError, ConfigError, RegistryError, ValidationError
from samdata.io.readers import read_volume, write_nifti
from samdata.metrics import dice
from samdata.normalise import IngestConfig
from samdata.prepare import prepare_case
from samdata.prompts import Prompt
from samdata.prompts.regions import tight_box
from storage import SliceStore
from tests.samdata.conftest import _write_dicom_series as write_dicom_series
from training.config import TrainConfig
from training.models import build_model
from training.predict import (
    ingest_config_for,
    predict_file,
    propagate_box,
    run_normalisation,
    segment_slice,
    slice_channels,
    to_probabilities,
)
from training.run import LoadedRun

# array axes: i -> superior (2.5 mm), j -> patient right (x flipped, 0.9 mm), k -> anterior (1.1 mm)
AFFINE = np.array([[0.0, -0.9, 0.0, 30.0], [0.0, 0.0, 1.1, -20.0], [2.5, 0.0, 0.0, 5.0], [0.0, 0.0, 0.0, 1.0]])
SOURCE_SHAPE = (8, 30, 26)
CANONICAL = (8, 26, 30)  # (Z, Y, X) after reorientation to RAS+


def _ct(shape: tuple[int, int, int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """An int16 HU volume (air with noise) holding a 100 HU ellipsoid, and its 0/1 mask, (X, Y, Z) arrays."""
    rng = np.random.default_rng(seed)
    i, j, k = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    centre = [n / 2 for n in shape]
    inside = sum(((a - c) / (0.35 * n)) ** 2 for a, c, n in zip((i, j, k), centre, shape)) <= 1.0
    hu = np.where(inside, 100, -900) + rng.normal(0, 20, shape)
    return hu.astype(np.int16), inside.astype(np.uint8)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Three CT cases ingested through prepare_case (abdomen window) and a mixture 'mix'."""
    root = tmp_path_factory.mktemp("predict")
    path = root / "store"
    with SliceStore.open(path, create=True).writer("cases") as writer:
        for n in range(3):
            hu, mask = _ct((24, 20, 6), n)
            case = prepare_case(
                _volume(hu, np.diag([1.0, 1.0, 2.0, 1.0]), root / f"c{n}.nii.gz"),
                _volume(mask, np.diag([1.0, 1.0, 2.0, 1.0]), root / f"c{n}-label.nii.gz"),
                case_id=f"ct{n}",
                config=IngestConfig(min_object_voxels=10, min_object_pixels=4),
                label_names={1: "organ"},
                provenance=Provenance("real", f"c{n}", f"h{n}"),
            )
            writer.write_case(case)
    make_mixture(path, "mix", MixtureConfig(seed=0))
    return str(path)


def _volume(array: np.ndarray, affine: np.ndarray, path: Path) -> Volume:
    """Write an (X, Y, Z) array as NIfTI and read it back as a Volume."""
    write_nifti(array, affine, path)
    return read_volume(path)


@pytest.fixture(scope="module")
def run(store: str) -> LoadedRun:
    config = TrainConfig(store=store, mixture="mix", model="tiny", adapter="decoder", size=128)
    return LoadedRun(build_model("tiny").eval(), config, {"store_url": store, "mixture": "mix"})


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("image") / "patient.nii.gz"
    write_nifti(_ct(SOURCE_SHAPE, 7)[0], AFFINE, path)
    return path


def _canonical(path: Path) -> np.ndarray:
    """A NIfTI file as a (Z, Y, X) array in RAS+ (nibabel's own reorientation)."""
    return np.asarray(nib.as_closest_canonical(nib.load(path)).dataobj).transpose(2, 1, 0)


def test_box_prediction_round_trips_to_the_source_grid(run: LoadedRun, image: Path, tmp_path: Path):
    out = tmp_path / "pred.nii.gz"
    progress: dict[str, list[int]] = {}

    def stages(what: str, total: int):  # the progress protocol of the CLI's bars
        progress[what] = [total, 0]
        return lambda n=1: progress[what].__setitem__(1, progress[what][1] + n)

    report = predict_file(run, image, out, box=((6, 5, 24, 20), 4), stages=stages)
    written = nib.load(out)
    assert written.shape == SOURCE_SHAPE and np.allclose(written.affine, AFFINE)
    assert np.asarray(written.dataobj).dtype == np.uint8
    assert report.canonical_shape == CANONICAL and report.source_shape == SOURCE_SHAPE
    assert report.normalisation.method == "window:abdomen" and not report.context
    config, _ = run_normalisation(run)
    case = prepare_case(
        read_volume(image),
        None,
        case_id="patient",
        config=config,
        label_names={},
        provenance=Provenance("real", str(image), "h"),
    )
    expected = propagate_box(run.model, case.image, (6, 5, 24, 20), 4, size=128)
    np.testing.assert_array_equal(_canonical(out), expected.astype(np.uint8))
    assert 4 in report.slices and len(report.slices) > 1  # propagated beyond the start slice
    assert report.slices == tuple(range(report.slices[0], report.slices[-1] + 1))
    assert report.voxels == {1: int(expected.sum())}
    ((total, done),) = progress.values()  # one stage: every segmented slice counted, at most the whole volume
    assert done >= len(report.slices) and total == CANONICAL[0] >= done


def test_mirroring_reaches_every_slice_of_a_box_and_of_a_prompt_mask(run: LoadedRun, image: Path, tmp_path: Path):
    report = predict_file(run, image, tmp_path / "pred.nii.gz", box=((6, 5, 24, 20), 4), tta="lr")
    assert report.tta == "lr"
    config, _ = run_normalisation(run)
    case = prepare_case(
        read_volume(image),
        None,
        case_id="patient",
        config=config,
        label_names={},
        provenance=Provenance("real", str(image), "h"),
    )
    expected = propagate_box(run.model, case.image, (6, 5, 24, 20), 4, size=128, tta="lr")
    np.testing.assert_array_equal(_canonical(tmp_path / "pred.nii.gz"), expected.astype(np.uint8))
    start = segment_slice(run.model, slice_channels(case.image, 4, False), [Prompt(box=(6, 5, 24, 20))], 128, "lr")
    np.testing.assert_array_equal(expected[4], start[0] > 0.5)
    prompt = np.zeros(SOURCE_SHAPE, dtype=np.uint8)
    prompt[2, 8:20, 6:18] = 1
    write_nifti(prompt, AFFINE, tmp_path / "prompt.nii.gz")
    masked = predict_file(run, image, tmp_path / "masked.nii.gz", prompt_mask=tmp_path / "prompt.nii.gz", tta="flip")
    assert masked.tta == "flip" and set(masked.slices) <= {2}
    with pytest.raises(RegistryError, match="unknown test-time augmentation"):
        predict_file(run, image, tmp_path / "x.nii.gz", box=((6, 5, 24, 20), 4), tta="mirror")


def test_slicer_nrrd_holds_the_nifti_prediction_on_the_same_voxel_corners(run: LoadedRun, image: Path, tmp_path: Path):
    box, limits = ((6, 5, 24, 20), 4), (3, 5)
    nifti = predict_file(run, image, tmp_path / "pred.nii.gz", box=box, z_range=limits)
    seg = predict_file(run, image, tmp_path / "pred.seg.nrrd", box=box, z_range=limits, out_format="nrrd")
    assert seg.out_format == "nrrd" and seg.labels == nifti.labels == {1: "organ"}  # the store's one label
    written = nib.load(tmp_path / "pred.nii.gz")
    data, header = nrrd.read(str(tmp_path / "pred.seg.nrrd"), index_order="F")
    np.testing.assert_array_equal(data, np.asarray(written.dataobj))
    assert (header["Segment0_Name"], header["Segment0_LabelValue"]) == ("organ", "1") and seg.voxels == nifti.voxels
    corners = np.array([[a, b, c] for a in (-0.5, 7.5) for b in (-0.5, 29.5) for c in (-0.5, 25.5)])  # SOURCE_SHAPE
    lps = header["space origin"] + corners @ header["space directions"]
    np.testing.assert_allclose(lps * [-1, -1, 1], nib.affines.apply_affine(written.affine, corners), atol=1e-4)


def test_dicom_seg_of_a_dicom_series_holds_the_prediction_per_instance(run: LoadedRun, tmp_path: Path):
    series = write_dicom_series(_ct(SOURCE_SHAPE, 7)[0], AFFINE, tmp_path / "series")
    box, limits = ((6, 5, 24, 20), 4), (3, 5)
    nifti = predict_file(run, series, tmp_path / "pred.nii.gz", box=box, z_range=limits)
    report = predict_file(run, series, tmp_path / "pred.dcm", box=box, z_range=limits, out_format="dicom-seg")
    assert report.voxels == nifti.voxels and report.out_format == "dicom-seg"
    predicted = np.asarray(nib.load(tmp_path / "pred.nii.gz").dataobj)  # (X, Y, Z) on the series' grid
    read = read_volume(series).array
    seg = hd.seg.segread(tmp_path / "pred.dcm")
    assert seg.get_segment_description(1).segment_label == "organ" and seg.get_segment_numbers() == [1]
    instances = [pydicom.dcmread(f) for f in sorted(series.glob("*.dcm"))]
    uids = [ds.SOPInstanceUID for ds in instances]
    assert {uid for _, _, uid in seg.get_source_image_uids()} == set(uids)
    frames = seg.get_pixels_by_source_instance(uids, combine_segments=True)
    for ds, frame in zip(instances, frames):  # each instance's slice found by its pixels, not its position
        (k,) = [k for k in range(read.shape[2]) if np.array_equal(read[:, :, k].T, ds.pixel_array)]
        np.testing.assert_array_equal(frame, predicted[:, :, k].T)
    assert frames.any()


def test_propagation_uses_the_previous_slice_box_and_stops_on_empty(run: LoadedRun):
    rng = np.random.default_rng(0)
    volume = rng.integers(0, 30, (7, 40, 48), dtype=np.uint8)
    volume[1:6, 12:28, 14:34] = 200
    out = propagate_box(run.model, volume, (14, 12, 34, 28), 3)
    filled = [z for z in range(7) if out[z].any()]
    assert out[3].any() and filled == list(range(filled[0], filled[-1] + 1)) and len(filled) > 1
    for k in range(7):
        if k == 3:
            continue
        source = k - 1 if k > 3 else k + 1
        if source not in filled:
            assert not out[k].any()  # never reached: the walk stopped before
            continue
        again = segment_slice(run.model, volume[k][None], [Prompt(box=tight_box(out[source]))])[0] > 0.5
        np.testing.assert_array_equal(out[k], again)
    assert not propagate_box(run.model, volume, (14, 12, 34, 28), 3, threshold=0.999999).any()
    limited = propagate_box(run.model, volume, (14, 12, 34, 28), 3, z_range=(2, 4))
    np.testing.assert_array_equal(limited[2:5], out[2:5])
    assert not limited[:2].any() and not limited[5:].any()
    with pytest.raises(ValidationError, match="z range 4-6 must hold the start slice z=3"):
        propagate_box(run.model, volume, (14, 12, 34, 28), 3, z_range=(4, 6))


def test_prompt_mask_gives_one_label_per_prompt_label(run: LoadedRun, image: Path, tmp_path: Path):
    prompt = np.zeros(SOURCE_SHAPE, dtype=np.uint8)
    prompt[2, 8:20, 6:18] = 1  # array axis 0 is the canonical slice axis
    prompt[5, 10:22, 8:20] = 3
    prompt[5, 2:6, 2:6] = 1
    write_nifti(prompt, AFFINE, tmp_path / "prompt.nii.gz")
    report = predict_file(run, image, tmp_path / "out.nii.gz", prompt_mask=tmp_path / "prompt.nii.gz", context=True)
    out = np.asarray(nib.load(tmp_path / "out.nii.gz").dataobj)
    assert out.shape == SOURCE_SHAPE and set(np.unique(out)) <= {0, 1, 3} and report.context
    assert set(np.flatnonzero(out.reshape(SOURCE_SHAPE[0], -1).any(axis=1))) <= {2, 5}
    assert set(report.voxels) <= {1, 3} and report.voxels


def test_the_frame_to_slice_resampling_mixes_probabilities_not_logits():
    model = build_model("unet", labels=("wm",), seed=0)
    logits = torch.full((1, 1, 256, 256), -1.0)
    logits[..., :128] = 8.0  # confident inside, unsure outside, as a U-Net's white matter and background
    probs = to_probabilities(model, logits, (256, 256), (256, 99))  # grid column 49 sits halfway between 127 and 128
    mixed = (torch.sigmoid(torch.tensor(8.0)) + torch.sigmoid(torch.tensor(-1.0))) / 2
    assert probs[0, 0, 49] == pytest.approx(float(mixed), abs=1e-4)  # 0.634; mixing logits would give 0.971
    assert probs[0, 0, 48] > 0.99 and probs[0, 0, 50] < 0.27


def test_context_channels_repeat_the_edge_slices():
    volume = np.arange(3 * 2 * 2, dtype=np.uint8).reshape(3, 2, 2)
    np.testing.assert_array_equal(slice_channels(volume, 0, True), volume[[0, 0, 1]])
    np.testing.assert_array_equal(slice_channels(volume, 2, True), volume[[1, 2, 2]])
    np.testing.assert_array_equal(slice_channels(volume, 1, False), volume[[1]])


def _meta(method: str, params: dict, modality: str, resampled: bool) -> CaseMeta:
    eye = tuple(tuple(float(v) for v in row) for row in np.eye(4))
    return CaseMeta(
        "c",
        modality,
        {1: "x"},
        Geometry(eye, (1.0, 1.0, 2.0), eye, (4, 4, 4), ("R", "A", "S"), resampled),
        Normalisation(method, 0.0, 1.0, params),
        Provenance("real", "s", "h"),
    )


def test_new_images_follow_the_stores_normalisation_rule():
    window = ingest_config_for(_meta("window:custom", {"level": 50.0, "width": 300.0}, "CT", False))
    assert window.window == (50.0, 300.0) and window.spacing is None and window.min_object_voxels == 0
    assert ingest_config_for(_meta("window:lung", {"level": -600.0, "width": 1500.0}, "CT", False)).window == "lung"
    mr = ingest_config_for(_meta("percentile", {"percentiles": [1.0, 99.0], "nonzero": True}, "MR", True))
    assert (mr.modality, mr.percentiles, mr.spacing, mr.window) == ("MR", (1.0, 99.0), (1.0, 1.0, 2.0), None)
    assert ingest_config_for(_meta("none", {"input_dtype": "uint8"}, "US", False)).keep_uint8
    with pytest.raises(ConfigError, match="'zscore'"):
        ingest_config_for(_meta("zscore", {}, "MR", False))


def test_faults_name_the_bad_value(run: LoadedRun, image: Path, tmp_path: Path):
    out = tmp_path / "o.nii.gz"
    with pytest.raises(CaseNotFoundError, match="missing.nii.gz"):
        predict_file(run, tmp_path / "missing.nii.gz", out, box=((1, 1, 5, 5), 1))
    with pytest.raises(ValidationError, match=r"box \(0, 0, 31, 5\).*\(8, 26, 30\)"):
        predict_file(run, image, out, box=((0, 0, 31, 5), 2))
    with pytest.raises(ValidationError, match=r"z=8 is out of range.*\(8, 26, 30\)"):
        predict_file(run, image, out, box=((0, 0, 5, 5), 8))
    write_nifti(np.zeros(SOURCE_SHAPE, np.uint8), AFFINE, tmp_path / "empty.nii.gz")
    with pytest.raises(ValidationError, match="empty.nii.gz.* is empty"):
        predict_file(run, image, out, prompt_mask=tmp_path / "empty.nii.gz")
    with pytest.raises(ConfigError, match="exactly one prompt"):
        predict_file(run, image, out)
    assert not out.exists()
    with pytest.raises(ConfigError, match=r"patient.nii.gz: --format dicom-seg needs a DICOM series"):
        predict_file(run, image, tmp_path / "o.dcm", box=((1, 1, 5, 5), 1), out_format="dicom-seg")
    with pytest.raises(ConfigError, match=r"o.nii.gz: --format nrrd writes files ending in .seg.nrrd"):
        predict_file(run, image, out, box=((1, 1, 5, 5), 1), out_format="nrrd")
    assert not (tmp_path / "o.dcm").exists() and not out.exists()


def test_cli_faults(image: Path, tmp_path: Path):
    runner = CliRunner()
    missing_run = tmp_path / "no-run"
    result = runner.invoke(
        app,
        ["predict", str(missing_run), "--image", str(image), "--box", "1,1,5,5@1", "--out", str(tmp_path / "o.nii.gz")],
    )
    assert result.exit_code == 2 and str(missing_run) in result.output
    result = runner.invoke(
        app,
        [
            "predict",
            str(missing_run),
            "--image",
            str(tmp_path / "nope.nii.gz"),
            "--box",
            "1,1,5,5@1",
            "--out",
            str(tmp_path / "o.nii.gz"),
        ],
    )
    assert result.exit_code == 2 and "nope.nii.gz" in result.output
    result = runner.invoke(
        app,
        ["predict", str(missing_run), "--image", str(image), "--box", "1,1,5@1", "--out", str(tmp_path / "o.nii.gz")],
    )
    assert result.exit_code == 2 and "'1,1,5@1'" in result.output


@pytest.mark.slow
def test_litemedsam_segments_a_disc_on_a_non_square_slice():
    """Real LiteMedSAM, zero-shot, tight box: the frame geometry (resize, pad, crop, resize back) is right."""
    model = build_model("litemedsam")
    rng = np.random.default_rng(0)
    image = rng.integers(20, 60, (120, 170)).astype(np.uint8)
    yy, xx = np.mgrid[:120, :170]
    gt = ((yy - 60) / 20) ** 2 + ((xx - 95) / 30) ** 2 <= 1
    image[gt] = 190
    prob = segment_slice(model, image[None], [Prompt(box=tight_box(gt))])[0]
    assert prob.shape == gt.shape and dice(prob > 0.5, gt) > 0.9  # measured 0.976
