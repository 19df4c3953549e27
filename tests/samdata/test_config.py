"""samdata.config: one declaration per config, ConfigError naming the class, field, value and what was expected."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from pydantic import Field

from flows.settings import FlowSettings
from pipelines.mixtures import MixtureConfig
from pipelines.synthesize import SliceQuery
from samdata.config import Count, Int, build, config
from samdata.errors import ConfigError
from samdata.normalise import IngestConfig
from samdata.synth.cgan import CganConfig
from training.dataset import DatasetConfig


@config
class Example:
    """A config of the kinds of field the project's configs use."""

    count: Count = 1
    order: Annotated[Int, Field(ge=0, le=5, description="a spline order")] = 1
    name: Annotated[str, Field(pattern=r"^[a-z]+$", description="lower-case letters")] = "a"


def test_errors_name_class_field_value_and_expectation() -> None:
    with pytest.raises(ConfigError, match=r"^Example.count=-1; expected greater than or equal to 0$"):
        Example(count=-1)
    with pytest.raises(ConfigError, match=r"^Example.order=7; expected less than or equal to 5 \(a spline order\)$"):
        Example(order=7)
    with pytest.raises(ConfigError, match=r"^Example.name='A'; expected lower-case letters$"):
        Example(name="A")
    with pytest.raises(ConfigError, match="unknown field 'size'"):
        Example(size=1)  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match="unknown Example keys.*valid keys: count, name, order"):
        build(Example, {"size": 1}, "test")


@pytest.mark.parametrize(
    ("cls", "field", "required"),
    [
        (MixtureConfig, "seed", {}),
        (DatasetConfig, "size", {}),
        (IngestConfig, "min_object_voxels", {}),
        (CganConfig, "width", {}),
        (SliceQuery, "max_slices", {"labels": ("liver",)}),
        (FlowSettings, "dask_workers", {}),
    ],
)
def test_configs_refuse_unknown_fields_and_bools_for_integers(cls: type, field: str, required: dict[str, Any]) -> None:
    cls(**required)
    with pytest.raises(ConfigError, match=f"{cls.__name__}: unknown field 'nope'"):
        cls(**required, nope=1)
    with pytest.raises(ConfigError, match=f"{cls.__name__}.{field}=True"):
        cls(**required, **{field: True})


def test_cross_field_checks_stay_in_post_init() -> None:
    with pytest.raises(ConfigError, match="both 0"):
        MixtureConfig(real=0.0, synthetic=0.0)
    with pytest.raises(ConfigError, match="low < high"):
        IngestConfig(percentiles=(99.5, 0.5))
    with pytest.raises(ConfigError, match=r"SliceQuery.labels=\(\); expected at least 1 item\(s\) \(Label names"):
        SliceQuery(labels=())
    assert MixtureConfig(splits=[1, 0, 0], labels=["a"]).splits == (1.0, 0.0, 0.0)  # type: ignore[arg-type]
    assert DatasetConfig(labels=[1, "b"]).labels == ("1", "b")  # type: ignore[list-item]
