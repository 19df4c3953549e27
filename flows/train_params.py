"""Training and evaluation parameters of the flows (imports torch through :mod:`training`).

:class:`TrainParams` is made from :class:`training.config.TrainConfig`'s own fields (all but
``store`` and ``mixture``, which the flows pass), :class:`EvalParams` from EvalConfig's, so they follow
those configs as they grow (types, limits, defaults); values are checked by building the configs, so
Prefect refuses a bad adapter spec or device before a run.
"""

from __future__ import annotations

from typing import Literal

from pydantic import create_model, model_validator

from flows.params import Params
from samdata.config import field_names, model_fields
from samdata.spec import parse_slices
from training.config import TrainConfig
from training.evaluate import EvalConfig
from training.tta import TTA_VIEWS


class _EvalFields(Params):
    """Base of :class:`EvalParams`: the split and z filter evaluated, validation and conversion."""

    split: Literal["test", "val", "train"] = "test"
    slices: str | None = None

    @model_validator(mode="after")
    def _valid(self) -> _EvalFields:
        self.config()
        if self.slices is not None:
            parse_slices(self.slices)
        return self

    def config(self) -> EvalConfig:
        """The training package's EvalConfig (ConfigError on a bad value)."""
        return EvalConfig(**self.model_dump(exclude={"split", "slices"}))


#: Evaluation of a run: split, z filter and EvalConfig's tolerance, clicks, batch and TTA (a choice in the UI).
EvalParams = create_model(
    "EvalParams",
    __base__=_EvalFields,
    __doc__=(
        "Evaluation of a run: the mixture split (``train`` = the run's held-out slices), a z filter such as "
        "``51-135:6``, NSD tolerance (mm), corrective-click counts, slices per encoder batch, 3D scores per case "
        "(``volumes``) and test-time mirroring (:mod:`training.tta`: none, lr or flip)."
    ),
    **model_fields(EvalConfig, ["tolerance_mm", "clicks", "batch_slices", "volumes"]),
    tta=(Literal[tuple(TTA_VIEWS)], model_fields(EvalConfig, ["tta"])["tta"][1]),
)  # type: ignore[misc]


class _TrainFields(Params):
    """Base of :class:`TrainParams`: validation and conversion to a TrainConfig."""

    @model_validator(mode="after")
    def _valid(self) -> _TrainFields:
        self.config("store-to-be-given", "mixture-to-be-given")
        return self

    def config(self, store: str, mixture: str) -> TrainConfig:
        """The TrainConfig of these values for ``store`` and ``mixture`` (ConfigError on a bad value)."""
        values = self.model_dump()
        return TrainConfig(store=store, mixture=mixture, **values)


#: A run's training settings: every TrainConfig field except store and mixture, with its default; among them
#: ``proposer`` (e.g. ``unet:steps=1200``), which trains the prompt-free proposer of ``--auto`` beside the run.
TrainParams = create_model(
    "TrainParams",
    __base__=_TrainFields,
    __doc__=(
        "Training settings: every TrainConfig field but store and mixture (see training.config); proposer, e.g. "
        "unet:steps=1200, also trains the prompt-free proposer of --auto into RUN/proposer."
    ),
    **model_fields(TrainConfig, [f for f in field_names(TrainConfig) if f not in ("store", "mixture")]),
)
