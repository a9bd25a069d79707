"""Indicator maths (SPEC §3) on short series worked out by hand in each test.

The pandas comparisons in test_indicators.py need the real candle files; these tables need
nothing, and each expectation is the arithmetic written next to it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from coinpilot.domain import indicators as ind

NAN = math.nan


def same(actual: np.ndarray, expected: list[float]) -> None:
    np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=0, equal_nan=True)


def test_rsi_period_2_by_hand() -> None:
    """RSI(2), α = 1/2, averages seeded at the zero first change.

    close    10   12    11     11     14
    gain      0    2     0      0      3
    loss      0    0     1      0      0
    avg gain  0    1     0.5    0.25   0.125 + 1.5 = 1.625
    avg loss  0    0     0.5    0.25   0.125
    RSI      NaN  100   50     50     100 − 100 / (1 + 13) = 92.857…
    (index 0 is the warm-up; at index 1 the loss average is 0, so only gains → 100)
    """
    same(ind.rsi([10.0, 12.0, 11.0, 11.0, 14.0], 2), [NAN, 100.0, 50.0, 50.0, 100 - 100 / 14])


def test_rsi_averages_by_hand() -> None:
    """The recursive averages behind the table above, α = 1/2."""
    gain, loss = ind.rsi_averages([10.0, 12.0, 11.0, 11.0, 14.0], 2)
    assert gain.tolist() == [0.0, 1.0, 0.5, 0.25, 1.625]
    assert loss.tolist() == [0.0, 0.0, 0.5, 0.25, 0.125]


def test_rsi_period_1_is_the_sign_of_each_change() -> None:
    """α = 1: each average is the current change alone, so up → 100, down → 0, flat → NaN."""
    same(ind.rsi([1.0, 2.0, 1.0, 1.0], 1), [NAN, 100.0, 0.0, NAN])


def test_sma_by_hand_on_integers() -> None:
    """Integer input is read as float prices: (1+2)/2, (2+3)/2, (3+4)/2, NaN before."""
    same(ind.sma([1, 2, 3, 4], 2), [NAN, 1.5, 2.5, 3.5])


def test_sma_period_1_is_the_series() -> None:
    same(ind.sma([5.0, 7.0, 6.0], 1), [5.0, 7.0, 6.0])


def test_rolling_std_is_the_sample_std_by_hand() -> None:
    """Windows of 3, divisor 3 − 1 = 2 by default.

    [1, 3, 5]: mean 3, squares 4 + 0 + 4 = 8, 8 / 2 = 4 → 2
    [3, 5, 7]: mean 5, squares 4 + 0 + 4 = 8 → 2
    [5, 7, 16]: mean 28/3; squares (13/3)² + (7/3)² + (20/3)² = 618/9, / 2 → sqrt(103/3)
    """
    same(ind.rolling_std([1.0, 3.0, 5.0, 7.0, 16.0], 3), [NAN, NAN, 2.0, 2.0, math.sqrt(103 / 3)])


def test_rolling_std_on_exactly_one_window() -> None:
    """[2, 4, 9]: mean 5, squares 9 + 1 + 16 = 26, / 2 = 13 → sqrt(13), defined at index 2."""
    same(ind.rolling_std([2.0, 4.0, 9.0], 3), [NAN, NAN, math.sqrt(13)])


def test_rolling_std_period_2_and_population_ddof() -> None:
    """[1, 3]: squares 1 + 1 = 2; sample (÷1) → sqrt 2, population (÷2) → 1."""
    same(ind.rolling_std([1.0, 3.0], 2), [NAN, math.sqrt(2)])
    same(ind.rolling_std([1.0, 3.0], 2, ddof=0), [NAN, 1.0])


def test_rolling_std_needs_more_values_than_ddof() -> None:
    """A sample std of one value divides by zero: period 1 is refused, not a NaN series."""
    with pytest.raises(ValueError, match="period"):
        ind.rolling_std([1.0, 2.0], 1)


def test_bollinger_by_hand() -> None:
    """Period 3, 1.5 std on [2, 4, 9]: mid 5, sample std sqrt(13), bands 5 ∓ 1.5·sqrt(13)."""
    lower, mid, upper = ind.bollinger([2.0, 4.0, 9.0], 3, 1.5)
    width = 1.5 * math.sqrt(13)
    same(lower, [NAN, NAN, 5 - width])
    same(mid, [NAN, NAN, 5.0])
    same(upper, [NAN, NAN, 5 + width])


def test_bollinger_defaults_are_20_periods_and_2_std() -> None:
    """Ten 1s then ten 3s: mean 2, squares 20 × 1 = 20, sample std sqrt(20/19); 2 std wide."""
    close = [1.0] * 10 + [3.0] * 10
    lower, mid, upper = ind.bollinger(close)
    width = 2 * math.sqrt(20 / 19)
    assert np.isnan(mid[:19]).all()
    assert mid[19] == pytest.approx(2.0, rel=1e-12)
    assert lower[19] == pytest.approx(2 - width, rel=1e-12)
    assert upper[19] == pytest.approx(2 + width, rel=1e-12)


def test_volume_ratio_period_1_is_against_the_previous_candle() -> None:
    """[2, 4, 1]: 4 / 2 = 2, 1 / 4 = 0.25; the first candle has no previous one."""
    same(ind.volume_ratios([2.0, 4.0, 1.0], 1), [NAN, 2.0, 0.25])


def test_volume_ratios_by_hand() -> None:
    """Period 2: 6 / mean(2, 4) = 2, 3 / mean(4, 6) = 0.6; the first two are warm-up."""
    same(ind.volume_ratios([2.0, 4.0, 6.0, 3.0], 2), [NAN, NAN, 2.0, 0.6])


def test_ewm_of_nothing_is_nothing() -> None:
    assert ind.ewm_recursive(np.empty(0), 0.5).shape == (0,)


def test_ewm_carries_its_value_across_a_long_history() -> None:
    """A history longer than one block of the scalar loop continues from the last value.

    α = 1/2 over 1s: every y is 1. A 3 as the block's last input gives 0.5·1 + 0.5·3 = 2,
    then a 0 gives 0.5·2 = 1 and another 0 gives 0.5.
    """
    edge = ind._BLOCK
    x = np.ones(edge + 2)
    x[edge - 1] = 3.0
    x[edge:] = 0.0
    y = ind.ewm_recursive(x, 0.5)
    assert y[: edge - 1].tolist() == [1.0] * (edge - 1)
    assert y[edge - 1 :].tolist() == [2.0, 1.0, 0.5]


def test_touch_recovery_with_lookback_1_never_fires() -> None:
    """Lookback 1, sustain 1: the touch range t … t − 1 is empty, so no candle qualifies."""
    close = [5.0, 4.0, 5.0, 6.0]
    lower = [4.5, 4.5, 4.5, 4.5]
    assert ind.touch_recovery(close, lower, lookback=1, sustain=1).tolist() == [False] * 4


# Lookback 3, sustain 2: at t, a touch (close ≤ band) at t − 2 and closes strictly above
# the band at t − 1 and t, with at least 3 candles that have a band.
BAND = [4.5] * 5


def test_a_close_on_the_band_is_a_touch_not_a_recovery() -> None:
    """close 5, 4, 4.5, 6, 7 against 4.5.

    t=2: touch at 0? 5 > 4.5 → no.  t=3: touch at 1 (4 ≤ 4.5), but t−1 closes at 4.5, not
    above → no.  t=4: touch at 2 (4.5 ≤ 4.5) and 6, 7 above → yes.
    """
    close = [5.0, 4.0, 4.5, 6.0, 7.0]
    flags = ind.touch_recovery(close, BAND, lookback=3, sustain=2)
    assert flags.tolist() == [False, False, False, False, True]


def test_a_candle_without_a_band_breaks_the_recovery() -> None:
    """close 5, 4, 6, 6, 6: with a band everywhere, t=3 recovers (touch at 1, 6 and 6 above)
    and t=4 does not (no touch at 2). With candle 2's band missing, candle 2 is not above
    anything, so t=3 fails too; candle 2 also cannot be t=4's touch.
    """
    close = [5.0, 4.0, 6.0, 6.0, 6.0]
    assert ind.touch_recovery(close, BAND, 3, 2).tolist() == [False, False, False, True, False]
    gap = [4.5, 4.5, NAN, 4.5, 4.5]
    assert ind.touch_recovery(close, gap, 3, 2).tolist() == [False] * 5


def test_touch_recovery_runs_per_row_of_a_stack() -> None:
    """Two symbols at once give each row its own flags (the two tables above)."""
    close = np.array([[5.0, 4.0, 4.5, 6.0, 7.0], [5.0, 4.0, 6.0, 6.0, 6.0]])
    lower = np.array([BAND, [4.5, 4.5, NAN, 4.5, 4.5]])
    flags = ind.touch_recovery(close, lower, 3, 2)
    assert flags.tolist() == [[False, False, False, False, True], [False] * 5]
