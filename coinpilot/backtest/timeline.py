"""The simulated clock of a backtest: bot ticks, the hourly regime schedule and KST days.

The live daemon ticks every minute ``offset_s`` seconds after the minute turns; at a tick
the newest closed candle is the one that started a minute before. The regime job runs at
start-up and then at ``regime_minute`` past every hour, each time on the closed hours before
the hour it runs in; the bot reads whatever the job last wrote. Both are reproduced here
from the data alone, with the strategy core's ``regime_from_closes`` that the job itself uses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from coinpilot.config import AppConfig, RegimeDetection
from coinpilot.domain.candles import Candles
from coinpilot.domain.regime import REGIME_INDEX, REGIMES, UNKNOWN_CODE, regime_from_closes

HOUR = 3600
MINUTE = 60
REGIME_CODES = REGIMES  # the strategy core's codes, so signal passes take them directly
CODE = REGIME_INDEX
MARGIN = 1e-6  # percentage points; prefix-sum rounding is many orders smaller
I64 = npt.NDArray[np.int64]
I8 = npt.NDArray[np.int8]


@dataclass(frozen=True)
class Timeline:
    """Every bot tick of the run and, per symbol, the newest closed candle at each tick."""

    minutes: I64  # start of the newest closed minute at each tick (epoch s), ascending
    tick_offset: int  # tick time = minute + 60 + tick_offset
    index: Mapping[str, I64]  # per symbol: candle index at/before each minute, −1 if none

    def tick(self, k: int) -> int:
        return int(self.minutes[k]) + MINUTE + self.tick_offset

    def __len__(self) -> int:
        return len(self.minutes)


def build_timeline(
    candles: Mapping[str, Candles], tick_offset: int, start: int | None = None
) -> Timeline:
    """One tick per minute from the first (or ``start``) to the last candle of any symbol.

    ``start`` is the clock time of the first bot cycle (epoch s, on a minute): earlier
    candles are history the first cycle already sees, as in a daemon started at ``start``.
    """
    first = min(int(c.ts[0]) for c in candles.values() if len(c))
    if start is not None:
        first = max(first, start - start % MINUTE - MINUTE)
    last = max(int(c.ts[-1]) for c in candles.values() if len(c))
    minutes = np.arange(first, last + MINUTE, MINUTE, dtype=np.int64)
    index = {
        s: (np.searchsorted(c.ts, minutes, side="right") - 1).astype(np.int64)
        for s, c in candles.items()
    }
    return Timeline(minutes, tick_offset, index)


def hourly_closes(c: Candles) -> tuple[I64, npt.NDArray[np.float64]]:
    """(hour start, close of the hour's last stored minute) for every hour with a candle."""
    hours = c.ts - c.ts % HOUR
    last = np.flatnonzero(np.append(hours[1:] != hours[:-1], True))
    return hours[last], c.close[last]


def regime_boundaries(tl: Timeline, regime_minute: int) -> I64:
    """Per tick: the hour boundary of the regime job run the bot sees (closed hours < it)."""
    ticks = tl.minutes + MINUTE + tl.tick_offset
    start_floor = ticks[0] - ticks[0] % HOUR
    shifted = ticks - regime_minute * MINUTE
    return np.maximum(start_floor, shifted - shifted % HOUR)


def regime_per_tick(c: Candles, boundaries: I64, cfg: RegimeDetection) -> I8:
    """Regime code at each tick, from the hourly closes strictly before each boundary.

    Moving averages come from prefix sums; wherever the gap lands within ``MARGIN`` of a
    threshold, ``regime_from_closes`` (the job's classifier) decides, so the codes are the
    job's exactly.
    """
    hours, closes = hourly_closes(c)
    unique, inverse = np.unique(boundaries, return_inverse=True)
    window = 2 * cfg.min_hourly_candles * HOUR  # the job's look-back (closed_hours_window)
    lo = np.searchsorted(hours, unique - window, side="left")
    hi = np.searchsorted(hours, unique, side="left")
    codes = np.full(len(unique), UNKNOWN_CODE, dtype=np.int8)
    ok = np.flatnonzero(hi - lo >= cfg.min_hourly_candles)
    if len(ok) == 0:
        return codes[inverse]
    sums = np.concatenate(([0.0], np.cumsum(closes)))
    end = hi[ok]
    fast = (sums[end] - sums[end - cfg.ma_fast_period]) / cfg.ma_fast_period
    slow = (sums[end] - sums[end - cfg.ma_slow_period]) / cfg.ma_slow_period
    diff = (fast - slow) / slow * 100.0
    got = np.full(len(ok), CODE["SIDEWAYS"], dtype=np.int8)
    got[diff > cfg.bull_threshold_pct] = CODE["BULL"]
    got[diff < cfg.bear_threshold_pct] = CODE["BEAR"]
    near = (np.abs(diff - cfg.bull_threshold_pct) < MARGIN) | (
        np.abs(diff - cfg.bear_threshold_pct) < MARGIN
    )
    for j in np.flatnonzero(near | (slow == 0)):
        a, b = int(lo[ok[j]]), int(hi[ok[j]])
        got[j] = CODE[regime_from_closes(closes[a:b], cfg).regime]
    codes[ok] = got
    return codes[inverse]


def regimes(
    candles: Mapping[str, Candles], tl: Timeline, app: AppConfig, fixed: str | None = None
) -> dict[str, I8]:
    """Regime code per tick and symbol, or ``fixed`` everywhere when given."""
    if fixed is not None:
        return {s: np.full(len(tl), CODE[fixed], dtype=np.int8) for s in candles}
    bounds = regime_boundaries(tl, app.schedules.regime_minute)
    return {s: regime_per_tick(c, bounds, app.regime_detection) for s, c in candles.items()}
