"""Flow parameters as frozen pydantic models: Prefect validates them before a run starts.

Each model checks its values by building the pipeline's own config (``IngestConfig``,
``MixtureConfig``, a prompt scheme), so a bad window name or scheme spec fails the run at parameter
validation with the pipeline's message, before any task runs, and the flows and the CLI accept
exactly the same values. Training's parameters live in :mod:`flows.train_params` so that this
module (imported by every Dask worker that runs an ingest task) does not import torch.
"""

from __future__ import annotations


from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipelines.mixtures import MixtureConfig
from pipelines.prompt_sets import check_table_name
from samdata.normalise import DEFAULT_MAX_VOXELS, IngestConfig
from samdata.spec import parse_spacing, parse_window
from samdata.prompts import parse_scheme


class Params(BaseModel):
    """Base of the flow parameter models: frozen, unknown keys refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class IngestParams(Params):
    """How a source is normalised: modality, CT window (preset or ``WL,WW``), spacing ``X,Y,Z`` mm, object sizes,
    and the voxel budget of a case."""

    modality: str | None = None
    window: str | None = None
    spacing: str | None = None
    min_voxels: int = Field(1000, ge=0)
    min_pixels: int = Field(100, ge=0)
    max_voxels: int = Field(DEFAULT_MAX_VOXELS, ge=1)

    @model_validator(mode="after")
    def _valid(self) -> IngestParams:
        self.config()
        return self

    def config(self) -> IngestConfig:
        """The pipeline's IngestConfig for these values (ConfigError on a bad value)."""
        return IngestConfig(modality=self.modality.upper() if self.modality else None,
                            window=parse_window(self.window) if self.window else None,
                            spacing=parse_spacing(self.spacing) if self.spacing else None,
                            min_object_voxels=self.min_voxels, min_object_pixels=self.min_pixels,
                            max_voxels=self.max_voxels)


class SourceParams(Params):
    """One dataset folder (MSD/nnU-Net, plain images/+labels/, DICOM folders) and how to ingest it."""

    path: str = Field(min_length=1)
    ingest: IngestParams = IngestParams()


class PromptParams(Params):
    """A prompt set: table name, scheme spec (e.g. ``box:jitter=5``), seed and label names (None = all)."""

    name: str = "boxes"
    scheme: str = "box:jitter=5"
    seed: int = Field(0, ge=0)
    labels: tuple[str, ...] | None = None

    @model_validator(mode="after")
    def _valid(self) -> PromptParams:
        check_table_name("prompt set name", self.name)
        parse_scheme(self.scheme)
        return self


class MixtureParams(Params):
    """A curated mixture: name, real/synthetic weights, generator shares, labels, split fractions, seed."""

    name: str = "default"
    real: float = Field(1.0, ge=0)
    synthetic: float = Field(0.0, ge=0)
    generators: dict[str, float] | None = None
    labels: tuple[str, ...] | None = None
    splits: tuple[float, float, float] = (0.7, 0.15, 0.15)
    seed: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _valid(self) -> MixtureParams:
        check_table_name("mixture name", self.name)
        self.config(None)
        return self

    def config(self, prompt_set: str | None) -> MixtureConfig:
        """The pipeline's MixtureConfig, training with ``prompt_set`` (ConfigError on a bad value)."""
        return MixtureConfig(real=self.real, synthetic=self.synthetic, generators=self.generators,
                             labels=self.labels, splits=self.splits, prompt_set=prompt_set, seed=self.seed)
