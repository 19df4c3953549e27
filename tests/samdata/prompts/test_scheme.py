"""Prompt schemes: spec strings round trip and reject every bad input; same seed, same prompts."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from samdata.errors import ConfigError
from samdata.prompts import (
    SCHEMES,
    BoxParams,
    HybridParams,
    PointsParams,
    PromptNoise,
    PromptScheme,
    object_rng,
    parse_scheme,
)
from tests.samdata.prompts.shapes import FAST, blob

BRIEF_SPECS = [
    "box",
    "box:jitter=5",
    "box:mode=relative,frac=0.025",
    "box:mode=gauss,sigma=0.01",
    "points:n=3,neg=1,mode=uniform",
    "points:mode=interior",
    "hybrid:box=0.5,points=0.5,box+points=0",
    "clicks:max=5",
    "mask:op=erode,px=3",
    "box:jitter=5,jitter_px=2,misclick=0.05,missed_edge=0.1",
    " points : n = 2 , neg_mode = background ",
    "hybrid:box=0.2,points=0.2,box+points=0.6,box.mode=gauss,points.n=3,points.neg=1,jitter_px=1",
]


@pytest.mark.parametrize("spec", BRIEF_SPECS)
def test_spec_round_trip(spec: str) -> None:
    scheme = parse_scheme(spec)
    assert parse_scheme(scheme.spec) == scheme and parse_scheme(scheme.spec).spec == scheme.spec
    assert scheme.spec.startswith(f"{scheme.name}:")


def test_spec_values_land_in_params() -> None:
    scheme = parse_scheme("hybrid:box=0.2,points=0.2,box+points=0.6,box.mode=gauss,points.n=3,misclick=0.05")
    assert scheme.params == HybridParams(0.2, 0.2, 0.6, BoxParams(mode="gauss"), PointsParams(n=3))
    assert scheme.noise == PromptNoise(misclick=0.05)
    assert parse_scheme("box") == PromptScheme("box") == PromptScheme("box", BoxParams(), PromptNoise())


@FAST
@given(
    st.sampled_from(["fixed", "relative", "gauss"]),
    st.integers(0, 50),
    st.floats(0, 1),
    st.floats(0, 1),
    st.integers(0, 40),
    st.floats(0, 100),
    st.floats(0, 1),
    st.floats(0, 1),
)
def test_spec_round_trip_any_values(
    mode: str, jitter: int, frac: float, sigma: float, cap: int, jitter_px: float, misclick: float, missed: float
) -> None:
    scheme = PromptScheme("box", BoxParams(mode, jitter, frac, sigma, cap), PromptNoise(jitter_px, misclick, missed))
    assert parse_scheme(scheme.spec) == scheme


BAD_SPECS = [
    ("", "empty"),
    ("   ", "empty"),
    (":jitter=1", "no scheme name"),
    ("box:", "no key=value"),
    ("box:jitter", "not key=value"),
    ("box:=3", "not key=value"),
    ("box:jitter=", "not key=value"),
    ("box:jitter=1,,cap=2", "not key=value"),
    ("box:jitter=1,jitter=2", "given twice"),
    ("box:foo=1", "unknown key"),
    ("box:n=3", "unknown key"),
    ("box:jitter=abc", "not an integer"),
    ("box:jitter=2.5", "not an integer"),
    ("box:jitter=-1", "expected an integer >= 0"),
    ("box:mode=weird", "expected one of fixed, relative, gauss"),
    ("box:frac=nan", "not a finite number"),
    ("box:frac=1.5", r"expected a number in \[0.0, 1.0\]"),
    ("box:sigma=x", "not a number"),
    ("points:n=0", "integer >= 1"),
    ("points:n=2,mode=interior", "places one positive point"),
    ("points:neg_mode=inside", "ring, background"),
    ("points:ring=0", "integer >= 1"),
    ("hybrid:box=0.7,points=0.7", "sum to 1.4"),
    ("hybrid:box.jitter=-2", "jitter=-2"),
    ("hybrid:box.nope=1", "unknown key"),
    ("clicks:max=0", "integer >= 1"),
    ("clicks:iters=-1", "integer >= 0"),
    ("mask:op=blur", "erode, dilate, shift, any"),
    ("mask:size=-256", "integer >= 0"),
    ("box:jitter_px=-1", "jitter_px=-1.0"),
    ("box:misclick=2", "misclick=2.0"),
    ("points:missed_edge=1.1", "missed_edge"),
]


@pytest.mark.parametrize(("spec", "message"), BAD_SPECS)
def test_bad_spec_raises_config_error(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_scheme(spec)


def test_unknown_key_lists_valid_keys() -> None:
    with pytest.raises(ConfigError, match="valid keys: mode, jitter, frac, sigma, cap, jitter_px, misclick"):
        parse_scheme("box:size=3")


def test_params_are_checked_without_a_spec() -> None:
    with pytest.raises(ConfigError, match="takes BoxParams; got PointsParams"):
        PromptScheme("box", PointsParams())
    with pytest.raises(ConfigError, match="jitter=True"):
        BoxParams(jitter=True)
    with pytest.raises(ConfigError, match="noise must be PromptNoise"):
        PromptScheme("box", None, "jitter_px=1")  # type: ignore[arg-type]


@pytest.mark.parametrize("name", sorted(SCHEMES))
def test_every_scheme_has_a_round_tripping_default(name: str) -> None:
    scheme = PromptScheme(name)
    assert parse_scheme(name) == scheme == parse_scheme(scheme.spec)
    assert SCHEMES[name].summary


NOISY = "jitter_px=1.5,misclick=0.3,missed_edge=0.5"


@pytest.mark.parametrize("name", sorted(SCHEMES))
def test_same_seed_same_prompts(name: str) -> None:
    mask = blob(64, 72, 30, 36, 14, 18, ellipse=True)
    extra = {"points": "neg=2,", "clicks": "n=3,", "hybrid": "box+points=0.5,box=0.25,points=0.25,"}.get(name, "")
    scheme = parse_scheme(f"{name}:{extra}{NOISY}")
    first = [scheme(mask, object_rng(11, "case-a", 4, 2)) for _ in range(3)]
    again = [scheme(mask, object_rng(11, "case-a", 4, 2)) for _ in range(3)]
    assert first == again and first[0] == first[1]
    runs = [scheme(mask, rng) for rng in [np.random.default_rng(5)] for _ in range(8)]
    assert any(p != runs[0] for p in runs[1:])


def test_object_rng_depends_on_every_key() -> None:
    draws = {
        object_rng(*key).integers(2**62)
        for key in [(1, "a", 0, 1), (2, "a", 0, 1), (1, "b", 0, 1), (1, "a", 1, 1), (1, "a", 0, 2)]
    }
    assert len(draws) == 5
    with pytest.raises(ConfigError, match="non-negative"):
        object_rng(-1, "a", 0, 1)
