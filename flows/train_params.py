"""Training and evaluation parameters of the flows (imports torch through :mod:`training`).

:class:`TrainParams` is made from :class:`training.config.TrainConfig`'s own fields (all but
``store`` and ``mixture``, which the flows pass), so it follows that config as it grows; values are
checked by building the TrainConfig, so Prefect refuses a bad adapter spec or device before a run.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Literal

from pydantic import Field, create_model, model_validator

from flows.params import Params
from samdata.spec import parse_slices
from training.config import TrainConfig
from training.evaluate import EvalConfig


class EvalParams(Params):
    """Evaluation of a run: the mixture split (``train`` = the run's held-out slices), a z filter such as
    ``51-135:6``, NSD tolerance (mm), corrective-click counts, slices per encoder batch and test-time
    mirroring (:mod:`training.tta`: none, lr or flip)."""

    split: Literal["test", "val", "train"] = "test"
    slices: str | None = None
    tolerance_mm: float = Field(2.0, gt=0)
    clicks: tuple[int, ...] = ()
    batch_slices: int = Field(2, ge=1)
    tta: Literal["none", "lr", "flip"] = "none"

    @model_validator(mode="after")
    def _valid(self) -> EvalParams:
        self.config()
        if self.slices is not None:
            parse_slices(self.slices)
        return self

    def config(self) -> EvalConfig:
        """The training package's EvalConfig (ConfigError on a bad value)."""
        return EvalConfig(tolerance_mm=self.tolerance_mm, clicks=self.clicks, batch_slices=self.batch_slices,
                          tta=self.tta)


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


def _train_fields() -> dict[str, Any]:
    """TrainConfig's fields (but store and mixture) as pydantic field definitions with their defaults."""
    hints = typing.get_type_hints(TrainConfig)
    return {f.name: (hints[f.name], f.default) for f in dataclasses.fields(TrainConfig)
            if f.name not in ("store", "mixture")}


#: A run's training settings: every TrainConfig field except store and mixture, with its default.
TrainParams = create_model("TrainParams", __base__=_TrainFields, __doc__=(
    "Training settings: every TrainConfig field but store and mixture (see training.config)."), **_train_fields())
