"""Normalising a model's summary to exactly three lines."""

from __future__ import annotations

from coinpilot.adapters.openai_summary import three_lines

FALLBACK = ["t1", "t2", "t3"]


def test_longer_answers_keep_the_first_three_lines() -> None:
    """Blank lines and list markers are dropped, then the answer is cut to three lines."""
    assert three_lines("1 up\n\n- 2 flat\n• 3 down\n4 extra", FALLBACK) == [
        "1 up",
        "2 flat",
        "3 down",
    ]


def test_short_answers_are_topped_up_from_the_template() -> None:
    """A truncated two-line answer gets the template's third line."""
    assert three_lines("only\ntwo", FALLBACK) == ["only", "two", "t3"]


def test_empty_answer_is_the_template() -> None:
    """Whitespace alone yields the template unchanged."""
    assert three_lines("  \n ", FALLBACK) == FALLBACK
