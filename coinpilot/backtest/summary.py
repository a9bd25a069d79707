"""Pure statistics of a backtest: no I/O, no clock, every figure reproducible by hand.

Conventions (also in the README of the report):
- win rate counts closed trades that win (``fills.is_win``: PnL after both fees > 0);
- max drawdown is the largest peak-to-trough fall of the equity curve, as a fraction of the peak;
- Sharpe uses daily returns of the equity at the last point of each trading day (local
  calendar day in the configured time zone), sample std (ddof = 1), annualised with √365
  because crypto trades every day; it is None with fewer than two returns or zero spread;
- time in market is the share of equity points with at least one open position.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from coinpilot.backtest.model import BacktestResult, Trade
from coinpilot.domain.fills import is_win

DAYS_PER_YEAR = 365


@dataclass(frozen=True)
class Summary:
    trades: int
    wins: int
    losses: int
    win_rate: float | None
    total_pnl: Decimal
    pnl_by_regime: dict[str, Decimal]
    fees_paid: Decimal
    final_equity: float
    return_pct: float
    max_drawdown: float
    sharpe: float | None
    time_in_market: float
    exit_reasons: dict[str, int]
    funnel: dict[str, int]
    open_trades: int


def max_drawdown(equity: npt.NDArray[np.float64]) -> float:
    """Largest (peak − trough) / peak over the curve; 0.0 for an empty or rising curve."""
    if len(equity) == 0:
        return 0.0
    peaks = np.maximum.accumulate(equity)
    falls = (peaks - equity) / np.where(peaks > 0, peaks, 1.0)
    return float(falls.max())


def day_keys(ts: npt.NDArray[np.int64], tz: ZoneInfo) -> npt.NDArray[np.int64]:
    """Local calendar day of each epoch second, as an ordinal (vectorised per UTC offset)."""
    if len(ts) == 0:
        return np.empty(0, dtype=np.int64)
    # The offset can change (DST) inside a long run: look it up once per UTC day.
    days, inverse = np.unique(ts // 86400, return_inverse=True)
    shifts = np.empty(len(days), dtype=np.int64)
    for j, day in enumerate(days.tolist()):
        offset = datetime.fromtimestamp(day * 86400 + 43200, UTC).astimezone(tz).utcoffset()
        shifts[j] = int(offset.total_seconds()) if offset else 0
    return (ts + shifts[inverse]) // 86400


def daily_closes(
    ts: npt.NDArray[np.int64], equity: npt.NDArray[np.float64], tz: ZoneInfo
) -> npt.NDArray[np.float64]:
    """Equity at the last point of each local day, in day order."""
    keys = day_keys(ts, tz)
    if len(keys) == 0:
        return np.empty(0, dtype=np.float64)
    last = np.flatnonzero(np.append(keys[1:] != keys[:-1], True))
    return equity[last]


def sharpe_daily(closes: npt.NDArray[np.float64], start_equity: float) -> float | None:
    """Annualised Sharpe (risk-free 0) of day-over-day returns, the first against the start."""
    series = np.concatenate(([start_equity], closes))
    returns = series[1:] / series[:-1] - 1.0
    if len(returns) < 2:
        return None
    std = float(np.std(returns, ddof=1))
    if std == 0.0 or not math.isfinite(std):
        return None
    return float(np.mean(returns)) / std * math.sqrt(DAYS_PER_YEAR)


def _pnl_by_regime(closed: list[Trade]) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for t in closed:
        out[t.regime] = out.get(t.regime, Decimal(0)) + t.pnl
    return dict(sorted(out.items()))


def summarize(result: BacktestResult, tz: ZoneInfo) -> Summary:
    closed = [t for t in result.trades if t.closed]
    wins = sum(1 for t in closed if is_win(t.pnl))
    start = float(result.initial_equity)
    final = float(result.equity[-1]) if len(result.equity) else start
    in_market = float(np.mean(result.in_market)) if len(result.in_market) else 0.0
    closes = daily_closes(result.equity_ts, result.equity, tz)
    return Summary(
        trades=len(closed),
        wins=wins,
        losses=len(closed) - wins,
        win_rate=wins / len(closed) if closed else None,
        total_pnl=sum((t.pnl for t in closed), Decimal(0)),
        pnl_by_regime=_pnl_by_regime(closed),
        fees_paid=sum((t.fees for t in result.trades), Decimal(0)),
        final_equity=final,
        return_pct=(final / start - 1.0) * 100.0,
        max_drawdown=max_drawdown(np.concatenate(([start], result.equity))),
        sharpe=sharpe_daily(closes, start),
        time_in_market=in_market,
        exit_reasons=dict(sorted(Counter(t.exit_reason for t in closed).items())),
        funnel=dict(result.funnel),
        open_trades=len(result.trades) - len(closed),
    )
