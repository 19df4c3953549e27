"""Prompt records, columns, frame mapping and scheme spec strings: round trips and every bad input."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from samdata.errors import ConfigError, RegistryError, ValidationError
from samdata.prompts import (
    SCHEMES,
    BoxParams,
    HybridParams,
    PointsParams,
    Prompt,
    PromptNoise,
    PromptScheme,
    columns_to_prompts,
    frame_shape,
    mask_to_frame,
    parse_scheme,
    prompts_to_columns,
)
from samdata.prompts.regions import tight_box

FAST = settings(max_examples=40, deadline=None)

BRIEF_SPECS = [
    "box", "box:jitter=5", "box:mode=relative,frac=0.025", "box:mode=gauss,sigma=0.01", "points:n=3,neg=1,mode=uniform",
    "points:mode=interior", "hybrid:box=0.5,points=0.5,box+points=0", "clicks:max=5", "mask:op=erode,px=3",
    "box:jitter=5,jitter_px=2,misclick=0.05,missed_edge=0.1", " points : n = 2 , neg_mode = background ",
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
@given(st.sampled_from(["fixed", "relative", "gauss"]), st.integers(0, 50), st.floats(0, 1), st.floats(0, 1),
       st.integers(0, 40), st.floats(0, 100), st.floats(0, 1), st.floats(0, 1))
def test_spec_round_trip_any_values(mode: str, jitter: int, frac: float, sigma: float, cap: int, jitter_px: float,
                                    misclick: float, missed: float) -> None:
    scheme = PromptScheme("box", BoxParams(mode, jitter, frac, sigma, cap), PromptNoise(jitter_px, misclick, missed))
    assert parse_scheme(scheme.spec) == scheme


BAD_SPECS = [
    ("", "empty"), ("   ", "empty"), (":jitter=1", "no scheme name"), ("box:", "no key=value"),
    ("box:jitter", "not key=value"), ("box:=3", "not key=value"), ("box:jitter=", "not key=value"),
    ("box:jitter=1,,cap=2", "not key=value"), ("box:jitter=1,jitter=2", "given twice"),
    ("box:foo=1", "unknown key"), ("box:n=3", "unknown key"), ("box:jitter=abc", "not an integer"),
    ("box:jitter=2.5", "not an integer"), ("box:jitter=-1", "expected an integer >= 0"),
    ("box:mode=weird", "expected one of fixed, relative, gauss"), ("box:frac=nan", "not a finite number"),
    ("box:frac=1.5", r"expected a number in \[0.0, 1.0\]"), ("box:sigma=x", "not a number"),
    ("points:n=0", "integer >= 1"), ("points:n=2,mode=interior", "places one positive point"),
    ("points:neg_mode=inside", "ring, background"), ("points:ring=0", "integer >= 1"),
    ("hybrid:box=0.7,points=0.7", "sum to 1.4"), ("hybrid:box.jitter=-2", "jitter=-2"),
    ("hybrid:box.nope=1", "unknown key"), ("clicks:max=0", "integer >= 1"), ("clicks:iters=-1", "integer >= 0"),
    ("mask:op=blur", "erode, dilate, shift, any"), ("mask:size=-256", "integer >= 0"),
    ("box:jitter_px=-1", "jitter_px=-1.0"), ("box:misclick=2", "misclick=2.0"),
    ("points:missed_edge=1.1", "missed_edge"),
]


@pytest.mark.parametrize(("spec", "message"), BAD_SPECS)
def test_bad_spec_raises_config_error(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_scheme(spec)


def test_unknown_scheme_lists_valid_names() -> None:
    valid = "unknown prompt scheme 'boxes'; valid prompt schemes: box, clicks, hybrid, mask, points"
    with pytest.raises(RegistryError, match=valid):
        parse_scheme("boxes:jitter=5")
    with pytest.raises(ConfigError, match="valid prompt schemes"):
        PromptScheme("lasso")


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


@st.composite
def prompts(draw: st.DrawFn) -> Prompt:
    """A random prompt: maybe a box, 0..5 points with integer-valued or fractional coordinates."""
    box = None
    if draw(st.booleans()):
        x0, y0 = draw(st.integers(0, 500)), draw(st.integers(0, 500))
        box = (x0, y0, x0 + draw(st.integers(1, 500)), y0 + draw(st.integers(1, 500)))
    n = draw(st.integers(0, 5))
    coords = draw(st.lists(st.floats(-1, 1024, width=32), min_size=2 * n, max_size=2 * n))
    labels = draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))
    return Prompt(box, np.array(coords, np.float32).reshape(n, 2), np.array(labels, np.int8))


@FAST
@given(st.lists(prompts(), max_size=8), st.integers(0, 3))
def test_columns_round_trip(items: list[Prompt], extra: int) -> None:
    most = max((p.n_points for p in items), default=0)
    columns = prompts_to_columns(items, max_points=most + extra)
    assert len({c.shape for c in columns.values()}) == 1 and all(c.ndim == 1 for c in columns.values())
    assert len(columns) == 5 + 3 * (most + extra)
    assert columns["box_x0"].dtype == np.int32 and columns["n_points"].dtype == np.int32
    if most + extra:
        assert columns["point0_x"].dtype == np.float32 and columns["point0_label"].dtype == np.int8
    assert columns_to_prompts(columns) == items
    assert [Prompt.from_row(p.to_row(most)) for p in items] == items


def test_columns_layout_and_errors() -> None:
    items = [Prompt(box=(1, 2, 3, 4)), Prompt(points=[[5, 6]], point_labels=[0])]
    columns = prompts_to_columns(items)
    assert columns["box_x0"].tolist() == [1, -1] and columns["n_points"].tolist() == [0, 1]
    assert math.isnan(columns["point0_x"][0]) and columns["point0_label"].tolist() == [-1, 0]
    assert columns["point0_label"].dtype == np.int8
    with pytest.raises(ValidationError, match="has 1 points; the row holds at most 0"):
        prompts_to_columns(items, max_points=0)
    with pytest.raises(ValidationError, match="lack"):
        columns_to_prompts({k: v for k, v in columns.items() if k != "n_points"})
    with pytest.raises(ValidationError, match="equal length"):
        columns_to_prompts({**columns, "box_x0": columns["box_x0"][:1]})
    assert columns_to_prompts(prompts_to_columns([])) == []


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"box": (3, 0, 3, 5)}, "0 <= x0 < x1"), ({"box": (-1, 0, 3, 5)}, "0 <= x0 < x1"), ({"box": (1, 2, 3)}, "x0, y0"),
    ({"points": np.zeros((2, 3)), "point_labels": [1, 1]}, r"\(N, 2\)"),
    ({"points": np.zeros((2, 2)), "point_labels": [1]}, "do not match"),
    ({"points": [[1.0, 2.0]], "point_labels": [2]}, "labels 0/1"),
    ({"points": [[np.nan, 2.0]], "point_labels": [1]}, "finite"), ({"mask": np.zeros(4, bool)}, "2D"),
])
def test_bad_prompt_is_rejected(kwargs: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Prompt(**kwargs)


def test_prompt_is_immutable_and_compares_by_value() -> None:
    points = np.array([[1.0, 2.0]])
    prompt = Prompt((0, 0, 4, 4), points, [1], np.ones((2, 2), bool))
    points[0, 0] = 9.0
    assert prompt.points.tolist() == [[1.0, 2.0]] and prompt.points.dtype == np.float32
    with pytest.raises(ValueError, match="read-only"):
        prompt.points[0, 0] = 3.0
    assert prompt == Prompt((0, 0, 4, 4), [[1, 2]], [1], np.ones((2, 2), bool))
    assert prompt != Prompt((0, 0, 4, 4), [[1, 2]], [1]) and prompt != Prompt((0, 0, 4, 5), [[1, 2]], [1])
    copy = pickle.loads(pickle.dumps(prompt))  # Dask ships prompts and schemes between workers
    assert copy == prompt and not copy.points.flags.writeable and not copy.mask.flags.writeable
    scheme = parse_scheme("hybrid:box.jitter=3,jitter_px=1")
    assert pickle.loads(pickle.dumps(scheme)) == scheme


def test_scaled_maps_edges_and_pixel_centres() -> None:
    prompt = Prompt((2, 3, 7, 9), [[0, 0], [4, 5]], [1, 0])
    assert prompt.scaled(1, 1) == prompt
    doubled = prompt.scaled(2, 4, offset=(1, 0))
    assert doubled.box == (5, 12, 15, 36)
    assert doubled.points.tolist() == [[1.5, 1.5], [9.5, 21.5]]  # (x + .5) * s - .5 + offset
    assert prompt.scaled(1 / 3, 1 / 3).box == (0, 1, 3, 3)  # rounded outward
    with pytest.raises(ValidationError, match="positive"):
        prompt.scaled(0, 1)


@pytest.mark.parametrize(("shape", "target", "expected"), [
    ((200, 300), 256, (171, 256)), ((1024, 512), 256, (256, 128)), ((37, 37), 1024, (1024, 1024)),
    ((300, 201), 1024, (1024, 686)),
])
def test_frame_shape_follows_sam_rounding(shape: tuple[int, int], target: int, expected: tuple[int, int]) -> None:
    assert frame_shape(shape, target) == expected


@pytest.mark.parametrize(("shape", "target"), [((200, 300), 256), ((45, 70), 1024), ((90, 33), 256)])
def test_to_frame_box_holds_the_resized_object(shape: tuple[int, int], target: int) -> None:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    mask = ((yy - shape[0] * 0.4) / (shape[0] * 0.2)) ** 2 + ((xx - shape[1] * 0.6) / (shape[1] * 0.25)) ** 2 <= 1
    framed = mask_to_frame(mask, target)
    new_h, new_w = frame_shape(shape, target)
    assert framed.shape == (target, target) and not framed[new_h:].any() and not framed[:, new_w:].any()
    prompt = Prompt(tight_box(mask), [[shape[1] * 0.6, shape[0] * 0.4]], [1]).to_frame(shape, target)
    fx0, fy0, fx1, fy1 = tight_box(framed)
    x0, y0, x1, y1 = prompt.box
    assert x0 <= fx0 and y0 <= fy0 and x1 >= fx1 and y1 >= fy1 and x1 <= new_w and y1 <= new_h
    assert (x1 - x0) - (fx1 - fx0) <= 2 and (y1 - y0) - (fy1 - fy0) <= 2
    px, py = np.rint(prompt.points[0]).astype(int)
    assert framed[py, px]
