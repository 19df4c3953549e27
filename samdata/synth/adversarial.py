"""What the two GAN training loops (``fastgan``, ``cgan``) share: resumable state and the generator's EMA.

A run holds a generator ``g`` and its exponential moving average ``ema`` (what gets saved and sampled;
decay ``min(ema, (1 + step) / (10 + step))``, so short runs are not dominated by the start), a
discriminator ``d``, their Adam optimisers, a CPU ``torch.Generator`` (batches, latents, noise) and a
device one (DiffAugment); all of it round-trips through :meth:`AdversarialRun.state` for ``resume``.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import torch


class AdversarialRun:
    """The resumable part of a GAN run (subclasses build the networks and define the training step)."""

    def __init__(
        self,
        g: torch.nn.Module,
        d: torch.nn.Module,
        config: Any,
        lr: float,
        betas: tuple[float, float],
        seed: int,
        device: torch.device,
    ) -> None:
        self.config, self.device = config, device
        self.g, self.d = g.to(device), d.to(device)
        self.ema = copy.deepcopy(self.g).eval().requires_grad_(False)
        self.opt_g = torch.optim.Adam(self.g.parameters(), lr=lr, betas=betas)
        self.opt_d = torch.optim.Adam(self.d.parameters(), lr=lr, betas=betas)
        self.cpu_gen = torch.Generator().manual_seed(seed)
        self.aug_gen = torch.Generator(device=device).manual_seed(seed + 1)
        self.step = 0

    def state(self) -> dict[str, Any]:
        """Everything needed to resume, in weights_only-loadable types."""
        return {
            "step": self.step,
            "g": self.g.state_dict(),
            "d": self.d.state_dict(),
            "ema": self.ema.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "cpu_gen": self.cpu_gen.get_state(),
            "aug_gen": self.aug_gen.get_state(),
            "config": json.dumps(self.config.to_json()),
        }

    def load(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state` output."""
        self.step = int(state["step"])
        for name in ("g", "d", "ema", "opt_g", "opt_d"):
            getattr(self, name).load_state_dict(state[name])
        self.cpu_gen.set_state(state["cpu_gen"])
        self.aug_gen.set_state(state["aug_gen"].cpu())

    @torch.no_grad()
    def update_ema(self, decay_max: float) -> None:
        """Move the EMA generator towards the trained one (buffers copied)."""
        decay = min(decay_max, (1 + self.step) / (10 + self.step))
        for p_ema, p in zip(self.ema.parameters(), self.g.parameters()):
            p_ema.lerp_(p, 1.0 - decay)
        for b_ema, b in zip(self.ema.buffers(), self.g.buffers()):
            b_ema.copy_(b)
