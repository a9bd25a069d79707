"""The whole-history entry rules (signals.entry_codes / entry_signals) on hand-made rows.

Each row is one candle's indicator values, chosen to stop at one check (or to sit exactly on
a threshold and pass it); the expected outcome is read off SPEC §6.1's check order by hand.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from coinpilot.config import EntryParams, ExitParams, RegimeParams
from coinpilot.domain.candles import Candles
from coinpilot.domain.signals import (
    EntrySignals,
    WindowedIndicators,
    entry_codes,
    entry_signals,
)
from coinpilot.domain.strategy import ENTRY_CODES

NAN = math.nan

# Every check switched on: RSI14 ≤ 50; RSI7 low < 30 then ≥ 32 with a bounce ≥ 5;
# close > MA; close ≥ lower band; volume ≥ 1.0 and ≥ 1.2 times; no ratio ≥ 2 among the last
# three; in SIDEWAYS, a band touch and recovery.
STRICT = {
    "rsi_14_max": 50,
    "rsi_7_trigger": 30,
    "rsi_7_recover": 32,
    "min_rsi_7_bounce_pct": 5,
    "ma_condition": "crossover",
    "bb_enabled": True,
    "require_price_above_bb_lower": True,
    "volume_ratio": 1.0,
    "volume_min_ratio": 1.2,
    "volume_surge_check": True,
    "volume_surge_ratio": 2.0,
    "volume_surge_window": 3,
}
LOOSE = {"rsi_14_max": 50, "rsi_7_trigger": 30, "rsi_7_recover": 32, "ma_condition": "none"}

# A candle that passes every check of STRICT.
BASE = {
    "n_candles": 50,
    "rsi14": 40.0,
    "rsi7": 40.0,
    "rsi7_prev": 35.0,
    "rsi7_min_lookback": 25.0,
    "close": 100.0,
    "ma": 99.0,
    "bb_lower": 95.0,
    "vol_ratio": 1.5,
    "recent": (1.0, 1.0, 1.0, 1.0, 1.0),
    "touch": True,
}


def table(rows: list[dict[str, object]]) -> WindowedIndicators:
    full = [{**BASE, **row} for row in rows]

    def col(key: str, dtype: type = float) -> np.ndarray:
        return np.array([r[key] for r in full], dtype=dtype)

    return WindowedIndicators(
        close=col("close"),
        rsi14=col("rsi14"),
        rsi7=col("rsi7"),
        rsi7_prev=col("rsi7_prev"),
        rsi7_min_lookback=col("rsi7_min_lookback"),
        ma=col("ma"),
        bb_lower=col("bb_lower"),
        vol_ratio=col("vol_ratio"),
        recent_vol_ratios=np.array([r["recent"] for r in full], dtype=float),
        bb_touch_recovery=col("touch", bool),
        n_candles=col("n_candles", np.int64),
    )


def codes(rows: list[dict[str, object]], regime: str, entry: dict[str, object]) -> list[str]:
    w = table(rows)
    return [ENTRY_CODES[i] for i in entry_codes(w, regime, EntryParams(**entry), 40)]


STRICT_ROWS: list[tuple[dict[str, object], str]] = [
    ({}, "passed"),
    ({"n_candles": 39}, "insufficient_data"),
    ({"n_candles": 40, "rsi14": NAN}, "rsi14_missing"),
    ({"rsi14": 50.0}, "passed"),  # on the maximum is allowed
    ({"rsi14": 50.5}, "rsi14_above_max"),
    ({"rsi7": NAN}, "rsi7_missing"),
    ({"rsi7_prev": NAN}, "rsi7_missing"),
    ({"rsi7_min_lookback": NAN}, "rsi7_missing"),
    ({"rsi7_min_lookback": 30.0}, "rsi7_not_oversold"),  # must be strictly below
    ({"rsi7_min_lookback": 29.5}, "passed"),  # bounce 40 − 29.5 = 10.5
    ({"rsi7": 32.0, "rsi7_min_lookback": 27.0}, "passed"),  # on the recover line, bounce 5
    ({"rsi7": 31.5}, "rsi7_no_rebound"),
    ({"rsi7": 33.0, "rsi7_min_lookback": 29.0}, "rsi7_bounce_too_small"),  # bounce 4
    ({"ma": NAN}, "ma_missing"),
    ({"close": NAN}, "ma_missing"),
    ({"ma": 100.0}, "price_below_ma"),  # crossover needs close strictly above
    ({"bb_lower": NAN}, "bb_missing"),
    ({"bb_lower": 100.0}, "passed"),  # on the band is not below it
    ({"bb_lower": 100.5}, "price_below_bb_lower"),
    ({"vol_ratio": NAN}, "volume_missing"),
    ({"vol_ratio": 0.9}, "volume_below_ratio"),
    ({"vol_ratio": 1.1}, "volume_below_min"),  # ≥ 1.0 but < 1.2
    ({"vol_ratio": 1.2}, "passed"),
    ({"recent": (1.0, 1.0, 2.0, 1.0, 1.0)}, "volume_surge"),  # 2.0 in the last three
    ({"recent": (5.0, 5.0, 1.9, 1.0, 1.0)}, "passed"),  # the 5s are older than three
    ({"touch": False}, "bb_touch_recovery_pending"),
    # two failures: the earlier check is the one reported
    ({"rsi14": 60.0, "vol_ratio": NAN}, "rsi14_above_max"),
    ({"ma": 100.0, "touch": False}, "price_below_ma"),
    # not valid RSI values, but the rules stay quiet (no floating-point warning for
    # inf − inf) and a low of +inf is not oversold
    ({"rsi7": math.inf, "rsi7_min_lookback": math.inf}, "rsi7_not_oversold"),
]


def test_each_check_in_order_with_every_rule_on() -> None:
    rows = [row for row, _ in STRICT_ROWS]
    assert codes(rows, "SIDEWAYS", STRICT) == [code for _, code in STRICT_ROWS]


def test_outside_sideways_the_touch_is_not_needed() -> None:
    assert codes([{"touch": False}], "BEAR", STRICT) == ["passed"]
    assert codes([{"touch": False}], "SIDEWAYS", {**STRICT, "bb_enabled": False}) == ["passed"]


def test_switched_off_rules_do_not_look_at_their_values() -> None:
    """With no bounce, MA, band floor, volume or surge rule, their values may be anything;
    a missing MA or close still fails (the MA check always needs them)."""
    rows = [
        {"rsi7": 32.0, "rsi7_min_lookback": 29.5},  # bounce 2.5, no minimum
        {"ma": 1000.0, "bb_lower": NAN, "vol_ratio": NAN, "recent": (9.0,) * 5},
        {"ma": NAN},
    ]
    assert codes(rows, "BULL", LOOSE) == ["passed", "passed", "ma_missing"]


def test_proximity_to_the_ma() -> None:
    """Proximity 0.5: close ≥ MA × 0.5, so 50 against an MA of 100 passes and 49.5 fails."""
    entry = {**LOOSE, "ma_condition": "proximity", "ma_proximity_pct": 0.5}
    rows = [{"close": 50.0, "ma": 100.0}, {"close": 49.5, "ma": 100.0}]
    assert codes(rows, "BULL", entry) == ["passed", "price_below_ma_proximity"]
    entry["ma_condition"] = "proximity_or_above"
    assert codes(rows, "BULL", entry) == ["passed", "price_below_ma_proximity"]


def test_each_volume_bound_alone() -> None:
    rows = [{"vol_ratio": 0.7}, {"vol_ratio": 0.8}, {"vol_ratio": NAN}]
    only_ratio = {**LOOSE, "volume_ratio": 0.8}
    assert codes(rows, "BULL", only_ratio) == ["volume_below_ratio", "passed", "volume_missing"]
    only_min = {**LOOSE, "volume_min_ratio": 0.8}
    assert codes(rows, "BULL", only_min) == ["volume_below_min", "passed", "volume_missing"]


def test_surge_window_is_the_newest_ratios() -> None:
    """Window 2: only the last two ratios count; a surge three candles back does not."""
    entry = {
        **LOOSE,
        "volume_surge_check": True,
        "volume_surge_ratio": 3.0,
        "volume_surge_window": 2,
    }
    rows = [
        {"recent": (1.0, 1.0, 3.0, 1.0, 1.0)},
        {"recent": (1.0, 1.0, 1.0, 3.0, 1.0)},
        {"recent": (1.0, 1.0, 1.0, 1.0, 2.9)},
    ]
    assert codes(rows, "BULL", entry) == ["passed", "volume_surge", "passed"]


EXIT = ExitParams(
    take_profit_pct=0.03,
    stop_loss_pct=0.03,
    trailing_stop_pct=0.02,
    trailing_stop_activation_pct=0.01,
    rsi_overbought=70,
    rsi_exit_min_profit_pct=0.01,
    time_limit_hours=24,
)


def flat(n: int) -> Candles:
    c = np.full(n, 100.0)
    ts = 1_700_000_000 + 60 * np.arange(n, dtype=np.int64)
    return Candles("KRW-TEST", ts, c, c, c, c, np.ones(n))


def test_history_outcome_per_regime_on_flat_prices() -> None:
    """Ten flat candles (no price move, so no RSI), min 4 candles, window 20, regime codes
    BULL BULL BULL BULL UNKNOWN SIDEWAYS BEAR BEAR BULL SIDEWAYS, BULL not configured:

    0–2 fewer than 4 candles → insufficient_data; 4 UNKNOWN → regime_unknown;
    3, 8 BULL → regime_not_configured; 5, 9 SIDEWAYS and 6, 7 BEAR configured but
    RSI14 missing → rsi14_missing.
    """
    regimes = {
        name: RegimeParams(entry=EntryParams(**LOOSE), exit=EXIT, position_size_ratio=1.0)
        for name in ("SIDEWAYS", "BEAR")
    }
    per_candle = np.array([0, 0, 0, 0, 3, 1, 2, 2, 0, 1], dtype=np.int8)
    signals = entry_signals(flat(10), per_candle, regimes, window=20, min_candles=4)
    expected = ["insufficient_data"] * 3 + [
        "regime_not_configured",
        "regime_unknown",
        "rsi14_missing",
        "rsi14_missing",
        "rsi14_missing",
        "regime_not_configured",
        "rsi14_missing",
    ]
    assert [signals.reason(i) for i in range(10)] == expected
    assert not signals.passed.any()
    assert signals.codes.dtype == np.int8  # one byte per candle over long histories
    named = entry_signals(flat(10), "BULL", regimes, window=20, min_candles=4)
    assert [named.reason(i) for i in range(10)] == ["insufficient_data"] * 3 + [
        "regime_not_configured"
    ] * 7


def test_the_touch_rule_applies_to_sideways_rows_only() -> None:
    """Closes 10 11 10 11 …: RSI(2) swings below 100 from t=2 on, MA(2) exists from t=1,
    the bands of 20 never do. With RSI14 ≤ 100, a low < 100 and any rebound ≥ 0 every check
    passes from the 4th candle, except, in SIDEWAYS with the band rule on, the touch and
    recovery that 10 candles cannot confirm.
    """
    entry = EntryParams(
        rsi_period=2,
        rsi_short_period=2,
        rsi_7_recovery_lookback=2,
        rsi_14_max=100,
        rsi_7_trigger=100,
        rsi_7_recover=0,
        ma_condition="none",
        ma_period=2,
        bb_enabled=True,
    )
    regimes = {
        name: RegimeParams(entry=entry, exit=EXIT, position_size_ratio=1.0)
        for name in ("BULL", "SIDEWAYS")
    }
    close = np.array([10.0, 11.0] * 5)
    ts = 1_700_000_000 + 60 * np.arange(10, dtype=np.int64)
    c = Candles("KRW-TEST", ts, close, close, close, close, np.ones(10))
    per_candle = np.array([0, 1] * 5, dtype=np.int8)
    signals = entry_signals(c, per_candle, regimes, window=20, min_candles=4)
    expected = (
        ["insufficient_data"] * 3
        + ["bb_touch_recovery_pending", "passed"] * 3
        + ["bb_touch_recovery_pending"]
    )
    assert [signals.reason(i) for i in range(10)] == expected


def test_the_default_live_window_is_200_candles() -> None:
    """100, then 101 two hundred times. At t=199 the window 0…199 holds the one rise, so
    RSI14 is 100 (> 50); at t=200 the window 1…200 is flat, so RSI14 is missing."""
    close = np.array([100.0] + [101.0] * 200)
    ts = 1_700_000_000 + 60 * np.arange(201, dtype=np.int64)
    c = Candles("KRW-TEST", ts, close, close, close, close, np.ones(201))
    regimes = {"BULL": RegimeParams(entry=EntryParams(**LOOSE), exit=EXIT, position_size_ratio=1.0)}
    signals = entry_signals(c, "BULL", regimes)
    assert signals.reason(199) == "rsi14_above_max"
    assert signals.reason(200) == "rsi14_missing"


def test_a_window_below_the_minimum_never_has_enough_candles() -> None:
    """Window 5 with a minimum of 6: no live window ever holds enough candles."""
    regimes = {"BULL": RegimeParams(entry=EntryParams(**LOOSE), exit=EXIT, position_size_ratio=1.0)}
    signals = entry_signals(flat(12), "BULL", regimes, window=5, min_candles=6)
    assert {signals.reason(i) for i in range(12)} == {"insufficient_data"}


def test_entry_signals_name_each_candle() -> None:
    """Codes are indices into ENTRY_CODES: 0 is "passed", 5 "rsi14_above_max"."""
    signals = EntrySignals(np.array([0, 5, 0], dtype=np.int8))
    assert signals.passed.tolist() == [True, False, True]
    assert [signals.reason(i) for i in range(3)] == ["passed", "rsi14_above_max", "passed"]


@pytest.mark.parametrize("bad", ["CRAB", "bull"])
def test_unknown_regime_name_is_refused(bad: str) -> None:
    expected = "expected one of BULL, SIDEWAYS, BEAR, UNKNOWN"
    with pytest.raises(ValueError, match=f"unknown regime '{bad}'; {expected}"):
        entry_signals(flat(3), bad, {})
