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

which is one gather and one multiply per candle. Where the window holds no gain (or no
loss) at all, the average is set to exactly zero, so a flat window reads NaN like the live
path instead of a rounding residue. Every other indicator only looks back less than the
window, so its whole-history value is already the windowed value once the candle's
position inside its window is past the warm-up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

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
    """RSI of the window ending at t, read at t − lag, for every t (see module docstring)."""

    def __init__(self, close: F64, period: int, window: int) -> None:
        gains, losses = ind.price_changes(close)
        alpha = 1.0 / period
        self.period = period
        self.avg = (ind.ewm_recursive(gains, alpha), ind.ewm_recursive(losses, alpha))
        self.moves = (np.cumsum(gains > 0), np.cumsum(losses > 0))
        self.decay = (1.0 - alpha) ** np.arange(window, dtype=np.float64)
        t = np.arange(len(close))
        self.t = t
        self.start = np.maximum(0, t - window + 1)

    def _average(self, which: int, u: npt.NDArray[np.int64]) -> F64:
        full, moves = self.avg[which], self.moves[which]
        s = self.start
        out = full[u] - self.decay[u - s] * full[s]
        out[moves[u] == moves[s]] = 0.0
        return np.maximum(out, 0.0)

    def at_lag(self, lag: int) -> F64:
        u = self.t - lag
        valid = u - self.start >= max(self.period - 1, 0)
        u = np.where(valid, u, self.start)
        out = ind.rsi_from_averages(self._average(0, u), self._average(1, u))
        out[~valid] = np.nan
        return out


def _position(n: int, window: int) -> npt.NDArray[np.int64]:
    """Index of each candle inside its own live window."""
    return np.minimum(np.arange(n), window - 1)


def _masked(values: F64, valid: npt.NDArray[np.bool_]) -> F64:
    return np.where(valid, values, np.nan)


def _volume(volume: F64, p: IndicatorParams, pos: npt.NDArray[np.int64]) -> tuple[F64, F64]:
    ratios = ind.volume_ratios(volume, p.volume_period)
    current = np.where(np.isfinite(ratios), ratios, 0.0)
    current = _masked(current, pos >= p.volume_period)
    count = p.recent_count
    recent = np.zeros((len(volume), count))
    for j in range(min(count, len(volume))):
        lagged = np.full(len(volume), np.nan)
        lagged[j:] = ratios[: len(volume) - j]
        ok = (pos - j >= p.volume_period) & ~np.isnan(lagged)
        recent[:, count - 1 - j] = np.where(ok, lagged, 0.0)
    return current, recent


def windowed_indicators(candles: Candles, p: IndicatorParams, window: int) -> WindowedIndicators:
    """Snapshot values at every candle of ``candles``, each from its own live window."""
    close, n = candles.close, len(candles)
    pos = _position(n, window)
    rsi_long = WindowedRsi(close, p.rsi_period, window)
    rsi_short = WindowedRsi(close, p.rsi_short_period, window)
    lags = [rsi_short.at_lag(j) for j in range(p.rsi_7_recovery_lookback)]
    with np.errstate(invalid="ignore"):
        rsi7_min = np.fmin.reduce(np.stack(lags), axis=0)
    lower, _mid, _upper = ind.bollinger(close, p.bb_period, p.bb_std)
    touch = ind.touch_recovery(close, lower, p.bb_touch_lookback, p.bb_recovery_sustain_candles)
    need = max(p.bb_touch_lookback, p.bb_recovery_sustain_candles + 1)
    vol_ratio, recent = _volume(candles.volume, p, pos)
    return WindowedIndicators(
        close=close,
        rsi14=rsi_long.at_lag(0),
        rsi7=lags[0],
        rsi7_prev=lags[1],
        rsi7_min_lookback=rsi7_min,
        ma=_masked(ind.sma(close, p.ma_period), pos >= p.ma_period - 1),
        bb_lower=_masked(lower, pos >= p.bb_period - 1),
        vol_ratio=vol_ratio,
        recent_vol_ratios=recent,
        bb_touch_recovery=touch & (pos + 1 - (p.bb_period - 1) >= need),
        n_candles=pos + 1,
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
            out.append(("volume_surge", (recent >= e.volume_surge_ratio).any(axis=1)))
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
        return np.full(n, REGIME_INDEX.get(regimes, REGIME_INDEX["UNKNOWN"]), dtype=np.int8)
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
            cache[p] = windowed_indicators(candles, p, window)
        out[rows] = entry_codes(cache[p], name, cfg.entry, min_candles)[rows]
    out[pos + 1 < min_candles] = CODE_INDEX["insufficient_data"]
    return EntrySignals(out)
