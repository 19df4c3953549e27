"""Tests of the 3D scoring helpers: the slices a z filter keeps, their runs, and the reports' table (the end-to-end
paths run through the trained-run fixtures of test_evaluate.py and test_compare.py)."""

from __future__ import annotations

import numpy as np

from training.volume_scores import _in_range, _runs, volume_sentence, volume_table


def test_a_z_filter_keeps_its_slices_of_the_range_in_runs():
    kept = _in_range(12, 2, 9, {1, 2, 3, 5, 8, 9, 11})
    assert np.flatnonzero(kept).tolist() == [2, 3, 5, 8, 9]
    assert _runs(kept) == [(2, 3), (5, 5), (8, 9)]
    assert _runs(_in_range(6, 0, 5, None)) == [(0, 5)]


def test_the_table_puts_models_side_by_side_and_missing_values_as_dashes():
    section = {
        "label_names": {"1": "liver", "5": "spine"},
        "mean": {
            "a": {"liver": {"Dice": 0.9, "NSD": 0.8, "HD95": 2.0}, "spine": {"Dice": None, "NSD": None, "HD95": None}},
            "b": {"liver": {"Dice": 0.5, "NSD": 0.4, "HD95": 9.0}, "spine": {"Dice": 0.7, "NSD": 0.6, "HD95": 3.0}},
        },
        "foreground_mean": {
            "a": {"Dice": None, "NSD": None, "HD95": None},
            "b": {"Dice": 0.6, "NSD": 0.5, "HD95": 6.0},
        },
        "summaries": {"a": "/x/volumes/a/summary.json", "b": "/x/volumes/b/summary.json"},
        "aggregation": "agg",
        "range": "range",
        "empty": "empty",
        "seconds": 1.0,
        "skipped": {},
        "gaps": [],
    }
    header, rows = volume_table(section)
    assert header == ["label", "Dice a", "Dice b", "NSD a", "NSD b", "HD95 a", "HD95 b"]
    assert rows[0] == ["liver", "0.900", "0.500", "0.800", "0.400", "2.000", "9.000"]
    assert rows[1][:3] == ["spine", "-", "0.700"] and rows[2][0] == "foreground mean"
    assert "`volumes/a/summary.json`" in volume_sentence(section) and "gaps" not in volume_sentence(section)
