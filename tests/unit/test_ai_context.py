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
