"""Indicator maths (SPEC §3) against an independent pandas restatement and basic properties."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coinpilot.domain import indicators as ind
from tests.unit.strategy_support import (
    load_candles,
    one_minute_files,
    pd_bollinger,
    pd_rsi,
    pd_touch_recovery,
    pd_volume_ratios,
)

TOL = {"rtol": 1e-9, "atol": 1e-9, "equal_nan": True}


@pytest.fixture(scope="module")
def real_series(data_dir: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    out = []
    for path in one_minute_files(data_dir):
        c = load_candles(path)
        out.append((path.name, c.close, c.volume))
    return out


def test_rsi_matches_pandas_on_every_file(real_series) -> None:
    """RSI(14) and RSI(7) over whole files equal the pandas EWM formula to 1e-9."""
    for name, close, _ in real_series:
        for period in (14, 7):
            expected = pd_rsi(pd.Series(close), period).to_numpy()
            np.testing.assert_allclose(ind.rsi(close, period), expected, **TOL, err_msg=name)


def test_sma_and_bollinger_match_pandas_on_every_file(real_series) -> None:
    """SMA(20) and Bollinger(20, 2) with sample std equal pandas rolling values to 1e-9."""
    for name, close, _ in real_series:
        series = pd.Series(close)
        np.testing.assert_allclose(
            ind.sma(close, 20), series.rolling(20).mean().to_numpy(), **TOL, err_msg=name
        )
        ours = ind.bollinger(close, 20, 2.0)
        theirs = pd_bollinger(series, 20, 2.0)
        for mine, ref in zip(ours, theirs, strict=True):
            np.testing.assert_allclose(mine, ref.to_numpy(), **TOL, err_msg=name)


def test_volume_ratios_match_pandas_on_every_file(real_series) -> None:
    """volume_t / mean(previous 20 volumes) equals the pandas shifted rolling mean to 1e-9."""
    for name, _, volume in real_series:
        expected = pd_volume_ratios(pd.Series(volume), 20).to_numpy()
        np.testing.assert_allclose(ind.volume_ratios(volume, 20), expected, **TOL, err_msg=name)


def test_touch_recovery_matches_literal_rule_on_real_windows(real_series) -> None:
    """The vectorised touch-and-recovery flag equals SPEC §3's literal rule at sampled candles."""
    rng = np.random.default_rng(7)
    for name, close, _ in real_series:
        lower = ind.bollinger(close, 20, 2.0)[0]
        series, bands = pd.Series(close), pd.Series(lower)
        flags = {s: ind.touch_recovery(close, lower, 30, s) for s in (1, 2)}
        for t in rng.choice(np.arange(20, len(close)), 120, replace=False):
            for sustain, flag in flags.items():
                start = max(0, t - 199)
                expected = pd_touch_recovery(
                    series.iloc[start : t + 1], bands.iloc[start : t + 1], 30, sustain, 20
                )
                assert bool(flag[t]) == expected, (name, t, sustain)


def test_touch_recovery_small_example() -> None:
    """A close on the band followed by two closes above it is a recovery with sustain 2."""
    close = np.array([5.0, 4.0, 5.0, 6.0, 6.0])
    lower = np.array([np.nan, 4.0, 4.5, 4.5, 4.5])
    flags = ind.touch_recovery(close, lower, lookback=3, sustain=2)
    assert flags.tolist() == [False, False, False, True, False]


def test_warm_up_is_nan() -> None:
    """Each indicator is NaN exactly during its documented warm-up."""
    close = np.linspace(100.0, 130.0, 40) + np.sin(np.arange(40))
    assert np.isnan(ind.rsi(close, 14)[:13]).all()
    assert not np.isnan(ind.rsi(close, 14)[13])
    assert np.isnan(ind.sma(close, 20)[:19]).all()
    assert not np.isnan(ind.sma(close, 20)[19])
    ratios = ind.volume_ratios(np.ones(40), 20)
    assert np.isnan(ratios[:20]).all()
    assert (ratios[20:] == 1.0).all()


def test_two_dimensional_input_matches_rows() -> None:
    """A (symbols, candles) stack gives each row's own 1-D result."""
    rng = np.random.default_rng(3)
    stack = 100.0 + rng.normal(size=(4, 120)).cumsum(axis=1)
    for func in (lambda x: ind.rsi(x, 14), lambda x: ind.sma(x, 20), lambda x: ind.bollinger(x)[0]):
        whole = func(stack)
        for row in range(4):
            np.testing.assert_array_equal(whole[row], func(stack[row]))


def test_zero_average_volume_gives_inf_or_nan() -> None:
    """A zero previous average gives +inf for a traded candle and NaN for an idle one."""
    volume = np.zeros(22)
    volume[21] = 3.0
    ratios = ind.volume_ratios(volume, 20)
    assert np.isnan(ratios[20])
    assert ratios[21] == np.inf


def test_bad_period_is_rejected() -> None:
    """A non-positive or fractional period is a clear error, not a silent NaN series."""
    with pytest.raises(ValueError, match="period"):
        ind.sma(np.ones(10), 0)
    with pytest.raises(ValueError, match="period"):
        ind.rsi(np.ones(10), 2.5)  # type: ignore[arg-type]


prices = st.lists(
    st.floats(min_value=1.0, max_value=1e6, allow_nan=False), min_size=2, max_size=120
)


@settings(max_examples=200, deadline=None)
@given(prices, st.integers(min_value=2, max_value=30))
def test_rsi_is_bounded_or_nan(values: list[float], period: int) -> None:
    """RSI is always within [0, 100] or NaN."""
    out = ind.rsi(np.array(values), period)
    finite = out[~np.isnan(out)]
    assert ((finite >= 0.0) & (finite <= 100.0)).all()


@settings(max_examples=100, deadline=None)
@given(st.floats(min_value=0.01, max_value=1e8), st.integers(2, 60), st.integers(2, 30))
def test_flat_series_rsi_is_nan(price: float, extra: int, period: int) -> None:
    """A series that never moves has no RSI."""
    assert np.isnan(ind.rsi(np.full(period + extra, price), period)).all()


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.floats(min_value=1e-3, max_value=1e3), min_size=20, max_size=80),
    st.integers(2, 15),
)
def test_strictly_rising_rsi_is_100(steps: list[float], period: int) -> None:
    """Strictly rising closes give RSI 100 from the first defined value on."""
    close = 100.0 + np.cumsum(steps)
    out = ind.rsi(close, period)[period - 1 :]
    assert (out == 100.0).all()


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.floats(min_value=1e-3, max_value=1.0), min_size=20, max_size=80),
    st.integers(2, 15),
)
def test_strictly_falling_rsi_is_0(steps: list[float], period: int) -> None:
    """Strictly falling closes give RSI 0 from the first defined value on."""
    close = 1000.0 - np.cumsum(steps)
    assert (ind.rsi(close, period)[period - 1 :] == 0.0).all()


def test_ewm_recursion_by_hand() -> None:
    """α = 0.5 on 2, 4, 8: y0 = 2, y1 = 0.5·2 + 0.5·4 = 3, y2 = 0.5·3 + 0.5·8 = 5.5."""
    assert ind.ewm_recursive(np.array([2.0, 4.0, 8.0]), 0.5).tolist() == [2.0, 3.0, 5.5]


def test_ewm_long_series_and_many_short_rows_round_alike() -> None:
    """A long row runs as a scalar loop, a tall stack as vector steps: the same bits."""
    rng = np.random.default_rng(7)
    rows = rng.normal(100.0, 5.0, size=(40, 120))
    stacked = ind.ewm_recursive(rows, 1 / 14)
    one_by_one = np.array([ind.ewm_recursive(r, 1 / 14) for r in rows])
    assert np.array_equal(stacked, one_by_one)
    expected = [rows[0, 0]]
    for value in rows[0, 1:]:
        expected.append((1 - 1 / 14) * expected[-1] + (1 / 14) * value)
    assert np.allclose(stacked[0], expected, rtol=1e-12, atol=0)
