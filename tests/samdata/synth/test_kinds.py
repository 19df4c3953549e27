"""The generator registry: every kind builds or trains and gives valid, seeded pairs; the cgan; medigan cgan."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from samdata.errors import ConfigError, RegistryError
from samdata.synth.cgan import CganConfig, CganSource, train_cgan
from samdata.synth.checkpoint import read_info
from samdata.synth.kinds import KINDS, build_source, kind_entry, open_trained, parse_kind, train_kind
from samdata.synth.medigan_export import export_medigan
from samdata.synth.train import GanConfig
from tests.samdata.synth.pairs_data import atlas

pytestmark = pytest.mark.filterwarnings("ignore:pkg_resources is deprecated:UserWarning")
TINY_CGAN = dict(size=64, width=4, batch_size=2, save_every=2, log_every=1)
TINY_GAN = dict(size=32, width=4, latent=8, batch_size=2, sample_every=0, save_every=2, log_every=1)


def tiny_config(kind: str, steps: int = 2) -> object:
    """A seconds-long training config of a kind that trains."""
    return CganConfig(steps=steps, **TINY_CGAN) if kind == "cgan" else GanConfig(steps=steps, **TINY_GAN)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_gives_valid_seeded_pairs_on_the_reference_grid(kind: str, tmp_path: Path) -> None:
    reference = atlas()
    if KINDS[kind].trains:
        train_kind(kind, reference, tmp_path / "gen", tiny_config(kind), generator_id=f"{kind}_t")
        source = open_trained(tmp_path / "gen", reference)
        assert read_info(tmp_path / "gen").kind == kind
    else:
        source = build_source(kind, reference)
        assert source.generator_id == kind
    batch = source.batch(7, [0, 1, 2])
    assert batch.images.shape == (3, 72, 64) and batch.images.dtype == np.uint8
    assert batch.labels is not None and batch.labels.shape == (3, 72, 64)
    assert set(np.unique(batch.labels)) <= {0, 1, 2, 3} and source.kind == kind
    again = source.batch(7, [1])
    assert np.array_equal(again.images[0], batch.images[1]) and np.array_equal(again.labels[0], batch.labels[1])
    assert len(source.checkpoint_hash) == 64 and source.description.startswith("samdata:")


def test_registry_names_and_specs() -> None:
    assert set(KINDS) == {"deform", "labels2image", "cgan", "fastgan"}
    with pytest.raises(RegistryError, match="cgan, deform, fastgan, labels2image"):
        kind_entry("stylegan")
    name, params = parse_kind("labels2image:mode=random,deform.max_mm=6")
    assert name == "labels2image" and params.mode == "random" and params.deform.max_mm == 6.0
    with pytest.raises(ConfigError, match="needs training first"):
        parse_kind("cgan")
    with pytest.raises(ConfigError, match="unknown key"):
        parse_kind("deform:wobble=3")
    with pytest.raises(ConfigError, match="needs no training"):
        train_kind("deform", atlas(), Path("unused"), CganConfig(), generator_id="x")
    with pytest.raises(ConfigError, match="takes a CganConfig"):
        train_kind("cgan", atlas(), Path("unused"), GanConfig(), generator_id="x")


def test_cgan_resumes_exactly_and_paints_deform_label_maps(tmp_path: Path) -> None:
    reference = atlas()
    straight = train_cgan(reference, tmp_path / "a", CganConfig(steps=4, **TINY_CGAN), generator_id="a")
    train_cgan(reference, tmp_path / "b", CganConfig(steps=2, **TINY_CGAN), generator_id="b")
    resumed = train_cgan(reference, tmp_path / "b", CganConfig(steps=4, **TINY_CGAN), generator_id="b", resume=True)
    a = torch.load(tmp_path / "a" / "generator.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "generator.pt", weights_only=True)
    assert straight.step == resumed.step == 4 and all(torch.equal(a[k], b[k]) for k in a)
    assert set(straight.metrics) == {"loss_d", "loss_g", "l1"}
    with pytest.raises(ConfigError, match="already holds a run"):
        train_cgan(reference, tmp_path / "a", CganConfig(steps=4, **TINY_CGAN), generator_id="a")
    with pytest.raises(ConfigError, match="cannot resume"):
        train_cgan(reference, tmp_path / "b", CganConfig(steps=6, l1=3.0, **TINY_CGAN), generator_id="b", resume=True)
    source = CganSource(tmp_path / "a", reference)
    batch = source.batch(0, [0, 1, 2, 3])
    shapes = source.shapes.batch(0, [0, 1, 2, 3])
    assert np.array_equal(batch.labels, shapes.labels) and batch.parents == shapes.parents  # deform's maps
    assert all(r["paint"] == "cgan" for r in batch.recipes)
    with pytest.raises(ConfigError, match="size"):
        CganConfig(size=100)


def test_medigan_cgan_package_in_a_clean_process(tmp_path: Path) -> None:
    reference = atlas()
    train_cgan(reference, tmp_path / "gen", CganConfig(steps=2, **TINY_CGAN), generator_id="painter")
    with pytest.raises(ConfigError, match="needs the real slices"):
        export_medigan(tmp_path / "gen", tmp_path / "pkg")
    package = export_medigan(tmp_path / "gen", tmp_path / "pkg", reference=reference, as_zip=True)
    direct = CganSource(tmp_path / "gen", reference).batch(5, [2, 3])
    np.savez(tmp_path / "direct.npz", images=direct.images, labels=direct.labels)
    masks = tmp_path / "masks"
    masks.mkdir()
    from PIL import Image

    Image.fromarray(reference.full_labels[1]).save(masks / "a.png")
    script = f"""
import json, numpy as np, sys, warnings
warnings.simplefilter("ignore")
from samdata.synth.medigan_io import MediganModel
with MediganModel("SAMDATA_PAINTER", {str(package)!r}) as model:
    entry = model.entry
    drawn = model.generate(2, {str(tmp_path / "out")!r}, {{"seed": 5, "start_index": 2}})
    painted = model.generate(1, {str(tmp_path / "out2")!r}, {{"seed": 5, "input_path": {str(masks)!r}}})
want = np.load({str(tmp_path / "direct.npz")!r})
print(json.dumps({{
    "function": entry["selection"]["function"], "organ": entry["selection"]["organ"],
    "same_images": all(np.array_equal(p.image, w) for p, w in zip(drawn, want["images"])),
    "same_masks": all(np.array_equal(p.mask, w) for p, w in zip(drawn, want["labels"])),
    "painted": [list(painted[0].image.shape), sorted(int(v) for v in np.unique(painted[0].mask))]}}))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    import json

    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["function"] == ["mask_to_image"] and result["organ"] == ["core", "ring", "spot"]
    assert result["same_images"] and result["same_masks"]
    assert result["painted"] == [[72, 64], [0, 1, 2, 3]]
