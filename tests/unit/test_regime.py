"""Hourly resampling and regime detection (SPEC §3–4 with DECISIONS: complete hours only)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from coinpilot.config import RegimeDetection
from coinpilot.domain.candles import Candles
from coinpilot.domain.regime import (
    REGIMES,
    detect_regime,
    diff_pct,
    regime_from_candles,
    regime_over_history,
    resample_hourly,
)
from tests.unit.strategy_support import load_candles, one_minute_files

H = 3600
T0 = 1_700_000_000 - 1_700_000_000 % H  # an hour start
CFG = RegimeDetection()


def minute_candles(offsets_min: list[int], closes: list[float]) -> Candles:
    rows = [
        (T0 + m * 60, c + 0.5, c + 1.0, c - 1.0, c, float(i + 1))
        for i, (m, c) in enumerate(zip(offsets_min, closes, strict=True))
    ]
    return Candles.from_rows("KRW-BTC", rows)


def test_resample_keeps_complete_hours_and_drops_empty_ones() -> None:
    """Hours with candles become OHLCV rows; an empty hour and the forming hour do not exist."""
    candles = minute_candles([0, 1, 59, 65, 190], [10.0, 12.0, 11.0, 20.0, 30.0])
    hourly = resample_hourly(candles, now_ts=T0 + 3 * H + 30 * 60)
    assert hourly.ts.tolist() == [T0, T0 + H]
    assert hourly.open.tolist() == [10.5, 20.5]
    assert hourly.high.tolist() == [13.0, 21.0]
    assert hourly.low.tolist() == [9.0, 19.0]
    assert hourly.close.tolist() == [11.0, 20.0]
    assert hourly.volume.tolist() == [6.0, 4.0]


def test_an_hour_is_complete_exactly_at_its_end() -> None:
    """An hour counts once now ≥ start + 3600, not a second earlier."""
    candles = minute_candles([0, 59], [10.0, 11.0])
    assert len(resample_hourly(candles, T0 + H)) == 1
    assert len(resample_hourly(candles, T0 + H - 1)) == 0
    assert len(resample_hourly(Candles.empty("KRW-BTC"), T0 + H)) == 0


def test_resample_matches_pandas_on_every_file(data_dir: Path) -> None:
    """Hourly candles equal a pandas left-closed hourly resample without its forming hour."""
    for path in one_minute_files(data_dir):
        candles = load_candles(path)
        now = int(candles.ts[-1]) + 60
        ours = resample_hourly(candles, now)
        frame = pd.DataFrame(
            {
                "open": candles.open,
                "high": candles.high,
                "low": candles.low,
                "close": candles.close,
                "volume": candles.volume,
            },
            index=pd.to_datetime(candles.ts, unit="s", utc=True),
        )
        ref = (
            frame.resample("1h", label="left", closed="left")
            .agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
            .dropna()
        )
        starts = ref.index.asi8 // 1_000_000_000
        ref = ref[starts + H <= now]
        assert ours.ts.tolist() == (ref.index.asi8 // 1_000_000_000).tolist(), path.name
        for col in ("open", "high", "low", "close"):
            np.testing.assert_array_equal(getattr(ours, col), ref[col].to_numpy(), path.name)
        np.testing.assert_allclose(ours.volume, ref["volume"].to_numpy(), rtol=1e-12)


@pytest.mark.parametrize(
    ("fast", "slow", "expected"),
    [
        (102.0, 100.0, "SIDEWAYS"),  # exactly +2 %
        (102.01, 100.0, "BULL"),
        (98.0, 100.0, "SIDEWAYS"),  # exactly −2 %
        (97.99, 100.0, "BEAR"),
        (100.0, 100.0, "SIDEWAYS"),
        (math.nan, 100.0, "UNKNOWN"),
        (100.0, None, "UNKNOWN"),
        (100.0, 0.0, "UNKNOWN"),
        (math.inf, 100.0, "UNKNOWN"),
    ],
)
def test_detect_regime_table(fast: float, slow: float | None, expected: str) -> None:
    """Thresholds are strict, and a missing or NaN MA is UNKNOWN."""
    assert detect_regime(fast, slow, 2.0, -2.0) == expected


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=1, max_value=10**9), st.sampled_from([51, 49]))
def test_exactly_on_a_threshold_is_sideways(k: int, fast_units: int) -> None:
    """An MA gap of exactly ±2.0 % is SIDEWAYS."""
    fast, slow = fast_units * float(k), 50.0 * k
    assume(abs(diff_pct(fast, slow) or 0.0) == 2.0)
    assert detect_regime(fast, slow, 2.0, -2.0) == "SIDEWAYS"


@settings(max_examples=200, deadline=None)
@given(st.floats(1e-3, 1e9), st.floats(1e-3, 1e9), st.floats(-10, 0), st.floats(0, 10))
def test_regime_follows_the_gap(fast: float, slow: float, bear: float, bull: float) -> None:
    """The regime is BULL above, BEAR below and SIDEWAYS between the configured thresholds."""
    gap = (fast - slow) / slow * 100.0
    expected = "BULL" if gap > bull else "BEAR" if gap < bear else "SIDEWAYS"
    assert detect_regime(fast, slow, bull, bear) == expected


def test_too_few_closed_hours_is_unknown(data_dir: Path) -> None:
    """With fewer than 200 closed hourly candles the regime is UNKNOWN and says how many."""
    path = next(p for p in one_minute_files(data_dir) if p.name.startswith("upbit_KRW-BTC"))
    candles = load_candles(path)
    reading = regime_from_candles(candles, int(candles.ts[-1]) + 60, CFG)
    assert reading.regime == "UNKNOWN"
    # The file runs 2018-01-25 06:42 .. 2018-02-01 05:20 UTC; at 05:21 the 05:00 hour is still
    # open. Closed hours: 06..23 on the 25th (18) + 26th..31st (6 x 24) + 00..04 on the 1st (5).
    assert reading.hourly_candles == 18 + 6 * 24 + 5
    assert reading.ma_fast is None


def test_regime_from_candles_matches_pandas_means(data_dir: Path) -> None:
    """MA50/MA200 of complete hourly closes and the gap equal a pandas computation."""
    path = next(p for p in one_minute_files(data_dir) if "BTCUSDT" in p.name)
    candles = load_candles(path)
    now = int(candles.ts[-1]) + 60
    reading = regime_from_candles(candles, now, CFG)
    closes = pd.Series(candles.close, index=pd.to_datetime(candles.ts, unit="s", utc=True))
    hourly = closes.resample("1h").last().dropna()
    fast, slow = hourly.iloc[-50:].mean(), hourly.iloc[-200:].mean()
    assert reading.hourly_candles == len(hourly)
    assert reading.ma_fast == pytest.approx(fast, rel=1e-12)
    assert reading.ma_slow == pytest.approx(slow, rel=1e-12)
    assert reading.regime == detect_regime(fast, slow, 2.0, -2.0)
    assert reading.regime == "BULL"  # February 2024: +43 %


def _job_reading(candles: Candles, i: int, minute: int) -> str:
    """What the live hourly job would have stored by the time candle i closes."""
    decision = int(candles.ts[i]) + 60
    shifted = decision - minute * 60
    run = shifted - shifted % H + minute * 60
    seen = candles.slice(0, int(np.searchsorted(candles.ts + 60, run, side="right")))
    return regime_from_candles(seen, run, CFG).regime


@pytest.mark.parametrize("minute", [0, 1, 30])
def test_regime_over_history_matches_the_hourly_job(data_dir: Path, minute: int) -> None:
    """The per-minute regime equals the hourly job's reading from the data closed at its run."""
    rng = np.random.default_rng(minute)
    for path in one_minute_files(data_dir):
        candles = load_candles(path)
        codes = regime_over_history(candles, CFG, regime_minute=minute)
        picks = rng.choice(len(candles), 40, replace=False)
        hour_edges = np.flatnonzero(candles.ts % H >= H - 120)[:10]
        for i in np.r_[picks, hour_edges, len(candles) - 1]:
            assert REGIMES[codes[i]] == _job_reading(candles, int(i), minute), (path.name, i)


def test_regime_over_history_has_no_lookahead(data_dir: Path) -> None:
    """Cutting the history after candle t leaves the regime at t unchanged."""
    path = next(p for p in one_minute_files(data_dir) if "AVAXUSDT" in p.name)
    candles = load_candles(path)
    full = regime_over_history(candles, CFG)
    assert set(np.unique(full)) > {REGIMES.index("UNKNOWN")}
    rng = np.random.default_rng(11)
    for t in rng.choice(len(candles), 25, replace=False):
        cut = regime_over_history(candles.slice(0, int(t) + 1), CFG)
        assert cut[-1] == full[t], t
