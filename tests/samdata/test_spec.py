"""The spec grammar (:mod:`samdata.spec`): name:key=value specs, ranges, boxes, lists, windows, spacings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from samdata.errors import ConfigError
from samdata.spec import (
    build_params,
    format_blocks,
    format_params,
    parse_blocks,
    parse_box,
    parse_clicks,
    parse_labels,
    parse_list,
    parse_names,
    parse_ranges,
    parse_slices,
    parse_spacing,
    parse_splits,
    parse_window,
    parse_z_range,
    spec_fields,
    split_assignment,
    split_list,
    split_spec,
)


def test_split_spec_names_keys_and_values() -> None:
    assert split_spec("box") == ("box", {})
    assert split_spec(" points : n = 2 , neg = 1 ") == ("points", {"n": "2", "neg": "1"})
    with pytest.raises(ConfigError, match="has ':' but no key=value"):
        split_spec("box:")
    assert split_spec("serial:", empty_options=True) == ("serial", {})
    with pytest.raises(ConfigError, match="^adapter spec 'x:a': "):
        split_spec("x:a", what="adapter spec")


def test_split_spec_list_keys_take_the_following_items() -> None:
    spec = "serial:ratio=0.5,blocks=0, 1,8-9,r=2"
    assert split_spec(spec, list_keys=("blocks",)) == ("serial", {"ratio": "0.5", "blocks": "0,1,8-9", "r": "2"})
    with pytest.raises(ConfigError, match="item '1' is not key=value"):
        split_spec(spec)  # without list keys a bare item is an error
    with pytest.raises(ConfigError, match="item '0.25' is not key=value"):
        split_spec("serial:ratio=0.5,0.25", list_keys=("blocks",))
    with pytest.raises(ConfigError, match="item '' is not key=value"):
        split_spec("serial:blocks=1,,2", list_keys=("blocks",))


@dataclass(frozen=True)
class _Params:
    n: int = 1
    mode: Literal["a", "b"] = "a"
    alpha: float | None = None
    blocks: tuple[int, ...] | None = field(default=None, metadata={"parse": parse_blocks, "format": format_blocks})
    scale: float = field(default=0.5, metadata={"key": "s", "format": lambda v: f"{v:g}"})


def test_params_fields_parse_and_format_through_metadata() -> None:
    assert list(spec_fields(_Params)) == ["n", "mode", "alpha", "blocks", "s"]
    params = build_params(_Params, {"n": "3", "mode": "b", "alpha": "2", "blocks": "4,1-2", "s": "2.0"}, "p")
    assert params == _Params(3, "b", 2.0, (1, 2, 4), 2.0)
    assert format_params(params) == ["n=3", "mode=b", "alpha=2.0", "blocks=1,2,4", "s=2"]
    assert format_params(_Params()) == ["n=1", "mode=a", "alpha=None", "blocks=all", "s=0.5"]
    assert build_params(_Params, {"blocks": "all"}, "p").blocks is None
    for raw, match in [
        ({"n": "x"}, "not an integer"),
        ({"alpha": "x"}, "not a number"),
        ({"alpha": "inf"}, "not a finite number"),
        ({"mode": "c"}, "expected one of a, b"),
        ({"blocks": "a"}, "bad block 'a'"),
        ({"z": "1"}, "unknown key"),
    ]:
        with pytest.raises(ConfigError, match=match):
            build_params(_Params, raw, "p")


def test_ranges_slices_and_blocks() -> None:
    assert parse_slices("50-139:3")[:3] == (50, 53, 56) and len(parse_slices("51-135:6")) == 15
    assert parse_slices("4,8,10-12") == (4, 8, 10, 11, 12) and parse_slices(" 3 , 1") == (1, 3)
    assert parse_blocks("s", "blocks", "3,1,1-2") == (1, 2, 3) and parse_blocks("s", "blocks", "all") is None
    assert format_blocks((1, 2, 3)) == "1,2,3" and format_blocks(None) == "all"
    for bad, match in [
        ("9-3", "empty range '9-3'"),
        ("5-9:0", "empty range"),
        ("a", "bad item 'a'"),
        ("1,,2", "bad item ''"),
        ("-3", "bad item"),
    ]:
        with pytest.raises(ConfigError, match=f"slice spec .*{match}"):
            parse_slices(bad)
    with pytest.raises(ConfigError, match="bad block '8-9:2'"):
        parse_blocks("s", "blocks", "8-9:2")  # no steps in block lists
    with pytest.raises(ConfigError, match="empty range '3-1'; expected a <= b$"):
        parse_ranges("3-1", "x", "item", "ints", steps=False)


def test_parse_box_and_z_range() -> None:
    assert parse_z_range("30-52") == (30, 52) and parse_z_range(" 3 - 3 ") == (3, 3)
    with pytest.raises(ConfigError, match="'52-30'"):
        parse_z_range("52-30")
    assert parse_box("40,52,90,110@37") == ((40, 52, 90, 110), 37)
    assert parse_box(" 1, 2 ,3,4 @ 0") == ((1, 2, 3, 4), 0)
    with pytest.raises(ConfigError, match="'1,2,3@4'"):
        parse_box("1,2,3@4")


def test_lists_and_numbers() -> None:
    assert split_list(" a, b ,") == ("a", "b", "")
    assert parse_names("--labels", "liver, kidney") == ("liver", "kidney")
    with pytest.raises(ConfigError, match="--labels 'a,' has an empty name; expected names like x"):
        parse_names("--labels", "a,", "names like x")
    assert parse_list("--augment", None) is None and parse_list("--augment", " ") == ()
    assert parse_list("--augment", "flip, affine") == ("flip", "affine")
    with pytest.raises(ConfigError, match="--augment 'flip,' has an empty name"):
        parse_list("--augment", "flip,")
    assert parse_labels(None) is None and parse_labels(["a,b", "c"]) == ["a", "b", "c"]
    with pytest.raises(ConfigError, match="--labels '' has an empty name"):
        parse_labels([""])
    assert parse_clicks(None) == () and parse_clicks("0,1, 3") == (0, 1, 3)
    with pytest.raises(ConfigError, match="--clicks '1,x'"):
        parse_clicks("1,x")
    assert parse_splits("0.7,0.15,0.15") == (0.7, 0.15, 0.15)
    with pytest.raises(ConfigError, match="has 2 values"):
        parse_splits("0.7,0.3")
    with pytest.raises(ConfigError, match="is not three numbers"):
        parse_splits("a,b,c")
    assert split_assignment(" a = 1 ") == ("a", " 1 ") and split_assignment("a=b=c") == ("a", "b=c")
    assert split_assignment("novalue") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [("abdomen", "abdomen"), (" Lung ", "lung"), ("40,400", (40.0, 400.0)), ("-600, 1500", (-600.0, 1500.0))],
)
def test_parse_window(text: str, expected: object) -> None:
    assert parse_window(text) == expected


@pytest.mark.parametrize("text", ["", "40", "40,0", "40,-1", "a,b", "1,2,3", "nope", "40,nan"])
def test_parse_window_errors(text: str) -> None:
    with pytest.raises(ConfigError, match="window"):
        parse_window(text)


@pytest.mark.parametrize(
    ("text", "expected"), [("1,1,2.5", (1.0, 1.0, 2.5)), (" 0.8 , 0.8,3", (0.8, 0.8, 3.0)), ("2", (2.0, 2.0, 2.0))]
)
def test_parse_spacing(text: str, expected: tuple[float, float, float]) -> None:
    assert parse_spacing(text) == expected


@pytest.mark.parametrize("text", ["", "1,2", "0,1,1", "-1,1,1", "a,b,c", "1,1,nan", "1,1,1,1"])
def test_parse_spacing_errors(text: str) -> None:
    with pytest.raises(ConfigError, match="spacing"):
        parse_spacing(text)
