"""The operator's control plane: pause/resume entries, force one exit, reset the paper account.

Shared by the CLI (`coinpilot pause|resume|force-exit|reset-account`) and the dashboard.
Every action is one transaction, audited in risk_audit and announced on Discord (a 'risk'
notification queued in the same transaction). The state lives in PostgreSQL, so a running
daemon honours it within one cycle: the bot reads ``entries_paused`` before its entries,
and a force-exit is a ledger SELL at the last closed candle, exactly like the bot's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from coinpilot.adapters import ledger
from coinpilot.adapters.outbox import enqueue
from coinpilot.config import AppConfig
from coinpilot.domain import risk
from coinpilot.domain.money_format import krw, pnl_breakdown

RESET_CONFIRMATION = "RESET"


class ControlError(Exception):
    """The action cannot be done as asked (no such position, no price); nothing changed."""


@dataclass(frozen=True)
class ControlState:
    entries_paused: bool
    reason: str | None
    changed_by: str | None
    changed_at: datetime | None


TITLES = {
    "entries_paused": "Operator: new entries paused",
    "entries_resumed": "Operator: new entries resumed",
    "force_exit": "Operator: force exit",
    "account_reset": "Operator: paper account reset",
}


async def _record(
    conn: asyncpg.Connection,
    action: str,
    symbol: str | None,
    now: datetime,
    details: dict[str, Any],
    text: str,
) -> None:
    """The audit row and the Discord announcement, in the caller's transaction."""
    await ledger._audit(conn, action, symbol, now, None, details, text, notify=False)
    title = TITLES[action] + (f" {symbol}" if symbol else "")
    payload = {"type": action, "symbol": symbol, "title": title, "message": text,
               "level": "WARNING", "at": now.isoformat()}  # fmt: skip
    await enqueue(conn, "risk", payload)


async def state(conn: asyncpg.Pool | asyncpg.Connection) -> ControlState:
    row = await conn.fetchrow("SELECT * FROM control_state WHERE id = 1")
    if row is None:
        return ControlState(False, None, None, None)
    return ControlState(row["entries_paused"], row["reason"], row["changed_by"], row["changed_at"])


async def entries_paused(conn: asyncpg.Pool | asyncpg.Connection) -> bool:
    """Read by the bot once per cycle, before its entries."""
    return bool(await conn.fetchval("SELECT entries_paused FROM control_state WHERE id = 1"))


async def set_entries_paused(
    pool: asyncpg.Pool, paused: bool, *, by: str, reason: str | None, now: datetime
) -> bool:
    """Pause or resume new entries; False when it already was so (nothing recorded)."""
    if reason is not None:  # free text from a form: bounded, and storable (no lone surrogates)
        reason = reason.encode("utf-8", "replace").decode("utf-8")[:200].strip() or None
    async with pool.acquire() as conn, conn.transaction():
        current = await conn.fetchval(
            "SELECT entries_paused FROM control_state WHERE id = 1 FOR UPDATE"
        )
        if current == paused:
            return False
        await conn.execute(
            "UPDATE control_state SET entries_paused = $1, reason = $2, changed_by = $3,"
            " changed_at = $4 WHERE id = 1",
            paused,
            reason,
            by,
            now,
        )
        action = "entries_paused" if paused else "entries_resumed"
        text = (
            f"New entries paused by {by}" + (f": {reason}" if reason else "") + "; exits go on"
            if paused
            else f"New entries resumed by {by}"
        )
        await _record(conn, action, None, now, {"by": by, "reason": reason}, text)
    return True


async def force_exit(
    pool: asyncpg.Pool, app: AppConfig, symbol: str, *, by: str, now: datetime
) -> ledger.SellResult:
    """Sell the whole position at the last closed candle's close, as the bot would."""
    held = await ledger.positions(pool)
    if symbol not in held:
        raise ControlError(f"no open position in {symbol}")
    candle = await pool.fetchrow(
        "SELECT ts, close_price FROM market_data WHERE symbol = $1 AND interval = '1m'"
        " AND ts <= $2 ORDER BY ts DESC LIMIT 1",
        symbol,
        now,
    )
    if candle is None:
        raise ControlError(f"no closed candle of {symbol} to price the exit")
    info = {"exit_reason": "FORCE_EXIT", "by": by}
    sold = await ledger.sell(
        pool, symbol, candle["ts"], candle["close_price"], "FORCE_EXIT", None, app, now, info
    )
    if sold is None:
        raise ControlError(f"{symbol} was closed meanwhile; nothing sold")
    async with pool.acquire() as conn:
        text = (
            f"{symbol} force-exited by {by} at {candle['close_price']} (close of "
            f"{candle['ts']:%Y-%m-%d %H:%M} UTC): PnL {krw(sold.net_pnl, sign=True)}"
        )
        details = {"by": by, "price": str(sold.fill.price), "net_pnl": str(sold.net_pnl)}
        await _record(conn, "force_exit", symbol, now, details, text)
    return sold


async def reset_account(
    pool: asyncpg.Pool, app: AppConfig, *, by: str, confirmation: str, now: datetime
) -> dict[str, Any]:
    """Close every position without a trade and start the account again at
    risk.initial_balance_krw. The history stays; its totals move to the *_before_reset
    columns. Needs ``confirmation == "RESET"``."""
    if confirmation != RESET_CONFIRMATION:
        raise ControlError(
            f"resetting the paper account needs the confirmation {RESET_CONFIRMATION!r}"
        )
    initial = app.risk.initial_balance_krw
    async with pool.acquire() as conn, conn.transaction():
        await ledger.ensure_account(conn, initial)
        before = await conn.fetchrow("SELECT * FROM account_state WHERE id = 1 FOR UPDATE")
        dropped = [r["symbol"] for r in await conn.fetch("SELECT symbol FROM positions")]
        await conn.execute("DELETE FROM positions")
        await conn.execute(
            """UPDATE account_state SET
                   realized_pnl_before_reset = realized_pnl_before_reset + realized_pnl,
                   fees_before_reset = fees_before_reset + fees_paid,
                   initial_balance = $1, cash = $1, realized_pnl = 0, fees_paid = 0,
                   consecutive_losses = 0, cooldown_until = NULL, reset_at = $2,
                   updated_at = $2
               WHERE id = 1""",
            initial,
            now,
        )
        # Today's risk row opens again from the new equity at the next cycle.
        await conn.execute(
            "DELETE FROM daily_risk_state WHERE trade_date = $1", risk.trade_date(now, app.tz)
        )
        summary = {
            "by": by,
            "cash_before": str(before["cash"]),
            "realized_pnl_before": str(before["realized_pnl"]),
            "fees_before": str(before["fees_paid"]),
            "positions_dropped": dropped,
            "initial_balance": str(initial),
        }
        gross, fees = before["realized_pnl"], before["fees_paid"]
        text = (
            f"Paper account reset by {by} to {krw(initial)}; before: cash "
            f"{krw(before['cash'])}, PnL {pnl_breakdown(gross - fees, gross, fees)}"
            + (f", positions dropped: {', '.join(dropped)}" if dropped else "")
        )
        await _record(conn, "account_reset", None, now, summary, text)
    return summary
