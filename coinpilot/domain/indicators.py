"""Indicator maths on whole series (SPEC §3), vectorised over the last axis.

Every function takes float64 arrays (1-D series, or 2-D ``(symbols, candles)`` stacks) and
returns arrays of the same shape, oldest value first, NaN during the warm-up. Units follow
the input: prices in, prices out; RSI in points 0–100; volume ratios are plain multiples.

The maths is the one the thresholds were calibrated against, kept bit-for-bit in spirit:

- ``rsi``: close-to-close change; the first change (undefined) counts as a zero gain and a
  zero loss; gains and losses are averaged recursively with α = 1/n, the recursion seeded at
  that zero (not an SMA seed). RSI = 100 − 100 / (1 + avg_gain / avg_loss). First value at
  index n − 1. Only gains → 100, only losses → 0, no change at all → NaN.
- ``sma``: plain rolling mean, current value included; first value at index p − 1.
- ``bollinger``: mid = SMA, bands = mid ± k · rolling *sample* std (ddof = 1).
- ``volume_ratios``: volume_t / mean(volume_{t−p} … volume_{t−1}); the current candle is not
  in its own average. First value at index p. A zero average gives +inf (or NaN for 0 / 0);
  callers decide what that means (see ``strategy``).
- ``touch_recovery``: the lower band was touched within a lookback and the last candles
  closed back above it (SPEC §3, C1).

Nothing here knows about windows of 200 candles: ``strategy`` applies the live window, and
``signals`` reproduces it over a whole history.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view
from scipy.signal import lfilter

F64 = npt.NDArray[np.float64]


def _as_f64(values: npt.ArrayLike) -> F64:
    return np.asarray(values, dtype=np.float64)


def ewm_recursive(x: npt.ArrayLike, alpha: float) -> F64:
    """y_0 = x_0, y_t = (1 − α) · y_{t−1} + α · x_t along the last axis (no warm-up mask)."""
    arr = _as_f64(x)
    if arr.shape[-1] == 0:
        return arr.copy()
    beta = 1.0 - alpha
    # lfilter runs y_t = α x_t + β y_{t-1}; a start state of β x_0 makes y_0 = x_0.
    zi = beta * arr[..., :1]
    out, _ = lfilter([alpha], [1.0, -beta], arr, axis=-1, zi=zi)
    return np.asarray(out, dtype=np.float64)


def price_changes(close: npt.ArrayLike) -> tuple[F64, F64]:
    """(gains, losses) per candle; the first candle's change is taken as zero."""
    arr = _as_f64(close)
    delta = np.zeros_like(arr)
    delta[..., 1:] = np.diff(arr, axis=-1)
    return np.maximum(delta, 0.0), np.maximum(-delta, 0.0)


def rsi_averages(close: npt.ArrayLike, period: int) -> tuple[F64, F64]:
    """Recursive average gain and loss (α = 1/period) over the whole input, no warm-up mask."""
    gains, losses = price_changes(close)
    alpha = 1.0 / period
    return ewm_recursive(gains, alpha), ewm_recursive(losses, alpha)


def rsi_from_averages(avg_gain: npt.ArrayLike, avg_loss: npt.ArrayLike) -> F64:
    """100 − 100 / (1 + gain / loss): 100 when only gains, NaN when both averages are zero."""
    gain = _as_f64(avg_gain)
    loss = _as_f64(avg_loss)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 100.0 - 100.0 / (1.0 + gain / loss)


def rsi(close: npt.ArrayLike, period: int) -> F64:
    """RSI(period) of closes; NaN before index period − 1 and wherever the price never moved."""
    _check_period(period, 1)
    avg_gain, avg_loss = rsi_averages(close, period)
    out = rsi_from_averages(avg_gain, avg_loss)
    out[..., : period - 1] = np.nan
    return out


def _check_period(period: int, minimum: int) -> None:
    if int(period) != period or period < minimum:
        raise ValueError(f"period must be an integer ≥ {minimum}, got {period!r}")


def _windows(values: F64, period: int) -> F64:
    return sliding_window_view(values, period, axis=-1)


def sma(values: npt.ArrayLike, period: int) -> F64:
    """Rolling mean over ``period`` values including the current one; NaN before period − 1."""
    _check_period(period, 1)
    arr = _as_f64(values)
    out = np.full_like(arr, np.nan)
    if arr.shape[-1] >= period:
        out[..., period - 1 :] = _windows(arr, period).mean(axis=-1)
    return out


def rolling_std(values: npt.ArrayLike, period: int, ddof: int = 1) -> F64:
    """Rolling standard deviation (sample std by default); NaN before period − 1."""
    _check_period(period, ddof + 1)
    arr = _as_f64(values)
    out = np.full_like(arr, np.nan)
    if arr.shape[-1] >= period:
        out[..., period - 1 :] = _windows(arr, period).std(axis=-1, ddof=ddof)
    return out


def bollinger(close: npt.ArrayLike, period: int = 20, num_std: float = 2.0) -> tuple[F64, F64, F64]:
    """(lower, mid, upper) Bollinger bands: SMA ± num_std × sample std; NaN before period − 1."""
    mid = sma(close, period)
    width = num_std * rolling_std(close, period, ddof=1)
    return mid - width, mid, mid + width


def volume_ratios(volume: npt.ArrayLike, period: int) -> F64:
    """volume_t ÷ mean of the previous ``period`` volumes; NaN for the first ``period`` values.

    A zero previous average gives +inf (or NaN when the current volume is zero too).
    """
    _check_period(period, 1)
    arr = _as_f64(volume)
    out = np.full_like(arr, np.nan)
    if arr.shape[-1] > period:
        prev_mean = _windows(arr[..., :-1], period).mean(axis=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[..., period:] = arr[..., period:] / prev_mean
    return out


def touch_recovery(
    close: npt.ArrayLike, bb_lower: npt.ArrayLike, lookback: int, sustain: int
) -> npt.NDArray[np.bool_]:
    """Per candle: the lower band was touched and price then held above it (SPEC §3, C1).

    At t, with the candles where the band is defined (non-NaN lower band) and at least
    max(lookback, sustain + 1) of them up to t: true when some close ≤ lower band among
    candles t − lookback + 1 … t − sustain, and every close of t − sustain + 1 … t is
    strictly above its lower band. Candles before the band exists count as absent.
    """
    _check_period(lookback, 1)
    _check_period(sustain, 1)
    c = _as_f64(close)
    lower = _as_f64(bb_lower)
    defined = ~np.isnan(lower)
    touched = defined & (c <= lower)
    above = defined & (c > lower)
    n = c.shape[-1]
    zero = np.zeros((*c.shape[:-1], 1), dtype=np.int64)
    touch_cum = np.concatenate([zero, np.cumsum(touched, axis=-1)], axis=-1)
    above_cum = np.concatenate([zero, np.cumsum(above, axis=-1)], axis=-1)
    defined_cum = np.cumsum(defined, axis=-1)
    idx = np.arange(n)
    # Counts over [t - a + 1, t - b] are cum[t - b + 1] - cum[t - a + 1], clipped at 0.
    hi = np.clip(idx - sustain + 1, 0, n)
    lo = np.clip(idx - lookback + 1, 0, n)
    any_touch = (touch_cum[..., hi] - touch_cum[..., lo]) > 0
    recent_lo = np.clip(idx - sustain + 1, 0, n)
    all_above = (above_cum[..., idx + 1] - above_cum[..., recent_lo]) == sustain
    enough = defined_cum >= max(lookback, sustain + 1)
    return np.asarray(enough & any_touch & all_above)
