"""The kernel's CPU list syntax, both ways."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.classify import format_cpu_list, parse_cpu_list


@pytest.mark.parametrize(("text", "cpus"), [
    ("0-2,4-7", (0, 1, 2, 4, 5, 6, 7)),
    ("0-2,4-7\n", (0, 1, 2, 4, 5, 6, 7)),
    ("0", (0,)),
    ("", ()),
    ("\n", ()),
    (" 3 , 1-2 ", (1, 2, 3)),
    ("0-3,2-5", (0, 1, 2, 3, 4, 5)),
    ("5-5", (5,)),
])
def test_parse(text: str, cpus: tuple[int, ...]) -> None:
    assert parse_cpu_list(text) == cpus


@pytest.mark.parametrize(("text", "words"), [
    ("0-x", "'0-x'"),
    ("a", "'a'"),
    ("1,,2", "stray comma"),
    ("4-2", "backwards"),
    ("0-2,", "stray comma"),
    ("-1", "'-1'"),
    ("99999999", "larger than"),
    ("0–3", "'0–3'"),
])
def test_parse_errors_say_what(text: str, words: str) -> None:
    with pytest.raises(ValueError, match="CPU list") as info:
        parse_cpu_list(text)
    assert words in str(info.value)


@pytest.mark.parametrize(("cpus", "text"), [
    ((0, 1, 2, 4), "0-2,4"),
    ((), ""),
    ((7, 0, 1, 1), "0-1,7"),
    (range(8), "0-7"),
    ((1, 3, 5), "1,3,5"),
])
def test_format(cpus: tuple[int, ...], text: str) -> None:
    assert format_cpu_list(cpus) == text


@given(st.sets(st.integers(min_value=0, max_value=300)))
def test_roundtrip(cpus: set[int]) -> None:
    assert parse_cpu_list(format_cpu_list(cpus)) == tuple(sorted(cpus))
