"""Indicator snapshots of short hand-made series, every value worked out in the comments.

Periods shrunk so each value is arithmetic on a handful of numbers (``P`` below):
RSI(4) as "rsi14", RSI(2) as "rsi7" with a 3-candle recovery lookback, MA(3), Bollinger(4, 1σ)
with a 3-candle touch lookback and 1-candle sustain, volume ratio over the previous 2 volumes,
surge window 3 (so 5 recent ratios are kept).

RSI is SPEC §3's: the first change counts as zero, average gain/loss recurse with α = 1/n from
that zero, RSI = 100·G/(G+L), NaN before index n − 1 of the window (the recursion restarts at
the window's first candle).

Main series, 8 candles:

    i        0   1   2   3   4   5   6   7
    close   10  12  11  11  13   9  10  12
    change   0  +2  −1   0  +2  −4  +1  +2
    volume   1   3   2   4   2   6   1   5

RSI(2), α = 1/2:  G = 0, 1, 1/2, 1/4, 9/8, 9/16, 25/32, 89/64
                  L = 0, 0, 1/2, 1/4, 1/8, 33/16, 33/32, 33/64
    RSI at 5, 6, 7 = 9/(9+33)·100 = 150/7, 25/(25+33)·100 = 1250/29, 89/(89+33)·100 = 4450/61
RSI(4), α = 1/4:  G7 = 8089/8192, L7 = 2547/4096 → 100·8089/(8089+5094) = 808900/13183
MA(3) at 7 = (9 + 10 + 12)/3 = 31/3
BB(4) at 7: closes 13 9 10 12, mean 11, squared deviations 4+4+1+1 = 10, sample var 10/3
    → bands 11 ∓ √(10/3)
Touch: the band exists from i = 3; at i = 5 (closes 11 11 13 9: mean 11, var 8/3, lower
    11 − 1.633 = 9.367) the close 9 touches it, and at i = 7 the close 12 is above
    11 − 1.826: touched within the last 3 candles before the last, recovered at the last.
Volume ratios v_i / mean(v_{i−2}, v_{i−1}) for i = 3…7: 4/2.5 = 1.6, 2/3, 6/3 = 2,
    1/4 = 0.25, 5/3.5 = 10/7
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from coinpilot.config import EntryParams, RegimeParams
from coinpilot.domain.candles import Candles
from coinpilot.domain.snapshot import (
    IndicatorParams,
    IndicatorSnapshot,
    compute_snapshot,
    compute_snapshots,
)
from tests.unit.strategy_support import shipped_config

P = IndicatorParams(
    rsi_period=4,
    rsi_short_period=2,
    rsi_7_recovery_lookback=3,
    ma_period=3,
    bb_period=4,
    bb_std=1.0,
    bb_touch_lookback=3,
    bb_recovery_sustain_candles=1,
    volume_period=2,
    volume_surge_window=3,
)
T0 = 1_700_000_040
CLOSES = [10.0, 12.0, 11.0, 11.0, 13.0, 9.0, 10.0, 12.0]
VOLUMES = [1.0, 3.0, 2.0, 4.0, 2.0, 6.0, 1.0, 5.0]
NAN = math.nan
SQ = math.sqrt(10 / 3)


def candles(closes: list[float], volumes: list[float], symbol: str = "KRW-ADA") -> Candles:
    rows = [
        (T0 + 60 * i, c, c + 1.0, c - 1.0, c, v)
        for i, (c, v) in enumerate(zip(closes, volumes, strict=True))
    ]
    return Candles.from_rows(symbol, rows)


MAIN = {
    "ts": T0 + 7 * 60,
    "n_candles": 8,
    "close": 12.0,
    "volume": 5.0,
    "rsi14": 808900 / 13183,
    "rsi7": 4450 / 61,
    "rsi7_prev": 1250 / 29,
    "rsi7_min_lookback": 150 / 7,
    "ma": 31 / 3,
    "bb_lower": 11 - SQ,
    "bb_mid": 11.0,
    "bb_upper": 11 + SQ,
    "vol_ratio": 10 / 7,
    "recent_vol_ratios": (1.6, 2 / 3, 2.0, 0.25, 10 / 7),
    "bb_touch_recovery": True,
}

# The last 6 candles only (i = 2…7: closes 11 11 13 9 10 12, volumes 2 4 2 6 1 5):
#   RSI(2) restarts at i = 2: G = 0, 0, 1, 1/2, 3/4, 11/8; L = 0, 0, 0, 2, 1, 1/2
#     → RSI at the last three = 20, 300/7, 220/3
#   RSI(4): G = 0, 0, 1/2, 3/8, 17/32, 115/128; L = 0, 0, 0, 1, 3/4, 9/16 → 11500/187
#   MA and bands use the last 3 and 4 closes: unchanged. The band exists at 3 candles of
#   the window (i = 5, 6, 7), exactly the 3 the touch lookback needs: still touched (i = 5)
#   and recovered (i = 7).
#   Volume ratios need 2 earlier volumes inside the window: the first of the 5 recent ones
#   (i = 3) has only one and reads 0.0.
WINDOW_6 = {
    **MAIN,
    "n_candles": 6,
    "rsi14": 11500 / 187,
    "rsi7": 220 / 3,
    "rsi7_prev": 300 / 7,
    "rsi7_min_lookback": 20.0,
    "recent_vol_ratios": (0.0, 2 / 3, 2.0, 0.25, 10 / 7),
}

# Three candles (closes 10 12 11, volumes 1 3 2): RSI(4) has no value before index 3;
# RSI(2) = NaN, 100, 50 (G = 0, 1, 1/2; L = 0, 0, 1/2); MA(3) = 11; no band before 4 candles;
# volume ratio 2 / mean(1, 3) = 1.0, the two earlier ones not there yet (0.0).
SHORT = {
    "ts": T0 + 2 * 60,
    "n_candles": 3,
    "close": 11.0,
    "volume": 2.0,
    "rsi14": NAN,
    "rsi7": 50.0,
    "rsi7_prev": 100.0,
    "rsi7_min_lookback": 50.0,
    "ma": 11.0,
    "bb_lower": NAN,
    "bb_mid": NAN,
    "bb_upper": NAN,
    "vol_ratio": 1.0,
    "recent_vol_ratios": (0.0, 0.0, 1.0),
    "bb_touch_recovery": False,
}


def check(snap: IndicatorSnapshot, expected: dict[str, object], symbol: str = "KRW-ADA") -> None:
    assert snap.symbol == symbol
    assert snap.params == P
    for key, want in expected.items():
        got = getattr(snap, key)
        if isinstance(want, float):
            assert got == pytest.approx(want, rel=1e-12, nan_ok=True), key
        elif isinstance(want, tuple):
            assert got == pytest.approx(want, rel=1e-12), key
            assert isinstance(got, tuple), key
        else:
            assert got == want, key
            assert type(got) is type(want), key


def test_main_series_at_its_last_candle() -> None:
    check(compute_snapshot(candles(CLOSES, VOLUMES), P), MAIN)


def test_a_window_restarts_the_rsi_at_its_first_candle() -> None:
    check(compute_snapshot(candles(CLOSES, VOLUMES), P, window=6), WINDOW_6)


def test_a_window_too_short_for_the_touch_lookback_has_no_touch() -> None:
    """Window of 5 (i = 3…7): the band exists at only 2 candles, fewer than the lookback 3."""
    snap = compute_snapshot(candles(CLOSES, VOLUMES), P, window=5)
    assert snap.bb_touch_recovery is False
    assert snap.n_candles == 5


def test_short_series_has_nan_where_an_indicator_lacks_candles() -> None:
    check(compute_snapshot(candles(CLOSES[:3], VOLUMES[:3]), P), SHORT)


def test_two_candles_and_one_candle() -> None:
    """Two candles: RSI(2) = NaN, 100, so no previous value; MA(3) not there; the volume ratio
    needs more than 2 candles and stays NaN. One candle: no RSI at all."""
    two = compute_snapshot(candles(CLOSES[:2], VOLUMES[:2]), P)
    assert two.rsi7 == 100.0
    assert math.isnan(two.rsi7_prev)
    assert math.isnan(two.ma)
    assert math.isnan(two.vol_ratio)
    assert two.recent_vol_ratios == (0.0, 0.0)
    one = compute_snapshot(candles(CLOSES[:1], VOLUMES[:1]), P)
    assert math.isnan(one.rsi7)
    assert math.isnan(one.rsi7_prev)
    assert math.isnan(one.rsi7_min_lookback)
    assert (one.n_candles, one.close, one.volume) == (1, 10.0, 1.0)


def test_a_zero_previous_volume_average() -> None:
    """Volumes 0 0 5: the ratio 5 / 0 is +inf, read as 0.0 for the check; the recent ratios
    keep +inf. Volumes 0 0 0: 0 / 0 reads 0.0 as well."""
    snap = compute_snapshot(candles([10.0, 11.0, 12.0], [0.0, 0.0, 5.0]), P)
    assert snap.vol_ratio == 0.0
    assert snap.recent_vol_ratios == (0.0, 0.0, math.inf)
    flat = compute_snapshot(candles([10.0, 11.0, 12.0], [0.0, 0.0, 0.0]), P)
    assert flat.vol_ratio == 0.0


def test_the_bands_use_the_configured_width() -> None:
    """With 2σ the bands are 11 ∓ 2·√(10/3)."""
    wide = dataclasses.replace(P, bb_std=2.0)
    snap = compute_snapshot(candles(CLOSES, VOLUMES), wide)
    assert snap.bb_lower == pytest.approx(11 - 2 * SQ, rel=1e-12)
    assert snap.bb_upper == pytest.approx(11 + 2 * SQ, rel=1e-12)


def test_many_symbols_at_once_in_input_order() -> None:
    """Same periods and length are stacked; a shorter one and other periods go apart."""
    batch = [
        candles(CLOSES, VOLUMES, "KRW-A"),
        candles(CLOSES[:3], VOLUMES[:3], "KRW-B"),
        candles(CLOSES, VOLUMES, "KRW-C"),
        candles(CLOSES, VOLUMES, "KRW-D"),
    ]
    wide = dataclasses.replace(P, bb_std=2.0)
    snaps = compute_snapshots(batch, [P, P, P, wide])
    assert [s.symbol for s in snaps] == ["KRW-A", "KRW-B", "KRW-C", "KRW-D"]
    check(snaps[0], MAIN, "KRW-A")
    check(snaps[1], SHORT, "KRW-B")
    check(snaps[2], MAIN, "KRW-C")
    assert snaps[3].params == wide
    assert snaps[3].bb_lower == pytest.approx(11 - 2 * SQ, rel=1e-12)


def test_many_symbols_with_one_set_of_periods_and_a_window() -> None:
    batch = [candles(CLOSES, VOLUMES, "KRW-A"), candles(CLOSES[:3], VOLUMES[:3], "KRW-B")]
    snaps = compute_snapshots(batch, P, window=6)
    check(snaps[0], WINDOW_6, "KRW-A")
    check(snaps[1], SHORT, "KRW-B")
    full = compute_snapshots(batch, P)
    check(full[0], MAIN, "KRW-A")


def test_batch_errors() -> None:
    with pytest.raises(ValueError, match=r"^params must have one entry per symbol$"):
        compute_snapshots([candles(CLOSES, VOLUMES)], [P, P])
    with pytest.raises(ValueError, match="no candles for KRW-E"):
        compute_snapshots([candles(CLOSES, VOLUMES), Candles.empty("KRW-E")], P)
    with pytest.raises(ValueError, match="no candles for KRW-F"):
        compute_snapshot(Candles.empty("KRW-F"), P)


def test_default_periods_are_specs() -> None:
    assert IndicatorParams() == IndicatorParams(
        rsi_period=14,
        rsi_short_period=7,
        rsi_7_recovery_lookback=5,
        ma_period=20,
        bb_period=20,
        bb_std=2.0,
        bb_touch_lookback=30,
        bb_recovery_sustain_candles=1,
        volume_period=20,
        volume_surge_window=3,
    )


def entry(**changes: object) -> EntryParams:
    base: dict[str, object] = {
        "rsi_14_max": 50.0,
        "rsi_7_trigger": 30.0,
        "rsi_7_recover": 35.0,
        "ma_condition": "none",
    }
    return EntryParams.model_validate({**base, **changes})


DISTINCT = {
    "rsi_period": 11,
    "rsi_short_period": 6,
    "rsi_7_recovery_lookback": 4,
    "ma_period": 17,
    "bb_period": 19,
    "bb_std": 2.5,
    "bb_touch_lookback": 23,
    "bb_recovery_sustain_candles": 2,
    "volume_period": 13,
    "volume_surge_window": 7,
}


def test_periods_from_an_entry_config_field_by_field() -> None:
    assert IndicatorParams.from_entry(entry(**DISTINCT)) == IndicatorParams(**DISTINCT)  # type: ignore[arg-type]


def test_the_recovery_lookback_is_at_least_two() -> None:
    """The smallest valid lookback, 2, is kept; an unvalidated 1 is raised to 2."""
    assert IndicatorParams.from_entry(entry(rsi_7_recovery_lookback=2)).rsi_7_recovery_lookback == 2
    low = entry().model_copy(update={"rsi_7_recovery_lookback": 1})
    assert IndicatorParams.from_entry(low).rsi_7_recovery_lookback == 2


def test_periods_for_a_regime() -> None:
    regimes = shipped_config().regimes
    bull = regimes["BULL"].entry
    assert IndicatorParams.for_regime("BULL", regimes) == IndicatorParams.from_entry(bull)
    assert IndicatorParams.for_regime("UNKNOWN", regimes) == IndicatorParams()
    assert IndicatorParams.for_regime(None, regimes) == IndicatorParams()
    own = {"SIDEWAYS": RegimeParams.model_validate({**regimes["SIDEWAYS"].model_dump()})}
    own["SIDEWAYS"] = own["SIDEWAYS"].model_copy(update={"entry": entry(**DISTINCT)})
    assert IndicatorParams.for_regime("SIDEWAYS", own) == IndicatorParams(**DISTINCT)  # type: ignore[arg-type]


def test_recent_count_is_five_or_the_surge_window() -> None:
    assert IndicatorParams(volume_surge_window=3).recent_count == 5
    assert IndicatorParams(volume_surge_window=5).recent_count == 5
    assert IndicatorParams(volume_surge_window=8).recent_count == 8


def test_a_surge_window_longer_than_five_keeps_that_many_ratios() -> None:
    """Surge window 6 keeps 6 ratios: those at i = 2…7, 2/mean(1, 3) = 1.0 first."""
    six = dataclasses.replace(P, volume_surge_window=6)
    snap = compute_snapshot(candles(CLOSES, VOLUMES), six)
    assert snap.recent_vol_ratios == pytest.approx((1.0, 1.6, 2 / 3, 2.0, 0.25, 10 / 7))


def test_entry_params_are_turned_into_periods() -> None:
    """An EntryParams is read through from_entry: RSI(4)/RSI(2) with lookback 3 as in P."""
    e = entry(**dataclasses.asdict(P))
    snap = compute_snapshot(candles(CLOSES, VOLUMES), e)
    check(snap, MAIN)
    snaps = compute_snapshots([candles(CLOSES, VOLUMES)], e)
    check(snaps[0], MAIN)


def test_no_params_means_the_default_periods() -> None:
    """With the default periods (RSI 14/7, MA 20, BB 20, volume 20), 8 candles give an RSI(7)
    (first value at index 6) but no RSI(14), MA, bands or volume ratio yet."""
    for snap in (
        compute_snapshot(candles(CLOSES, VOLUMES)),
        compute_snapshots([candles(CLOSES, VOLUMES)])[0],
        compute_snapshots([candles(CLOSES, VOLUMES)], [None])[0],
    ):
        assert snap.params == IndicatorParams()
        assert math.isnan(snap.rsi14)
        assert not math.isnan(snap.rsi7)
        assert math.isnan(snap.ma)
        assert math.isnan(snap.bb_lower)
        assert math.isnan(snap.vol_ratio)


def test_as_dict_turns_nan_into_none_and_the_ratios_into_a_list() -> None:
    d = compute_snapshot(candles(CLOSES[:3], VOLUMES[:3]), P).as_dict()
    assert d["rsi14"] is None
    assert d["bb_lower"] is None
    assert d["rsi7"] == 50.0
    assert d["recent_vol_ratios"] == [0.0, 0.0, 1.0]
    assert d["symbol"] == "KRW-ADA"
    assert d["bb_touch_recovery"] is False
    assert np.isnan(compute_snapshot(candles(CLOSES[:3], VOLUMES[:3]), P).rsi14)


def test_a_two_candle_lookback_still_has_a_previous_rsi() -> None:
    """Lookback 2 keeps RSI(2) at i = 6 and 7: previous 1250/29, minimum 1250/29."""
    two = dataclasses.replace(P, rsi_7_recovery_lookback=2)
    snap = compute_snapshot(candles(CLOSES, VOLUMES), two)
    assert snap.rsi7_prev == pytest.approx(1250 / 29, rel=1e-12)
    assert snap.rsi7_min_lookback == pytest.approx(1250 / 29, rel=1e-12)


def test_a_two_candle_sustain_at_the_shortest_window() -> None:
    """Sustain 2 with the 6-candle window: the band exists at i = 5, 6, 7, as many as the
    lookback 3 needs (and sustain + 1); the close 9 at i = 5 touches it, 10 at i = 6 is above
    11 − √(35/12) ≈ 9.04 (closes 11 13 9 10: mean 10.75, squared deviations 8.75) and 12 at
    i = 7 is above 9.17."""
    held = dataclasses.replace(P, bb_recovery_sustain_candles=2)
    assert compute_snapshot(candles(CLOSES, VOLUMES), held, window=6).bb_touch_recovery is True


def test_stacks_of_one_and_two_candles() -> None:
    """Three symbols of 2 candles and two of 1, each group computed as one stack: no MA(3),
    no previous RSI(2) anywhere."""
    twos = [candles(CLOSES[:2], VOLUMES[:2], f"KRW-{s}") for s in "XYZ"]
    ones = [candles(CLOSES[:1], VOLUMES[:1], f"KRW-{s}") for s in "VW"]
    snaps = compute_snapshots([*twos, *ones], P)
    assert [s.n_candles for s in snaps] == [2, 2, 2, 1, 1]
    assert all(math.isnan(s.ma) for s in snaps)
    assert all(math.isnan(s.rsi7_prev) for s in snaps)


def test_the_default_window_is_200_candles() -> None:
    """201 candles: a first close of 50, then 200 closes of 100. The default window keeps the
    last 200, which never change, so RSI(14) has no value (0 / 0); the first candle would
    bring a gain of 50 and an RSI of 100."""
    flat = candles([50.0] + [100.0] * 200, [1.0] * 201)
    for snap in (compute_snapshot(flat), compute_snapshots([flat])[0]):
        assert snap.n_candles == 200
        assert math.isnan(snap.rsi14)
    assert compute_snapshot(flat, window=201).rsi14 == 100.0
