"""Whole-history entry signals for the backtester: every minute at once, as the live loop sees it.

``entry_signals(candles, regimes, config_regimes, window=200, min_candles=40)`` returns, for
every candle t of a history, the outcome ``evaluate_entry`` gives on
``compute_snapshot(candles[: t + 1], …, window)`` — pass, or the first failing check — as
an index into ``strategy.ENTRY_CODES``. ``regimes`` is one regime name for the whole history
or a per-candle array of codes from ``regime.regime_over_history``.

Exactness of the window (DECISIONS "Indicator window"): live, the RSI recursion restarts
at the window's first candle s = t − window + 1 with a zero first change. The recursion is
linear, so with Y the average over the whole history (also seeded at zero),

    y_window(u) = Y(u) − (1 − α)^(u − s) · Y(s)        for s ≤ u ≤ t,

a shifted slice times a constant once the window is full. Where the window holds no gain
(or no loss) at all, the average is set to exactly zero, so a flat window reads NaN like
the live path instead of a rounding residue. Every other indicator only looks back less than the
window, so its whole-history value is already the windowed value once the candle's
position inside its window is past the warm-up.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from coinpilot.config import EntryParams, RegimeParams
from coinpilot.domain import indicators as ind
from coinpilot.domain.candles import F64, Candles
from coinpilot.domain.regime import REGIME_INDEX, REGIMES
from coinpilot.domain.snapshot import IndicatorParams
from coinpilot.domain.strategy import CODE_INDEX, DEFAULT_MIN_CANDLES, ENTRY_CODES

I8 = npt.NDArray[np.int8]


@dataclass(frozen=True)
class WindowedIndicators:
    """Per-candle snapshot values over a history (NaN where the live window has none)."""

    close: F64
    rsi14: F64
    rsi7: F64
    rsi7_prev: F64
    rsi7_min_lookback: F64
    ma: F64
    bb_lower: F64
    vol_ratio: F64
    recent_vol_ratios: F64  # (candles, recent count), current candle in the last column
    bb_touch_recovery: npt.NDArray[np.bool_]
    n_candles: npt.NDArray[np.int64]  # candles in the live window ending here


class WindowedRsi:
    """RSI of the window ending at t, read at t − lag, for every t (see module docstring).

    For t ≥ window − 1 the window starts at s = t − window + 1 and u − s is the constant
    window − 1 − lag, so the correction is one scalar times a shifted slice; before that the
    window starts at the history's first candle, whose average is zero, and nothing is
    subtracted.
    """

    def __init__(self, close: F64, period: int, window: int) -> None:
        gains, losses = ind.price_changes(close)
        alpha = 1.0 / period
        self.period, self.window, self.beta = period, window, 1.0 - alpha
        self.avg = (ind.ewm_recursive(gains, alpha), ind.ewm_recursive(losses, alpha))
        self.moves = (_running_count(gains > 0), _running_count(losses > 0))

    def _average(self, which: int, lag: int) -> F64:
        full, moves = self.avg[which], self.moves[which]
        n, w = len(full), self.window
        out = np.empty(n)
        head = min(n, w - 1)
        # Window starting at the first candle: u = t - lag (clamped; masked later if < 0).
        u = np.maximum(np.arange(head) - lag, 0)
        out[:head] = np.where(moves[u] == moves[0], 0.0, full[u])
        if n > head:
            now = slice(w - 1 - lag, n - lag)
            first = slice(0, n - w + 1)
            # full[now] − β^k · full[first], written in place (a year is MBs per temporary).
            body = out[head:]
            np.multiply(full[first], self.beta ** (w - 1 - lag), out=body)
            np.subtract(full[now], body, out=body)
            body[moves[now] == moves[first]] = 0.0
        return np.maximum(out, 0.0, out=out)

    def at_lag(self, lag: int) -> F64:
        out = self._average(0, lag)
        loss = self._average(1, lag)
        # ind.rsi_from_averages, 100 − 100 / (1 + gain / loss), in place: the same bits.
        with np.errstate(divide="ignore", invalid="ignore"):
            np.divide(out, loss, out=out)
            del loss
            np.add(out, 1.0, out=out)
            np.divide(100.0, out, out=out)
            np.subtract(100.0, out, out=out)
        # Valid once the read candle is at least period - 1 into its window.
        pos = np.minimum(np.arange(len(out)), self.window - 1)
        out[pos - lag < self.period - 1] = np.nan
        return out


def _running_count(flags: npt.NDArray[np.bool_]) -> npt.NDArray[np.int32]:
    return np.cumsum(flags, dtype=np.int32)


def _position(n: int, window: int) -> npt.NDArray[np.int64]:
    """Index of each candle inside its own live window."""
    return np.minimum(np.arange(n), window - 1)


def _masked(values: F64, valid: npt.NDArray[np.bool_]) -> F64:
    return np.where(valid, values, np.nan)


def _volume(volume: F64, p: IndicatorParams, pos: npt.NDArray[np.int64]) -> tuple[F64, F64]:
    n, period = len(volume), p.volume_period
    ratios = ind.volume_ratios(volume, period)
    current = np.where(np.isfinite(ratios), ratios, 0.0)
    current[pos < period] = np.nan
    count = p.recent_count
    cleaned = np.where(np.isnan(ratios), 0.0, ratios)
    recent = np.zeros((n, count))
    for j in range(min(count, n)):
        col = recent[:, count - 1 - j]
        col[j:] = cleaned[: n - j]
        # A ratio from before the window's warm-up reads 0.0 in the live snapshot.
        col[pos - j < period] = 0.0
    return current, recent


Memo = dict[tuple[object, ...], object]


def _memo(memo: Memo, key: tuple[object, ...], make: Callable[[], Any]) -> Any:
    """Regimes often share periods; compute each indicator series once per history."""
    if key not in memo:
        memo[key] = make()
    return memo[key]


def windowed_indicators(
    candles: Candles, p: IndicatorParams, window: int, memo: Memo | None = None
) -> WindowedIndicators:
    """Snapshot values at every candle of ``candles``, each from its own live window.

    ``memo`` (one per history and window) lets several parameter sets share series.
    """
    memo = {} if memo is None else memo
    close, n = candles.close, len(candles)
    pos = _position(n, window)
    # The recursions behind the RSI series live only until their lags are read: the memo
    # keeps the series, so a long history does not also hold four averages per period.
    rsi_of: dict[int, WindowedRsi] = {}

    def read(period: int, j: int) -> F64:
        if period not in rsi_of:
            rsi_of[period] = WindowedRsi(close, period, window)
        return rsi_of[period].at_lag(j)

    def lag(period: int, j: int) -> F64:
        return _memo(memo, ("rsi_lag", period, j), lambda: read(period, j))  # type: ignore[no-any-return]

    short, lookback = p.rsi_short_period, p.rsi_7_recovery_lookback
    lags = [lag(short, j) for j in range(min(2, lookback))]

    def lowest() -> F64:
        out = lags[0].copy()
        for j in range(1, lookback):
            np.fmin(out, lags[1] if j == 1 else read(short, j), out=out)
        return out

    rsi7_min: F64 = _memo(memo, ("rsi_min", short, lookback), lowest)
    rsi14 = lag(p.rsi_period, 0)
    rsi_of.clear()
    bands = (p.bb_period, p.bb_std)
    lower = _memo(memo, ("bb", *bands), lambda: ind.bollinger(close, *bands)[0])
    touch = _memo(
        memo,
        ("touch", *bands, p.bb_touch_lookback, p.bb_recovery_sustain_candles),
        lambda: ind.touch_recovery(
            close, lower, p.bb_touch_lookback, p.bb_recovery_sustain_candles
        ),
    )
    need = max(p.bb_touch_lookback, p.bb_recovery_sustain_candles + 1)
    vol_ratio, recent = _memo(
        memo,
        ("volume", p.volume_period, p.recent_count),
        lambda: _volume(candles.volume, p, pos),
    )
    ma = _memo(
        memo,
        ("sma_masked", p.ma_period),
        lambda: _masked(ind.sma(close, p.ma_period), pos >= p.ma_period - 1),
    )
    lower_masked = _memo(
        memo, ("bb_masked", *bands), lambda: _masked(lower, pos >= p.bb_period - 1)
    )
    return WindowedIndicators(
        close=close,
        rsi14=rsi14,
        rsi7=lags[0],
        rsi7_prev=lags[1],
        rsi7_min_lookback=rsi7_min,
        ma=ma,
        bb_lower=lower_masked,
        vol_ratio=vol_ratio,
        recent_vol_ratios=recent,
        bb_touch_recovery=touch & (pos + 1 - (p.bb_period - 1) >= need),
        n_candles=_memo(memo, ("n_candles",), lambda: pos + 1),
    )


def _rule_failures(
    w: WindowedIndicators, regime: str, e: EntryParams
) -> list[tuple[str, npt.NDArray[np.bool_]]]:
    """(code, failed) per check, in evaluate_entry's order; NaN fails like a missing value."""
    with np.errstate(invalid="ignore"):
        out = [
            ("rsi14_missing", np.isnan(w.rsi14)),
            ("rsi14_above_max", w.rsi14 > e.rsi_14_max),
            (
                "rsi7_missing",
                np.isnan(w.rsi7) | np.isnan(w.rsi7_prev) | np.isnan(w.rsi7_min_lookback),
            ),
            ("rsi7_not_oversold", ~(w.rsi7_min_lookback < e.rsi_7_trigger)),
            ("rsi7_no_rebound", ~(w.rsi7 >= e.rsi_7_recover)),
        ]
        if e.min_rsi_7_bounce_pct is not None:
            bounce = w.rsi7 - w.rsi7_min_lookback
            out.append(("rsi7_bounce_too_small", ~(bounce >= e.min_rsi_7_bounce_pct)))
        out.append(("ma_missing", np.isnan(w.ma) | np.isnan(w.close)))
        if e.ma_condition == "crossover":
            out.append(("price_below_ma", ~(w.close > w.ma)))
        elif e.ma_condition in ("proximity", "proximity_or_above"):
            out.append(("price_below_ma_proximity", ~(w.close >= w.ma * e.ma_proximity_pct)))
        if e.require_price_above_bb_lower:
            out.append(("bb_missing", np.isnan(w.bb_lower)))
            out.append(("price_below_bb_lower", ~(w.close >= w.bb_lower)))
        for code, bound in (
            ("volume_below_ratio", e.volume_ratio),
            ("volume_below_min", e.volume_min_ratio),
        ):
            if bound is not None:
                out.append(("volume_missing", np.isnan(w.vol_ratio)))
                out.append((code, ~(w.vol_ratio >= bound)))
        if e.volume_surge_check:
            recent = w.recent_vol_ratios[:, -e.volume_surge_window :]
            surge = np.asarray((recent >= e.volume_surge_ratio).any(axis=1))
            out.append(("volume_surge", surge))
        if regime == "SIDEWAYS" and e.bb_enabled:
            out.append(("bb_touch_recovery_pending", ~w.bb_touch_recovery))
    return out


def entry_codes(
    w: WindowedIndicators, regime: str, e: EntryParams, min_candles: int = DEFAULT_MIN_CANDLES
) -> I8:
    """Index into ENTRY_CODES per candle, for one configured regime in force throughout."""
    code = np.zeros(len(w.close), dtype=np.int8)
    failures = [("insufficient_data", w.n_candles < min_candles), *_rule_failures(w, regime, e)]
    # The first failing check wins: write the later ones first and let earlier ones overwrite.
    for name, failed in reversed(failures):
        code[failed] = CODE_INDEX[name]
    return code


@dataclass(frozen=True)
class EntrySignals:
    codes: I8  # index into ENTRY_CODES per candle

    @property
    def passed(self) -> npt.NDArray[np.bool_]:
        return self.codes == CODE_INDEX["passed"]

    def reason(self, i: int) -> str:
        return ENTRY_CODES[int(self.codes[i])]


def _regime_codes(regimes: str | npt.ArrayLike, n: int) -> I8:
    if isinstance(regimes, str):
        if regimes not in REGIME_INDEX:
            raise ValueError(f"unknown regime {regimes!r}; expected one of {', '.join(REGIMES)}")
        return np.full(n, REGIME_INDEX[regimes], dtype=np.int8)
    codes = np.asarray(regimes, dtype=np.int8)
    if codes.shape != (n,):
        raise ValueError(f"need one regime code per candle ({n}), got shape {codes.shape}")
    return codes


def entry_signals(
    candles: Candles,
    regimes: str | npt.ArrayLike,
    config_regimes: Mapping[str, RegimeParams],
    *,
    window: int = 200,
    min_candles: int = DEFAULT_MIN_CANDLES,
) -> EntrySignals:
    """Entry outcome at every candle, equal to evaluate_entry on each candle's live window."""
    n = len(candles)
    reg = _regime_codes(regimes, n)
    pos = _position(n, window)
    out = np.full(n, CODE_INDEX["regime_unknown"], dtype=np.int8)
    cache: dict[IndicatorParams, WindowedIndicators] = {}
    memo: Memo = {}
    for name in REGIMES:
        rows = reg == REGIME_INDEX[name]
        if name == "UNKNOWN" or not rows.any():
            continue
        cfg = config_regimes.get(name)
        if cfg is None:
            out[rows] = CODE_INDEX["regime_not_configured"]
            continue
        p = IndicatorParams.from_entry(cfg.entry)
        if p not in cache:
            cache[p] = windowed_indicators(candles, p, window, memo)
        out[rows] = entry_codes(cache[p], name, cfg.entry, min_candles)[rows]
    out[pos + 1 < min_candles] = CODE_INDEX["insufficient_data"]
    return EntrySignals(out)
