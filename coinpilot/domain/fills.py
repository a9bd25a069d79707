"""Upbit-faithful paper fills, shared by the live ledger and the backtester.

Rules (DECISIONS "Upbit-faithful fills"):
- a BUY fills at the last closed candle's close × (1 + slippage), a SELL at × (1 − slippage);
- the fee is ``fee_rate`` of the notional, per side;
- the quantity is rounded DOWN to ``quantity_decimals`` before any balance moves, so the
  debit is exactly price × rounded quantity + fee;
- an order below ``min_order_krw`` (after rounding) is not placed.
All arithmetic is Decimal; a float close enters through ``to_decimal`` (its shortest repr),
so the live path and the backtest turn the same float into the same Decimal.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

from coinpilot.config import FillParams

ONE = Decimal(1)
ZERO = Decimal(0)


def to_decimal(value: float | Decimal | str) -> Decimal:
    """The one float→Decimal conversion of the money path."""
    if isinstance(value, Decimal):
        return value
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


@dataclass(frozen=True)
class Fill:
    price: Decimal  # per unit, slippage included
    quantity: Decimal
    fee: Decimal

    @property
    def notional(self) -> Decimal:
        return self.price * self.quantity


def buy_fill(close: Decimal, amount_krw: Decimal, f: FillParams) -> Fill | None:
    """The fill of a BUY worth at most ``amount_krw``; None when below the minimum order."""
    if amount_krw < f.min_order_krw or close <= 0:
        return None
    price = close * (ONE + f.slippage)
    step = ONE.scaleb(-f.quantity_decimals)
    quantity = (amount_krw / price).quantize(step, rounding=ROUND_DOWN)
    if quantity <= 0 or price * quantity < f.min_order_krw:
        return None
    return Fill(price, quantity, price * quantity * f.fee_rate)


def sell_fill(close: Decimal, quantity: Decimal, f: FillParams) -> Fill:
    """The fill of a SELL of the whole position (exits are never partial)."""
    price = close * (ONE - f.slippage)
    return Fill(price, quantity, price * quantity * f.fee_rate)


def is_win(net: Decimal) -> bool:
    """A closed trade wins when it made money after both fees; a scratch (0) does not.

    The one definition behind the report's and the backtest's win rate and the cooldown's
    loss streak (a zero no longer resets the streak, SPEC's numeric edge case).
    """
    return net > 0


def net_pnl(entry: Fill, exit_: Fill) -> Decimal:
    """Round-trip PnL after both fees: what decides a loss for the cooldown streak."""
    return exit_.notional - exit_.fee - entry.notional - entry.fee
