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

F64 = npt.NDArray[np.float64]


def _as_f64(values: npt.ArrayLike) -> F64:
    return np.asarray(values, dtype=np.float64)


def ewm_recursive(x: npt.ArrayLike, alpha: float) -> F64:
    """y_0 = x_0, y_t = (1 − α) · y_{t−1} + α · x_t along the last axis (no warm-up mask).

    Each step is rounded as fl(fl(β · y) + fl(α · x)) with y_0 = fl(β · x_0 + α · x_0), the
    direct-form filter the thresholds were calibrated with, so results are bit-for-bit the
    same. A recursion cannot be vectorised along time: long series run as a scalar loop
    (plain float arithmetic is the same IEEE double), stacks of many short windows as one
    vector step per candle across all rows.
    """
    arr = _as_f64(x)
    if arr.shape[-1] == 0:
        return arr.copy()
    beta = 1.0 - alpha
    scaled = alpha * arr
    flat = scaled.reshape(-1, arr.shape[-1])
    rows, n = flat.shape
    if rows * _VECTOR_STEP_COST < n:
        out = np.empty_like(flat)
        for r in range(rows):
            y = float(arr.reshape(-1, n)[r, 0])
            # In blocks, so a long history never exists as a Python list of floats at once.
            for start in range(0, n, _BLOCK):
                block = _ewm_scalar(flat[r, start : start + _BLOCK].tolist(), y, beta)
                out[r, start : start + len(block)] = block
                y = block[-1]
        return out.reshape(arr.shape)
    out = np.empty_like(flat)
    ys = arr.reshape(-1, n)[:, 0].copy()
    for t in range(n):
        ys = beta * ys + flat[:, t]
        out[:, t] = ys
    return out.reshape(arr.shape)


# A per-candle vector step costs about as much as this many scalar steps.
_VECTOR_STEP_COST = 16
_BLOCK = 1 << 15


def _ewm_scalar(scaled: list[float], y: float, beta: float) -> list[float]:
    out: list[float] = []
    append = out.append
    for a in scaled:
        y = beta * y + a
        append(y)
    return out


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


def _rolling_sum(arr: F64, period: int) -> F64:
    """Sum of each run of ``period`` values, for the runs ending at period − 1 … n − 1.

    Added one shifted slice at a time: no cumulative sum (which drifts over long series) and
    no (n, period) temporary, and the same order of additions whatever the array length, so
    a window and a whole history give bit-identical sums.
    """
    n = arr.shape[-1]
    out = arr[..., : n - period + 1].copy()
    for k in range(1, period):
        out += arr[..., k : n - period + 1 + k]
    return out


def sma(values: npt.ArrayLike, period: int) -> F64:
    """Rolling mean over ``period`` values including the current one; NaN before period − 1."""
    _check_period(period, 1)
    arr = _as_f64(values)
    out = np.full_like(arr, np.nan)
    if arr.shape[-1] >= period:
        out[..., period - 1 :] = _rolling_sum(arr, period) / period
    return out


def rolling_std(values: npt.ArrayLike, period: int, ddof: int = 1) -> F64:
    """Rolling standard deviation (sample std by default); NaN before period − 1.

    Two-pass (deviations from each window's own mean), so a large price level does not
    cancel away a small spread.
    """
    _check_period(period, ddof + 1)
    arr = _as_f64(values)
    out = np.full_like(arr, np.nan)
    n = arr.shape[-1]
    if n >= period:
        mean = _rolling_sum(arr, period) / period
        sq = np.zeros_like(mean)
        dev = np.empty_like(mean)
        for k in range(period):
            np.subtract(arr[..., k : n - period + 1 + k], mean, out=dev)
            np.multiply(dev, dev, out=dev)
            sq += dev
        out[..., period - 1 :] = np.sqrt(sq / (period - ddof))
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
        prev_mean = _rolling_sum(arr[..., :-1], period) / period
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
    n = c.shape[-1]
    # With C(k) = flags counted over candles 0 … k − 1 (0 for k ≤ 0) stored at pad + k − 1,
    # the count over candles a … b is C(b + 1) − C(a), and every shift is a plain slice.
    pad = max(lookback, sustain)
    touch_cum = _padded_count(defined & (c <= lower), pad)
    above_cum = _padded_count(defined & (c > lower), pad)
    before_recent = touch_cum[..., pad - sustain : pad - sustain + n]
    any_touch = before_recent > touch_cum[..., pad - lookback : pad - lookback + n]
    above_recent = above_cum[..., pad : pad + n] - above_cum[..., pad - sustain : pad - sustain + n]
    all_above = above_recent == sustain
    enough = np.cumsum(defined, axis=-1, dtype=np.int32) >= max(lookback, sustain + 1)
    return np.asarray(enough & any_touch & all_above)


def _padded_count(flags: npt.NDArray[np.bool_], pad: int) -> npt.NDArray[np.int32]:
    """Running count with ``pad`` zeros in front: out[pad + i] = flags[0 … i] summed."""
    shape = (*flags.shape[:-1], flags.shape[-1] + pad)
    out = np.zeros(shape, dtype=np.int32)
    np.cumsum(flags, axis=-1, dtype=np.int32, out=out[..., pad:])
    return out
