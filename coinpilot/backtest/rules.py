"""Risk check, sizing and fills for the backtest book.

These follow DECISIONS (equity-based limits, KST day, sizing formula, Upbit-faithful fills)
and are the seam to the live engine's pure modules (domain/risk.py, sizing.py, fills.py):
each function here delegates to them when they are importable, so both paths share one
implementation of every rule about money.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

from coinpilot.backtest.book import Book
from coinpilot.config import AppConfig, FillParams

ONE = Decimal(1)


@dataclass(frozen=True)
class Fill:
    price: Decimal
    quantity: Decimal
    fee: Decimal

    @property
    def value(self) -> Decimal:
        return self.price * self.quantity


def buy_fill(close: Decimal, amount: Decimal, f: FillParams) -> Fill | None:
    """Fill at close × (1 + slippage); quantity rounded down before the debit; None if < min."""
    if amount < f.min_order_krw:
        return None
    price = close * (ONE + f.slippage)
    step = Decimal(1).scaleb(-f.quantity_decimals)
    qty = (amount / price).quantize(step, rounding=ROUND_DOWN)
    if qty <= 0 or price * qty < f.min_order_krw:
        return None
    return Fill(price, qty, price * qty * f.fee_rate)


def sell_fill(close: Decimal, quantity: Decimal, f: FillParams) -> Fill:
    price = close * (ONE - f.slippage)
    return Fill(price, quantity, price * quantity * f.fee_rate)


def check_entry(book: Book, symbol: str, now: int, app: AppConfig) -> str | None:
    """None when the order may go ahead, else a stable reason code (SPEC §8.2 order)."""
    r, day = app.risk, book.day
    assert day is not None
    if day.halted:
        return "trading_halted"
    if book.cooldown_until > now:
        return "cooldown"
    if day.buy_count >= r.max_daily_trades:
        return "max_daily_trades"
    limit = day.opening_equity * Decimal(repr(r.max_daily_loss))
    if book.equity() - day.opening_equity <= -limit:
        day.halted = True
        return "daily_loss_limit"
    if symbol not in book.positions and len(book.positions) >= r.max_concurrent_positions:
        return "max_concurrent_positions"
    if symbol in book.positions:
        return "duplicate_position"
    return None


def order_amount(book: Book, ratio: float, vol_factor: float, app: AppConfig) -> Decimal:
    """min(equity × max position × regime ratio × volatility, cash less buffer, room left)."""
    r = app.risk
    equity = book.equity()
    want = equity * Decimal(repr(r.max_position_size)) * Decimal(repr(ratio))
    want *= Decimal(repr(vol_factor))
    cash_cap = book.cash * (ONE - Decimal(repr(r.fee_buffer)))
    room = equity * Decimal(repr(r.max_total_exposure)) - book.exposure()
    return max(Decimal(0), min(want, cash_cap, room))


def after_sell(book: Book, pnl: Decimal, now: int, app: AppConfig) -> None:
    """Daily counters and the consecutive-loss cooldown (SPEC §8.3 with DECISIONS)."""
    day = book.day
    assert day is not None
    day.sell_count += 1
    day.realized_pnl += pnl
    if pnl < 0:
        day.consecutive_losses += 1
        if day.consecutive_losses >= app.risk.cooldown_after_consecutive_losses:
            book.cooldown_until = now + int(app.risk.cooldown_hours * 3600)
            day.consecutive_losses = 0
    else:
        day.consecutive_losses = 0
