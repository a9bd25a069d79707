"""The paper ledger: every BUY and SELL is one PostgreSQL transaction.

Each fill changes account_state, positions, trading_history, daily_risk_state (and, when
due, risk_audit) and queues its notification in the outbox, all in one transaction: a crash
at any point leaves either all of it or none of it. The idempotency key
``symbol|candle start|side`` (UNIQUE in trading_history; a SELL's key also names the BUY it
closes) makes a repeated decision for the same closed candle a no-op, so a restart never
executes a decision twice.

A BUY re-checks the risk limits inside its transaction, under a lock on the account row
(max concurrent positions, daily trades, daily loss/halt, exposure cap, cash): two fills
racing for the last room cannot both pass. A refusal is audited in risk_audit and returned.
Today's risk row is created, when missing, from the equity *before* the fill; a fill never
invents it from what is left after.

Invariant, exact in Decimal, checked by ``verify`` and `coinpilot verify-ledger`:

    cash + Σ cost basis of open positions = initial balance + realized PnL − fees

where cost basis = price × quantity of the BUY fill, realized PnL = Σ (sell notional − cost
basis) and fees = Σ fees of both sides.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

import asyncpg

from coinpilot.adapters.outbox import enqueue
from coinpilot.config import AppConfig
from coinpilot.domain import risk
from coinpilot.domain.fills import Fill, buy_fill, net_pnl, sell_fill, to_decimal

ZERO = Decimal(0)


@dataclass(frozen=True)
class Account:
    initial_balance: Decimal
    cash: Decimal
    realized_pnl: Decimal
    fees_paid: Decimal
    consecutive_losses: int
    cooldown_until: datetime | None


@dataclass(frozen=True)
class Position:
    symbol: str
    quantity: Decimal
    avg_price: Decimal
    cost_basis: Decimal
    regime: str
    high_water_mark: Decimal
    opened_at: datetime
    entry_trade_id: Any


@dataclass(frozen=True)
class Day:
    trade_date: date
    opening_equity: Decimal
    realized_pnl: Decimal
    fees_paid: Decimal
    trade_count: int
    buy_count: int
    sell_count: int
    is_trading_halted: bool
    halt_reason: str | None


@dataclass(frozen=True)
class LedgerState:
    account: Account
    positions: dict[str, Position]
    day: Day

    def exposure(self, marks: Mapping[str, float]) -> Decimal:
        total = ZERO
        for p in self.positions.values():
            mark = marks.get(p.symbol)
            total += p.quantity * (Decimal(repr(mark)) if mark else p.avg_price)
        return total

    def equity(self, marks: Mapping[str, float]) -> Decimal:
        return self.account.cash + self.exposure(marks)

    def risk_state(self, marks: Mapping[str, float]) -> risk.RiskState:
        return risk.RiskState(
            equity=self.equity(marks),
            opening_equity=self.day.opening_equity,
            buy_count=self.day.buy_count,
            halted=self.day.is_trading_halted,
            cooldown_until=self.account.cooldown_until,
            open_symbols=frozenset(self.positions),
        )


def idempotency_key(symbol: str, candle_ts: datetime, side: str, entry: Any = None) -> str:
    """A SELL names the BUY it closes: an exit after a same-candle re-entry is a new trade."""
    key = f"{symbol}|{candle_ts.isoformat()}|{side}"
    return key if entry is None else f"{key}|{entry}"


async def ensure_account(conn: asyncpg.Connection | asyncpg.Pool, initial: Decimal) -> None:
    await conn.execute(
        """INSERT INTO account_state (id, initial_balance, cash) VALUES (1, $1, $1)
           ON CONFLICT (id) DO NOTHING""",
        initial,
    )


async def _account(conn: asyncpg.Connection, *, lock: bool = False) -> Account:
    row = await conn.fetchrow(
        "SELECT * FROM account_state WHERE id = 1" + (" FOR UPDATE" if lock else "")
    )
    if row is None:
        raise LookupError("account_state has no row; run migrations and start the daemon once")
    return Account(
        row["initial_balance"], row["cash"], row["realized_pnl"], row["fees_paid"],
        row["consecutive_losses"], row["cooldown_until"],
    )  # fmt: skip


async def positions(conn: asyncpg.Connection | asyncpg.Pool) -> dict[str, Position]:
    rows = await conn.fetch("SELECT * FROM positions ORDER BY symbol")
    return {
        r["symbol"]: Position(
            r["symbol"],
            r["quantity"],
            r["avg_price"],
            r["cost_basis"],
            r["regime"],
            r["high_water_mark"],
            r["opened_at"],
            r["entry_trade_id"],
        )
        for r in rows
    }


def _day(row: asyncpg.Record) -> Day:
    return Day(
        row["trade_date"], row["opening_equity"], row["realized_pnl"], row["fees_paid"],
        row["trade_count"], row["buy_count"], row["sell_count"], row["is_trading_halted"],
        row["halt_reason"],
    )  # fmt: skip


async def load_state(
    pool: asyncpg.Pool,
    app: AppConfig,
    now: datetime,
    marks: Mapping[str, float],
    *,
    read_only: bool = False,
) -> LedgerState:
    """Account, open positions and today's risk row (created with today's opening equity).

    ``read_only`` (tools such as `coinpilot status`) writes nothing: a missing day row is
    shown as it would open now, and a missing account as the initial balance.
    """
    async with pool.acquire() as conn, conn.transaction():
        if read_only:
            return await _peek(conn, app, now, marks)
        await ensure_account(conn, app.risk.initial_balance_krw)
        account = await _account(conn)
        held = await positions(conn)
        return LedgerState(account, held, await _today(conn, account, held, app, now, marks))


async def _peek(
    conn: asyncpg.Connection, app: AppConfig, now: datetime, marks: Mapping[str, float]
) -> LedgerState:
    initial = app.risk.initial_balance_krw
    try:
        account = await _account(conn)
    except LookupError:
        account = Account(initial, initial, ZERO, ZERO, 0, None)
    held = await positions(conn)
    today = risk.trade_date(now, app.tz)
    row = await conn.fetchrow("SELECT * FROM daily_risk_state WHERE trade_date = $1", today)
    if row is not None:
        return LedgerState(account, held, _day(row))
    opening = LedgerState(account, held, _placeholder_day(today)).equity(marks)
    day = Day(today, opening, ZERO, ZERO, 0, 0, 0, False, None)
    return LedgerState(account, held, day)


async def _today(
    conn: asyncpg.Connection,
    account: Account,
    held: dict[str, Position],
    app: AppConfig,
    now: datetime,
    marks: Mapping[str, float],
) -> Day:
    """Today's risk row; a new day opens at the equity of ``account`` and ``held`` at marks."""
    today = risk.trade_date(now, app.tz)
    row = await conn.fetchrow("SELECT * FROM daily_risk_state WHERE trade_date = $1", today)
    if row is None:
        partial = LedgerState(account, held, _placeholder_day(today))
        row = await conn.fetchrow(
            """INSERT INTO daily_risk_state (trade_date, opening_equity) VALUES ($1, $2)
               ON CONFLICT (trade_date) DO UPDATE SET trade_date = EXCLUDED.trade_date
               RETURNING *""",
            today, partial.equity(marks),
        )  # fmt: skip
    return _day(row)


def _placeholder_day(today: date) -> Day:
    return Day(today, ZERO, ZERO, ZERO, 0, 0, 0, False, None)


async def _trade_exists(conn: asyncpg.Connection, key: str) -> bool:
    return bool(
        await conn.fetchval("SELECT 1 FROM trading_history WHERE idempotency_key = $1", key)
    )


@dataclass(frozen=True)
class BuyOrder:
    symbol: str
    candle_ts: datetime
    close: Decimal
    amount_krw: Decimal
    regime: str
    signal_info: dict[str, Any]


@dataclass(frozen=True)
class Refused:
    """A BUY the ledger refused because it would cross a limit; audited in risk_audit."""

    verdict: risk.RiskVerdict


def _limits(
    state: LedgerState, symbol: str, fill: Fill, app: AppConfig, now: datetime,
    marks: Mapping[str, float],
) -> risk.RiskVerdict:  # fmt: skip
    """The entry rules, then the exposure cap and cash, on the locked ledger state."""
    verdict = risk.check_entry(state.risk_state(marks), symbol, app.risk, now)
    if not verdict.ok:
        return verdict
    equity, cap = state.equity(marks), to_decimal(app.risk.max_total_exposure)
    if state.exposure(marks) + fill.notional > equity * cap:
        text = f"total exposure cap ({cap * 100:g}% of equity) reached"
        return risk.RiskVerdict(False, "max_total_exposure", text)
    if state.account.cash < fill.notional + fill.fee:
        text = f"cash {state.account.cash:.0f} KRW cannot pay this order"
        return risk.RiskVerdict(False, "insufficient_cash", text)
    return verdict


async def buy(
    pool: asyncpg.Pool,
    order: BuyOrder,
    app: AppConfig,
    now: datetime,
    marks: Mapping[str, float] | None = None,
) -> Fill | Refused | None:
    """Open a position, or refuse it (audited) when a limit would be crossed.

    None when the decision was already executed or the order is too small. ``marks`` prices
    the open positions for equity and exposure (their average price where missing).
    """
    fill = buy_fill(order.close, order.amount_krw, app.fills)
    if fill is None:
        return None
    key = idempotency_key(order.symbol, order.candle_ts, "BUY")
    marks = {**(marks or {}), order.symbol: float(order.close)}
    async with pool.acquire() as conn, conn.transaction():
        account = await _account(conn, lock=True)
        if await _trade_exists(conn, key):
            return None
        held = await positions(conn)
        state = LedgerState(account, held, await _today(conn, account, held, app, now, marks))
        verdict = _limits(state, order.symbol, fill, app, now, marks)
        if not verdict.ok:
            await _refusal(conn, order.symbol, verdict, now, app, {"regime": order.regime})
            return Refused(verdict)
        trade_id = await conn.fetchval(
            """INSERT INTO trading_history (idempotency_key, symbol, side, price, quantity,
                   notional, fee, strategy_name, regime, high_water_mark, signal_info,
                   candle_ts, executed_at)
               VALUES ($1, $2, 'BUY', $3, $4, $5, $6, $7, $8, $3, $9, $10, $11) RETURNING id""",
            key, order.symbol, fill.price, fill.quantity, fill.notional, fill.fee,
            app.strategy_name, order.regime, order.signal_info, order.candle_ts, now,
        )  # fmt: skip
        await conn.execute(
            """INSERT INTO positions (symbol, quantity, avg_price, cost_basis, regime,
                   high_water_mark, opened_at, entry_trade_id)
               VALUES ($1, $2, $3, $4, $5, $3, $6, $7)""",
            order.symbol, fill.quantity, fill.price, fill.notional, order.regime, now, trade_id,
        )  # fmt: skip
        await conn.execute(
            """UPDATE account_state SET cash = cash - $1, fees_paid = fees_paid + $2,
                   updated_at = $3 WHERE id = 1""",
            fill.notional + fill.fee, fill.fee, now,
        )  # fmt: skip
        await _count_day(conn, now, app, side="BUY", fee=fill.fee, pnl=ZERO)
        await enqueue(conn, "trade", _trade_payload(order.symbol, "BUY", fill, now, app,
                                                    regime=order.regime))  # fmt: skip
    return fill


async def _count_day(
    conn: asyncpg.Connection,
    now: datetime,
    app: AppConfig,
    *,
    side: str,
    fee: Decimal,
    pnl: Decimal,
) -> None:
    """Count the fill in today's row, which the fill's transaction has read (``_today``)."""
    today = risk.trade_date(now, app.tz)
    column = "buy_count" if side == "BUY" else "sell_count"
    status = await conn.execute(
        f"""UPDATE daily_risk_state SET {column} = {column} + 1, trade_count = trade_count + 1,
               fees_paid = fees_paid + $2, realized_pnl = realized_pnl + $3, updated_at = $4
            WHERE trade_date = $1""",
        today, fee, pnl, now,
    )  # fmt: skip
    if not status.endswith(" 1"):
        raise LookupError(f"daily_risk_state has no row for {today}")


def _trade_payload(
    symbol: str, side: str, fill: Fill, now: datetime, app: AppConfig, **extra: Any
) -> dict[str, Any]:
    return {
        "symbol": symbol, "side": side, "price": str(fill.price),
        "quantity": str(fill.quantity), "notional_krw": str(fill.notional),
        "fee_krw": str(fill.fee), "strategy": app.strategy_name,
        "executed_at": now.isoformat(), **{k: v for k, v in extra.items() if v is not None},
    }  # fmt: skip


@dataclass(frozen=True)
class SellResult:
    fill: Fill
    net_pnl: Decimal
    cooldown_until: datetime | None


async def sell(
    pool: asyncpg.Pool,
    symbol: str,
    candle_ts: datetime,
    close: Decimal,
    reason: str,
    hwm: Decimal | None,
    app: AppConfig,
    now: datetime,
    signal_info: dict[str, Any],
    marks: Mapping[str, float] | None = None,
) -> SellResult | None:
    """Close the whole position; None when there is none or this exit already executed."""
    async with pool.acquire() as conn, conn.transaction():
        account = await _account(conn, lock=True)
        pos = await conn.fetchrow("SELECT * FROM positions WHERE symbol = $1 FOR UPDATE", symbol)
        key = idempotency_key(symbol, candle_ts, "SELL", pos and pos["entry_trade_id"])
        if pos is None or await _trade_exists(conn, key):
            return None
        marks = {**(marks or {}), symbol: float(close)}
        await _today(conn, account, await positions(conn), app, now, marks)
        fill = sell_fill(close, pos["quantity"], app.fills)
        entry_fee = await conn.fetchval(
            "SELECT fee FROM trading_history WHERE id = $1", pos["entry_trade_id"]
        )
        entry = Fill(pos["avg_price"], pos["quantity"], entry_fee or ZERO)
        gross = fill.notional - pos["cost_basis"]
        pnl = net_pnl(entry, fill)
        streak, cooldown = risk.after_close(account.consecutive_losses, pnl, app.risk, now)
        # DECISIONS: the exit price never becomes the HWM (a STOP_LOSS passes hwm=None).
        stored_hwm = max(pos["high_water_mark"], hwm or pos["high_water_mark"])
        trade_id = await conn.fetchval(
            """INSERT INTO trading_history (idempotency_key, symbol, side, price, quantity,
                   notional, fee, realized_pnl, entry_price, strategy_name, regime,
                   high_water_mark, exit_reason, signal_info, candle_ts, executed_at)
               VALUES ($1, $2, 'SELL', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,
                       $15) RETURNING id""",
            key, symbol, fill.price, fill.quantity, fill.notional, fill.fee, gross,
            pos["avg_price"], app.strategy_name, pos["regime"], stored_hwm, reason,
            signal_info, candle_ts, now,
        )  # fmt: skip
        await conn.execute("DELETE FROM positions WHERE symbol = $1", symbol)
        await conn.execute(
            """UPDATE account_state SET cash = cash + $1, realized_pnl = realized_pnl + $2,
                   fees_paid = fees_paid + $3, consecutive_losses = $4,
                   cooldown_until = COALESCE($5, cooldown_until), updated_at = $6
               WHERE id = 1""",
            fill.notional - fill.fee, gross, fill.fee, streak, cooldown, now,
        )  # fmt: skip
        await _count_day(conn, now, app, side="SELL", fee=fill.fee, pnl=gross)
        await enqueue(conn, "trade", _trade_payload(
            symbol, "SELL", fill, now, app, exit_reason=reason, pnl_krw=str(pnl),
            gross_pnl_krw=str(gross), round_trip_fees_krw=str(entry.fee + fill.fee)))  # fmt: skip
        if cooldown is not None:
            await _audit(conn, "cooldown", symbol, now, trade_id, {
                "until": cooldown.isoformat(),
                "losses": app.risk.cooldown_after_consecutive_losses,
            }, f"{app.risk.cooldown_after_consecutive_losses} consecutive losses: "
               f"no entries for {app.risk.cooldown_hours:g} h")  # fmt: skip
    return SellResult(fill, pnl, cooldown)


async def _audit(
    conn: asyncpg.Connection,
    kind: str,
    symbol: str | None,
    now: datetime,
    order_id: Any,
    details: dict[str, Any],
    text: str,
    *,
    notify: bool = True,
) -> None:
    await conn.execute(
        """INSERT INTO risk_audit (violation_type, symbol, description, details,
               related_order_id, ts) VALUES ($1, $2, $3, $4, $5, $6)""",
        kind, symbol, text, details, order_id, now,
    )  # fmt: skip
    if notify:
        level = "CRITICAL" if kind in ("cooldown", "daily_loss_limit") else "WARNING"
        await enqueue(conn, "risk", {"type": kind, "symbol": symbol, "message": text,
                                     "level": level, "at": now.isoformat()})  # fmt: skip


async def record_rejection(
    pool: asyncpg.Pool,
    symbol: str,
    verdict: risk.RiskVerdict,
    now: datetime,
    app: AppConfig,
    details: dict[str, Any],
) -> None:
    """risk_audit and an outbox announcement for a refused entry, in one transaction.

    A halt is persisted in the same transaction. A refusal repeats every minute while the
    rules keep passing, so only its first occurrence per symbol, reason and trading day is
    announced; every occurrence is audited.
    """
    async with pool.acquire() as conn, conn.transaction():
        await _refusal(conn, symbol, verdict, now, app, details)


async def _refusal(
    conn: asyncpg.Connection,
    symbol: str,
    verdict: risk.RiskVerdict,
    now: datetime,
    app: AppConfig,
    details: dict[str, Any],
) -> None:
    today = risk.trade_date(now, app.tz)
    if verdict.halt:
        halted = await conn.fetchval(
            """UPDATE daily_risk_state SET is_trading_halted = true, halt_reason = $2,
                   updated_at = $3 WHERE trade_date = $1 AND NOT is_trading_halted
               RETURNING true""",
            today, verdict.text, now,
        )  # fmt: skip
        if not halted:
            return
    day_start = datetime.combine(today, time.min, tzinfo=app.tz)
    repeat = await conn.fetchval(
        """SELECT 1 FROM risk_audit WHERE ts >= $1 AND symbol = $2
               AND violation_type = $3 LIMIT 1""",
        day_start, symbol, verdict.reason_code,
    )  # fmt: skip
    await _audit(conn, verdict.reason_code, symbol, now, None, details, verdict.text,
                 notify=verdict.halt or not repeat)  # fmt: skip


async def raise_hwm(pool: asyncpg.Pool, symbol: str, hwm: Decimal, now: datetime) -> bool:
    """Store a higher high-water mark; never lowers it."""
    status = await pool.execute(
        """UPDATE positions SET high_water_mark = $2, updated_at = $3
           WHERE symbol = $1 AND high_water_mark < $2""",
        symbol, hwm, now,
    )  # fmt: skip
    return status.endswith(" 1")


@dataclass(frozen=True)
class Verification:
    ok: bool
    left: Decimal  # cash + cost basis
    right: Decimal  # initial + realized − fees
    history_ok: bool  # the account's totals equal the sums over trading_history

    @property
    def difference(self) -> Decimal:
        return self.left - self.right


async def verify(conn: asyncpg.Connection | asyncpg.Pool) -> Verification:
    row = await conn.fetchrow(
        """SELECT a.cash, a.initial_balance, a.realized_pnl, a.fees_paid,
                  a.realized_pnl_before_reset AS pnl_before, a.fees_before_reset AS fees_before,
                  (SELECT COALESCE(sum(cost_basis), 0) FROM positions) AS cost,
                  (SELECT COALESCE(sum(fee), 0) FROM trading_history) AS fees_h,
                  (SELECT COALESCE(sum(realized_pnl), 0) FROM trading_history) AS pnl_h
           FROM account_state a WHERE a.id = 1"""
    )
    if row is None:
        return Verification(True, ZERO, ZERO, True)
    left = row["cash"] + row["cost"]
    right = row["initial_balance"] + row["realized_pnl"] - row["fees_paid"]
    # History before an account reset is part of the sums, not of the account's totals.
    history_ok = (
        row["fees_h"] == row["fees_paid"] + row["fees_before"]
        and row["pnl_h"] == row["realized_pnl"] + row["pnl_before"]
    )
    return Verification(left == right and history_ok, left, right, history_ok)
