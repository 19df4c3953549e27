"""``samdata synth``: train a few-shot paired generator, generate through the quality gate, medigan packages.

This is the composition root for synthesis: it builds the gate's segmenter and feature extractor
from a SAM-shaped model (:class:`SamGate`, LiteMedSAM by default, from ``training.models``) and
hands them to ``pipelines.synthesize``, which does not import ``training``.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from samdata.cli.common import console, fail, guarded, out
from samdata.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

synth = typer.Typer(help="Synthetic image/mask pairs: a few-shot paired GAN, a quality gate, medigan packages.",
                    no_args_is_help=True)
StoreArg = Annotated[str, typer.Argument(help="Store folder or s3://bucket/prefix.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
POLICY = "color,translation,cutout"
SECURITY = ("medigan packages are Python code that runs when loaded: samdata loads one only from the "
            "--package path you name, never downloads, and you should only name packages you trust.")


class SamGate:
    """The gate's segmenter (box prompt → mask) and feature extractor (pooled encoder embeddings)
    over one SAM-shaped model; the two share encoder passes through a small per-image cache."""

    def __init__(self, name: str = "litemedsam", *, checkpoint: str | None = None, device: str = "cpu",
                 batch: int = 8, cache: int = 64) -> None:
        import torch

        from training.models import build_model

        self.torch = torch
        self.model = build_model(name, checkpoint=checkpoint).to(device).eval()
        self.device, self.batch, self.limit = torch.device(device), batch, cache
        self._cache: OrderedDict[bytes, Any] = OrderedDict()

    def _embed(self, images: np.ndarray) -> Any:
        """(N, C, h, w) embeddings of (N, H, W) uint8 images, encoding only those not cached."""
        import numpy as np

        torch = self.torch
        keys = [hashlib.sha1(np.ascontiguousarray(img).tobytes() + str(img.shape).encode()).digest() for img in images]
        missing = list(dict.fromkeys(k for k in keys if k not in self._cache))
        first = {k: i for i, k in reversed(list(enumerate(keys)))}
        with torch.inference_mode():
            for start in range(0, len(missing), self.batch):
                chunk = missing[start:start + self.batch]
                x = torch.from_numpy(np.stack([images[first[k]] for k in chunk]))[:, None].to(self.device)
                for key, emb in zip(chunk, self.model.encode(self.model.preprocess(x))):
                    self._cache[key] = emb
        out = torch.stack([self._cache[k] for k in keys])
        while len(self._cache) > max(self.limit, len(keys)):
            self._cache.popitem(last=False)
        return out

    def features(self, images: np.ndarray) -> np.ndarray:
        """(N, C) float32 average-pooled encoder embeddings of (N, H, W) uint8 images."""
        return self._embed(images).mean(dim=(2, 3)).float().cpu().numpy()

    def segment(self, images: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """(N, H, W) bool masks for (N, H, W) uint8 images prompted with (N, 4) xyxy pixel boxes."""
        import numpy as np

        torch = self.torch
        height, width = images.shape[1:]
        size = self.model.img_size
        scale = torch.tensor([size / width, size / height, size / width, size / height], device=self.device)
        masks = []
        with torch.inference_mode():
            for start in range(0, len(images), self.batch):
                emb = self._embed(images[start:start + self.batch])
                box = torch.as_tensor(boxes[start:start + self.batch], dtype=torch.float32, device=self.device)
                low, _ = self.model.decode(emb, boxes=box * scale)
                masks.append((self.model.postprocess(low, (height, width)) > 0)[:, 0].cpu().numpy())
        return np.concatenate(masks) if masks else np.zeros((0, height, width), bool)


def _labels(text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(","))
    if not names or any(not n for n in names):
        raise ConfigError(f"--labels {text!r} has an empty name; expected names like white_matter,grey_matter")
    return names


def _bar(description: str) -> Any:
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    return Progress(TextColumn(f"[bold]{description}[/]"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.description}"), TimeElapsedColumn(), TimeRemainingColumn(), console=console)


@synth.command("train")
def train_command(
    store: StoreArg,
    labels: Annotated[str, typer.Option(help="Label names to generate masks of, comma-separated.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Generator folder GEN (created; new unless --resume).")],
    name: Annotated[Optional[str], typer.Option(help="Generator id (default: the GEN folder name).")] = None,
    arch: Annotated[str, typer.Option(help="Generator design: fastgan (default) or dcgan.")] = "fastgan",
    size: Annotated[int, typer.Option(help="Square model size: 32, 64, 128 (CPU) or 256 (GPU).")] = 64,
    width: Annotated[int, typer.Option(help="Channels at full resolution (doubling per halving, max 256).")] = 8,
    latent: Annotated[int, typer.Option(help="Latent vector length.")] = 64,
    steps: Annotated[int, typer.Option(help="Training steps (one D and one G update each).")] = 1000,
    batch_size: Annotated[int, typer.Option(help="Pairs per step.")] = 8,
    lr: Annotated[float, typer.Option(help="Adam learning rate of G and D.")] = 2e-4,
    augment: Annotated[str, typer.Option(help="DiffAugment policy: color,translation,cutout or none.")] = POLICY,
    seed: Annotated[int, typer.Option(min=0, help="Seed of weights, batches, latents and augmentation.")] = 0,
    slices: Annotated[Optional[str], typer.Option(help="Only these z, e.g. 50-139:3 or 60,80,100.")] = None,
    cases: Annotated[Optional[str], typer.Option(help="Only these case ids, comma-separated.")] = None,
    max_slices: Annotated[Optional[int], typer.Option(help="At most N slices (evenly spaced).")] = None,
    snapshot: Annotated[Optional[str], typer.Option(help="Store snapshot id (default: the head).")] = None,
    sample_every: Annotated[int, typer.Option(help="Sample grid PNG every N steps (0: at the end only).")] = 250,
    save_every: Annotated[int, typer.Option(help="Write a resumable checkpoint every N steps.")] = 500,
    device: Annotated[str, typer.Option(help="cpu (default), cuda, cuda:N or auto.")] = "cpu",
    resume: Annotated[bool, typer.Option(help="Continue the run in --out from its last checkpoint.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Train a paired image+mask GAN on the store's real slices of LABELS (few-shot: tens of slices)."""
    from pipelines.synthesize import SliceQuery, train_generator
    from samdata.synth.train import GanConfig
    from training.config import parse_slices

    def setup() -> tuple[SliceQuery, GanConfig]:
        query = SliceQuery(labels=_labels(labels), slices=parse_slices(slices) if slices else None,
                           cases=tuple(c.strip() for c in cases.split(",")) if cases else None,
                           max_slices=max_slices, snapshot=snapshot)
        config = GanConfig(arch=arch, size=size, width=width, latent=latent, steps=steps, batch_size=batch_size,
                           lr=lr, augment=augment, seed=seed, sample_every=sample_every, save_every=save_every,
                           device=device)
        return query, config

    query, config = guarded(setup)
    with _bar("synth train") as bar:
        task = bar.add_task("", total=steps)

        def on_step(step: int, total: int, metrics: dict[str, float]) -> None:
            bar.update(task, completed=step, total=total,
                       description=f"D {metrics['loss_d']:.3f}  G {metrics['loss_g']:.3f}")

        result = guarded(lambda: train_generator(store, out_dir, query, config, generator_id=name or out_dir.name,
                                                 resume=resume, on_step=on_step))
    summary = {"generator": str(result.gen_dir), "steps": result.step, "checkpoint_hash": result.checkpoint_hash,
               "seconds": round(result.seconds, 1), "losses": result.metrics,
               "samples": [str(p) for p in result.samples]}
    if json_out:
        out.print_json(json.dumps(summary))
    else:
        out.print(f"generator {result.gen_dir}: {result.step} steps in {result.seconds:.0f} s, "
                  f"checkpoint sha256 {result.checkpoint_hash[:16]}…; sample grids in {result.gen_dir / 'samples'}")


def _gate_models(model: str, checkpoint: str | None, device: str, consistency: bool) -> Any:
    from pipelines.synthesize import GateModels

    if model == "none":
        return GateModels()
    gate = SamGate(model, checkpoint=checkpoint, device=device)
    return GateModels(segment=gate.segment if consistency else None, features=gate.features)


def _print_report(report: dict[str, Any], json_out: bool) -> None:
    if json_out:
        out.print_json(json.dumps(report, default=str))
        return
    out.print(f"{report['generator_id']} seed {report['seed']}: generated {report['generated']} "
              f"(already stored {report['already_stored']}), accepted {report['accepted']}, rejected "
              f"{report['rejected']} {report['reasons'] or ''}; snapshot {report['snapshot_id']}")
    for batch in report["batches"]:
        fid = "n/a" if batch["frechet"] is None else f"{batch['frechet']:.2f}"
        out.print(f"  batch {batch['indices'][0]}–{batch['indices'][1]}: accepted {batch['accepted']}/"
                  f"{batch['generated']}, Fréchet distance (LiteMedSAM features) {fid}")
    rate, gate = report.get("pairs_per_s"), report.get("gate_pairs_per_s")
    limits = report["thresholds"]
    out.print(f"  generation {rate or 0:.1f} pairs/s, gate {gate or 0:.2f} pairs/s; thresholds "
              f"min_dice={limits.get('min_dice')}, min_distance={limits.get('min_distance')}")


@synth.command("generate", help="Generate pairs from a trained generator (--generator GEN) or a local medigan "
                                "package (--medigan MODEL_ID --package PATH), gate them and commit the accepted "
                                "ones as synthetic cases in one commit. " + SECURITY)
def generate_command(
    store: StoreArg,
    count: Annotated[int, typer.Option(min=1, help="Pairs to generate (samples 0..N-1 of --seed).")],
    generator: Annotated[Optional[Path], typer.Option(help="Generator folder from `samdata synth train`.")] = None,
    medigan: Annotated[Optional[str], typer.Option(help="medigan model id, with --package.")] = None,
    package: Annotated[Optional[Path], typer.Option(help="Local medigan package folder or zip (its code runs!).")
                       ] = None,
    config: Annotated[Optional[Path], typer.Option(help="medigan config JSON (default: the package's metadata.json).")
                      ] = None,
    labels: Annotated[Optional[str], typer.Option(help="medigan: the label its masks become (and real slices to "
                                                       "compare to).")] = None,
    seed: Annotated[int, typer.Option(min=0, help="Seed; the same seed regenerates the same pairs.")] = 0,
    batch_size: Annotated[int, typer.Option(help="Pairs per gated batch (a Fréchet distance per batch).")] = 16,
    min_dice: Annotated[Optional[float], typer.Option(help="Consistency Dice threshold (default 0.8 x real median).")
                        ] = None,
    min_distance: Annotated[Optional[float], typer.Option(help="Memorisation distance threshold (default 0.25 x real).")
                            ] = None,
    min_area: Annotated[int, typer.Option(help="Smallest mask area in pixels.")] = 20,
    max_area: Annotated[float, typer.Option(help="Largest mask area as a fraction of the slice.")] = 0.6,
    max_components: Annotated[Optional[int], typer.Option(help="Most connected components (default real max + 2).")
                              ] = None,
    consistency: Annotated[bool, typer.Option(help="Check the mask with the SAM model prompted by its box.")] = True,
    model: Annotated[str, typer.Option(help="Gate model: litemedsam, tiny, sam_vit_b/l/h or none.")] = "litemedsam",
    checkpoint: Annotated[Optional[str], typer.Option(help="Weights for --model (required for sam_vit_*).")] = None,
    reference_max: Annotated[int, typer.Option(help="medigan: at most N real reference slices.")] = 64,
    device: Annotated[str, typer.Option(help="cpu (default), cuda, cuda:N or auto.")] = "cpu",
    dry_run: Annotated[bool, typer.Option(help="Gate and report, write nothing.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Generate, gate and store synthetic pairs."""
    from pipelines.synthesize import (MediganSource, SliceQuery, SynthConfig, TrainedSource, load_real_pairs,
                                      reference_for, synthesize)
    from samdata.synth.gate import GateConfig
    from samdata.synth.medigan_io import MediganModel

    if (generator is None) == (medigan is None) or (medigan is not None and package is None):
        fail("give either --generator GEN or --medigan MODEL_ID with --package PATH")
    if medigan is not None and not labels:
        fail("--medigan needs --labels: the label its masks become and the real slices the gate compares to")
    gate = guarded(lambda: GateConfig(min_area=min_area, max_area_fraction=max_area, max_components=max_components,
                                      min_dice=min_dice, min_distance=min_distance,
                                      consistency=consistency and model != "none"))
    cfg = guarded(lambda: SynthConfig(count=count, seed=seed, batch_size=batch_size, gate=gate, dry_run=dry_run))
    models = guarded(lambda: _gate_models(model, checkpoint, device, gate.consistency))
    with _bar("synth generate") as bar:
        task = bar.add_task("", total=count)

        def progress(done: int, total: int, batch: dict[str, Any]) -> None:
            bar.update(task, completed=done, total=total,
                       description=f"accepted {batch['accepted']}/{batch['generated']}")

        def run() -> Any:
            if generator is not None:
                source = TrainedSource(generator, device)
                return synthesize(store, source, reference_for(store, source.info), cfg, models, progress=progress)
            reference = load_real_pairs(store, SliceQuery(labels=_labels(labels or ""), max_slices=reference_max))
            with MediganModel(medigan or "", package or Path(), config=config) as opened, \
                    tempfile.TemporaryDirectory(prefix="samdata-medigan-out-") as work:
                return synthesize(store, MediganSource(opened, work), reference, cfg, models, progress=progress)

        report = guarded(run)
    _print_report(report.to_json(), json_out)


@synth.command("export-medigan", help="Export a trained generator as a medigan model package (folder or zip) "
                                      "with metadata.json, loadable by medigan's Generators. " + SECURITY)
def export_command(
    gen: Annotated[Path, typer.Argument(help="Generator folder from `samdata synth train`.")],
    out_dir: Annotated[Path, typer.Argument(help="Folder to write the package into.")],
    model_id: Annotated[Optional[str], typer.Option(help="medigan model id (default SAMDATA_<GENERATOR ID>).")] = None,
    as_zip: Annotated[bool, typer.Option("--zip", help="Write <model_id>.zip instead of a folder.")] = False,
) -> None:
    """Export GEN as a medigan package."""
    from samdata.synth.medigan_io import export_medigan

    path = guarded(lambda: export_medigan(gen, out_dir, model_id=model_id, as_zip=as_zip))
    out.print(f"medigan package {path} (load it with: samdata synth generate STORE --medigan "
              f"{path.stem} --package {path} --labels ... --count N)")


def register(app: typer.Typer) -> None:
    """Add the ``synth`` command group to the top-level app."""
    app.add_typer(synth, name="synth")
