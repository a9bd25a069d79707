"""Hourly context, BEAR features and candle-pattern features for the AI step."""

from __future__ import annotations

import numpy as np
import pytest

from coinpilot.domain.ai_context import (
    bear_features,
    build_context,
    hourly_bars,
    pattern_features,
)
from coinpilot.domain.candles import Candles

T0 = 1_700_000_000 // 3600 * 3600  # an hour boundary


def minutes(n: int, start: int = T0, price: float = 100.0) -> Candles:
    ts = start + 60 * np.arange(n, dtype=np.int64)
    close = price + np.arange(n, dtype=np.float64)
    return Candles("KRW-BTC", ts, close - 0.5, close + 1, close - 1, close, np.ones(n))


def bar(o: float, c: float, v: float = 1.0, h: float | None = None, lo: float | None = None):
    return {"open": o, "close": c, "high": h or max(o, c), "low": lo or min(o, c), "volume": v}


def test_hourly_bars_keep_only_closed_hours_and_aggregate_correctly() -> None:
    """A still-forming hour is left out; OHLCV of a closed hour come from its minutes."""
    c = minutes(150)  # two full hours and 30 minutes of a third
    bars = hourly_bars(c, now_ts=T0 + 150 * 60, hours=24)
    assert len(bars) == 2
    first = bars[0]
    assert first["open"] == pytest.approx(99.5)
    assert first["close"] == pytest.approx(159.0)
    assert first["high"] == pytest.approx(160.0)
    assert first["low"] == pytest.approx(99.0)
    assert first["volume"] == pytest.approx(60.0)
    assert bars[1]["timestamp"].endswith("+00:00")


def test_hourly_bars_take_the_last_n_and_survive_gaps() -> None:
    """Gaps in minutes are fine and only the newest ``hours`` buckets are returned."""
    c = minutes(36 * 60)
    keep = np.ones(len(c), dtype=bool)
    keep[100:160] = False  # an hour with few minutes
    gapped = Candles(c.symbol, c.ts[keep], c.open[keep], c.high[keep], c.low[keep],
                     c.close[keep], c.volume[keep])  # fmt: skip
    bars = hourly_bars(gapped, now_ts=T0 + 36 * 3600, hours=24)
    assert len(bars) == 24
    assert bars[-1]["close"] == pytest.approx(c.close[-1])
    assert hourly_bars(Candles.empty("X"), T0, 24) == []


def test_bear_features_match_hand_computation() -> None:
    """Downtrend share, rebound from the low and volume recovery over the 8-hour window."""
    closes = [110, 108, 106, 104, 102, 100, 99, 101, 103]
    bars = [bar(c, c, v=2.0) for c in closes[:-1]] + [bar(103, 103, v=1.0)]
    f = bear_features(bars, 8)
    assert f["bear_downtrend_ratio_8h"] == pytest.approx(round(5 / 7, 4))
    assert f["bear_rebound_from_recent_low_pct_8h"] == pytest.approx(round(4 / 99 * 100, 4))
    assert f["bear_volume_recovery_ratio_8h"] == pytest.approx(0.5)


def test_bear_features_defaults_with_too_little_data() -> None:
    """Fewer than two hourly candles give the neutral defaults."""
    assert bear_features([bar(1, 1)], 8) == {
        "bear_downtrend_ratio_8h": 0.0,
        "bear_rebound_from_recent_low_pct_8h": 0.0,
        "bear_volume_recovery_ratio_8h": 1.0,
    }


def test_pattern_features_streaks_direction_and_anatomy() -> None:
    """Three bearish candles after a bullish one: bearish 3, bullish 1, DOWN, last-candle ratios."""
    bars = [bar(100, 101), bar(101, 102), bar(102, 101), bar(101, 100),
            bar(100, 98, h=101, lo=97)]  # fmt: skip
    bars.insert(2, bar(102, 103))
    f = pattern_features(bars)
    assert (f["bearish_streak_6h"], f["bullish_streak_6h"]) == (3, 1)
    assert f["pattern_direction"] == "DOWN"
    assert f["net_change_pct_6h"] == pytest.approx(round((98 - 101) / 101 * 100, 4))
    assert f["last_body_to_range"] == pytest.approx(0.5)
    assert f["last_upper_wick_to_range"] == pytest.approx(0.25)
    assert f["last_lower_wick_to_range"] == pytest.approx(0.25)


def test_pattern_streak_stops_at_a_doji() -> None:
    """A doji ends the walk back."""
    f = pattern_features([bar(100, 99), bar(100, 100), bar(100, 99), bar(99, 98)])
    assert (f["bearish_streak_6h"], f["bullish_streak_6h"]) == (2, 0)


def test_context_has_bear_features_only_in_bear_and_keeps_the_gap() -> None:
    """BEAR features appear only for BEAR; the MA gap is carried rounded."""
    c = minutes(30 * 60)
    bear = build_context(c, T0 + 30 * 3600, "BEAR", ma_gap_pct=-3.456789)
    side = build_context(c, T0 + 30 * 3600, "SIDEWAYS")
    assert bear.bear is not None
    assert side.bear is None
    assert bear.ma_gap_pct == pytest.approx(-3.4568)
    assert bear.n_candles == 24


def ohlcv(o: float, h: float, lo: float, c: float, v: float = 1.0) -> dict[str, float]:
    return {"open": o, "high": h, "low": lo, "close": c, "volume": v}


def test_a_single_closed_minute_is_an_hourly_bar() -> None:
    """One minute in an hour that has closed makes a bar of its own (T0 is 22:00 UTC)."""
    c = Candles("KRW-BTC", np.array([T0], dtype=np.int64), np.array([10.0]), np.array([12.0]),
                np.array([9.0]), np.array([11.0]), np.array([0.5]))  # fmt: skip
    one = {"timestamp": "2023-11-14T22:00:00+00:00", "open": 10.0, "high": 12.0, "low": 9.0,
           "close": 11.0, "volume": 0.5}  # fmt: skip
    assert hourly_bars(c, now_ts=T0 + 3600, hours=24) == [one]
    assert hourly_bars(c, now_ts=T0 + 3599, hours=24) == []  # the hour is still open


def test_an_hourly_bar_takes_the_extremes_of_its_own_minutes_only() -> None:
    """The hour's low is at its last minute and the next hour opens lower still; the
    hour's volume is summed to 8 decimals."""
    ts = np.array([T0, T0 + 60, T0 + 120, T0 + 3600], dtype=np.int64)
    c = Candles("KRW-BTC", ts,
                np.array([6.0, 5.0, 4.0, 2.0]),  # open
                np.array([10.0, 11.0, 12.0, 20.0]),  # high
                np.array([5.0, 4.0, 3.0, 1.0]),  # low
                np.array([5.5, 4.5, 3.5, 1.5]),  # close
                np.array([0.123456789, 0.0, 0.0, 7.0]))  # fmt: skip
    first, second = hourly_bars(c, now_ts=T0 + 7200, hours=24)
    assert first == {"timestamp": "2023-11-14T22:00:00+00:00", "open": 6.0, "high": 12.0,
                     "low": 3.0, "close": 3.5, "volume": 0.12345679}  # fmt: skip
    assert (second["low"], second["high"], second["volume"]) == (1.0, 20.0, 7.0)


def test_bear_features_over_a_two_candle_window() -> None:
    """Window 2 of (10, 8, 9): closes 8 -> 9, no fall; rebound (9 - 8) / 8 = 12.5 %;
    volume 3 against the previous 2 = 1.5."""
    bars = [bar(10, 10, v=4.0), bar(8, 8, v=2.0), bar(9, 9, v=3.0)]
    assert bear_features(bars, 2) == {
        "bear_downtrend_ratio_8h": 0.0,
        "bear_rebound_from_recent_low_pct_8h": 12.5,
        "bear_volume_recovery_ratio_8h": 1.5,
    }
    assert bear_features(bars, 1) == bear_features(bars, 2)  # never fewer than two candles


def test_bear_features_count_only_falls_and_average_every_earlier_volume() -> None:
    """Closes 10, 10, 10.5, 10: changes 0, +0.5, −0.5, so one fall in three (0.3333); the
    low 10 is the last close (rebound 0); volume 3 against (1 + 3 + 5) / 3 = 3 -> 1.0."""
    bars = [bar(10, 10, v=1.0), bar(10, 10, v=3.0), bar(10.5, 10.5, v=5.0), bar(10, 10, v=3.0)]
    assert bear_features(bars, 8) == {
        "bear_downtrend_ratio_8h": 0.3333,
        "bear_rebound_from_recent_low_pct_8h": 0.0,
        "bear_volume_recovery_ratio_8h": 1.0,
    }


def test_bear_features_round_to_four_places() -> None:
    """3 -> 4 rebounds 33.3333… % from the low; volume 1 against 3 is 0.3333…"""
    assert bear_features([bar(3, 3, v=3.0), bar(4, 4, v=1.0)], 8) == {
        "bear_downtrend_ratio_8h": 0.0,
        "bear_rebound_from_recent_low_pct_8h": 33.3333,
        "bear_volume_recovery_ratio_8h": 0.3333,
    }


def test_bear_features_at_zero_and_below_one() -> None:
    """A zero low has no rebound and zero earlier volume no ratio (neutral 0 and 1); prices
    and volumes under 1 still divide: (0.6 − 0.5) / 0.5 = 20 %, 0.25 / 0.5 = 0.5."""
    zero = [ohlcv(0.0, 0.0, 0.0, 0.0, 0.0), ohlcv(0.5, 0.5, 0.5, 0.5, 2.0)]
    assert bear_features(zero, 8) == {
        "bear_downtrend_ratio_8h": 0.0,
        "bear_rebound_from_recent_low_pct_8h": 0.0,
        "bear_volume_recovery_ratio_8h": 1.0,
    }
    small = [bar(0.5, 0.5, v=0.5), bar(0.6, 0.6, v=0.25)]
    assert bear_features(small, 8) == {
        "bear_downtrend_ratio_8h": 0.0,
        "bear_rebound_from_recent_low_pct_8h": 20.0,
        "bear_volume_recovery_ratio_8h": 0.5,
    }


NEUTRAL_PATTERNS = {
    "pattern_direction": "FLAT",
    "net_change_pct_6h": 0.0,
    "bearish_streak_6h": 0,
    "bullish_streak_6h": 0,
    "last_body_to_range": 0.0,
    "last_upper_wick_to_range": 0.0,
    "last_lower_wick_to_range": 0.0,
    "range_expansion_ratio_6h": 1.0,
}


def test_patterns_need_two_usable_candles() -> None:
    """One candle, or one plus candles that are not numbers, gives the neutral pattern."""
    assert pattern_features([bar(100, 101)]) == NEUTRAL_PATTERNS
    broken = [bar(100, 101), {"open": "n/a", "high": 1, "low": 1, "close": 1}, {"open": 1.0}]
    assert pattern_features(broken) == NEUTRAL_PATTERNS


def test_patterns_skip_unusable_candles_and_read_thirds() -> None:
    """Ranges 0.2, 0.7, 0.3 (all under 1); the last candle 0.2 -> 0.3 inside 0.1–0.4 has
    body, upper and lower wick of 0.1 each: a third of its range (0.3333); it is 0.3 / 0.45
    = 0.6667 of the earlier ranges' mean. Bullish 1 after bearish 1; first and last close
    0.3: FLAT. A candle with a non-number in it is left out."""
    bars = [
        ohlcv(0.25, 0.35, 0.15, 0.3),
        {"open": 0.3, "high": float("nan"), "low": 0.1, "close": 0.25},
        ohlcv(0.3, 0.8, 0.1, 0.25),
        ohlcv(0.2, 0.4, 0.1, 0.3),
    ]
    assert pattern_features(bars) == {
        "pattern_direction": "FLAT",
        "net_change_pct_6h": 0.0,
        "bearish_streak_6h": 1,
        "bullish_streak_6h": 1,
        "last_body_to_range": 0.3333,
        "last_upper_wick_to_range": 0.3333,
        "last_lower_wick_to_range": 0.3333,
        "range_expansion_ratio_6h": 0.6667,
    }


def test_two_candles_make_a_pattern() -> None:
    """100 -> 101 then 101 -> 102 (no wicks): closes 101 -> 102 is UP, two bullish, all
    body, same range."""
    assert pattern_features([bar(100, 101), bar(101, 102)]) == {
        "pattern_direction": "UP",
        "net_change_pct_6h": 0.9901,  # (102 − 101) / 101 = 0.990099 %
        "bearish_streak_6h": 0,
        "bullish_streak_6h": 2,
        "last_body_to_range": 1.0,
        "last_upper_wick_to_range": 0.0,
        "last_lower_wick_to_range": 0.0,
        "range_expansion_ratio_6h": 1.0,
    }


def test_a_bullish_streak_stops_at_the_bearish_candle_before_it() -> None:
    """Walking back: two bullish candles, then a bearish one ends the walk."""
    f = pattern_features([bar(103, 102), bar(102, 101), bar(101, 102), bar(102, 103)])
    assert (f["bullish_streak_6h"], f["bearish_streak_6h"]) == (2, 1)


@pytest.mark.parametrize(
    ("first", "last", "direction", "net"),
    [
        (1000, 1002, "FLAT", 0.2),  # exactly +0.2 % is not yet UP
        (1000, 1003, "UP", 0.3),
        (300, 301, "UP", 0.3333),  # 1 / 300
        (1000, 998, "FLAT", -0.2),  # exactly −0.2 % is not yet DOWN
        (1000, 995, "DOWN", -0.5),
        (1000, 1000, "FLAT", 0.0),
    ],
)
def test_direction_thresholds(first: float, last: float, direction: str, net: float) -> None:
    """Net change from the first close to the last, in %."""
    f = pattern_features([bar(first, first), bar(last, last)])
    assert (f["pattern_direction"], f["net_change_pct_6h"]) == (direction, net)


def test_a_zero_first_close_has_no_net_change() -> None:
    f = pattern_features([ohlcv(0.0, 0.0, 0.0, 0.0), bar(1, 2)])
    assert (f["pattern_direction"], f["net_change_pct_6h"]) == ("FLAT", 0.0)


def test_context_uses_an_eight_hour_bear_window_by_default() -> None:
    """Minute i closes at 100 + i, so hour k closes at 159 + 60 k, opens at 99.5 + 60 k,
    spans 99 + 60 k to 160 + 60 k. Hours 6..29 are kept; the 8-hour window starts at hour
    22: low 1,479, last 1,899, rebound 420 / 1,479 = 28.3976 %."""
    ctx = build_context(minutes(30 * 60), T0 + 30 * 3600, "BEAR")
    assert ctx.bear == {
        "bear_downtrend_ratio_8h": 0.0,
        "bear_rebound_from_recent_low_pct_8h": 28.3976,
        "bear_volume_recovery_ratio_8h": 1.0,
    }
    # last six hours 24..29 all rise: first close 1,599, last 1,899: +300 / 1,599 = 18.7617 %;
    # hour 29: open 1,839.5, close 1,899, high 1,900, low 1,839, range 61
    assert ctx.patterns == {
        "pattern_direction": "UP",
        "net_change_pct_6h": 18.7617,
        "bearish_streak_6h": 0,
        "bullish_streak_6h": 6,
        "last_body_to_range": 0.9754,  # 59.5 / 61
        "last_upper_wick_to_range": 0.0164,  # 1 / 61
        "last_lower_wick_to_range": 0.0082,  # 0.5 / 61
        "range_expansion_ratio_6h": 1.0,
    }
    assert ctx.ma_gap_pct is None
