"""Training a paired GAN on tens to hundreds of real slices: hinge loss, spectral norm, DiffAugment, EMA.

One step: the discriminator sees a DiffAugmented batch of real pairs and of generated pairs
(hinge loss), then the generator is updated to fool it through the same augmentation; an
exponential moving average (EMA) of the generator's weights is what gets saved and sampled
(decay ``min(ema, (1 + step) / (10 + step))``, so short runs are not dominated by the start).

Randomness is explicit: a CPU ``torch.Generator`` seeded with ``seed`` draws batch indices and
latents, a second one on the training device (seed + 1) drives DiffAugment; both states are in
every checkpoint, so ``resume`` continues the same sequence. Same seed, same device → same weights.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from samdata.device import resolve_device
from samdata.errors import TrainingError
from samdata.figures import draw_grid
from samdata.synth.adversarial import AdversarialRun
from samdata.synth.augment import diff_augment, parse_policy
from samdata.synth.checkpoint import (
    CHECKPOINTS,
    LOG_FILE,
    SAMPLES,
    GeneratorInfo,
    atomic_save,
    check_generator_id,
    checkpoint_path,
    resume_state,
    save_generator,
)
from samdata.synth.configs import GanConfig as GanConfig
from samdata.synth.losses import d_hinge, g_hinge
from samdata.synth.networks import NetConfig, PairedGenerator, build_networks
from samdata.synth.pairs import RealPairs, to_model, to_store_grid
from samdata.synth.sample import latents_for

#: Called after every step with (step, total steps, metrics).
StepFn = Callable[[int, int, dict[str, float]], None]
#: Fields a resumed run may change.
RESUMABLE = ("steps", "sample_every", "save_every", "log_every", "device")
GRID_SAMPLES = 16


@dataclass(frozen=True)
class GanResult:
    """A finished run: folder, steps done, checkpoint hash of generator.pt, wall time, last losses, grids."""

    gen_dir: Path
    step: int
    checkpoint_hash: str
    seconds: float
    metrics: dict[str, float]
    samples: tuple[Path, ...]


class _Run(AdversarialRun):
    """The mutable state of one training run (networks, optimisers, generators)."""

    def __init__(self, pairs: RealPairs, config: GanConfig, device: torch.device) -> None:
        self.net = config.net(len(pairs.label_values))
        super().__init__(
            *build_networks(self.net, config.seed), config, config.lr, (config.beta1, config.beta2), config.seed, device
        )
        self.policy = parse_policy(config.augment)
        self.real = to_model(pairs.images, pairs.masks, config.size).to(device)

    def latents(self, n: int) -> torch.Tensor:
        """(n, latent) N(0, 1) latents from the run's CPU generator, on the training device."""
        return torch.randn(n, self.net.latent, generator=self.cpu_gen).to(self.device)

    def train_step(self) -> dict[str, float]:
        """One discriminator and one generator update; returns the losses and mean logits."""
        n = self.config.batch_size
        idx = torch.randint(0, self.real.shape[0], (n,), generator=self.cpu_gen).to(self.device)
        real = self.real[idx]
        fake = as_pair(self.g(self.latents(n)))
        real_logits = self.d(diff_augment(real, self.policy, self.aug_gen))
        fake_logits = self.d(diff_augment(fake.detach(), self.policy, self.aug_gen))
        loss_d = d_hinge(real_logits, fake_logits)
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()
        fake = as_pair(self.g(self.latents(n)))
        loss_g = g_hinge(self.d(diff_augment(fake, self.policy, self.aug_gen)))
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        self.step += 1
        self.update_ema(self.config.ema)
        metrics = {
            "loss_d": loss_d.item(),
            "loss_g": loss_g.item(),
            "d_real": real_logits.detach().mean().item(),
            "d_fake": fake_logits.detach().mean().item(),
        }
        if not all(np.isfinite(v) for v in metrics.values()):
            raise TrainingError(f"GAN training diverged at step {self.step}: {metrics}; lower --lr or change --seed")
        return metrics


def as_pair(output: torch.Tensor) -> torch.Tensor:
    """Generator output (image in [-1, 1], mask logits) → image and mask probabilities both in [-1, 1]."""
    return torch.cat([output[:, :1], torch.sigmoid(output[:, 1:]) * 2 - 1], dim=1)


def write_grid(generator: PairedGenerator, info: GeneratorInfo, seed: int, path: Path, title: str) -> Path:
    """Draw ``GRID_SAMPLES`` pairs of ``generator`` (fixed latents of ``seed``) at model size as a PNG grid."""
    device = next(generator.parameters()).device
    with torch.no_grad():
        out = generator(latents_for(seed, range(GRID_SAMPLES), info.net.latent).to(device))
    size = (info.net.size, info.net.size)
    images, labels = to_store_grid(out, size, info.label_values)
    samples = [(images[k], labels[k], None, f"{title} #{k}") for k in range(GRID_SAMPLES)]
    return draw_grid(samples, path, cols=4, label_names=dict(zip(info.label_values, info.label_names)))


def _info(pairs: RealPairs, config: GanConfig, net: NetConfig, generator_id: str, steps_done: int) -> GeneratorInfo:
    return GeneratorInfo.of(pairs, config.to_json(), generator_id=generator_id, net=net, steps_done=steps_done)


def train_gan(
    pairs: RealPairs,
    gen_dir: Path | str,
    config: GanConfig,
    *,
    generator_id: str,
    resume: bool = False,
    on_step: StepFn | None = None,
) -> GanResult:
    """Train a paired GAN on ``pairs`` into ``gen_dir`` (see the module docstring); returns the result."""
    gen_dir = Path(gen_dir)
    check_generator_id(generator_id)
    state = resume_state(gen_dir, config.to_json(), RESUMABLE, resume)
    run = _Run(pairs, config, resolve_device(config.device))
    if state is not None:
        run.load(state)
    (gen_dir / CHECKPOINTS).mkdir(parents=True, exist_ok=True)
    (gen_dir / SAMPLES).mkdir(parents=True, exist_ok=True)
    started, metrics, grids = time.perf_counter(), {}, []
    with open(gen_dir / LOG_FILE, "a") as log:
        while run.step < config.steps:
            metrics = run.train_step()
            step = run.step
            if step % config.log_every == 0 or step == config.steps:
                log.write(json.dumps({"step": step, **metrics}) + "\n")
                log.flush()
            if config.sample_every and (step % config.sample_every == 0 or step == config.steps):
                info = _info(pairs, config, run.net, generator_id, step)
                grids.append(
                    write_grid(run.ema, info, config.seed, gen_dir / SAMPLES / f"step-{step:06d}.png", f"step {step}")
                )
            if step % config.save_every == 0 or step == config.steps:
                atomic_save(run.state(), checkpoint_path(gen_dir, step))
            if on_step is not None:
                on_step(step, config.steps, metrics)
    checkpoint_hash = save_generator(gen_dir, run.ema, _info(pairs, config, run.net, generator_id, run.step))
    return GanResult(gen_dir, run.step, checkpoint_hash, time.perf_counter() - started, metrics, tuple(grids))
