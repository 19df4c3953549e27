"""Flow parameters as frozen pydantic models: Prefect validates them before a run starts.

Each model takes its fields (types, limits, defaults) from the pipeline's own config (``IngestConfig``,
``MixtureConfig``; :func:`samdata.config.model_fields`) and checks its values by building that config
(or parsing the prompt scheme), so a bad window name or scheme spec fails the run at parameter
validation with the pipeline's message, before any task runs, and the flows and the CLI accept
exactly the same values. Training's parameters live in :mod:`flows.train_params` so that this
module (imported by every Dask worker that runs an ingest task) does not import torch.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from pipelines.mixtures import MixtureConfig
from pipelines.prompt_sets import check_table_name
from samdata.config import field_names, model_fields
from samdata.normalise import IngestConfig
from samdata.prompts import parse_scheme
from samdata.spec import parse_spacing, parse_window


class Params(BaseModel):
    """Base of the flow parameter models: frozen, unknown keys refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class _IngestFields(Params):
    """Base of :class:`IngestParams`: the text forms of modality, window and spacing, and the conversion."""

    modality: str | None = None
    window: str | None = None
    spacing: str | None = None

    @model_validator(mode="after")
    def _valid(self) -> _IngestFields:
        self.config()
        return self

    def config(self) -> IngestConfig:
        """The pipeline's IngestConfig for these values (ConfigError on a bad value)."""
        values = self.model_dump(exclude={"modality", "window", "spacing"})
        return IngestConfig(
            modality=self.modality.upper() if self.modality else None,
            window=parse_window(self.window) if self.window else None,
            spacing=parse_spacing(self.spacing) if self.spacing else None,
            **{INGEST_NAMES[k]: v for k, v in values.items()},
        )


#: IngestParams' numeric fields and the IngestConfig fields they are
INGEST_NAMES = {"min_voxels": "min_object_voxels", "min_pixels": "min_object_pixels", "max_voxels": "max_voxels"}

#: How a source is normalised (IngestConfig's fields, modality, window and spacing as text).
IngestParams = create_model(
    "IngestParams",
    __base__=_IngestFields,
    __doc__=(
        "How a source is normalised: modality, CT window (preset or ``WL,WW``), spacing ``X,Y,Z`` mm, object sizes, "
        "and the voxel budget of a case."
    ),
    **model_fields(IngestConfig, INGEST_NAMES),
)


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


class _MixtureFields(Params):
    """Base of :class:`MixtureParams`: the mixture's name, validation and conversion to a MixtureConfig."""

    name: str = "default"

    @model_validator(mode="after")
    def _valid(self) -> _MixtureFields:
        check_table_name("mixture name", self.name)
        self.config(None)
        return self

    def config(self, prompt_set: str | None) -> MixtureConfig:
        """The pipeline's MixtureConfig, training with ``prompt_set`` (ConfigError on a bad value)."""
        return MixtureConfig(prompt_set=prompt_set, **self.model_dump(exclude={"name"}))


#: A curated mixture: its name and MixtureConfig's fields but the prompt set (which the flows pass).
MixtureParams = create_model(
    "MixtureParams",
    __base__=_MixtureFields,
    __doc__=("A curated mixture: name, real/synthetic weights, generator shares, labels, split fractions, seed."),
    **model_fields(MixtureConfig, [f for f in field_names(MixtureConfig) if f != "prompt_set"]),
)
