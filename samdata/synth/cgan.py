"""``cgan``: a mask-conditioned GAN (pix2pix) that paints images onto label maps, trained on the real pairs.

Generator: MONAI's ``UNet`` from the one-hot label map plus a noise channel; discriminator: MONAI's
``PatchDiscriminator`` with a least-squares loss, plus an L1 term to the real slice of the same map (Isola
et al. 2017; GenSeg trains pix2pix on augmented real masks the same way). Every step draws fresh ``deform``
transforms of the real pairs, so the network sees many label maps from few slices, and DiffAugment keeps the
discriminator from memorising them. Randomness is explicit (seeded generators); the training state is
checkpointed for ``resume``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from samdata.errors import ConfigError, TrainingError
from samdata.synth.adversarial import AdversarialRun
from samdata.synth.augment import diff_augment, parse_policy
from samdata.synth.checkpoint import (
    CHECKPOINTS,
    GENERATOR_FILE,
    LOG_FILE,
    GeneratorInfo,
    atomic_save,
    check_generator_id,
    checkpoint_path,
    file_sha256,
    read_info,
    resume_state,
    write_info,
)
from samdata.synth.configs import CganConfig as CganConfig
from samdata.synth.deform import DeformGenerator
from samdata.synth.pairs import RealPairs
from samdata.synth.source import GeneratedBatch, sample_rng

RESUMABLE = ("steps", "save_every", "log_every", "device")
NOISE_STREAM = 2  # sample_rng stream of the generator's input noise


def build_networks(classes: int, config: CganConfig) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(generator, discriminator) for ``classes`` label classes, weights from ``config.seed``."""
    from monai.networks.nets import PatchDiscriminator, UNet

    torch.manual_seed(config.seed)
    w = config.width
    generator = torch.nn.Sequential(
        UNet(
            spatial_dims=2,
            in_channels=classes + 1,
            out_channels=1,
            channels=(w, 2 * w, 4 * w, 8 * w, 8 * w),
            strides=(2, 2, 2, 2),
            num_res_units=1,
            norm="INSTANCE",
        ),
        torch.nn.Tanh(),
    )
    discriminator = PatchDiscriminator(
        spatial_dims=2, channels=2 * w, in_channels=1 + classes, out_channels=1, num_layers_d=3, norm="INSTANCE"
    )
    return generator, discriminator


def frame(classes: torch.Tensor, count: int, size: int) -> torch.Tensor:
    """(n, H, W) int64 class maps → (n, count, size, size) one-hot in [-1, 1] (nearest resize)."""
    onehot = F.one_hot(classes, count).permute(0, 3, 1, 2).float()
    return F.interpolate(onehot, size=(size, size), mode="nearest") * 2 - 1


def image_frame(images: np.ndarray, size: int) -> torch.Tensor:
    """(n, H, W) uint8 → (n, 1, size, size) in [-1, 1] (area or bilinear resize)."""
    x = torch.from_numpy(np.asarray(images, dtype=np.float32) / 127.5 - 1)[:, None]
    return F.interpolate(x, size=(size, size), mode="area" if size <= min(x.shape[-2:]) else "bilinear")


class _Run(AdversarialRun):
    """Networks, optimisers, EMA and generators of one training run."""

    def __init__(self, shapes: DeformGenerator, config: CganConfig, device: torch.device) -> None:
        from monai.losses import PatchAdversarialLoss

        self.shapes, self.count = shapes, len(shapes.classes)
        super().__init__(*build_networks(self.count, config), config, config.lr, (0.5, 0.999), config.seed, device)
        self.policy = parse_policy(config.augment)
        self.classes = shapes.classes.encode(shapes.label_maps)
        self.adversarial = PatchAdversarialLoss(criterion="least_squares")

    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """A training batch of deformed real pairs: (labels one-hot, images) in the model frame."""
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=self.cpu_gen))
        plan = self.shapes.plan(seed, list(range(self.config.batch_size)))
        images = self.shapes.warp_images(plan, self.shapes.reference.images)
        classes = self.shapes.warp_classes(plan, self.classes, self.count)
        size = self.config.size
        return frame(classes, self.count, size).to(self.device), image_frame(images, size).to(self.device)

    def generate(self, net: torch.nn.Module, cond: torch.Tensor) -> torch.Tensor:
        """Images for one-hot ``cond`` with fresh input noise from the run's CPU generator."""
        noise = torch.randn(cond.shape[0], 1, *cond.shape[-2:], generator=self.cpu_gen).to(self.device)
        return net(torch.cat([cond, noise], dim=1))

    def train_step(self) -> dict[str, float]:
        """One discriminator and one generator update; returns the losses."""
        cond, real = self.batch()
        fake = self.generate(self.g, cond)
        d_real = self.d(diff_augment(torch.cat([real, cond], 1), self.policy, self.aug_gen))[-1]
        d_fake = self.d(diff_augment(torch.cat([fake.detach(), cond], 1), self.policy, self.aug_gen))[-1]
        loss_d = 0.5 * (
            self.adversarial(d_real, target_is_real=True, for_discriminator=True)
            + self.adversarial(d_fake, target_is_real=False, for_discriminator=True)
        )
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()
        d_fake = self.d(diff_augment(torch.cat([fake, cond], 1), self.policy, self.aug_gen))[-1]
        loss_adv = self.adversarial(d_fake, target_is_real=True, for_discriminator=False)
        loss_l1 = (fake - real).abs().mean()
        loss_g = loss_adv + self.config.l1 * loss_l1
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        self.step += 1
        self.update_ema(self.config.ema)
        metrics = {"loss_d": loss_d.item(), "loss_g": loss_adv.item(), "l1": loss_l1.item()}
        if not all(np.isfinite(v) for v in metrics.values()):
            raise TrainingError(f"cgan training diverged at step {self.step}: {metrics}; lower lr or change seed")
        return metrics


@dataclass(frozen=True)
class CganResult:
    """A finished cgan run: folder, steps, checkpoint hash of generator.pt, wall time, last losses."""

    gen_dir: Path
    step: int
    checkpoint_hash: str
    seconds: float
    metrics: dict[str, float]
    samples: tuple[Path, ...] = ()


def train_cgan(
    pairs: RealPairs,
    gen_dir: Path | str,
    config: CganConfig,
    *,
    generator_id: str,
    resume: bool = False,
    on_step: Any = None,
) -> CganResult:
    """Train a cgan on ``pairs`` (full label maps) into ``gen_dir``; returns the result."""
    from samdata.device import resolve_device

    gen_dir = Path(gen_dir)
    check_generator_id(generator_id)
    state = resume_state(gen_dir, config.to_json(), RESUMABLE, resume)
    shapes = DeformGenerator(pairs, config.deform, generator_id=generator_id)
    run = _Run(shapes, config, resolve_device(config.device))
    if state is not None:
        run.load(state)
    (gen_dir / CHECKPOINTS).mkdir(parents=True, exist_ok=True)
    started, metrics = time.perf_counter(), {}
    with open(gen_dir / LOG_FILE, "a") as log:
        while run.step < config.steps:
            metrics = run.train_step()
            if run.step % config.log_every == 0 or run.step == config.steps:
                log.write(json.dumps({"step": run.step, **metrics}) + "\n")
                log.flush()
            if run.step % config.save_every == 0 or run.step == config.steps:
                atomic_save(run.state(), checkpoint_path(gen_dir, run.step))
            if on_step is not None:
                on_step(run.step, config.steps, metrics)
    atomic_save({k: v.detach().cpu() for k, v in run.ema.state_dict().items()}, gen_dir / GENERATOR_FILE)
    info = GeneratorInfo.of(
        pairs, config.to_json(), generator_id=generator_id, net=None, steps_done=run.step, kind="cgan"
    )
    write_info(gen_dir, info)
    return CganResult(gen_dir, run.step, file_sha256(gen_dir / GENERATOR_FILE), time.perf_counter() - started, metrics)


class CganSource:
    """A trained cgan as a pair source: ``deform`` label maps of the real slices painted by the generator."""

    kind = "cgan"
    seeded = True
    realistic = True

    def __init__(
        self,
        gen_dir: Path | str,
        reference: RealPairs,
        device: torch.device | str = "cpu",
        *,
        fields: dict[tuple[int, int], np.ndarray] | None = None,
    ) -> None:
        gen_dir = Path(gen_dir)
        self.info = read_info(gen_dir)
        self.config = CganConfig.from_json(self.info.gan)
        self.generator_id = self.info.generator_id
        self.shapes = DeformGenerator(reference, self.config.deform, generator_id=self.generator_id, fields=fields)
        self.count = len(self.shapes.classes)
        self.generator = build_networks(self.count, self.config)[0]
        state = torch.load(gen_dir / GENERATOR_FILE, map_location="cpu", weights_only=True)
        try:
            self.generator.load_state_dict(state)
        except RuntimeError as err:
            raise ConfigError(
                f"cgan weights in {str(gen_dir)!r} do not fit {self.count} label classes of the reference slices: {err}"
            ) from err
        self.device = torch.device(device)
        self.generator = self.generator.to(self.device).eval()
        self.checkpoint_hash = file_sha256(gen_dir / GENERATOR_FILE)
        self.description = f"samdata:{self.kind}:{gen_dir.resolve()}"

    @torch.no_grad()
    def paint(self, classes: torch.Tensor, seed: int, indices: list[int]) -> np.ndarray:
        """(n, H, W) uint8 images for (n, H, W) class maps on the store grid, noise of sample k from (seed, k)."""
        size = self.config.size
        cond = frame(classes, self.count, size)
        noise = torch.stack(
            [
                torch.from_numpy(sample_rng(seed, k, NOISE_STREAM).standard_normal((1, size, size)).astype(np.float32))
                for k in indices
            ]
        )
        out = self.generator(torch.cat([cond, noise], 1).to(self.device)).float().cpu()
        out = F.interpolate(out, size=tuple(classes.shape[-2:]), mode="bilinear", align_corners=False)[:, 0]
        return ((out.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()

    def batch(self, seed: int, indices: list[int]) -> GeneratedBatch:
        """Samples ``indices`` of ``seed``: deform's label maps and the generator's images of them."""
        shapes = self.shapes
        plan = shapes.plan(seed, indices)
        classes = shapes.warp_classes(plan, shapes.classes.encode(shapes.label_maps), self.count)
        recipes = tuple({**{k: v for k, v in r.items() if k != "parents"}, "paint": "cgan"} for r in plan.recipes)
        return GeneratedBatch(
            self.paint(classes, seed, indices),
            shapes.classes.decode(classes, shapes.dtype),
            plan.min_jacobian,
            shapes.parents(plan),
            recipes,
        )
