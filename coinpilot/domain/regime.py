"""Market regime from closed hourly candles (SPEC §3–4 with DECISIONS' fixes).

- ``resample_hourly(candles, now_ts)``: 1-minute candles → hourly candles [HH:00, HH+1:00),
  labelled by the hour's start; open = first, high = max, low = min, close = last, volume =
  sum. Only complete hours (now_ts ≥ hour start + 3600) are kept, and hours without any
  1-minute candle do not exist, so a still-forming hour never counts as a candle.
- ``detect_regime(ma_fast, ma_slow, bull_pct, bear_pct)``: diff % = (fast − slow) / slow × 100;
  BULL when strictly above ``bull_pct``, BEAR when strictly below ``bear_pct``, otherwise
  SIDEWAYS (exactly on a threshold is SIDEWAYS); UNKNOWN for a missing, NaN or zero MA.
- ``regime_from_candles(candles_1m, now_ts, cfg)``: both steps plus the minimum-data rule
  (UNKNOWN with fewer than ``cfg.min_hourly_candles`` closed hourly candles).
- ``regime_over_history(candles_1m, cfg, regime_minute)``: the regime in force at every
  1-minute candle of a history, as the hourly live job would have set it: the job runs at
  ``regime_minute`` past each hour on the hours closed by then, and a candle's decision
  happens when it closes (start + 60 s). For the backtester.

Times are epoch seconds UTC; MAs are in the candles' price unit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from coinpilot.config import RegimeDetection
from coinpilot.domain.candles import Candles

HOUR_S = 3600
REGIMES = ("BULL", "SIDEWAYS", "BEAR", "UNKNOWN")
REGIME_INDEX = {name: i for i, name in enumerate(REGIMES)}
UNKNOWN_CODE = REGIME_INDEX["UNKNOWN"]


@dataclass(frozen=True, slots=True)
class RegimeReading:
    regime: str
    ma_fast: float | None
    ma_slow: float | None
    diff_pct: float | None
    hourly_candles: int


def resample_hourly(candles: Candles, now_ts: int | float) -> Candles:
    """Complete hourly candles (start + 3600 ≤ now_ts) from 1-minute candles."""
    if len(candles) == 0:
        return Candles.empty(candles.symbol)
    hours = candles.ts - candles.ts % HOUR_S
    keep = hours + HOUR_S <= now_ts
    if not keep.all():
        # ts is ascending, so the complete hours are a prefix.
        stop = int(np.argmin(keep))
        candles, hours = candles.slice(0, stop), hours[:stop]
        if stop == 0:
            return Candles.empty(candles.symbol)
    starts = np.flatnonzero(np.r_[True, hours[1:] != hours[:-1]])
    ends = np.r_[starts[1:], len(hours)] - 1
    return Candles(
        candles.symbol,
        hours[starts].astype(np.int64),
        candles.open[starts].copy(),
        np.maximum.reduceat(candles.high, starts),
        np.minimum.reduceat(candles.low, starts),
        candles.close[ends].copy(),
        np.add.reduceat(candles.volume, starts),
    )


def _bad(value: float | None) -> bool:
    return value is None or not math.isfinite(value)


def diff_pct(ma_fast: float | None, ma_slow: float | None) -> float | None:
    """(fast − slow) / slow × 100, or None when either MA is missing or slow is zero."""
    if _bad(ma_fast) or _bad(ma_slow) or ma_slow == 0:
        return None
    return (ma_fast - ma_slow) / ma_slow * 100.0  # type: ignore[operator]


def detect_regime(
    ma_fast: float | None, ma_slow: float | None, bull_pct: float, bear_pct: float
) -> str:
    """BULL / SIDEWAYS / BEAR from the MA gap; UNKNOWN when an MA is missing or NaN."""
    diff = diff_pct(ma_fast, ma_slow)
    if diff is None:
        return "UNKNOWN"
    if diff > bull_pct:
        return "BULL"
    if diff < bear_pct:
        return "BEAR"
    return "SIDEWAYS"


def regime_from_closes(closes: npt.ArrayLike, cfg: RegimeDetection) -> RegimeReading:
    """The regime after the last of these closed hourly closes (oldest first)."""
    arr = np.asarray(closes, dtype=np.float64)
    n = len(arr)
    if n < cfg.min_hourly_candles:
        return RegimeReading("UNKNOWN", None, None, None, n)
    fast = float(arr[-cfg.ma_fast_period :].mean())
    slow = float(arr[-cfg.ma_slow_period :].mean())
    regime = detect_regime(fast, slow, cfg.bull_threshold_pct, cfg.bear_threshold_pct)
    return RegimeReading(regime, fast, slow, diff_pct(fast, slow), n)


def regime_from_candles(
    candles_1m: Candles, now_ts: int | float, cfg: RegimeDetection
) -> RegimeReading:
    """Resample the closed 1-minute candles to complete hours and classify the last one."""
    return regime_from_closes(resample_hourly(candles_1m, now_ts).close, cfg)


def _regime_by_count(closes: npt.NDArray[np.float64], cfg: RegimeDetection) -> np.ndarray:
    """Regime code after the first k hourly closes, for k = 0 … len(closes)."""
    n = len(closes)
    codes = np.full(n + 1, UNKNOWN_CODE, dtype=np.int8)
    first = cfg.min_hourly_candles
    if n < first:
        return codes
    win_f = np.lib.stride_tricks.sliding_window_view(closes, cfg.ma_fast_period)
    win_s = np.lib.stride_tricks.sliding_window_view(closes, cfg.ma_slow_period)
    k = np.arange(first, n + 1)
    fast = win_f[k - cfg.ma_fast_period].mean(axis=1)
    slow = win_s[k - cfg.ma_slow_period].mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        diff = (fast - slow) / slow * 100.0
    out = np.full(len(k), REGIME_INDEX["SIDEWAYS"], dtype=np.int8)
    out[diff > cfg.bull_threshold_pct] = REGIME_INDEX["BULL"]
    out[diff < cfg.bear_threshold_pct] = REGIME_INDEX["BEAR"]
    out[~np.isfinite(diff)] = UNKNOWN_CODE
    codes[first:] = out
    return codes


def regime_over_history(
    candles_1m: Candles,
    cfg: RegimeDetection,
    regime_minute: int = 1,
    decision_ts: npt.ArrayLike | None = None,
) -> npt.NDArray[np.int8]:
    """Regime code (index into REGIMES) in force at each candle's decision time.

    ``decision_ts`` defaults to each candle's close (ts + 60). The job that ran last at or
    before that time — at H + regime_minute for the latest hour start H — saw the hourly
    candles of the hours before H.
    """
    if len(candles_1m) == 0:
        return np.empty(0, dtype=np.int8)
    last = int(candles_1m.ts[-1])
    hourly = resample_hourly(candles_1m, last - last % HOUR_S + HOUR_S)
    by_count = _regime_by_count(hourly.close, cfg)
    when = candles_1m.ts + 60 if decision_ts is None else np.asarray(decision_ts, np.int64)
    shifted = when - regime_minute * 60
    job_hour = shifted - shifted % HOUR_S
    seen = np.searchsorted(hourly.ts, job_hour, side="left")
    return by_count[seen]
