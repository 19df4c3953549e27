"""Safe case ids from free-form file names."""

from __future__ import annotations

import pytest

from samdata.names import case_id_for_name, is_safe_name


@pytest.mark.parametrize("name", ["case_001", "Patient-7.v2", "a"])
def test_safe_names_stay_as_they_are(name: str) -> None:
    assert is_safe_name(name) and case_id_for_name(name) == name


def test_free_form_names_get_stable_distinct_ids() -> None:
    first = case_id_for_name("fall ü 01")
    assert first == case_id_for_name("fall ü 01") and first.startswith("fall_u_01-") and is_safe_name(first)
    assert case_id_for_name("fall u 01") != first and case_id_for_name("fall_ü_01") != first  # the digest parts
    kanji = case_id_for_name("患者")
    assert kanji.startswith("case-") and is_safe_name(kanji)
    long = case_id_for_name("x y " * 200)
    assert is_safe_name(long) and len(long) <= 200
    assert case_id_for_name(".hidden case").startswith("hidden_case-")
    assert case_id_for_name("") is None and case_id_for_name("   ") is None
