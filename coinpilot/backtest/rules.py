"""The backtest book's bridge to the live engine's pure money rules.

Risk checks (domain/risk.py), sizing (domain/sizing.py) and fills (domain/fills.py) are the
functions the ledger uses; this module only turns the in-memory book into their inputs and
applies their outputs, the way the ledger does with its tables.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from coinpilot.backtest.book import Book
from coinpilot.config import AppConfig, FillParams
from coinpilot.domain import fills, risk, sizing
from coinpilot.domain.fills import Fill

__all__ = ["Fill", "after_sell", "buy_fill", "check_entry", "order_amount", "sell_fill"]


def _dt(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def buy_fill(close: Decimal, amount: Decimal, f: FillParams) -> Fill | None:
    return fills.buy_fill(close, amount, f)


def sell_fill(close: Decimal, quantity: Decimal, f: FillParams) -> Fill:
    return fills.sell_fill(close, quantity, f)


# Relative room kept between a float estimate of the daily loss and its limit before the
# estimate is trusted; float error on a sum of a few products is ~1e-15 of the equity.
_LOSS_ROOM = 1e-9


def _surely_full(book: Book, symbol: str, now: int, app: AppConfig) -> bool:
    """True when the risk manager must answer max_concurrent_positions: no earlier check
    fails (halt, cooldown, daily trades exactly; the daily loss by a float estimate well
    clear of its limit) and the portfolio is full. Most refusals of a many-symbol run are
    this one, and it is settled without the Decimal equity and the full risk state."""
    day = book.day
    assert day is not None
    limits = app.risk
    if symbol in book.positions or len(book.positions) < limits.max_concurrent_positions:
        return False
    if day.halted or day.buy_count >= limits.max_daily_trades or book.cooldown_until > now:
        return False
    equity = float(book.cash) + sum(
        float(p.quantity) * p.last_close for p in book.positions.values()
    )
    opening = float(day.opening_equity)
    return equity - opening > -opening * limits.max_daily_loss + _LOSS_ROOM * opening


def check_entry(book: Book, symbol: str, now: int, app: AppConfig) -> str | None:
    """None when the order may go ahead, else the risk manager's reason code."""
    day = book.day
    assert day is not None
    if _surely_full(book, symbol, now, app):
        return "max_concurrent_positions"
    state = risk.RiskState(
        equity=book.equity(),
        opening_equity=day.opening_equity,
        buy_count=day.buy_count,
        halted=day.halted,
        cooldown_until=_dt(book.cooldown_until) if book.cooldown_until else None,
        open_symbols=frozenset(book.positions),
    )
    verdict = risk.check_entry(state, symbol, app.risk, _dt(now))
    if verdict.halt:
        day.halted = True
    return None if verdict.ok else verdict.reason_code


def order_amount(book: Book, ratio: float, vol_factor: float, app: AppConfig) -> Decimal:
    return sizing.order_amount(
        equity=book.equity(),
        cash=book.cash,
        exposure=book.exposure(),
        regime_ratio=ratio,
        vol_factor=vol_factor,
        limits=app.risk,
    )


def after_sell(book: Book, pnl: Decimal, now: int, app: AppConfig) -> None:
    """Daily counters and the consecutive-loss cooldown after a SELL."""
    day = book.day
    assert day is not None
    day.sell_count += 1
    day.realized_pnl += pnl
    streak, until = risk.after_close(book.consecutive_losses, pnl, app.risk, _dt(now))
    book.consecutive_losses = streak
    if until is not None:
        book.cooldown_until = int(until.timestamp())
