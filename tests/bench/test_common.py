"""The benchmarks' shared protocol and helpers: the ids and slices by which earlier bench-output/ folders
are reused."""

from __future__ import annotations

import numpy as np
import pytest

from bench.common import (
    HELD_OUT,
    POOL,
    args_record,
    generator_id,
    labelled,
    mean_sd,
    phantom_protocol,
    run_steps,
    shots,
    upsert,
)
from samdata.spec import parse_slices
from storage import SliceStore


def test_generator_ids_and_slices_match_earlier_runs() -> None:
    # bench-output/synth_gain and synth_contrast hold generators and runs under these names: a change
    # would retrain everything instead of reusing it
    assert generator_id("deform", 4, 1) == "deform_n4s1"
    assert generator_id("labels2image:mode=random", 4, 0) == "labels2image_random_n4s0"
    assert generator_id("labels2image:mode=random,strip=0.5", 30, 2) == "labels2image_random_strip_0.5_n30s2"
    assert shots(4) == [50, 80, 107, 137]
    assert shots(8) == [50, 62, 74, 86, 101, 113, 125, 137]
    assert labelled("all") == POOL and labelled("4") == labelled(4) == shots(4)
    assert not set(HELD_OUT) & set(POOL) and len(HELD_OUT) == 15


@pytest.mark.parametrize(
    ("model", "n", "quick", "least", "expected"),
    [
        ("unet", 4, False, 1, 600),
        ("unet", "all", False, 1, 1200),
        ("unet", 10, False, 1, 1200),
        ("litemedsam", 4, False, 1, 1200),
        ("unet", 4, True, 1, 12),
        ("unet", None, True, 2, 24),
        ("sam", 4, True, 2, 24),
    ],
)
def test_run_steps_halves_the_few_shot_unet_and_divides_quick_runs(
    model: str, n: int | str | None, quick: bool, least: int, expected: int
) -> None:
    assert run_steps(model, 1200, n, quick, least=least) == expected


def test_table_helpers() -> None:
    rows = [{"a": 1, "b": "x", "v": 1}, {"a": 2, "b": "x", "v": 2}]
    upsert(rows, {"a": 1, "b": "x", "v": 3}, ("a", "b"))
    assert rows == [{"a": 2, "b": "x", "v": 2}, {"a": 1, "b": "x", "v": 3}]
    assert mean_sd([0.5]) == (0.5, 0.0)
    assert mean_sd([1.0, 3.0]) == pytest.approx((2.0, np.sqrt(2.0)))
    assert args_record(type("Args", (), {})()) == {}


def test_phantom_protocol_holds_out_organ_slices_the_pool_never_meets(tmp_path) -> None:
    protocol = phantom_protocol(tmp_path)
    assert protocol.labels == ("liver", "spleen", "kidney_left", "kidney_right", "spine")
    held_out = parse_slices(protocol.val_slices)
    store = SliceStore.open(protocol.store)
    (case_id,) = store.case_ids()
    label = store.read_case(case_id).label
    assert len(held_out) >= 4 and not set(held_out) & set(protocol.pool)
    assert all(np.isin(label[z], [1, 2, 3, 4, 5]).any() for z in [*held_out, *protocol.pool])  # organs on each
    chosen = protocol.shots(4)
    assert len(set(chosen)) == 4 and set(chosen) <= set(protocol.pool)
    assert chosen[::3] == [protocol.pool[0], protocol.pool[-1]]
    assert phantom_protocol(tmp_path) == protocol  # the store is made once
