"""The regime over a hand-built minute history, and the resampling edges it rests on.

MA50/MA200 are shrunk to MA2/MA4 (at least four closed hours) so every reading is worked
out by hand. Seven hours, each with a candle at :00 (close 50, never an hour's close) and
one at :59 whose close is the hour's close:

    hour            0    1    2    3    4    5    6
    hourly close   98   98  102  102   90  130   60

Regime after the first k closed hours (MA2 = mean of the last 2, MA4 of the last 4;
BULL above +2 %, BEAR below −2 %, exactly on a threshold is SIDEWAYS):

    k = 0…3  fewer than four hours                                   UNKNOWN
    k = 4    98 98 102 102: MA2 102, MA4 100, +2.00 %                  SIDEWAYS
    k = 5    98 102 102 90: MA2 96, MA4 98, −2/98 = −2.04 %            BEAR
    k = 6    102 102 90 130: MA2 110, MA4 106, +4/106 = +3.77 %        BULL
    k = 7    102 90 130 60: MA2 95, MA4 95.5, −0.5/95.5 = −0.52 %      SIDEWAYS

The live job runs at ``regime_minute`` past each hour on the hours closed by then; a candle's
decision happens at its close (start + 60 s) under the last job run at or before it.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from coinpilot.config import RegimeDetection
from coinpilot.domain.candles import Candles
from coinpilot.domain.regime import (
    REGIMES,
    _regime_by_count,
    regime_from_candles,
    regime_from_closes,
    regime_over_history,
    resample_hourly,
)

H = 3600
M = 60
T0 = 1_700_000_000 - 1_700_000_000 % H  # an hour start
CFG = RegimeDetection(ma_fast_period=2, ma_slow_period=4, min_hourly_candles=4)
HOURLY_CLOSES = [98.0, 98.0, 102.0, 102.0, 90.0, 130.0, 60.0]
U, S, BULL, BEAR = "UNKNOWN", "SIDEWAYS", "BULL", "BEAR"


def history(last_start_in_hour6: int = 59 * M) -> Candles:
    """Two candles an hour: (h:00, close 50) and (h:59, the hour's close)."""
    rows = []
    for h, close in enumerate(HOURLY_CLOSES):
        last = last_start_in_hour6 if h == 6 else 59 * M
        rows.append((T0 + h * H, 50.0, 51.0, 49.0, 50.0, 1.0))
        rows.append((T0 + h * H + last, close, close, close, close, 1.0))
    return Candles.from_rows("KRW-XRP", rows)


def names(codes: np.ndarray) -> list[str]:
    # Codes index REGIMES directly, as the backtester uses them.
    return [REGIMES[c] for c in codes]


def test_resample_keeps_symbol_integer_starts_and_each_hours_last_close() -> None:
    hourly = resample_hourly(history(), T0 + 7 * H)
    assert hourly.symbol == "KRW-XRP"
    assert hourly.ts.dtype == np.int64
    assert hourly.ts.tolist() == [T0 + h * H for h in range(7)]
    assert hourly.open.tolist() == [50.0] * 7
    assert hourly.close.tolist() == HOURLY_CLOSES


def test_resample_of_nothing_complete_keeps_the_symbol() -> None:
    empty = resample_hourly(Candles.empty("KRW-ETH"), T0 + H)
    assert (empty.symbol, len(empty)) == ("KRW-ETH", 0)
    forming = resample_hourly(history(), T0 + H - 1)  # hour 0 ends one second later
    assert (forming.symbol, len(forming)) == ("KRW-XRP", 0)


@pytest.mark.parametrize(
    ("now", "regime", "fast", "slow", "hours"),
    [
        (T0 + 5 * H + H - 1, BEAR, 96.0, 98.0, 5),  # hour 5 still forming: k = 5
        (T0 + 6 * H + 30 * M, BULL, 110.0, 106.0, 6),  # hour 6 forming: k = 6
        (T0 + 7 * H, S, 95.0, 95.5, 7),  # hour 6 complete at 7:00 sharp
    ],
)
def test_regime_from_candles_counts_only_complete_hours(
    now: int, regime: str, fast: float, slow: float, hours: int
) -> None:
    reading = regime_from_candles(history(), now, CFG)
    assert (reading.regime, reading.ma_fast, reading.ma_slow) == (regime, fast, slow)
    assert reading.hourly_candles == hours


def test_regime_from_candles_with_too_few_hours_is_unknown() -> None:
    reading = regime_from_candles(history(), T0 + 3 * H, CFG)  # hours 0–2 complete
    assert (reading.regime, reading.hourly_candles, reading.ma_fast) == (U, 3, None)


def per_hour(pairs: list[tuple[str, str]]) -> list[str]:
    return [name for pair in pairs for name in pair]


def test_default_job_minute_one_sees_the_hours_before_the_candles_hour() -> None:
    """Job at h:01: the h:00 candle decides at h:01 (the job has just run), the h:59 candle
    at (h+1):00 (the (h+1):01 job has not run yet): both see k = h."""
    expected = per_hour(
        [(U, U), (U, U), (U, U), (U, U), (S, S), (BEAR, BEAR), (BULL, BULL)]
    )  # hours 0…6
    codes = regime_over_history(history(), CFG)
    assert codes.dtype == np.int8
    assert names(codes) == expected


def test_job_at_minute_zero_counts_the_hour_a_candle_closes() -> None:
    """Job at h:00: the h:59 candle decides at (h+1):00, when the job has just counted
    hour h, so it sees k = h + 1; the h:00 candle sees k = h."""
    expected = per_hour(
        [(U, U), (U, U), (U, U), (U, S), (S, BEAR), (BEAR, BULL), (BULL, S)]
    )  # (k=0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6), (6, 7)
    assert names(regime_over_history(history(), CFG, regime_minute=0)) == expected


def test_job_at_minute_thirty_lags_the_top_of_the_hour() -> None:
    """Job at h:30: the h:00 candle (decides h:01) still has the (h−1):30 job's k = h − 1;
    the h:59 candle (decides (h+1):00) has the h:30 job's k = h."""
    expected = per_hour(
        [(U, U), (U, U), (U, U), (U, U), (U, S), (S, BEAR), (BEAR, BULL)]
    )  # (k=0, 0), (0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6)
    assert names(regime_over_history(history(), CFG, regime_minute=30)) == expected


def test_decision_is_at_the_candles_start_plus_sixty_seconds() -> None:
    """A last candle starting at 6:59:59 decides at 7:00:59, before the 7:01 job: k = 6."""
    codes = regime_over_history(history(last_start_in_hour6=H - 1), CFG)
    assert names(codes)[-1] == BULL


DECISIONS = [
    (T0 + 4 * H + M, S),  # 4:01, the job has just run on hours 0–3: k = 4
    (T0 + 5 * H + M - 1, S),  # 5:00:59, the 5:01 job has not run: still k = 4
    (T0 + 5 * H + M, BEAR),  # 5:01: k = 5
    (T0 + 6 * H + 30 * M, BULL),  # 6:30: k = 6
    (T0 + 7 * H + M, S),  # 7:01: hour 6 counted, k = 7
]


def test_explicit_decision_times() -> None:
    times = [t for t, _ in DECISIONS]
    assert names(regime_over_history(history(), CFG, 1, times)) == [r for _, r in DECISIONS]


def test_decision_times_as_datetime64_seconds() -> None:
    times = np.array([t for t, _ in DECISIONS], dtype="datetime64[s]")
    assert names(regime_over_history(history(), CFG, 1, times)) == [r for _, r in DECISIONS]


def test_one_candle_and_no_candles() -> None:
    one = regime_over_history(Candles.from_rows("KRW-XRP", [(T0, 1.0, 1.0, 1.0, 1.0, 1.0)]), CFG)
    assert names(one) == [U]
    none = regime_over_history(Candles.empty("KRW-XRP"), CFG)
    assert none.shape == (0,)
    assert none.dtype == np.int8


def test_each_count_uses_its_own_slow_window() -> None:
    """100 100 100 100 200 200: k=4 MA2 100 / MA4 100, 0 % SIDEWAYS; k=5 MA2 150 / MA4 125,
    +20 % BULL; k=6 MA2 200 / MA4 150, +33 % BULL."""
    codes = _regime_by_count(np.array([100.0, 100.0, 100.0, 100.0, 200.0, 200.0]), CFG)
    assert codes.dtype == np.int8
    assert names(codes) == [U, U, U, U, S, BULL, BULL]


def test_a_zero_slow_ma_is_unknown_without_a_warning() -> None:
    """Closes −1 −1 1 1: MA2 = 1, MA4 = 0, so the gap would be 1/0."""
    closes = [-1.0, -1.0, 1.0, 1.0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        codes = _regime_by_count(np.array(closes), CFG)
        reading = regime_from_closes(closes, CFG)
    assert names(codes) == [U] * 5
    assert (reading.regime, reading.ma_fast, reading.ma_slow) == (U, 1.0, 0.0)


def test_readings_carry_both_mas_and_the_count() -> None:
    reading = regime_from_closes([98, 98, 103, 103], CFG)  # MA2 103, MA4 100.5
    assert (reading.ma_fast, reading.ma_slow, reading.hourly_candles) == (103.0, 100.5, 4)
    short = regime_from_closes([98, 98, 103], CFG)
    assert (short.regime, short.hourly_candles) == (U, 3)


def test_a_missing_close_reads_as_nan_and_gives_unknown() -> None:
    reading = regime_from_closes([98, 98, None, 103], CFG)
    assert reading.regime == U
    assert reading.hourly_candles == 4
