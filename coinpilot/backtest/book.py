"""The backtest's in-memory book: cash, open positions and the KST day's risk state.

Every decision about money goes through ``rules`` (risk check, sizing, fills), which calls
the live engine's pure modules; this file only keeps the state those functions read and
write, the way the ledger tables do for the daemon.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from coinpilot.backtest.model import Trade
from coinpilot.domain.fills import to_decimal


@dataclass
class Position:
    symbol: str
    quantity: Decimal
    avg_price: Decimal
    opened_ts: int
    regime: str
    hwm: Decimal
    trade_index: int  # into Book.trades
    last_close: float = 0.0  # newest mark, for equity


@dataclass
class Day:
    """daily_risk_state for one local trading day."""

    key: int
    opening_equity: Decimal
    buy_count: int = 0
    sell_count: int = 0
    realized_pnl: Decimal = Decimal(0)
    halted: bool = False


@dataclass
class Book:
    cash: Decimal
    positions: dict[str, Position] = field(default_factory=dict)
    trades: list[Trade] = field(default_factory=list)
    day: Day | None = None
    cooldown_until: int = 0  # epoch seconds; lasts its full length across day boundaries
    consecutive_losses: int = 0  # on the account, like the ledger: streaks span days
    last_buy_candle: dict[str, int] = field(default_factory=dict)  # idempotency key

    def equity(self, marks: dict[str, float] | None = None) -> Decimal:
        """cash + Σ quantity × newest close (DECISIONS: limits are on equity)."""
        total = self.cash
        for p in self.positions.values():
            price = p.last_close if marks is None else marks.get(p.symbol, p.last_close)
            total += p.quantity * to_decimal(price)
        return total

    def exposure(self) -> Decimal:
        return sum(
            (p.quantity * to_decimal(p.last_close) for p in self.positions.values()),
            Decimal(0),
        )
