"""What a backtest produces: closed trades, the equity curve and the entry funnel.

Money in trades is ``Decimal`` exactly as the ledger would hold it; the equity curve is a
float series (one point per simulated minute) because it only feeds statistics and charts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class Trade:
    """One round trip: a BUY fill and the SELL fill that closed it."""

    symbol: str
    regime: str  # the regime at entry
    entry_ts: int  # epoch seconds of the decision (simulated clock)
    entry_price: Decimal
    quantity: Decimal
    entry_fee: Decimal
    exit_ts: int | None = None
    exit_price: Decimal | None = None
    exit_fee: Decimal = Decimal(0)
    exit_reason: str = ""

    @property
    def closed(self) -> bool:
        return self.exit_ts is not None

    @property
    def cost(self) -> Decimal:
        return self.entry_price * self.quantity + self.entry_fee

    @property
    def pnl(self) -> Decimal:
        """Realized PnL net of both fees; zero while still open."""
        if self.exit_price is None:
            return Decimal(0)
        return self.exit_price * self.quantity - self.exit_fee - self.cost

    @property
    def fees(self) -> Decimal:
        return self.entry_fee + self.exit_fee


@dataclass
class BacktestResult:
    """Everything one run produced; ``summary.summarize`` turns it into figures."""

    initial_equity: Decimal
    final_cash: Decimal
    trades: list[Trade]
    equity_ts: npt.NDArray[np.int64]  # epoch seconds, ascending
    equity: npt.NDArray[np.float64]  # cash + mark-to-market at each ts
    in_market: npt.NDArray[np.bool_]  # at least one position open at each ts
    funnel: dict[str, int] = field(default_factory=dict)  # failing check -> minutes
    candle_steps: int = 0  # symbol-minutes processed
    symbols: tuple[str, ...] = ()
    open_positions: dict[str, tuple[Decimal, Decimal]] = field(default_factory=dict)
