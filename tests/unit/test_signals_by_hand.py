"""The whole-history pass (signals.py) on short histories worked out by hand.

test_signals.py compares the pass with pandas and with the live evaluation on the real
candle files; these tables need no data, and each expectation is derived in the test.
"""

from __future__ import annotations

import math

import numpy as np

from coinpilot.domain.candles import Candles
from coinpilot.domain.signals import WindowedRsi, windowed_indicators

NAN = math.nan
CLOSE = [10.0, 12.0, 11.0, 11.0, 14.0, 13.0, 13.5]


def same(actual: np.ndarray, expected: list[float]) -> None:
    np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=0, equal_nan=True)


def candles(close: list[float], volume: list[float] | None = None) -> Candles:
    c = np.array(close)
    v = np.ones(len(close)) if volume is None else np.array(volume)
    ts = 1_700_000_000 + 60 * np.arange(len(close), dtype=np.int64)
    return Candles("KRW-TEST", ts, c, c, c, c, v)


def test_windowed_rsi_restarts_in_each_window() -> None:
    """RSI(2) (α = 1/2) of the 3-candle window ending at each t, first change zero.

    t  window          changes      avg gain          avg loss          RSI
    0  10              0            –                 –                 NaN (warm-up)
    1  10 12           0 +2         0 1               0 0               100
    2  10 12 11        0 +2 −1      0 1 .5            0 0 .5            50
    3  12 11 11        0 −1 0       0 0 0             0 .5 .25          0 (no gain at all)
    4  11 11 14        0 0 +3       0 0 1.5           0 0 0             100
    5  11 14 13        0 +3 −1      0 1.5 .75         0 0 .5            100 − 100/2.5 = 60
    6  14 13 13.5      0 −1 +.5     0 0 .25           0 .5 .25          50
    """
    same(WindowedRsi(np.array(CLOSE), 2, 3).at_lag(0), [NAN, 100, 50, 0, 100, 60, 50])


def test_windowed_rsi_one_candle_back() -> None:
    """The same windows read at their middle candle (lag 1); index 0 of a window is warm-up.

    t=2: 10 12 11 at 12 → 100.  t=3: 12 11 11 at 11 → gain 0, loss .5 → 0.
    t=4: 11 11 14 at 11 → no move → NaN.  t=5: 11 14 13 at 14 → 100.
    t=6: 14 13 13.5 at 13 → 0.
    """
    same(WindowedRsi(np.array(CLOSE), 2, 3).at_lag(1), [NAN, NAN, 100, 0, NAN, 100, 0])


def test_windowed_rsi_one_candle_back_in_a_4_candle_window() -> None:
    """RSI(2) of each 4-candle window read at its third candle (lag 1):

    t=2: 10 12 11 at 12 → 100.  t=3: 10 12 11 11 at 11 → gain .5, loss .5 → 50.
    t=4: 12 11 11 14 at 11 → no gain → 0.  t=5: 11 11 14 13 at 14 → only a gain → 100.
    t=6: 11 14 13 13.5 at 13 → changes 0 +3 −1: gain 0 1.5 .75, loss 0 0 .5 → 60.
    """
    same(WindowedRsi(np.array(CLOSE), 2, 4).at_lag(1), [NAN, NAN, 100, 50, 0, 100, 60])


def test_windowed_rsi_warm_up_counts_from_the_window_start() -> None:
    """RSI(3) needs index ≥ 2 of its window; read one back in a 3-candle window that index is
    at most 1, so there is never a value."""
    assert np.isnan(WindowedRsi(np.array(CLOSE), 3, 3).at_lag(1)).all()


def test_windowed_rsi_3_inside_a_long_window() -> None:
    """RSI(3), α = 1/3, window longer than the history (so no window restart).

    gains 0 2 0 0 3 0 .5 → avg 0, 2/3, 4/9, 8/27, 16/81 + 1 = 97/81, 194/243
    losses 0 0 1 0 0 1 0 → avg 0, 0, 1/3, 2/9, 4/27, 8/81 + 1/3 = 35/81
    RSI at 2: (4/9)/(1/3) = 4/3 → 100 − 100/(7/3) = 400/7; at 3: (8/27)/(2/9) = 4/3 → 400/7;
    at 4: (97/81)/(4/27) = 97/12 → 100 − 1200/109 = 9700/109;
    at 5: (194/243)/(35/81) = 194/105 → 100 − 10500/299 = 19400/299.
    """
    rsi = WindowedRsi(np.array(CLOSE[:6]), 3, 10)
    same(rsi.at_lag(0), [NAN, NAN, 400 / 7, 400 / 7, 9700 / 109, 19400 / 299])
    same(rsi.at_lag(1), [NAN, NAN, NAN, 400 / 7, 400 / 7, 9700 / 109])


def test_a_flat_window_has_no_rsi_whatever_came_before() -> None:
    """10, 11, 14, then 14 four times: the 4-candle windows ending at 5 and 6 never move, so
    they read NaN like the live window, not a rounding residue of the earlier rises (or of
    the earlier falls when mirrored)."""
    rising = [10.0, 11.0, 14.0, 14.0, 14.0, 14.0, 14.0]
    falling = [14.0, 13.0, 10.0, 10.0, 10.0, 10.0, 10.0]
    for close in (rising, falling):
        out = WindowedRsi(np.array(close), 3, 4).at_lag(0)
        assert np.isnan(out[5:]).all(), close


P = {
    "rsi_period": 3,
    "rsi_short_period": 2,
    "rsi_7_recovery_lookback": 3,
    "ma_period": 3,
    "bb_period": 3,
    "bb_std": 1.0,
    "bb_touch_lookback": 3,
    "bb_recovery_sustain_candles": 1,
    "volume_period": 2,
    "volume_surge_window": 3,
}


def params(**changes: object):  # type: ignore[no-untyped-def]
    from coinpilot.domain.snapshot import IndicatorParams

    return IndicatorParams(**{**P, **changes})  # type: ignore[arg-type]


def test_volume_ratios_per_live_window_by_hand() -> None:
    """Volume period 2, window 6; ratios v_t / mean(v_{t−2}, v_{t−1}) over the history:

    t        0    1    2        3          4      5      6        7
    volume   2    4    6        3          0      0      0        5
    ratio    –    –    6/3=2    3/4.5…     0/4.5  0/1.5  0/0=NaN  5/0=inf
    (ratio at 3 is 3 / mean(4, 6) = 0.6; at 4, 0 / mean(6, 3) = 0)
    position in window 0 1 2 3 4 5 5 5; a ratio exists once the position is ≥ 2.
    The current ratio reads an idle (NaN) or zero-average (inf) minute as 0.0; the recent
    ratios (oldest first, current last) keep inf, read NaN as 0.0, and read as 0.0 any ratio
    from before its window's warm-up (position − lag < 2).
    """
    volume = [2.0, 4.0, 6.0, 3.0, 0.0, 0.0, 0.0, 5.0]
    w = windowed_indicators(candles([10.0] * 8, volume), params(), 6)
    same(w.vol_ratio, [NAN, NAN, 2.0, 0.6, 0.0, 0.0, 0.0, 0.0])
    expected_recent = [
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 2],
        [0, 0, 0, 2, 0.6],
        [0, 0, 2, 0.6, 0],
        [0, 2, 0.6, 0, 0],  # t=5: lag 4 is t=1, position 1 → 0
        [0, 0.6, 0, 0, 0],  # t=6: window 1…6, lag 4 is t=2 at position 1 → 0
        [0, 0, 0, 0, math.inf],
    ]
    np.testing.assert_allclose(w.recent_vol_ratios, expected_recent, rtol=1e-12, atol=0)
    assert w.n_candles.tolist() == [1, 2, 3, 4, 5, 6, 6, 6]


def test_rsi_minimum_over_the_lookback_by_hand() -> None:
    """RSI(2) of CLOSE in a window longer than the history, and its minimum over 3 candles.

    avg gain 0 1 .5 .25 1.625 .8125 .65625; avg loss 0 0 .5 .25 .125 .5625 .28125
    RSI NaN 100 50 50 100 − 100/14 = 92.857… (13) , 100 − 100/(1 + 13/9) = 59.09…, 70 (7/3)
    min of t, t−1, t−2 (NaN skipped): NaN 100 50 50 50 50 59.09…
    previous: the RSI one candle back.
    """
    w = windowed_indicators(candles(CLOSE), params(), 20)
    r13 = 100 - 100 / 14
    r5 = 100 - 100 / (1 + 13 / 9)
    same(w.rsi7, [NAN, 100, 50, 50, r13, r5, 70])
    same(w.rsi7_prev, [NAN, NAN, 100, 50, 50, r13, r5])
    same(w.rsi7_min_lookback, [NAN, 100, 50, 50, 50, 50, r5])


def test_windowed_bands_and_touch_by_hand() -> None:
    """Bands of 3 candles, 1 sample std, touch lookback 3, sustain 1, window 20.

    close 10 10 10 7 10 10: lower band at 2 = 10 (no spread); at 3, [10 10 7] mean 9,
    squares 1 + 1 + 4 = 6, std sqrt 3 → 9 − sqrt 3 ≈ 7.27 ≥ 7: a touch; at 4, [10 7 10]
    mean 9, std sqrt 3 → 7.27 < 10: above; at 5, [7 10 10] the same.
    Touch-and-recovery at t: a touch at t−2 or t−1 and close t above, with at least 3 band
    candles up to t and (window position + 1 − 2) ≥ 3 candles with a band:
    t=4 (touch at 3, 10 above) → yes; t=5 (touch at 3, 10 above) → yes.
    (t=2 counts a close equal to its band as a touch but has too few band candles.)
    """
    close = [10.0, 10.0, 10.0, 7.0, 10.0, 10.0]
    w = windowed_indicators(candles(close), params(), 20)
    low = 9 - math.sqrt(3)
    same(w.bb_lower, [NAN, NAN, 10.0, low, low, low])
    same(w.ma, [NAN, NAN, 10.0, 9.0, 9.0, 9.0])
    assert w.bb_touch_recovery.tolist() == [False, False, False, False, True, True]


def test_a_window_shorter_than_the_periods_has_no_ma_bands_or_touch() -> None:
    """A 3-candle window: MA(4) and bands of 4 never fit, so every value is missing,
    although the whole-history series has them from index 3 on."""
    close = [10.0, 10.0, 10.0, 7.0, 10.0, 10.0, 10.0]
    w = windowed_indicators(candles(close), params(ma_period=4, bb_period=4), 3)
    assert np.isnan(w.ma).all()
    assert np.isnan(w.bb_lower).all()
    assert not w.bb_touch_recovery.any()


def test_touch_needs_enough_band_candles_inside_the_window() -> None:
    """Window 4 with bands of 3 holds 4 − 2 = 2 band candles, fewer than the lookback of 3:
    the touch at 3 and recovery at 4 and 5 (which a longer window sees) never count."""
    close = [10.0, 10.0, 10.0, 7.0, 10.0, 10.0]
    w = windowed_indicators(candles(close), params(), 4)
    assert not w.bb_touch_recovery.any()


def test_touch_with_sustain_2_fires_at_the_first_candle_with_enough_bands() -> None:
    """Lookback 3, sustain 2 (need 3 band candles): close 10 10 10 11 12.

    Band at 2: 10 (no spread), so 10 touches it. At 3: [10 10 11] mean 31/3, squares
    1/9 + 1/9 + 4/9 = 2/3, std sqrt(1/3) → lower ≈ 9.76 < 11; at 4: [10 11 12] mean 11,
    std 1 → lower 10 < 12. At t=4 the touch is at t−2 = 2 and 3, 4 are above, with band
    candles 2, 3, 4: three, enough.
    """
    w = windowed_indicators(
        candles([10.0, 10.0, 10.0, 11.0, 12.0]), params(bb_recovery_sustain_candles=2), 20
    )
    assert w.bb_touch_recovery.tolist() == [False, False, False, False, True]


def test_a_shared_memo_shares_series_between_equal_parameters() -> None:
    memo: dict[tuple[object, ...], object] = {}
    close = candles([10.0, 10.0, 10.0, 7.0, 10.0, 10.0])
    first = windowed_indicators(close, params(), 20, memo)
    again = windowed_indicators(close, params(bb_std=1.5), 20, memo)
    assert again.ma is first.ma
    assert again.rsi7 is first.rsi7


def test_a_shared_memo_serves_each_parameter_set_its_own_series() -> None:
    """A parameter set differing in every period, computed after another on a shared memo,
    gets exactly what it gets alone."""
    close = [10.0, 10.0, 10.0, 7.0, 10.0, 10.0, 9.0, 8.5, 9.5, 10.0]
    volume = [1.0, 2.0, 4.0, 1.0, 3.0, 0.5, 2.0, 6.0, 1.0, 2.0]
    memo: dict[tuple[object, ...], object] = {}
    first = windowed_indicators(candles(close, volume), params(), 20, memo)
    other = params(
        rsi_7_recovery_lookback=2,
        ma_period=4,
        bb_period=4,
        bb_std=1.5,
        bb_touch_lookback=4,
        volume_period=3,
        volume_surge_window=6,
    )
    shared = windowed_indicators(candles(close, volume), other, 20, memo)
    alone = windowed_indicators(candles(close, volume), other, 20)
    for field in alone.__dataclass_fields__:
        mine, theirs = getattr(shared, field), getattr(alone, field)
        np.testing.assert_array_equal(mine, theirs, err_msg=field)
        # the two parameter sets really differ in this field (so a stale series would show)
        if field not in ("close", "rsi14", "rsi7", "rsi7_prev", "n_candles"):
            assert np.shape(mine) != np.shape(getattr(first, field)) or not np.array_equal(
                mine, getattr(first, field), equal_nan=True
            ), field
