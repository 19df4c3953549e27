"""medigan packages: export a samdata generator, load it back through medigan's own Generators API, errors."""

from __future__ import annotations

import json
import os
import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from samdata.errors import CaseNotFoundError, ConfigError
from samdata.synth.checkpoint import load_generator
from samdata.synth.medigan_export import export_medigan, model_id_for
from samdata.synth.medigan_io import MediganModel, read_outputs, resolve_metadata
from samdata.synth.medigan_package import decode
from samdata.synth.sample import generate_raw
from samdata.synth.train import GanConfig, train_gan
from tests.samdata.synth.pairs_data import TINY, blob_pairs

pytestmark = pytest.mark.filterwarnings("ignore:pkg_resources is deprecated:UserWarning")


@pytest.fixture(scope="module")
def gen_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gen") / "blobgen"
    train_gan(blob_pairs(), path, GanConfig(steps=2, **TINY), generator_id="blob_gen")
    return path


@pytest.fixture(scope="module")
def package(gen_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_medigan(gen_dir, tmp_path_factory.mktemp("export"))


def test_export_writes_a_package_medigan_accepts(package: Path) -> None:
    from medigan.config_manager import ConfigManager

    assert package.name == model_id_for("blob_gen") == "SAMDATA_BLOB_GEN"
    assert sorted(p.name for p in package.iterdir()) == [
        "__init__.py",
        "generator.json",
        "generator.pt2",
        "metadata.json",
    ]
    metadata = json.loads((package / "metadata.json").read_text())
    entry = metadata["SAMDATA_BLOB_GEN"]
    entry["execution"]["package_link"] = str(package)
    manager = ConfigManager(config_dict=metadata)
    assert manager.is_model_metadata_valid("SAMDATA_BLOB_GEN", metadata, is_local_model=True)
    assert entry["selection"]["generates"] == ["image", "mask"] and entry["selection"]["organ"] == ["blob"]
    assert "sha256" in entry["description"]["comment"]


def test_round_trip_through_medigan_gives_our_samples(gen_dir: Path, package: Path, tmp_path: Path) -> None:
    cwd, path = os.getcwd(), list(sys.path)
    with MediganModel("SAMDATA_BLOB_GEN", package) as model:
        assert os.getcwd() != cwd and "models" in sys.modules
        pairs = model.generate(5, tmp_path / "out", {"seed": 4, "start_index": 10})
    assert os.getcwd() == cwd and sys.path == path and "models" not in sys.modules
    assert [p.name for p in pairs] == [f"batch_0_{k}_img.png" for k in range(10, 15)]
    generator, _, _ = load_generator(gen_dir)
    ours = decode(generate_raw(generator, 4, range(10, 15)).numpy())
    for pair, (image, mask) in zip(pairs, ours):
        assert pair.image.shape == (32, 32) and pair.mask is not None
        assert np.abs(pair.image.astype(int) - image).max() <= 1
        assert (pair.mask != (mask > 0)).mean() < 0.01


def test_zip_package_loads_and_generates(gen_dir: Path, tmp_path: Path) -> None:
    archive = export_medigan(gen_dir, tmp_path, model_id="BLOBS_ZIP", as_zip=True)
    assert archive.suffix == ".zip" and not (tmp_path / "BLOBS_ZIP").exists()
    with zipfile.ZipFile(archive) as zf:
        assert "BLOBS_ZIP/metadata.json" in zf.namelist()
    with MediganModel("BLOBS_ZIP", archive) as model:
        pairs = model.generate(2, tmp_path / "out")
    assert len(pairs) == 2 and all(p.mask is not None for p in pairs)
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(tmp_path / "unzipped")  # the package one level down, as users unzip medigan archives
    with MediganModel("BLOBS_ZIP", tmp_path / "unzipped") as model:
        assert len(model.generate(1, tmp_path / "out2")) == 1
    with pytest.raises(ConfigError, match="already exists"):
        export_medigan(gen_dir, tmp_path, model_id="BLOBS_ZIP", as_zip=True)


def test_missing_or_incomplete_packages_say_what_to_put_where(package: Path, tmp_path: Path) -> None:
    with pytest.raises(CaseNotFoundError, match="never downloads"):
        MediganModel("SAMDATA_BLOB_GEN", tmp_path / "nowhere")
    bare = Path(shutil.copytree(package, tmp_path / "bare"))
    (bare / "metadata.json").unlink()
    with pytest.raises(CaseNotFoundError, match="metadata.json"):
        MediganModel("SAMDATA_BLOB_GEN", bare)
    config = tmp_path / "global.json"
    config.write_text((package / "metadata.json").read_text())
    assert resolve_metadata("SAMDATA_BLOB_GEN", bare, config)["execution"]["model_name"] == "generator"
    with pytest.raises(ConfigError, match="not 'OTHER'"):
        MediganModel("OTHER", package)
    (bare / "generator.pt2").unlink()
    cwd = os.getcwd()
    with pytest.raises(CaseNotFoundError, match="weights file 'generator.pt2'"):
        with MediganModel("SAMDATA_BLOB_GEN", bare, config=config):
            pass
    assert os.getcwd() == cwd


def test_read_outputs_pairs_files_by_name(tmp_path: Path) -> None:
    grey = np.full((8, 6), 90, np.uint8)
    mask = np.zeros((8, 6), np.uint8)
    mask[2:5, 1:4] = 255
    Image.fromarray(grey).save(tmp_path / "batch_0_0_img.png")
    Image.fromarray(mask).save(tmp_path / "batch_0_0_mask.png")
    Image.fromarray(np.stack([grey] * 3, -1)).save(tmp_path / "batch_0_1_img.png")
    Image.fromarray(grey).save(tmp_path / "solo.png")
    np.save(tmp_path / "x_image.npy", np.zeros((4, 4), np.float32))
    np.save(tmp_path / "x_label.npy", np.eye(4, dtype=np.uint8) * 2)
    pairs = {p.name: p for p in read_outputs(tmp_path)}
    assert sorted(pairs) == ["batch_0_0_img.png", "batch_0_1_img.png", "solo.png", "x_image.npy"]
    assert pairs["batch_0_0_img.png"].mask.sum() == 9 and pairs["batch_0_0_img.png"].mask.max() == 1
    assert pairs["batch_0_1_img.png"].mask is None and pairs["batch_0_1_img.png"].image.shape == (8, 6, 3)
    assert pairs["x_image.npy"].mask.max() == 2  # small integers stay label indices
