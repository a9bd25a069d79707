"""The risk manager's rules, as pure functions of a state snapshot (SPEC §8 with DECISIONS).

Checks, in order; the first that fails rejects the entry with a stable reason code:
 1. trading_halted            today's trading was halted (daily loss limit)
 2. cooldown                  a consecutive-loss cooldown is running (lasts its full length,
                              across the day boundary)
 3. max_daily_trades          BUY fills today ≥ risk.max_daily_trades
 4. daily_loss_limit          equity − today's opening equity ≤ −max_daily_loss × opening
                              equity (realized + unrealized); this one also HALTS the day
 5. max_concurrent_positions  the symbol is not held and open positions ≥ the limit
 6. duplicate_position        the symbol is already held
Sizing (``sizing.order_amount``) then caps the order by position size, cash and exposure
room; an order below the minimum (e.g. no exposure room left) is ``below_min_order``.
The ledger repeats these checks, plus ``max_total_exposure`` and ``insufficient_cash``, in
the fill's own transaction (adapters/ledger.py).
The trading day is a calendar day in the configured time zone (KST by default).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from coinpilot.config import RiskLimits
from coinpilot.domain.fills import is_win, to_decimal

RISK_CODES = (
    "trading_halted",
    "cooldown",
    "max_daily_trades",
    "daily_loss_limit",
    "max_concurrent_positions",
    "duplicate_position",
    "below_min_order",
    "max_total_exposure",
    "insufficient_cash",
)


@dataclass(frozen=True)
class RiskState:
    equity: Decimal
    opening_equity: Decimal
    buy_count: int
    halted: bool
    cooldown_until: datetime | None
    open_symbols: frozenset[str]


@dataclass(frozen=True)
class RiskVerdict:
    ok: bool
    reason_code: str = ""
    text: str = ""
    halt: bool = False  # the caller must persist a halt of today's trading


def trade_date(now: datetime, tz: ZoneInfo) -> date:
    return now.astimezone(tz).date()


def daily_loss_breached(state: RiskState, limits: RiskLimits) -> bool:
    limit = state.opening_equity * to_decimal(limits.max_daily_loss)
    return state.equity - state.opening_equity <= -limit


def check_entry(state: RiskState, symbol: str, limits: RiskLimits, now: datetime) -> RiskVerdict:
    if state.halted:
        return RiskVerdict(False, "trading_halted", "trading halted for today (daily loss limit)")
    if state.cooldown_until is not None and state.cooldown_until > now:
        left = (state.cooldown_until - now).total_seconds() / 60
        return RiskVerdict(
            False, "cooldown", f"cooldown after consecutive losses ({left:.1f} min left)"
        )
    if state.buy_count >= limits.max_daily_trades:
        return RiskVerdict(
            False, "max_daily_trades", f"max daily trades reached ({limits.max_daily_trades})"
        )
    if daily_loss_breached(state, limits):
        pct = limits.max_daily_loss * 100
        return RiskVerdict(
            False,
            "daily_loss_limit",
            f"daily loss limit (-{pct:.2f}%) reached, halting trading",
            halt=True,
        )
    if (
        symbol not in state.open_symbols
        and len(state.open_symbols) >= limits.max_concurrent_positions
    ):
        return RiskVerdict(
            False,
            "max_concurrent_positions",
            f"max concurrent positions ({limits.max_concurrent_positions}) reached",
        )
    if symbol in state.open_symbols:
        return RiskVerdict(False, "duplicate_position", f"{symbol} already held")
    return RiskVerdict(True)


def after_close(
    consecutive_losses: int, net_pnl: Decimal, limits: RiskLimits, now: datetime
) -> tuple[int, datetime | None]:
    """The loss streak and, when it reaches the limit, the cooldown end (streak restarts)."""
    if is_win(net_pnl):
        return 0, None
    streak = consecutive_losses + 1
    if streak >= limits.cooldown_after_consecutive_losses:
        return 0, now + timedelta(hours=limits.cooldown_hours)
    return streak, None
