"""Ingest pipeline: round trip, idempotency, bad inputs, resume after SIGKILL, Dask by address."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from pipelines.ingest import CleanedLabel, ClusterConfig, clean_label, ingest, stored_arrays
from samdata.case import Case, Volume
from samdata.io.layouts import discover
from samdata.io.sample_data import write_phantoms
from samdata.normalise import IngestConfig
from samdata.prepare import assemble_case, canonical_case, prepare_case
from storage import SliceStore
from tests.samdata.test_prepare import LPS, PERMUTED, PROVENANCE, ct_pair

SHAPE = (40, 36, 10)
CONFIG = IngestConfig(modality="CT", window="abdomen", min_object_voxels=20, min_object_pixels=5)


@pytest.fixture()
def phantoms(tmp_path: Path) -> Path:
    """Four small seeded CT phantoms in the MSD layout."""
    return write_phantoms(tmp_path / "src", cases=4, seed=3, shape=SHAPE)


def _images(root: Path) -> list[Path]:
    return sorted((root / "imagesTr").iterdir())


def _label_for(root: Path, image: Path) -> Path:
    name = image.name.replace("_0000", "")
    return root / "labelsTr" / name


def test_ingest_round_trip_and_idempotent(phantoms: Path, tmp_path: Path) -> None:
    store_url = tmp_path / "store"
    first = ingest(phantoms, store_url, CONFIG)
    assert first.ok and len(first.added) == 4 and first.snapshot_id
    store = SliceStore.open(store_url)
    assert sorted(store.case_ids()) == sorted(first.added)
    assert store.verify() == []
    case_id = first.added[0]
    image = _images(phantoms)[0]
    meta = store.case_meta(case_id)
    assert meta.modality == "CT" and meta.normalisation.method == "window:abdomen"
    assert meta.provenance.origin == "real" and meta.provenance.source_hash
    objects = store.objects()
    assert {"liver", "spine"} <= set(objects["label_name"])
    assert image.exists()

    again = ingest(phantoms, store_url, CONFIG)
    assert again.added == [] and sorted(again.skipped) == sorted(first.added)
    assert SliceStore.open(store_url).snapshot_id == first.snapshot_id  # nothing new committed


def test_stores_with_sha256_hashes_stay_idempotent(phantoms: Path, tmp_path: Path, monkeypatch) -> None:
    """A store written before the ``blake2b:`` prefix holds bare SHA-256 digests: the same sources
    are still recognised (and skipped); a changed case is re-ingested under the new hash."""
    import pipelines.ingest as ingest_module
    from samdata.io.readers import source_hash

    store_url = tmp_path / "store"
    legacy = ingest_module.item_hash
    with monkeypatch.context() as patch:  # ingest as the older code did
        patch.setattr(ingest_module, "item_hash", lambda item, algorithm="sha256": legacy(item, "sha256"))
        first = ingest(phantoms, store_url, CONFIG)
    hashes = SliceStore.open(store_url).source_hashes()
    assert first.ok and len(hashes) == 4 and not any(":" in h for h in hashes)
    again = ingest(phantoms, store_url, CONFIG)
    assert again.added == [] and sorted(again.skipped) == sorted(first.added)
    changed = _images(phantoms)[0]
    nii = nib.load(changed)
    nib.save(nib.Nifti1Image(np.asarray(nii.dataobj) + 1, nii.affine), changed)
    third = ingest(phantoms, store_url, CONFIG)
    assert len(third.updated) == 1 and len(third.skipped) == 3
    new_hash = source_hash(changed, _label_for(phantoms, changed))
    stored = SliceStore.open(store_url).source_hashes()
    assert new_hash.startswith("blake2b:") and stored.get(new_hash) == third.updated[0], stored


def _corrupt_dataset(root: Path) -> dict[str, str]:
    """Break five of eight cases in different ways; return case_id -> expected text in the error."""
    images = _images(root)
    expected = {}
    # 1 truncated gzip
    img = images[0]
    data = img.read_bytes()
    img.write_bytes(data[: len(data) // 3])
    expected[img.name.split("_0000")[0].split(".")[0]] = img.name
    # 2 a non-image file with an image extension
    img = images[1]
    img.write_bytes(b"this is not a NIfTI file at all\n" * 10)
    expected[img.name.split("_0000")[0].split(".")[0]] = img.name
    # 3 label shape mismatch
    img = images[2]
    lab = _label_for(root, img)
    nii = nib.load(lab)
    arr = np.asarray(nii.dataobj)[:-2]
    nib.save(nib.Nifti1Image(arr, nii.affine), lab)
    expected[img.name.split("_0000")[0].split(".")[0]] = lab.name
    # 4 negative labels
    img = images[3]
    lab = _label_for(root, img)
    nii = nib.load(lab)
    arr = np.asarray(nii.dataobj).astype(np.int16)
    arr[0, 0, 0] = -3
    nib.save(nib.Nifti1Image(arr, nii.affine), lab)
    expected[img.name.split("_0000")[0].split(".")[0]] = lab.name
    # 5 NaN intensities
    img = images[4]
    nii = nib.load(img)
    arr = np.asarray(nii.dataobj).astype(np.float32)
    arr[1, 1, 1] = np.nan
    nib.save(nib.Nifti1Image(arr, nii.affine), img)
    expected[img.name.split("_0000")[0].split(".")[0]] = img.name
    return expected


def test_prefetch_and_sequential_write_the_same_store(phantoms: Path, tmp_path: Path) -> None:
    stores = {}
    for prefetch in (True, False):
        url = tmp_path / f"store-{prefetch}"
        report = ingest(phantoms, url, CONFIG, cluster=ClusterConfig(prefetch=prefetch))
        assert report.ok and len(report.added) == 4
        stores[prefetch] = SliceStore.open(url)
    with_prefetch, sequential = stores[True], stores[False]
    assert with_prefetch.case_ids() == sequential.case_ids()
    assert with_prefetch.objects().equals(sequential.objects())
    for case_id in with_prefetch.case_ids():
        a, b = with_prefetch.read_case(case_id), sequential.read_case(case_id)
        assert np.array_equal(a.image, b.image) and np.array_equal(a.label, b.label)


def test_window_applied_while_reading_writes_the_same_store(phantoms: Path, tmp_path: Path, monkeypatch) -> None:
    """The CT window applied block by block while the image is inflated, and the label cleaned on
    its reader thread, give the store that reading everything first and normalising after gives."""
    import pipelines.ingest as ingest_module
    import samdata.prepare as prepare_module

    called = []
    original = prepare_module.normalise_intensity
    monkeypatch.setattr(prepare_module, "normalise_intensity", lambda *a: called.append(1) or original(*a))
    fused = SliceStore.open(ingest(phantoms, tmp_path / "fused", CONFIG).store)
    assert called == []  # every image came windowed from its reader
    monkeypatch.setattr(ingest_module, "window_transform", lambda window: None)
    monkeypatch.setattr(ingest_module, "clean_label", lambda label, config, case_id: None)
    plain = SliceStore.open(ingest(phantoms, tmp_path / "plain", CONFIG).store)
    assert len(called) == 4  # read whole, then normalised
    assert fused.case_ids() == plain.case_ids() and fused.objects().equals(plain.objects())
    for case_id in fused.case_ids():
        a, b = fused.read_case(case_id), plain.read_case(case_id)
        assert a.meta == b.meta and np.array_equal(a.image, b.image) and np.array_equal(a.label, b.label)


CLEANING = IngestConfig(min_object_voxels=100, min_object_pixels=10)
NAMES = {1: "liver", 3: "spleen"}


def _plain(image: Volume, label: Volume) -> Case:
    """prepare_case (copies, one thread) with fixed ids: the reference for ingest's path."""
    return prepare_case(image, label, case_id="ct_001", config=CLEANING, label_names=NAMES, provenance=PROVENANCE)


def _given_up(image: Volume, label: Volume, cleaned: CleanedLabel | None = None) -> Case:
    """A case prepared as prepare_item prepares what it read: arrays given up, steps overlapped."""
    canonical = canonical_case(image, label, case_id="ct_001", config=CLEANING)
    stored_image, stored_label = stored_arrays(canonical, CLEANING, cleaned, None)
    return assemble_case(canonical, stored_image, stored_label, label_names=NAMES, provenance=PROVENANCE, split="train")


def _same(got: Case, expected: Case) -> bool:
    return (
        got.meta == expected.meta
        and np.array_equal(got.label, expected.label)
        and np.array_equal(got.image, expected.image)
    )


@pytest.mark.parametrize("affine", [np.diag([1.0, 1.5, 2.5, 1.0]), LPS, PERMUTED])
def test_arrays_given_up_are_cleaned_in_place_with_the_same_result(affine: np.ndarray) -> None:
    """Ingest's path gives prepare_case's case; a Fortran-ordered map (as NIfTI is read) whose
    reorientation only flips axes is rearranged and cleaned in place without a copy, one whose axes are
    permuted is copied."""
    image, label = ct_pair(affine)
    expected = _plain(image, Volume(label.array.copy(), affine, label.path))
    fortran = Volume(np.asfortranarray(label.array), affine, label.path)
    got = _given_up(image, fortran)
    assert _same(got, expected)
    assert np.shares_memory(got.label, fortran.array) == (affine is not PERMUTED)


@pytest.mark.parametrize("affine", [np.diag([1.0, 1.5, 2.5, 1.0]), LPS, PERMUTED])
def test_a_label_cleaned_before_its_image_gives_the_same_case(affine: np.ndarray) -> None:
    """clean_label (ingest's label thread) + the rest = prepare_case on the raw label, the map used as
    cleaned; resampling configs leave the labels to be cleaned after resampling."""
    image, label = ct_pair(affine)
    expected = _plain(image, Volume(label.array.copy(), affine, label.path))
    given = Volume(np.asfortranarray(label.array), affine, label.path)
    early = clean_label(given, CLEANING, "ct_001")
    assert early is not None and early.present.tolist() == [1, 2, 3]
    got = _given_up(image, given, early)
    assert _same(got, expected)
    assert np.shares_memory(got.label, early.label_zyx)  # used as cleaned, not cleaned again
    assert clean_label(label, replace(CLEANING, spacing=(1.0, 1.0, 1.0)), "ct_001") is None


def _rotated(degrees: float) -> np.ndarray:
    """An affine rotated about S by ``degrees``, with its origin away from zero."""
    theta = np.deg2rad(degrees)
    affine = np.eye(4)
    affine[:2, :2] = [[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]]
    affine[:3, 3] = [5.0, -7.0, 3.0]
    return affine


@pytest.mark.parametrize("angle", [45.0, 225.0])
def test_a_label_cleaned_on_another_layout_is_cleaned_again_on_the_images(angle: float) -> None:
    """At 45° the image's and the label's affines (1e-4 apart, within tolerance) pick different axes
    for RAS+; the label, cleaned in place on its own layout (at 225° its axes are flipped: the map is
    rearranged in its own memory), goes back to the file's order and is cleaned again on the image's:
    the same case as the plain path, its values as read kept."""
    image, label = ct_pair()
    image = Volume(image.array, _rotated(angle + 0.006), image.path)
    label_affine = _rotated(angle - 0.006)
    assert not np.array_equal(
        nib.orientations.io_orientation(image.affine), nib.orientations.io_orientation(label_affine)
    )
    expected = _plain(image, Volume(label.array.copy(), label_affine, label.path))
    given = Volume(np.asfortranarray(label.array), label_affine, label.path)
    got = _given_up(image, given, clean_label(given, CLEANING, "ct_001"))
    assert _same(got, expected) and got.meta.label_names == {1: "liver", 2: "label_2", 3: "spleen"}


def test_bad_inputs_are_isolated_and_fixable(tmp_path: Path) -> None:
    root = write_phantoms(tmp_path / "src", cases=8, seed=5, shape=SHAPE)
    pristine = tmp_path / "pristine"
    shutil.copytree(root, pristine)
    store_url = tmp_path / "store"
    ingest(pristine, tmp_path / "unused", CONFIG)  # a clean run elsewhere works
    expected = _corrupt_dataset(root)
    report = ingest(root, store_url, CONFIG)
    assert not report.ok and len(report.added) == 3
    assert set(report.failed) == set(expected), report.failed
    for case_id, fragment in expected.items():
        assert fragment in report.failed[case_id], (case_id, report.failed[case_id])
        assert "\n" not in report.failed[case_id]
    store = SliceStore.open(store_url)
    assert store.verify() == [] and len(store.case_ids()) == 3
    good_snapshot = store.snapshot_id
    # fix one file (restore it) and re-run: only that case is ingested
    broken = sorted(expected)[0]
    for sub in ("imagesTr", "labelsTr"):
        for path in (pristine / sub).iterdir():
            if path.name.startswith(broken):
                shutil.copy(path, root / sub / path.name)
    rerun = ingest(root, store_url, CONFIG)
    assert rerun.added == [broken] and len(rerun.skipped) == 3 and len(rerun.failed) == 4
    assert SliceStore.open(store_url).snapshot_id != good_snapshot
    assert SliceStore.open(store_url, snapshot=good_snapshot).case_ids() == store.case_ids()


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from pipelines.ingest import ClusterConfig, ingest
    from samdata.normalise import IngestConfig
    done = []
    def progress(case_id, status, detail):
        done.append(case_id)
        if len(done) == 3:
            os.kill(os.getpid(), signal.SIGKILL)
    ingest(sys.argv[1], sys.argv[2], IngestConfig(modality="CT", window="abdomen", min_object_voxels=20,
           min_object_pixels=5), cluster=ClusterConfig(batch=1), progress=progress)
    """
)


def test_resume_after_sigkill(phantoms: Path, tmp_path: Path) -> None:
    store_url = tmp_path / "store"
    proc = subprocess.run(
        [sys.executable, "-c", KILLER, str(phantoms), str(store_url)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == -9, proc.stderr
    store = SliceStore.open(store_url, create=True)
    assert store.case_ids() == []  # main still at its last (empty) snapshot
    assert store.verify() == []
    seen: list[tuple[str, str, str]] = []
    report = ingest(
        phantoms, store_url, CONFIG, cluster=ClusterConfig(batch=1), progress=lambda c, s, d: seen.append((c, s, d))
    )
    assert report.ok and len(report.added) == 4
    resumed = [c for c, _s, d in seen if "resumed" in d]
    assert len(resumed) >= 2, seen  # the checkpointed cases were not prepared again
    store = SliceStore.open(store_url)
    assert len(store.case_ids()) == 4 and store.verify() == []


def test_dask_local_cluster_by_address(phantoms: Path, tmp_path: Path) -> None:
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        report = ingest(
            phantoms, tmp_path / "store", CONFIG, cluster=ClusterConfig(scheduler=cluster.scheduler_address)
        )
    assert report.ok and len(report.added) == 4
    store = SliceStore.open(tmp_path / "store")
    assert store.verify() == [] and len(store.objects()) > 0
    serial = ingest(phantoms, tmp_path / "serial", CONFIG)
    other = SliceStore.open(tmp_path / "serial")
    for case_id in serial.added:
        a, b = store.read_case(case_id), other.read_case(case_id)
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.label, b.label)


def test_local_cluster_of_two_workers_matches_serial(phantoms: Path, tmp_path: Path) -> None:
    report = ingest(phantoms, tmp_path / "store", CONFIG, cluster=ClusterConfig(workers=2))
    serial = ingest(phantoms, tmp_path / "serial", CONFIG)
    assert report.ok and sorted(report.added) == sorted(serial.added) and len(report.added) == 4
    store, other = SliceStore.open(tmp_path / "store"), SliceStore.open(tmp_path / "serial")
    assert store.verify() == [] and store.source_hashes() == other.source_hashes()
    for case_id in serial.added:
        np.testing.assert_array_equal(store.read_case(case_id).image, other.read_case(case_id).image)


def test_local_workers_keep_glibc_malloc_defaults_and_import_ingest() -> None:
    from contextlib import ExitStack

    from pipelines.ingest import _start_client

    with ExitStack() as stack:
        client = _start_client(ClusterConfig(workers=2), stack)
        env = client.run(lambda: __import__("os").environ.get("MALLOC_TRIM_THRESHOLD_"))
        loaded = client.run(lambda: "pipelines.ingest" in __import__("sys").modules)
    # Dask's nanny would set 65536; a value of the user's own (samdata flows sets 1 GiB) is inherited as it is
    own = os.environ.get("MALLOC_TRIM_THRESHOLD_")
    assert len(env) == 2 and set(env.values()) == {None if own == "65536" else own}
    assert set(loaded.values()) == {True}


def test_a_source_that_fails_to_hash_is_reported_with_threads(
    phantoms: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pipelines.ingest as pipeline

    real_hash, victim = pipeline.item_hash, _images(phantoms)[1]

    def flaky(item):  # the file vanishes between discovery and hashing
        if item.image == victim:
            raise FileNotFoundError(2, "No such file or directory", str(victim))
        return real_hash(item)

    monkeypatch.setattr(pipeline, "item_hash", flaky)
    serial, serial_report = pipeline.plan_ingest(phantoms, tmp_path / "a", CONFIG, threads=1)
    threaded, threaded_report = pipeline.plan_ingest(phantoms, tmp_path / "b", CONFIG, threads=2)
    assert len(threaded.todo) == 3 and [c.digest for c in threaded.todo] == [c.digest for c in serial.todo]
    assert list(threaded_report.failed) == ["phantom_001"] and threaded_report.failed == serial_report.failed
    assert str(victim) in threaded_report.failed["phantom_001"]


def test_free_form_file_names_ingest_under_safe_ids_in_both_layouts(phantoms: Path, tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    for sub, dst in (("imagesTr", "images"), ("labelsTr", "labels")):
        (plain / dst).mkdir(parents=True)
        for f in sorted((phantoms / sub).iterdir())[:2]:
            shutil.copy(f, plain / dst / f.name.replace("phantom_001", "fall ü 01"))
        blank = sorted((phantoms / sub).iterdir())[2]
        shutil.copy(blank, plain / dst / "   .nii.gz")  # a name with nothing usable: that case alone fails
    for f in list((phantoms / "imagesTr").iterdir()) + list((phantoms / "labelsTr").iterdir()):
        if "phantom_002" in f.name:
            f.rename(f.with_name(f.name.replace("phantom_002", "Herz Patient (2)")))
    for source in (plain, phantoms):
        report = ingest(source, tmp_path / f"store-{source.name}", CONFIG)
        store = SliceStore.open(tmp_path / f"store-{source.name}")
        names = store.info()["case_names"]
        assert len(names) == 1 and store.verify() == []
        ((case_id, name),) = names.items()
        assert name in ("fall ü 01", "Herz Patient (2)") and case_id in report.added
        assert store.case_meta(case_id).provenance.name == name
    assert any("cannot be a case id" in p for p in discover(plain).problems)


def test_headers_over_budget_or_off_grid_fail_alone_before_decoding(phantoms: Path, tmp_path: Path) -> None:
    from tests.samdata.conftest import _write_dicom_series as write_dicom_series
    from tests.samdata.io.test_headers import declared_nifti

    declared_nifti(phantoms / "imagesTr" / "forged.nii.gz", (2048, 2048, 1024))  # 8 GB declared, nothing stored
    declared_nifti(phantoms / "labelsTr" / "forged.nii.gz", (2048, 2048, 1024), np.uint8)
    declared_nifti(phantoms / "imagesTr" / "offgrid.nii.gz", (64, 64, 8))
    declared_nifti(phantoms / "labelsTr" / "offgrid.nii.gz", (32, 32, 8), np.uint8)
    report = ingest(phantoms, tmp_path / "store", CONFIG)
    assert len(report.added) == 4 and {"forged", "offgrid"} <= set(report.failed)  # (+ dataset.json: numTraining)
    assert "declares shape 2048 x 2048 x 1024 = 4,294,967,296 voxels, over the voxel budget" in report.failed["forged"]
    assert "not decoded" in report.failed["forged"] and "neither decoded" in report.failed["offgrid"]
    assert SliceStore.open(tmp_path / "store").verify() == []
    dicom = tmp_path / "dicom"
    write_dicom_series(np.zeros((40, 36, 10)), np.eye(4), dicom / "images" / "scan")
    small = IngestConfig(modality="CT", max_voxels=10_000)
    report = ingest(dicom, tmp_path / "store-dicom", small)
    assert "40 x 36 x 10 = 14,400 voxels, over the voxel budget of 10,000" in report.failed["scan"]
