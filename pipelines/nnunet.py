"""Export a curated mixture as an nnU-Net v2 raw dataset, so nnU-Net can be trained on the data SAM adapts to.

``<out>/DatasetXXX_Name/`` gets ``imagesTr/<case>_0000.nii.gz`` and ``labelsTr/<case>.nii.gz`` for the mixture's
train cases (real, and synthetic unless left out), ``imagesTs/`` and ``labelsTs/`` for its test cases, and
``dataset.json`` (channel names, labels, numTraining, file_ending, and where it came from). Every case is written
on its source grid with its source affine, as ``training.predict`` writes masks: the image mapped back to source
intensities (values the ingest window or percentiles clipped stay clipped), labels renumbered 1..K by name (the
mixture's labels; others become background). A synthetic 2D pair is a single-slice volume, its intensities mapped
with its first real parent's normalisation. With ``train_slices`` only those z keep labels in the real train
cases; their other voxels get nnU-Net's ignore label, its own way of training on sparse annotation. The val split
is left out (nnU-Net draws its own folds). The dataset appears whole or not at all: it is written beside its
final folder and renamed into place.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.configs import NnunetExportConfig as NnunetExportConfig
from samdata.case import Case, CaseMeta, Normalisation
from samdata.errors import ConfigError, ValidationError
from samdata.io.readers import write_nifti
from samdata.prepare import to_source_grid
from samdata.spec import parse_slices
from storage import SliceStore
from storage.records import MixtureRecord, load_mixture, mixture_view

FILE_ENDING = ".nii.gz"
#: stored normalisations whose uint8 values are the source values (nothing to invert)
KEPT = ("none", "synthetic")


def dataset_folder_name(dataset_id: int, name: str) -> str:
    """nnU-Net's folder name of a dataset: ``Dataset042_Name``."""
    return f"Dataset{int(dataset_id):03d}_{name}"


def label_table(record: MixtureRecord, metas: list[CaseMeta]) -> dict[str, int]:
    """nnU-Net's ``labels``: background 0, then the mixture's label names (or, for a mixture of every label, the
    names of the exported cases by stored value) numbered 1..K."""
    names = list(record.labels) if record.labels is not None else []
    if not names:
        first: dict[str, int] = {}
        for meta in metas:
            for value, name in meta.label_names.items():
                first[name] = min(first.get(name, value), value)
        names = sorted(first, key=lambda n: (first[n], n))
    return {"background": 0, **{name: i for i, name in enumerate(names, start=1)}}


def renumber(label_zyx: np.ndarray, meta: CaseMeta, labels: dict[str, int]) -> np.ndarray:
    """A stored (Z, Y, X) label map with its values renumbered to ``labels`` by name (others → 0): uint8, or
    uint16 for more than 255 labels."""
    lut = np.zeros(int(label_zyx.max(initial=0)) + 1, dtype=np.uint8 if len(labels) < 256 else np.uint16)
    for value, name in meta.label_names.items():
        if name in labels and value < len(lut):
            lut[value] = labels[name]
    return lut[label_zyx]


def keep_slices(label_zyx: np.ndarray, slices: tuple[int, ...], ignore: int, case_id: str) -> np.ndarray:
    """The (Z, Y, X) label map with every voxel outside slices ``slices`` set to ``ignore``."""
    keep = [z for z in slices if 0 <= z < label_zyx.shape[0]]
    if not keep:
        raise ValidationError(
            f"case {case_id!r}: none of the train slices {slices[0]}..{slices[-1]} lies in its "
            f"{label_zyx.shape[0]} slices (z 0..{label_zyx.shape[0] - 1}); choose train_slices inside it"
        )
    out = np.full_like(label_zyx, ignore)
    out[keep] = label_zyx[keep]
    return out


def source_intensities(case: Case, normalisation: Normalisation | None) -> np.ndarray:
    """The stored (Z, Y, X) uint8 image mapped back by ``normalisation`` (float32), or as stored for none."""
    if normalisation is None or normalisation.method in KEPT:
        return case.image
    return normalisation.invert(case.image)


def intensity_rule(meta: CaseMeta, view: SliceStore, present: set[str]) -> Normalisation | None:
    """How a case's stored values map back: its own normalisation, or a synthetic case's first parent's that is
    in the store (its pixels were drawn in that case's stored scale); None keeps the stored values."""
    if meta.provenance.origin != "synthetic":
        return meta.normalisation
    for parent, _z in meta.provenance.parents:
        if parent in present:
            return view.case_meta(parent).normalisation
    return None


def _modality(metas: list[CaseMeta], where: str) -> str:
    """The one modality of the exported real cases (nnU-Net's channel name: CT picks its CT normalisation)."""
    found = sorted({m.modality for m in metas if m.provenance.origin != "synthetic"})
    if len(found) != 1:
        raise ValidationError(
            f"{where}: the exported real cases have modalities {found}; nnU-Net needs one channel name"
        )
    return found[0]


def _target(out: Path, config: NnunetExportConfig, name: str, overwrite: bool) -> Path:
    """The dataset's folder under ``out``; ConfigError if it exists (unless ``overwrite``) or another dataset
    holds its id there (nnU-Net finds a dataset by id)."""
    folder = out / dataset_folder_name(config.dataset_id, name)
    if folder.exists() and not overwrite:
        raise ConfigError(f"{folder} already exists; choose another --dataset-id/--name or pass --overwrite")
    prefix = dataset_folder_name(config.dataset_id, "")
    clash = (
        sorted(p.name for p in out.glob(prefix + "*") if p.is_dir() and p.name != folder.name) if out.is_dir() else []
    )
    if clash:
        raise ConfigError(f"{out} already holds dataset id {config.dataset_id} as {clash[0]}; choose another id")
    return folder


def export_nnunet(
    store_url: str | Path,
    out: str | Path,
    mixture: str,
    config: NnunetExportConfig | None = None,
    *,
    overwrite: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Write mixture ``mixture`` (read at the snapshot it was drawn from) as ``out/DatasetXXX_Name`` in the
    nnU-Net v2 raw layout (module docstring); returns that folder. ``progress(case_id)`` after each case."""
    config = config or NnunetExportConfig()
    head = SliceStore.open(store_url)
    record = load_mixture(mixture_view(head, mixture), mixture)
    view = head.at(record.snapshot_id)
    where = f"mixture {mixture!r} of store {head.url!r}"
    cases = record.cases
    if not config.synthetic:
        cases = cases[cases["origin"] != "synthetic"]
    train = cases.loc[cases["split"] == "train"].sort_values(["origin", "case_id"])
    test = sorted(cases.loc[cases["split"] == "test", "case_id"])
    metas = {cid: view.case_meta(cid) for cid in [*train["case_id"], *test]}
    labels = label_table(record, list(metas.values()))
    slices = parse_slices(config.train_slices) if config.train_slices is not None else None
    ignore = len(labels) if slices is not None else None
    name = config.name or mixture
    folder = _target(Path(out), config, name, overwrite)
    work = folder.with_name(f".{folder.name}.partial")
    shutil.rmtree(work, ignore_errors=True)
    dataset = {
        "name": name,
        "description": f"samdata {where} at snapshot {record.snapshot_id}",
        "channel_names": {"0": _modality(list(metas.values()), where)},
        "labels": {**labels, **({"ignore": ignore} if ignore is not None else {})},
        "numTraining": len(train),
        "numTest": len(test),
        "file_ending": FILE_ENDING,
        "samdata": provenance(head, record, config, train, test),
    }
    present = set(view.case_ids())
    sparse = set(train.loc[train["origin"] == "real", "case_id"]) if slices is not None else set()
    try:
        for split, ids in (("Tr", list(train["case_id"])), ("Ts", test)):
            for case_id in ids:
                case = view.read_case(case_id)
                label = renumber(case.label, case.meta, labels)
                if case_id in sparse:
                    label = keep_slices(label, slices, ignore, case_id)  # type: ignore[arg-type]
                image = source_intensities(case, intensity_rule(case.meta, view, present))
                write_case(work, split, case.meta, image, label)
                if progress is not None:
                    progress(case_id)
        (work / "imagesTr").mkdir(parents=True, exist_ok=True)
        (work / "dataset.json").write_text(json.dumps(dataset, indent=2) + "\n", encoding="utf-8")
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    if folder.exists():
        shutil.rmtree(folder)
    work.rename(folder)
    return folder


def write_case(folder: Path, split: str, meta: CaseMeta, image_zyx: np.ndarray, label_zyx: np.ndarray) -> None:
    """``images<split>/<case>_0000`` and ``labels<split>/<case>`` on the case's source grid and affine (the image
    interpolated linearly where the store resampled it, the labels by nearest neighbour)."""
    affine = np.asarray(meta.geometry.source_affine, dtype=float)
    image = to_source_grid(image_zyx, meta, order=1)
    write_nifti(image, affine, folder / f"images{split}" / f"{meta.case_id}_0000{FILE_ENDING}")
    write_nifti(to_source_grid(label_zyx, meta), affine, folder / f"labels{split}" / f"{meta.case_id}{FILE_ENDING}")


def provenance(
    head: SliceStore, record: MixtureRecord, config: NnunetExportConfig, train: Any, test: list[str]
) -> dict[str, Any]:
    """dataset.json's ``samdata`` key: the store, snapshot, mixture, options, and the cases of each part."""
    return {
        "store": head.url,
        "snapshot_id": record.snapshot_id,
        "mixture": record.name,
        "synthetic": config.synthetic,
        "train_slices": config.train_slices,
        "train": {origin: sorted(group["case_id"]) for origin, group in train.groupby("origin")},
        "test": test,
        "val_left_out": record.split_cases("val"),
    }
