"""Chart series for the dashboard's Market page: MA20, Bollinger bands, regime spans."""

from __future__ import annotations

import statistics
from datetime import UTC, datetime, timedelta

import pytest

from coinpilot.web.series import bollinger, moving_average, regime_spans

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_moving_average_starts_after_a_full_window() -> None:
    """The first period-1 values are None, then each value is the window mean."""
    values = [float(v) for v in range(1, 8)]
    assert moving_average(values, 3) == [None, None, 2.0, 3.0, 4.0, 5.0, 6.0]


def test_bollinger_uses_the_sample_standard_deviation() -> None:
    """Bands are the mean ± 2 sample standard deviations (ddof = 1), as the strategy uses."""
    values = [100.0, 102.0, 101.0, 99.0, 103.0, 98.0, 104.0, 100.0, 97.0, 105.0] * 3
    mid, upper, lower = bollinger(values, period=20)
    window = values[-20:]
    sd = statistics.stdev(window)
    assert mid[-1] == pytest.approx(statistics.fmean(window))
    assert upper[-1] == pytest.approx(statistics.fmean(window) + 2 * sd)
    assert lower[-1] == pytest.approx(statistics.fmean(window) - 2 * sd)
    assert upper[18] is None
    assert lower[19] is not None


def test_regime_spans_clip_to_the_window_and_merge_repeats() -> None:
    """A regime set before the window starts at the window; repeated labels merge into one span."""
    changes = [(at(-60), "SIDEWAYS"), (at(10), "BEAR"), (at(20), "BEAR"), (at(30), "BULL")]
    spans = regime_spans(changes, at(0), at(40))
    assert [(s["start"], s["end"], s["regime"]) for s in spans] == [
        (at(0), at(10), "SIDEWAYS"),
        (at(10), at(30), "BEAR"),
        (at(30), at(40), "BULL"),
    ]


def test_regime_spans_ignore_changes_after_the_window() -> None:
    """A change detected after the window's end contributes nothing."""
    assert regime_spans([(at(50), "BULL")], at(0), at(40)) == []
