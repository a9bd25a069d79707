"""Shadow outcomes: what the exit rules would have made of an entry, taken or not.

Every AI-reviewed candidate is "entered" at its candle's close plus slippage and walked
forward minute by minute through ``evaluate_exit`` (the live exit rules, regime fixed at
entry), exiting at the close minus slippage, both fees charged. Comparing approved with
rejected candidates under identical rules answers whether the AI filter adds value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
import numpy.typing as npt

from coinpilot.config import FillParams, RegimeParams
from coinpilot.domain.candles import Candles
from coinpilot.domain.exits import evaluate_exit


@dataclass(frozen=True)
class ShadowOutcome:
    exit_ts: datetime
    exit_price: Decimal
    reason: str
    pnl_pct: Decimal  # net of fees and slippage, percent


def _net_pnl_pct(entry: Decimal, exit_: Decimal, fills: FillParams) -> Decimal:
    cost = entry * (1 + fills.fee_rate)
    proceeds = exit_ * (1 - fills.fee_rate)
    return ((proceeds - cost) / cost * 100).quantize(Decimal("0.0001"))


def simulate_exit(
    after: Candles,
    rsi14: npt.NDArray[np.float64],
    *,
    entry_ts: datetime,
    entry_close: float,
    regime: str,
    regimes: Mapping[str, RegimeParams],
    fills: FillParams,
) -> ShadowOutcome | None:
    """Walk the minutes after the entry; None while the exit rules would still hold."""
    entry = Decimal(repr(float(entry_close))) * (1 + fills.slippage)
    hwm: Decimal | None = None
    for i in range(len(after)):
        close = float(after.close[i])
        now = datetime.fromtimestamp(int(after.ts[i]) + 60, UTC)
        rsi = float(rsi14[i]) if i < len(rsi14) and not math.isnan(rsi14[i]) else None
        d = evaluate_exit(
            avg_price=entry,
            opened_at=entry_ts,
            entry_regime=regime,
            hwm=hwm,
            close=close,
            rsi14=rsi,
            current_regime=regime,
            regimes=regimes,
            now=now,
        )
        if d.new_hwm is not None:
            hwm = d.new_hwm
        if d.reason is not None:
            exit_price = Decimal(repr(close)) * (1 - fills.slippage)
            return ShadowOutcome(now, exit_price, d.reason, _net_pnl_pct(entry, exit_price, fills))
    return None


@dataclass(frozen=True)
class GroupStats:
    name: str
    candidates: int
    closed: int
    wins: int
    total_pnl_pct: Decimal

    @property
    def win_rate(self) -> float | None:
        return None if self.closed == 0 else self.wins / self.closed

    @property
    def avg_pnl_pct(self) -> Decimal | None:
        return (
            None
            if self.closed == 0
            else (self.total_pnl_pct / self.closed).quantize(Decimal("0.0001"))
        )


def group_stats(name: str, pnls: Iterable[Decimal | None]) -> GroupStats:
    """Win rate and PnL over closed shadow trades; open ones count as candidates only."""
    values = list(pnls)
    closed = [p for p in values if p is not None]
    return GroupStats(
        name,
        len(values),
        len(closed),
        sum(1 for p in closed if p > 0),
        sum(closed, Decimal(0)),
    )
