"""The pipelines' configurations (a mixture, a query of real slices, a generation run), apart from the
numpy, pandas and store code that uses them, so that the CLI and the flows read them cheaply."""

from __future__ import annotations

from dataclasses import field
from typing import Annotated

from pydantic import Field

from samdata.config import Count, Positive, Weight, config
from samdata.errors import ConfigError
from samdata.spec import parse_slices
from samdata.synth.configs import GateConfig


@config
class MixtureConfig:
    """What to mix: real and synthetic weights, generator weights, labels, split fractions, prompt set, seed."""

    real: Annotated[Weight, Field(description="Total sampling weight of the real train cases")] = 1.0
    synthetic: Annotated[Weight, Field(description="Total sampling weight of the synthetic cases")] = 0.0
    generators: Annotated[
        dict[str, Weight] | None,
        Field(description="GEN=W: share of the synthetic weight for a generator id (default: all, per case)"),
    ] = None
    labels: tuple[str, ...] | None = None
    splits: Annotated[
        tuple[Weight, Weight, Weight], Field(description="train,val,test fractions of the real cases")
    ] = (0.7, 0.15, 0.15)
    prompt_set: Annotated[str | None, Field(description="Prompt set the mixture trains with")] = None
    seed: Annotated[Count, Field(description="Seed of the case split")] = 0

    def __post_init__(self) -> None:
        if self.real + self.synthetic <= 0:
            raise ConfigError(
                f"mixture weights real={self.real} and synthetic={self.synthetic} are both 0; expected at least one > 0"
            )
        if self.generators is not None and sum(self.generators.values()) <= 0:
            raise ConfigError(f"generator weights {self.generators} sum to 0; expected at least one > 0")
        if abs(sum(self.splits) - 1.0) > 1e-6 or self.splits[0] <= 0:
            raise ConfigError(
                f"mixture splits {self.splits} sum to {sum(self.splits):g}; expected train > 0 "
                "and train + val + test = 1"
            )


@config
class SliceQuery:
    """Which real slices: label names, optional case ids and z indices, splits, a cap and a snapshot."""

    labels: Annotated[
        tuple[str, ...],
        Field(
            min_length=1,
            description=("Label names whose slices the generator starts from; every label of those slices is kept"),
        ),
    ]
    cases: Annotated[tuple[str, ...] | None, Field(description="Only these case ids")] = None
    slices: Annotated[tuple[int, ...] | None, Field(description="Only these z, e.g. 50-139:3 or 60,80,100")] = None
    splits: tuple[str, ...] = ("train",)
    max_slices: Annotated[Positive | None, Field(description="At most N slices, evenly spaced")] = None
    snapshot: Annotated[str | None, Field(description="Store snapshot id (default: the head)")] = None


@config
class SynthConfig:
    """How many pairs to draw (``count``, indices 0..count-1 of ``seed``), per batch, with which gate."""

    count: Annotated[Positive, Field(description="Pairs to generate: samples 0..N-1 of the seed")]
    seed: Annotated[Count, Field(description="Seed; the same seed regenerates the same pairs")] = 0
    batch_size: Annotated[Positive, Field(description="Pairs per gated batch, a Fréchet distance each")] = 16
    gate: GateConfig = field(default_factory=GateConfig)
    dry_run: Annotated[bool, Field(description="Gate and report, write nothing")] = False


@config
class NnunetExportConfig:
    """How to write a mixture as an nnU-Net v2 raw dataset: its id and name, synthetic cases or not, and the
    z of the real train cases whose labels it keeps (the other voxels get nnU-Net's ignore label)."""

    dataset_id: Annotated[int, Field(strict=True, ge=1, le=999, description="nnU-Net dataset id (DatasetXXX)")] = 501
    name: Annotated[
        str | None,
        Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$", description="Dataset name (default: the mixture's name)"),
    ] = None
    synthetic: Annotated[bool, Field(strict=True, description="Export the mixture's synthetic train cases too")] = True
    train_slices: Annotated[
        str | None,
        Field(
            description="Keep labels only on these z of the real train cases, e.g. 50-139:3; "
            "their other voxels get nnU-Net's ignore label (default: every slice)"
        ),
    ] = None

    def __post_init__(self) -> None:
        if self.train_slices is not None:
            parse_slices(self.train_slices)  # ConfigError naming the bad item
