"""One window's backtest and what the search maximises.

``run_window`` is the backtester's public entry point on a slice of history: candles from
the warm-up before the window are history only, the first decision is on the window's first
candle and the last on its last. ``score`` turns the result into the objective:

- ``return``: net return of the window in percent (fees and slippage included);
- ``sharpe``: annualised Sharpe of daily equity returns (``backtest.summary.sharpe_daily``);
- ``calmar``: annualised return over the window's maximum drawdown (capped at 100).

Below ``min_trades`` closed trades a window's value is
``min(raw, 0) − scale · (min_trades − trades) / min_trades`` (scale 100 for return, 10 for
the ratios): a lucky handful of trades never beats a config that really trades, and among
too-quiet configs the busier one ranks higher, which gives the sampler a slope to follow.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from coinpilot.backtest.engine import run_backtest
from coinpilot.backtest.model import BacktestResult
from coinpilot.backtest.summary import (
    DAYS_PER_YEAR,
    daily_closes,
    max_drawdown,
    sharpe_daily,
)
from coinpilot.config import AppConfig
from coinpilot.domain.candles import Candles

OBJECTIVES = ("return", "sharpe", "calmar")
PENALTY_SCALE = {"return": 100.0, "sharpe": 10.0, "calmar": 10.0}
CALMAR_CAP = 100.0
MINUTE = 60
HOUR = 3600


def warmup_seconds(app: AppConfig, fixed_regime: str | None) -> int:
    """History a window needs before its first decision: the candle window and, unless the
    regime is pinned, the hourly candles the regime job reads."""
    minutes = app.bot.candle_window * MINUTE
    if fixed_regime is not None:
        return minutes
    return max(minutes, (app.regime_detection.min_hourly_candles + 2) * HOUR)


def window(
    candles: Mapping[str, Candles], start: int, end: int, warmup_s: int
) -> dict[str, Candles]:
    """Each symbol's candles from ``start − warmup_s`` up to ``end`` (exclusive)."""
    out = {}
    for sym, c in candles.items():
        a = int(np.searchsorted(c.ts, start - warmup_s, side="left"))
        b = int(np.searchsorted(c.ts, end, side="left"))
        out[sym] = c.slice(a, b)
    return out


def run_window(
    candles: Mapping[str, Candles],
    app: AppConfig,
    start: int,
    end: int,
    *,
    fixed_regime: str | None = None,
) -> BacktestResult:
    """Backtest decisions on the candles of ``[start, end)``, earlier ones as history.

    The simulated daemon starts when the window's first candle has closed (start + 60 s),
    so that candle is the first it decides on; see ``backtest.timeline.build_timeline``.
    """
    data = window(candles, start, end, warmup_seconds(app, fixed_regime))
    began = datetime.fromtimestamp(start + MINUTE, UTC)
    return asyncio.run(run_backtest(data, app, fixed_regime=fixed_regime, start=began))


def daily_returns(result: BacktestResult, tz: ZoneInfo) -> npt.NDArray[np.float64]:
    """Day-over-day equity returns (local days), the first against the starting equity."""
    closes = daily_closes(result.equity_ts, result.equity, tz)
    series = np.concatenate(([float(result.initial_equity)], closes))
    return series[1:] / series[:-1] - 1.0


@dataclass(frozen=True)
class Score:
    value: float  # what the search maximises (penalised)
    raw: float  # the objective before the trade-count penalty
    trades: int
    return_pct: float
    sharpe: float | None
    max_drawdown: float
    calmar: float | None

    def as_dict(self) -> dict[str, float | int | None]:
        return dict(self.__dict__)


def calmar(return_frac: float, days: float, drawdown: float) -> float | None:
    """Annualised (compounded) return over max drawdown; None for a window under a day."""
    if days < 1.0 or return_frac <= -1.0:
        return None
    annual = (1.0 + return_frac) ** (DAYS_PER_YEAR / days) - 1.0
    if drawdown <= 0.0:
        return CALMAR_CAP if annual > 0 else 0.0
    return max(-CALMAR_CAP, min(CALMAR_CAP, annual / drawdown))


def penalised(raw: float, trades: int, min_trades: int, objective: str) -> float:
    if trades >= min_trades:
        return raw
    return min(raw, 0.0) - PENALTY_SCALE[objective] * (min_trades - trades) / min_trades


def score(result: BacktestResult, tz: ZoneInfo, objective: str, min_trades: int) -> Score:
    start = float(result.initial_equity)
    final = float(result.equity[-1]) if len(result.equity) else start
    ret = final / start - 1.0
    drawdown = max_drawdown(np.concatenate(([start], result.equity)))
    closes = daily_closes(result.equity_ts, result.equity, tz)
    sharpe = sharpe_daily(closes, start)
    span = (int(result.equity_ts[-1]) - int(result.equity_ts[0])) if len(result.equity_ts) else 0
    cal = calmar(ret, (span + MINUTE) / 86400.0, drawdown)
    raw = {"return": ret * 100.0, "sharpe": sharpe or 0.0, "calmar": cal or 0.0}[objective]
    if not math.isfinite(raw):
        raw = 0.0
    trades = sum(1 for t in result.trades if t.closed)
    return Score(
        value=penalised(raw, trades, min_trades, objective),
        raw=raw,
        trades=trades,
        return_pct=ret * 100.0,
        sharpe=sharpe,
        max_drawdown=drawdown,
        calmar=cal,
    )
