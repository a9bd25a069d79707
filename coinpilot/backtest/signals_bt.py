"""Per-candle inputs of the event loop: entry outcomes, windowed RSI14 and exit candidates.

Entry outcomes come from the strategy core's whole-history pass (proven equal to
``compute_snapshot`` + ``evaluate_entry`` on every candle's live window). Exit candidates
are a vectorised *superset* of the minutes where ``evaluate_exit`` can fire (a small
tolerance on every threshold); the event loop then asks ``evaluate_exit`` itself at each
candidate, so the decision is always the live function's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from coinpilot.backtest.timeline import REGIME_CODES
from coinpilot.config import AppConfig, RegimeParams
from coinpilot.domain.candles import Candles
from coinpilot.domain.exits import effective_exit_params
from coinpilot.domain.regime import REGIME_INDEX, REGIMES
from coinpilot.domain.signals import WindowedRsi, windowed_indicators
from coinpilot.domain.signals import entry_codes as sig_entry_codes
from coinpilot.domain.snapshot import IndicatorParams
from coinpilot.domain.strategy import CODE_INDEX

F64 = npt.NDArray[np.float64]
EPS = 1e-9  # relative slack that keeps the candidate set a superset of float/Decimal edges


def regime_table(app: AppConfig) -> Mapping[str, RegimeParams]:
    """``app.regimes`` keyed by plain strings, the way the strategy functions take it."""
    return cast(Mapping[str, RegimeParams], app.regimes)


@dataclass
class Precomputed:
    codes: npt.NDArray[np.int16]  # ENTRY_CODES index per candle
    rsi14: dict[int, F64]  # per regime code: RSI14 of each candle's window, that regime's period


def precompute(c: Candles, regime: npt.NDArray[np.int8], app: AppConfig) -> Precomputed:
    """``entry_signals``' outcome per candle plus the exit check's RSI14, in one pass.

    The same steps as ``signals.entry_signals`` (windowed indicators per parameter set, the
    rule table per regime, the minimum-data override); the windowed indicators are kept so
    the RSI14 the exit check reads costs nothing more. A test holds it equal to
    ``entry_signals``.
    """
    window, min_candles = app.bot.candle_window, app.bot.min_candles
    pos = np.minimum(np.arange(len(c)), window - 1)
    codes = np.full(len(c), CODE_INDEX["regime_unknown"], dtype=np.int16)
    memo: dict[Any, Any] = {}  # regimes' parameter sets share every series they have in common
    groups: dict[IndicatorParams, list[tuple[str, Any, npt.NDArray[np.bool_]]]] = {}
    for name in REGIMES:
        rows = regime == REGIME_INDEX[name]
        if name == "UNKNOWN" or not rows.any():
            continue
        cfg = app.regimes.get(name)  # type: ignore[call-overload]
        if cfg is None:
            codes[rows] = CODE_INDEX["regime_not_configured"]
            continue
        groups.setdefault(IndicatorParams.from_entry(cfg.entry), []).append((name, cfg, rows))
    by_period: dict[int, F64] = {}
    # One parameter set's indicators at a time: a year of minutes is tens of MB per series.
    for p, members in groups.items():
        w = windowed_indicators(c, p, window, memo)
        for name, cfg, rows in members:
            codes[rows] = sig_entry_codes(w, name, cfg.entry, min_candles)[rows]
        by_period[p.rsi_period] = w.rsi14
        del w
    del memo
    codes[pos + 1 < min_candles] = CODE_INDEX["insufficient_data"]
    rsi: dict[int, F64] = {}
    for name in REGIMES:
        period = IndicatorParams.for_regime(name, regime_table(app)).rsi_period
        if period not in by_period:
            by_period[period] = WindowedRsi(c.close, period, window).at_lag(0)
        rsi[REGIME_INDEX[name]] = by_period[period]
    return Precomputed(codes, rsi)


@dataclass(frozen=True)
class ExitTable:
    """Effective exit thresholds by current regime code, for one entry regime (SPEC §7.1)."""

    stop_loss: F64
    take_profit: F64
    trailing: F64
    activation: F64
    overbought: F64
    min_profit: F64
    time_limit_s: F64


def exit_table(entry_regime: str, app: AppConfig) -> ExitTable:
    rows = [effective_exit_params(entry_regime, name, regime_table(app)) for name in REGIME_CODES]

    def col(name: str, scale: float = 1.0) -> F64:
        return np.array([getattr(p, name) * scale for p in rows], dtype=np.float64)

    return ExitTable(
        col("stop_loss_pct"), col("take_profit_pct"), col("trailing_stop_pct"),
        col("trailing_stop_activation_pct"), col("rsi_overbought"),
        col("rsi_exit_min_profit_pct"), col("time_limit_hours", 3600.0),
    )  # fmt: skip


def exit_candidates(
    close: F64,
    rsi14: F64,
    regime: npt.NDArray[np.int8],
    elapsed_s: F64,
    avg: float,
    hwm0: float,
    table: ExitTable,
) -> tuple[npt.NDArray[np.intp], F64]:
    """Indices (into the given tick arrays) where an exit may fire, and the running HWM.

    The arrays cover consecutive ticks of one open position; ``hwm0`` is the stored HWM
    before the first of them. The HWM returned at i includes close[i] (what the exit check
    stores when it does not fire).
    """
    hwm = np.maximum(hwm0, np.maximum.accumulate(close))
    pnl = close / avg - 1.0
    sl, tp = table.stop_loss[regime], table.take_profit[regime]
    act, trail = table.activation[regime], table.trailing[regime]
    with np.errstate(invalid="ignore"):
        maybe = pnl <= -sl + EPS
        maybe |= ((hwm / avg - 1.0) >= act - EPS) & (close <= hwm * (1.0 - trail) * (1 + EPS))
        maybe |= pnl >= tp - EPS
        maybe |= (rsi14 > table.overbought[regime] - EPS) & (pnl >= table.min_profit[regime] - EPS)
        maybe |= elapsed_s > table.time_limit_s[regime] - 1.0
    return np.flatnonzero(maybe), hwm
