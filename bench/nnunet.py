"""nnU-Net v2 (2D) on the MNI152 white-matter protocol of ``bench/low_data.py``, through ``samdata export nnunet``.

Run: ``.venv/bin/python bench/nnunet.py [--shots all|N] [--epochs E --iterations I] [--device cuda]`` (needs the
``nnunet`` extra). It builds the MNI152 store and the real-only mixture ``wm`` (``bench.common``), exports it with
:func:`pipelines.nnunet.export_nnunet` keeping white-matter labels only on the n labelled slices (every other voxel
gets nnU-Net's ignore label, so the 15 held-out slices are never trained on), then runs nnU-Net's own fingerprint,
planner and preprocessor, trains the ``2d`` configuration (fold ``all``: the one case) with
:class:`nnUNetTrainer_samdataShort`, nnU-Net's trainer with a shortened schedule (``--epochs`` ×
``--iterations``; nnU-Net's default is 1000 × 250, for a GPU), and scores the held-out slices z = 51, 57, ..., 135
on the stored slice grid (Dice per slice, mean; ``--mirroring`` adds nnU-Net's test-time mirroring). ``nnUNet_raw``,
``nnUNet_preprocessed`` and ``nnUNet_results`` are set to folders under ``--out``. Writes ``<out>/results.json``
and ``results.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: bench.common, this checkout
from bench.common import HELD_OUT, LABEL, MIXTURE, args_record, build_store, labelled, real_mixture, write_results

DATASET_ID = 152
DATASET_NAME = "MNI152WM"
#: the MONAI U-Net of bench/low_data.py scored on the same slice grid by bench/tta.py (BENCHMARKS.md), n → none, flip
UNET = {"all": ("0.948 ± 0.004", "0.950 ± 0.004"), "4": ("0.888 ± 0.017", "0.898 ± 0.016")}


def set_paths(out: Path, workers: int, threads: int) -> dict[str, Path]:
    """nnU-Net's folders under ``out`` and its process counts, in the environment (before nnunetv2 is imported)."""
    paths = {key: out / key for key in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}
    for key, path in paths.items():
        path.mkdir(parents=True, exist_ok=True)
        os.environ[key] = str(path)
    os.environ["nnUNet_n_proc_DA"] = str(workers)  # data augmentation processes (default: 12)
    os.environ["nnUNet_def_n_proc"] = str(threads)
    return paths


def short_trainer(epochs: int, iterations: int, val_iterations: int) -> type:
    """nnU-Net's trainer with ``epochs`` × ``iterations`` (and ``val_iterations`` per epoch) instead of 1000 × 250."""
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    class nnUNetTrainer_samdataShort(nnUNetTrainer):  # nnU-Net names trainer variants so
        """nnUNetTrainer with a schedule that fits a CPU run (everything else as planned)."""

        def __init__(
            self, plans: dict, configuration: str, fold: int | str, dataset_json: dict, device: Any = None
        ) -> None:  # nnU-Net records these arguments by name, so they are spelled out
            super().__init__(plans, configuration, fold, dataset_json, device)
            self.num_epochs, self.num_iterations_per_epoch = epochs, iterations
            self.num_val_iterations_per_epoch = val_iterations

    return nnUNetTrainer_samdataShort


def plan_and_preprocess(threads: int) -> None:
    """nnU-Net's fingerprint (with its dataset check), the default planner and the 2d preprocessing."""
    from nnunetv2.experiment_planning.plan_and_preprocess_api import extract_fingerprints, plan_experiments, preprocess

    extract_fingerprints([DATASET_ID], num_processes=threads, check_dataset_integrity=True, verbose=False)
    plan_experiments([DATASET_ID])
    preprocess([DATASET_ID], configurations=("2d",), num_processes=(threads,), verbose=False)


def predict_held_out(trainer: Any, image_file: Path, mirroring: bool) -> np.ndarray:
    """(len(HELD_OUT), Y, X) label map of the held-out slices: the whole volume is preprocessed (its z-score
    is over the volume), the 2D network runs on those slices only and the crop is undone."""
    import torch
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor

    image, props = SimpleITKIO().read_images([str(image_file)])  # (1, Z, Y, X): file axes k, j, i
    data, _, props = DefaultPreprocessor(verbose=False).run_case_npy(
        image, None, props, trainer.plans_manager, trainer.configuration_manager, trainer.dataset_json
    )
    bbox = props["bbox_used_for_cropping"]
    if list(trainer.plans_manager.transpose_forward) != [0, 1, 2] or data.shape[1:] != tuple(
        props["shape_after_cropping_and_before_resampling"]
    ):
        raise SystemExit("the plan transposes or resamples the volume; this bench expects MNI152's 1 mm axial grid")
    rows = [z - bbox[0][0] for z in HELD_OUT]
    predictor = nnUNetPredictor(use_mirroring=mirroring, device=trainer.device, verbose=False)
    trainer.set_deep_supervision_enabled(False)
    predictor.manual_initialization(
        trainer.network,
        trainer.plans_manager,
        trainer.configuration_manager,
        [trainer.network.state_dict()],
        trainer.dataset_json,
        type(trainer).__name__,
        trainer.inference_allowed_mirroring_axes,
    )
    logits = predictor.predict_logits_from_preprocessed_data(torch.from_numpy(np.ascontiguousarray(data[:, rows])))
    logits = logits.cpu()
    seg = np.zeros((len(rows), *image.shape[2:]), dtype=np.uint8)
    seg[:, bbox[1][0] : bbox[1][1], bbox[2][0] : bbox[2][1]] = logits.argmax(0).numpy()
    return seg


def score(store: Path, seg: np.ndarray) -> list[float]:
    """Dice of white matter per held-out slice against the store's label (stored grid = the file's grid here)."""
    from samdata.metrics import dice
    from storage import SliceStore

    view = SliceStore.open(store)
    case_id = view.case_ids()[0]
    meta = view.case_meta(case_id)
    if meta.geometry.source_axcodes != ("R", "A", "S") or meta.geometry.resampled:
        raise SystemExit(f"case {case_id}: expected a RAS, not resampled source (stored grid = file grid)")
    value = next(v for v, name in meta.label_names.items() if name == LABEL)
    return [dice(seg[i] == 1, view.read_slice(case_id, z)[1] == value) for i, z in enumerate(HELD_OUT)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench-output/nnunet"))
    parser.add_argument("--shots", default="all", help="labelled slices: all (30) or a number (low_data's shots)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--iterations", type=int, default=10, help="training iterations per epoch")
    parser.add_argument("--val-iterations", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="cpu, or cuda for nnU-Net's full schedule")
    parser.add_argument("--threads", type=int, default=2, help="torch threads and nnU-Net's processes")
    parser.add_argument("--da-workers", type=int, default=1, help="nnU-Net's augmentation processes (0: in-process)")
    parser.add_argument("--mirroring", action="store_true", help="also score with nnU-Net's mirroring (4x the time)")
    args = parser.parse_args()
    out = args.out.resolve()
    paths = set_paths(out, args.da_workers, args.threads)
    import torch

    from pipelines.nnunet import NnunetExportConfig, export_nnunet

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    store = build_store(out)
    real_mixture(store)
    slices = ",".join(map(str, labelled(args.shots if args.shots == "all" else int(args.shots))))
    config = NnunetExportConfig(dataset_id=DATASET_ID, name=DATASET_NAME, synthetic=False, train_slices=slices)
    folder = export_nnunet(store, paths["nnUNet_raw"], MIXTURE, config, overwrite=True)
    t_export = time.perf_counter()
    plan_and_preprocess(args.threads)
    t_plan = time.perf_counter()

    from batchgenerators.utilities.file_and_folder_operations import load_json

    pre = paths["nnUNet_preprocessed"] / folder.name
    trainer_class = short_trainer(args.epochs, args.iterations, args.val_iterations)
    plans = {**load_json(str(pre / "nnUNetPlans.json")), "continue_training": False}  # as run_training sets it
    trainer = trainer_class(
        plans=plans,
        configuration="2d",
        fold="all",
        dataset_json=load_json(str(pre / "dataset.json")),
        device=torch.device(args.device),
    )
    trainer.run_training()
    t_train = time.perf_counter()
    image = next((folder / "imagesTr").glob("*_0000.nii.gz"))
    dice: dict[str, list[float]] = {}
    seconds: dict[str, float] = {}
    for name, mirroring in (("none", False), ("flip", True))[: 2 if args.mirroring else 1]:
        t0 = time.perf_counter()
        dice[name] = score(store, predict_held_out(trainer, image, mirroring))
        seconds[name] = time.perf_counter() - t0
    total = time.perf_counter() - start
    plan = trainer.configuration_manager
    results = {
        "args": args_record(args),
        "dataset": str(folder),
        "patch_size": list(plan.patch_size),
        "batch_size": plan.batch_size,
        "iterations": args.epochs * args.iterations,
        "dice": {k: float(np.mean(v)) for k, v in dice.items()},
        "dice_per_slice": dice,
        "seconds": {
            "export": t_export - start,
            "plan_preprocess": t_plan - t_export,
            "train": t_train - t_plan,
            "predict": seconds,
            "total": total,
        },
    }
    unet = UNET.get(str(args.shots), ("–", "–"))
    flip = f"{results['dice']['flip']:.3f}" if "flip" in dice else "–"
    markdown = "\n".join(
        [
            f"MNI152 white matter, n = {args.shots} labelled slices, 15 held-out slices, stored slice grid",
            "",
            "| model | schedule | Dice (no mirroring) | Dice (nnU-Net mirroring / `flip`) | train s | total s |",
            "| --- | --- | ---: | ---: | ---: | ---: |",
            f"| nnU-Net v2 2d (patch {'×'.join(map(str, plan.patch_size))}, batch {plan.batch_size}) "
            f"| {args.epochs} × {args.iterations} iterations | {results['dice']['none']:.3f} "
            f"| {flip} | {t_train - t_plan:.0f} | {total:.0f} |",
            f"| MONAI U-Net, bench/low_data.py + bench/tta.py (BENCHMARKS.md, 3 seeds) | 1,200 steps | {unet[0]} "
            f"| {unet[1]} | – | – |",
        ]
    )
    write_results(out, results, markdown)
    print(markdown)


if __name__ == "__main__":
    main()
