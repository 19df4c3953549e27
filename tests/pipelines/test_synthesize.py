"""pipelines.synthesize: real pairs from the store, generator training, gated generation into one commit,
idempotent re-runs, mixtures keeping synthetic cases in train, and the medigan round trip into the store."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from pipelines.mixtures import MixtureConfig, make_mixture
from pipelines.synthesize import (
    SliceQuery,
    SynthConfig,
    build_source,
    case_id_for,
    load_real_pairs,
    open_trained,
    synthesize,
    train_generator,
)
from samdata.case import Case
from samdata.errors import ConfigError, ValidationError
from samdata.synth.checkpoint import load_generator, save_generator
from samdata.synth.gate import GateConfig
from samdata.synth.medigan_export import export_medigan
from samdata.synth.medigan_io import MediganModel
from samdata.synth.medigan_source import MediganSource
from samdata.synth.sample import GanSource
from samdata.synth.train import GanConfig
from storage import SliceStore
from tests.samdata.synth.pairs_data import TINY

pytestmark = pytest.mark.filterwarnings("ignore:pkg_resources is deprecated:UserWarning")
OPEN_GATE = GateConfig(area_slack=100.0, component_slack=100.0, min_distance=0.0, frechet_max=None)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory, mr_disc_case: Callable[..., Case]) -> tuple[Path, Path]:
    """A store of five real cases (one in split test) and a generator trained 2 steps on its blob slices."""
    root = tmp_path_factory.mktemp("synth")
    store = SliceStore.open(root / "store", create=True)
    with store.writer("real cases") as writer:
        for i in range(5):
            writer.write_case(mr_disc_case(f"real{i}", i, "test" if i == 4 else "train"))
    train_generator(
        root / "store",
        root / "gen",
        SliceQuery(labels=("blob",)),
        "fastgan",
        GanConfig(steps=2, **TINY),
        generator_id="discs",
    )
    generator, info, _ = load_generator(root / "gen")  # two steps learn no masks: bias them on, so
    with torch.no_grad():  # every pair has one and the pipeline has work
        generator.out.bias[1] = 4.0
    save_generator(root / "gen", generator, info)
    return root / "store", root / "gen"


@pytest.fixture
def store_path(base: tuple[Path, Path], tmp_path: Path) -> Path:
    return Path(shutil.copytree(base[0], tmp_path / "store"))


def test_load_real_pairs_selects_real_train_slices_of_the_labels(base: tuple[Path, Path]) -> None:
    pairs = load_real_pairs(base[0], SliceQuery(labels=("blob",)))
    assert pairs.keys == tuple((f"real{i}", z) for i in range(4) for z in (1, 2))
    assert pairs.images.shape == (8, 40, 36) and pairs.masks.shape == (8, 1, 40, 36)
    assert pairs.label_values == (1,) and pairs.spacing == (0.7, 0.8, 3.0) and pairs.modality == "MR"
    assert pairs.label_table() == {0: "background", 1: "blob", 2: "rim"}
    assert (pairs.label_map() == 2).sum() == 4 * 9 and pairs.label_map().dtype == np.uint8  # every label kept
    two = load_real_pairs(base[0], SliceQuery(labels=("blob", "rim"), slices=(2,), max_slices=2))
    assert two.keys == (("real0", 2), ("real3", 2)) and two.masks[:, 1].sum() == 2 * 9
    with pytest.raises(ConfigError, match="unknown label name"):
        load_real_pairs(base[0], SliceQuery(labels=("liver",)))
    with pytest.raises(ValidationError, match="no real slices"):
        load_real_pairs(base[0], SliceQuery(labels=("blob",), slices=(0,)))


def test_generate_gate_and_commit_once_with_provenance(base: tuple[Path, Path], store_path: Path) -> None:
    source, reference = open_trained(store_path, base[1])
    assert isinstance(source, GanSource)
    before = SliceStore.open(store_path)
    report = synthesize(store_path, source, reference, SynthConfig(count=6, seed=3, batch_size=4, gate=OPEN_GATE))
    after = SliceStore.open(store_path)
    assert len(after.snapshots()) == len(before.snapshots()) + 1
    assert report.generated == 6 and len(report.batches) == 2 and report.snapshot_id == after.snapshot_id
    written = [c for c in after.case_ids() if c.startswith("syn-")]
    assert sorted(written) == sorted(report.case_ids) and report.accepted == len(written)
    assert report.accepted == 6 and report.rejected == 0 and report.reasons == {}
    case = after.read_case(written[0])
    meta = case.meta
    assert case.image.shape == (1, 40, 36) and meta.split == "train" and meta.modality == "MR"
    assert meta.provenance.origin == "synthetic" and meta.provenance.generator == "discs"
    assert meta.provenance.checkpoint_hash == source.checkpoint_hash and meta.provenance.seed == 3
    assert {"distance", "frechet_batch"} <= set(meta.provenance.scores) and meta.provenance.recipe == {"op": "fastgan"}
    assert meta.normalisation.method == "synthetic" and meta.geometry.spacing == (0.7, 0.8, 3.0)
    assert meta.label_names == {0: "background", 1: "blob", 2: "rim"} and set(np.unique(case.label)) <= {0, 1}
    again = synthesize(store_path, source, reference, SynthConfig(count=6, seed=3, gate=OPEN_GATE))
    assert again.already_stored == report.accepted and again.accepted == 0
    assert len(SliceStore.open(store_path).snapshots()) == len(after.snapshots())  # nothing new, no commit
    json_report = report.to_json()
    assert json_report["pairs_per_s"] > 0 and json_report["gate_pairs_per_s"] > 0


def test_deform_pairs_carry_every_label_and_their_parents(store_path: Path) -> None:
    source, reference = build_source(store_path, SliceQuery(labels=("blob",)), "deform:max_mm=2", generator_id="d")
    report = synthesize(store_path, source, reference, SynthConfig(count=6, seed=0, gate=OPEN_GATE))
    store = SliceStore.open(store_path)
    cases = [store.read_case(c) for c in report.case_ids]
    assert report.accepted == 6
    for case in cases:
        prov = case.meta.provenance
        assert prov.generator == "d" and prov.parents and all(p in reference.keys for p in prov.parents)
        assert prov.recipe["op"] in ("deform", "morph") and prov.scores["min_jacobian"] > 0
        assert case.image.shape == (1, 40, 36) and case.label.shape == (1, 40, 36)
    reopened = SliceStore.open(store_path).case_meta(report.case_ids[0]).provenance
    assert reopened.parents == cases[0].meta.provenance.parents  # tuples survive the store's JSON
    still = "deform:max_mm=0,rotation_deg=0,scale=0,shift_mm=0,morph=0"  # the identity: each pair is its parent
    source, reference = build_source(store_path, SliceQuery(labels=("blob",)), still, generator_id="still")
    report = synthesize(store_path, source, reference, SynthConfig(count=8, seed=0, gate=OPEN_GATE))
    store = SliceStore.open(store_path)
    for case_id in report.case_ids:
        case = store.read_case(case_id)
        parent_case, parent_z = case.meta.provenance.parents[0]
        image, label = store.read_slice(parent_case, parent_z)
        assert np.array_equal(case.image[0], image) and np.array_equal(case.label[0], label)  # rim (2) included


def test_dry_run_and_failures_write_nothing(base: tuple[Path, Path], store_path: Path) -> None:
    source, reference = open_trained(store_path, base[1])
    head = SliceStore.open(store_path).snapshot_id
    dry = synthesize(store_path, source, reference, SynthConfig(count=3, gate=OPEN_GATE, dry_run=True))
    assert dry.generated == 3 and SliceStore.open(store_path).snapshot_id == head

    class Failing(GanSource):
        def batch(self, seed, indices):  # type: ignore[no-untyped-def]
            if indices[0] > 0:
                raise ValidationError("generator broke on the second batch")
            return super().batch(seed, indices)

    with pytest.raises(ValidationError, match="second batch"):
        synthesize(store_path, Failing(base[1]), reference, SynthConfig(count=4, batch_size=2, gate=OPEN_GATE))
    assert SliceStore.open(store_path).snapshot_id == head
    strict = synthesize(
        store_path, source, reference, SynthConfig(count=3, gate=GateConfig(min_distance=1.0, area_slack=100.0))
    )
    assert strict.accepted == 0 and strict.reasons.get("memorised") == 3


def test_mixtures_keep_synthetic_cases_in_train(base: tuple[Path, Path], store_path: Path) -> None:
    source, reference = open_trained(store_path, base[1])
    synthesize(store_path, source, reference, SynthConfig(count=8, seed=1, gate=OPEN_GATE))
    record = make_mixture(
        store_path, "mix", MixtureConfig(real=1.0, synthetic=0.5, labels=("blob",), splits=(0.5, 0.25, 0.25))
    )
    synthetic = record.cases[record.cases["origin"] == "synthetic"]
    assert len(synthetic) > 0 and set(synthetic["split"]) == {"train"} and set(synthetic["generator"]) == {"discs"}


def test_medigan_round_trip_export_load_generate_gate_store(
    base: tuple[Path, Path], store_path: Path, tmp_path: Path
) -> None:
    package = export_medigan(base[1], tmp_path / "pkg")
    reference = load_real_pairs(store_path, SliceQuery(labels=("blob",)))
    with MediganModel(package.name, package) as model:
        source = MediganSource(model, tmp_path / "work", reference)
        assert source.generator_id == "medigan.SAMDATA_DISCS" and source.seeded
        report = synthesize(store_path, source, reference, SynthConfig(count=4, seed=2, gate=OPEN_GATE))
    store = SliceStore.open(store_path)
    ids = [c for c in store.case_ids() if c.startswith("syn-medigan.SAMDATA_DISCS-2-")]
    assert report.generated == report.accepted == 4 and sorted(ids) == sorted(report.case_ids)
    assert case_id_for("medigan.SAMDATA_DISCS", 2, 0) in ids
    case = store.read_case(case_id_for("medigan.SAMDATA_DISCS", 2, 0))
    assert case.image.shape == (1, 40, 36) and case.meta.provenance.generator == "medigan.SAMDATA_DISCS"
    assert "medigan:SAMDATA_DISCS" in case.meta.provenance.source and case.meta.provenance.seed == 2
    own, _ = open_trained(store_path, base[1])
    ours = synthesize(store_path, own, reference, SynthConfig(count=1, seed=2, gate=OPEN_GATE))
    direct = SliceStore.open(store_path).read_case(ours.case_ids[0])
    # the same latent through medigan (32 px PNG, then resized) and directly (logits resized): close images
    assert np.abs(direct.image.astype(int) - case.image).mean() < 8
