"""The synth configurations (gate thresholds, the two trained generators' runs, deform transforms), apart
from the torch and numpy code that uses them, so that the CLI and the flows can read them cheaply."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass
from typing import Annotated, Any, Literal

from pydantic import Field

from samdata.config import Int, Number, Positive, Weight, config
from samdata.errors import ConfigError

Slack = Annotated[Number, Field(ge=0, le=100)]
Rate = Annotated[float, Field(strict=True, ge=0, lt=1)]  # a rate or decay in [0, 1)
#: the DiffAugment policy (``samdata.synth.augment.POLICIES``), ``none`` to switch it off
Policy = Annotated[str, Field(description="DiffAugment policy, e.g. translation,cutout; none")]
#: a generator run's seed
Seed = Annotated[Int, Field(ge=0, description="Seed of weights, batches, noise and augmentation")]
Steps = Annotated[Int, Field(ge=1, description="Training steps, one D and one G update each")]
PairsPerStep = Annotated[Int, Field(ge=1, description="Pairs per step")]
SaveEvery = Annotated[Int, Field(ge=1, description="Steps between resumable checkpoints")]


@dataclass(frozen=True)
class DeformParams:
    """Random smooth field (``max_mm`` at control points ``control_mm`` apart), affine (rotation, scale,
    shift), the share of in-between morphs and their range of ``t``, and the largest z gap of a morph pair."""

    max_mm: float = 4.0
    control_mm: float = 32.0
    rotation_deg: float = 10.0
    scale: float = 0.08
    shift_mm: float = 8.0
    morph: float = 0.5
    t_min: float = 0.1
    t_max: float = 0.9
    max_gap: int = 40

    def __post_init__(self) -> None:
        for key in ("max_mm", "rotation_deg", "scale", "shift_mm"):
            if not 0 <= float(getattr(self, key)) < 1e3:
                raise ConfigError(f"deform {key}={getattr(self, key)!r}; expected a number >= 0")
        if not self.control_mm > 0:
            raise ConfigError(f"deform control_mm={self.control_mm!r}; expected > 0 (mm between control points)")
        if not 0 <= self.morph <= 1:
            raise ConfigError(f"deform morph={self.morph!r}; expected a probability 0..1")
        if not 0 < self.t_min <= self.t_max < 1:
            raise ConfigError(f"deform t range {self.t_min}..{self.t_max}; expected 0 < t_min <= t_max < 1")
        if self.scale >= 0.5:
            raise ConfigError(f"deform scale={self.scale!r}; expected < 0.5 (per-axis scale 1 ± scale)")
        if self.max_gap < 1:
            raise ConfigError(f"deform max_gap={self.max_gap!r}; expected >= 1 slice")


@config
class GateConfig:
    """Gate thresholds; ``min_distance`` None = ``distance_fraction`` × the real slices' median
    nearest-neighbour distance; ``frechet_max`` None = report the Fréchet distance only."""

    area_slack: Annotated[Slack, Field(description="Label areas within (1 ± slack) x the real range")] = 0.5
    component_slack: Annotated[Slack, Field(description="Components at most (1 + slack) x real max + 2")] = 1.0
    min_jacobian: Annotated[Number, Field(ge=-1, lt=1)] = 0.0
    intensity_order: bool = True
    min_distance: (
        Annotated[
            Number, Field(ge=0, le=1, description="Memorisation distance, RMS intensity (default: 0.1 x the real one)")
        ]
        | None
    ) = None
    distance_fraction: Annotated[Number, Field(gt=0, le=1)] = 0.1
    frechet_max: Annotated[Number, Field(gt=0, description="Reject a batch above this Fréchet distance")] | None = 2.0


@config
class GanConfig:
    """A paired-GAN training run: network shape, optimisation, augmentation and bookkeeping.

    ``augment``: DiffAugment policy (``color,translation,cutout``; ``none`` to switch off).
    ``device``: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``.
    """

    arch: Annotated[str, Field(description="Generator design of fastgan: fastgan or dcgan")] = "fastgan"
    size: Annotated[int, Field(description="Square model size, a power of two 32-256")] = 64
    latent: Annotated[int, Field(description="Latent vector length of fastgan")] = 64
    width: Annotated[int, Field(description="Channels at full resolution")] = 16
    steps: Steps = 1000
    batch_size: PairsPerStep = 16
    lr: Annotated[Rate, Field(description="Adam learning rate of G and D")] = 2e-4
    beta1: Rate = 0.5
    beta2: Rate = 0.999
    augment: Policy = "color,translation,cutout"
    ema: Rate = 0.999
    seed: Seed = 0
    sample_every: Annotated[Int, Field(ge=0)] = 250
    save_every: SaveEvery = 500
    log_every: Positive = 50
    device: str = "cpu"

    def __post_init__(self) -> None:
        from samdata.synth.augment import parse_policy

        parse_policy(self.augment)
        self.net(1)  # validates arch, size, latent, width

    def net(self, labels: int) -> Any:
        """The network shape (a :class:`samdata.synth.networks.NetConfig`) for ``labels`` mask channels."""
        from samdata.synth.networks import NetConfig

        return NetConfig(arch=self.arch, size=self.size, latent=self.latent, width=self.width, labels=labels)

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict of every field."""
        return dataclasses.asdict(self)


@config
class CganConfig:
    """A cgan run: model frame ``size`` (256 on a GPU, 128 fits a CPU budget), generator ``width``, steps,
    batch, Adam ``lr``, L1 weight, DiffAugment policy, EMA decay, the deform transforms of training pairs."""

    size: Annotated[
        Literal[64, 128, 192, 256, 384, 512],
        Field(description="Square model size, a multiple of 16; 128 fits a CPU budget"),
    ] = 256
    width: Annotated[Int, Field(ge=4, description="Channels at full resolution")] = 16
    steps: Steps = 1000
    batch_size: PairsPerStep = 4
    lr: Annotated[Number, Field(gt=0, lt=1, description="Adam learning rate of G and D")] = 2e-4
    l1: Annotated[Weight, Field(description="cgan: weight of the L1 term against the real image")] = 10.0
    augment: Policy = "translation,cutout"
    ema: Annotated[Number, Field(ge=0, lt=1)] = 0.99
    seed: Seed = 0
    save_every: SaveEvery = 250
    log_every: Positive = 25
    device: str = "cpu"
    deform: DeformParams = DeformParams()

    def __post_init__(self) -> None:
        from samdata.synth.augment import parse_policy

        parse_policy(self.augment)

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict of every field."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CganConfig:
        """Rebuild from :meth:`to_json` output."""
        return cls(**{**data, "deform": DeformParams(**data.get("deform", {}))})
