"""Export a trained samdata generator as a medigan model package (folder or zip with ``metadata.json``).

* ``fastgan`` (noise to image and mask): the generator as a ``torch.export`` program and the
  self-contained template :mod:`samdata.synth.medigan_package` (numpy, torch, Pillow only).
* ``cgan`` (mask to image): the generator's weights, the real slices' label maps and their
  registration fields (``labels.npz``: label maps only, no image of a patient), and the template
  :mod:`samdata.synth.medigan_cgan`, which imports samdata to draw and paint the label maps.

The metadata is medigan's config entry (``template.json`` fields); ``selection.organ`` names the
labels of mask values 1, 2, ... so a reader can map masks back to label names.
"""

from __future__ import annotations

import json
import re
import shutil
import warnings
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from samdata.errors import ConfigError
from samdata.synth import medigan_cgan, medigan_package
from samdata.synth.checkpoint import GENERATOR_FILE, INFO_FILE, file_sha256, load_generator, read_info
from samdata.synth.medigan_io import METADATA_FILE
from samdata.synth.pairs import RealPairs

MODEL_NAME = "generator"
MODEL_EXTENSION = ".pt2"


def model_id_for(generator_id: str) -> str:
    """The medigan model id (and package name) of an exported samdata generator."""
    return "SAMDATA_" + re.sub(r"[^A-Za-z0-9_]", "_", generator_id).upper()


def _metadata(
    model_id: str,
    info: Any,
    checkpoint_hash: str,
    link: str,
    *,
    extension: str,
    size: int,
    organs: list[str],
    function: list[str],
    custom: dict[str, Any],
    dependencies: list[str],
) -> dict[str, Any]:
    """medigan's config entry for an exported generator."""
    arch = info.net.arch if info.net is not None else info.kind
    return {
        model_id: {
            "execution": {
                "package_name": model_id,
                "package_link": link,
                "model_name": MODEL_NAME,
                "extension": extension,
                "image_size": [size, size],
                "dependencies": dependencies,
                "generate_method": {
                    "name": "generate",
                    "args": {"base": ["model_file", "num_samples", "output_path", "save_images"], "custom": custom},
                },
            },
            "selection": {
                "performance": {
                    "SSIM": None,
                    "MSE": None,
                    "NSME": None,
                    "PSNR": None,
                    "IS": None,
                    "FID": None,
                    "turing_test": None,
                    "downstream_task": {},
                },
                "use_cases": ["segmentation"],
                "organ": organs,
                "modality": [info.modality],
                "vendors": [],
                "centres": [],
                "function": function,
                "condition": [],
                "dataset": [info.source],
                "augmentations": list(str(info.gan.get("augment", "")).split(",")),
                "generates": ["image", "mask"],
                "height": size,
                "width": size,
                "depth": None,
                "type": arch,
                "license": "",
                "dataset_type": "",
                "privacy_preservation": None,
                "tags": ["samdata", arch, *organs],
                "year": datetime.now(UTC).year,
            },
            "description": {
                "title": f"samdata {arch} generator '{info.generator_id}' ({', '.join(organs)})",
                "provided_date": datetime.now(UTC).date().isoformat(),
                "trained_date": "",
                "provided_after_epoch": info.steps_done,
                "version": "1",
                "published": False,
                "doi": [],
                "comment": f"samdata checkpoint sha256 {checkpoint_hash}; store {info.source} snapshot "
                f"{info.snapshot_id}; outputs <k>_img.png and <k>_mask.png",
            },
        }
    }


def _write_fastgan(gen_dir: Path, package: Path, model_id: str, link: str) -> dict[str, Any]:
    generator, info, checkpoint_hash = load_generator(gen_dir)
    example = torch.zeros(2, info.net.latent)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.export.export(
            generator, (example,), dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=65536)},)
        )
        torch.export.save(program, package / f"{MODEL_NAME}{MODEL_EXTENSION}")
    shutil.copyfile(medigan_package.__file__, package / "__init__.py")
    shutil.copyfile(gen_dir / INFO_FILE, package / medigan_package.SIDECAR)
    return _metadata(
        model_id,
        info,
        checkpoint_hash,
        link,
        extension=MODEL_EXTENSION,
        size=info.net.size,
        organs=list(info.label_names),
        function=["noise_to_image", "noise_to_mask"],
        custom={"seed": 0, "start_index": 0, "device": "cpu"},
        dependencies=["numpy", "torch", "pillow"],
    )


def _write_cgan(gen_dir: Path, package: Path, model_id: str, link: str, reference: RealPairs) -> dict[str, Any]:
    from samdata.synth.cgan import CganSource

    info = read_info(gen_dir)
    source = CganSource(gen_dir, reference)  # registers the neighbouring label maps once, here
    shapes = source.shapes
    pairs = sorted(shapes.fields)
    table = reference.label_table()
    np.savez_compressed(
        package / medigan_cgan.LABELS_FILE,
        labels=shapes.label_maps,
        cases=np.array([k[0] for k in reference.keys]),
        z=np.array([k[1] for k in reference.keys]),
        values=np.array(list(table)),
        names=np.array(list(table.values())),
        chosen=np.array(reference.label_values),
        spacing=np.array(reference.spacing),
        modality=np.array(reference.modality),
        pair_i=np.array([i for i, _ in pairs], dtype=np.int64),
        pair_j=np.array([j for _, j in pairs], dtype=np.int64),
        fields=np.stack([shapes.fields[k].numpy() for k in pairs]) if pairs else np.zeros((0, 2, *reference.grid)),
    )
    shutil.copyfile(gen_dir / GENERATOR_FILE, package / f"{MODEL_NAME}.pt")
    shutil.copyfile(gen_dir / INFO_FILE, package / INFO_FILE)
    shutil.copyfile(medigan_cgan.__file__, package / "__init__.py")
    organs = [table.get(v, f"label_{v}") for v in range(1, max(table) + 1)]
    return _metadata(
        model_id,
        info,
        file_sha256(gen_dir / GENERATOR_FILE),
        link,
        extension=".pt",
        size=source.config.size,
        organs=organs,
        function=["mask_to_image"],
        custom={"seed": 0, "start_index": 0, "input_path": None, "device": "cpu"},
        dependencies=["numpy", "torch", "pillow", "samdata"],
    )


def export_medigan(
    gen_dir: Path | str,
    out_dir: Path | str,
    *,
    model_id: str | None = None,
    as_zip: bool = False,
    reference: RealPairs | None = None,
) -> Path:
    """Write generator ``gen_dir`` as a medigan package ``out_dir/<model_id>/`` (or ``.zip``); returns it.
    A ``cgan`` needs ``reference``: the real slices it learnt from (``pipelines.synthesize.reference_for``)."""
    gen_dir = Path(gen_dir)
    info = read_info(gen_dir)
    if info.kind == "cgan" and reference is None:
        raise ConfigError(
            f"exporting cgan {info.generator_id!r} needs the real slices it learnt from (its label "
            "maps go into the package); pass the store it was trained on"
        )
    model_id = model_id or model_id_for(info.generator_id)
    if not re.fullmatch(r"[A-Za-z0-9_]+", model_id):
        raise ConfigError(f"medigan model id {model_id!r}: expected letters, digits and '_' (it is a module name)")
    package = Path(out_dir) / model_id
    target = package.with_suffix(".zip") if as_zip else package
    if target.exists():
        raise ConfigError(f"{str(target)!r} already exists; remove it or choose another OUT folder")
    package.mkdir(parents=True)
    if info.kind == "cgan":
        metadata = _write_cgan(gen_dir, package, model_id, target.name, reference)  # type: ignore[arg-type]
    else:
        metadata = _write_fastgan(gen_dir, package, model_id, target.name)
    (package / METADATA_FILE).write_text(json.dumps(metadata, indent=2))
    if as_zip:
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(package.iterdir()):
                zf.write(path, f"{model_id}/{path.name}")
        shutil.rmtree(package)
    return target
