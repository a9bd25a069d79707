"""Every SQL statement the dashboard runs. Each one is bounded by an index and a LIMIT.

The bot loop shares the pool, so a page must never scan a growing table: lists are read
newest-first through the (symbol, time DESC) / (time DESC) indexes, the latest candle per
symbol through the market_data primary key, and the outbox through its partial index or
a LIMITed tail of its primary key.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

Row = dict[str, Any]

MAX_PAGE_SIZE = 200
MAX_CANDLES = 500
MAX_ROUND_TRIPS = 1000  # the equity curve and the all-time stats read at most this many


@dataclass(frozen=True)
class ListFilter:
    """One page of a history list: optional symbol, optional [start, end) window."""

    symbol: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    limit: int = 50
    offset: int = 0


def _rows(records: list[asyncpg.Record]) -> list[Row]:
    return [dict(r) for r in records]


async def account(conn: asyncpg.Connection) -> Row | None:
    rec = await conn.fetchrow("SELECT * FROM account_state WHERE id = 1")
    return dict(rec) if rec else None


async def positions(conn: asyncpg.Connection) -> list[Row]:
    return _rows(
        await conn.fetch(
            "SELECT symbol, quantity, avg_price, cost_basis, regime, high_water_mark, opened_at"
            " FROM positions ORDER BY symbol LIMIT 100"
        )
    )


async def latest_candles(conn: asyncpg.Connection, symbols: list[str]) -> dict[str, Row]:
    """The newest stored 1-minute candle of each symbol (one PK index probe per symbol)."""
    records = await conn.fetch(
        """
        SELECT s.symbol, m.ts, m.close_price
        FROM unnest($1::text[]) AS s(symbol)
        CROSS JOIN LATERAL (
            SELECT ts, close_price FROM market_data
            WHERE symbol = s.symbol AND interval = '1m'
            ORDER BY ts DESC LIMIT 1
        ) m
        """,
        symbols,
    )
    return {r["symbol"]: dict(r) for r in records}


async def daily_risk(conn: asyncpg.Connection, trade_date: Any) -> Row | None:
    rec = await conn.fetchrow("SELECT * FROM daily_risk_state WHERE trade_date = $1", trade_date)
    return dict(rec) if rec else None


def _where(f: ListFilter, time_col: str, symbol_col: str = "symbol") -> tuple[str, list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []
    if f.symbol is not None:
        args.append(f.symbol)
        clauses.append(f"{symbol_col} = ${len(args)}")
    if f.start is not None:
        args.append(f.start)
        clauses.append(f"{time_col} >= ${len(args)}")
    if f.end is not None:
        args.append(f.end)
        clauses.append(f"{time_col} < ${len(args)}")
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


async def trades(conn: asyncpg.Connection, f: ListFilter) -> list[Row]:
    """Fills, newest first; fetches one extra row so the caller knows if a next page exists.

    A SELL also carries its round trip: the BUY it closed is named in its idempotency key
    (a primary-key probe), so net PnL = gross - both fees, as Discord and the backtest say.
    """
    where, args = _where(f, "executed_at")
    args += [min(f.limit, MAX_PAGE_SIZE) + 1, f.offset]
    sql = (
        "SELECT id, symbol, side, price, quantity, notional, fee, realized_pnl, entry_price,"
        " regime, exit_reason, strategy_name, candle_ts, executed_at,"
        " (SELECT b.fee FROM trading_history b WHERE b.id ="
        " NULLIF(split_part(trading_history.idempotency_key, '|', 4), '')::uuid) AS entry_fee"
        f" FROM trading_history{where}"
        f" ORDER BY executed_at DESC, id LIMIT ${len(args) - 1} OFFSET ${len(args)}"
    )
    rows = _rows(await conn.fetch(sql, *args))
    for row in rows:
        entry_fee = row.pop("entry_fee")
        known = row["side"] == "SELL" and entry_fee is not None
        row["round_trip_fees"] = row["fee"] + entry_fee if known else None
        row["net_pnl"] = row["realized_pnl"] - row["round_trip_fees"] if known else None
    return rows


# A SELL closes the whole position its symbol's last BUY before it opened (one position per
# symbol), so a round trip is a SELL joined to that BUY through the (symbol, time) index.
_ROUND_TRIP = """
    SELECT t.id, t.symbol, t.price AS exit_price, t.quantity, t.notional, t.fee AS exit_fee,
           t.realized_pnl AS gross_pnl, t.entry_price, t.regime, t.exit_reason,
           t.executed_at AS exit_at, b.executed_at AS entry_at,
           COALESCE(b.fee, 0) AS entry_fee,
           COALESCE(t.realized_pnl, 0) - t.fee - COALESCE(b.fee, 0) AS net_pnl
    FROM trading_history t
    LEFT JOIN LATERAL (
        SELECT executed_at, fee FROM trading_history b
        WHERE b.symbol = t.symbol AND b.side = 'BUY' AND b.executed_at <= t.executed_at
          AND b.id <> t.id
        ORDER BY b.executed_at DESC LIMIT 1
    ) b ON true
"""


async def round_trips(conn: asyncpg.Connection, f: ListFilter) -> list[Row]:
    """Closed round trips (SELL with its BUY), newest exit first, one extra row like `trades`."""
    where, args = _where(f, "t.executed_at", "t.symbol")
    where = (where + " AND" if where else " WHERE") + " t.side = 'SELL'"
    args += [min(f.limit, MAX_PAGE_SIZE) + 1, f.offset]
    sql = (
        f"{_ROUND_TRIP}{where}"
        f" ORDER BY t.executed_at DESC, t.id LIMIT ${len(args) - 1} OFFSET ${len(args)}"
    )
    return _rows(await conn.fetch(sql, *args))


async def recent_round_trips(conn: asyncpg.Connection, limit: int = MAX_ROUND_TRIPS) -> list[Row]:
    """The newest ``limit`` closed round trips, oldest first (equity curve and stats)."""
    records = await conn.fetch(
        f"{_ROUND_TRIP} WHERE t.side = 'SELL' ORDER BY t.executed_at DESC, t.id LIMIT $1",
        min(limit, MAX_ROUND_TRIPS),
    )
    return _rows(list(reversed(records)))


async def open_entry_fees(conn: asyncpg.Connection) -> Any:
    """Fees of the BUYs of open positions: paid, but not yet part of any round trip."""
    return await conn.fetchval(
        "SELECT COALESCE(sum(b.fee), 0) FROM (SELECT entry_trade_id FROM positions"
        " ORDER BY symbol LIMIT 100) p"
        " JOIN trading_history b ON b.id = p.entry_trade_id"
    )


async def decisions(conn: asyncpg.Connection, f: ListFilter) -> list[Row]:
    """AI verdicts, newest first, one extra row like `trades`."""
    where, args = _where(f, "created_at")
    args += [min(f.limit, MAX_PAGE_SIZE) + 1, f.offset]
    sql = (
        "SELECT id, symbol, strategy_name, decision, reason_code, reasoning, confidence,"
        " model_used, price_at_decision, regime, candle_ts, latency_ms, input_tokens,"
        " output_tokens, cost_usd, created_at"
        f" FROM agent_decisions{where}"
        f" ORDER BY created_at DESC, id DESC LIMIT ${len(args) - 1} OFFSET ${len(args)}"
    )
    return _rows(await conn.fetch(sql, *args))


async def risk_audit(conn: asyncpg.Connection, limit: int = 50) -> list[Row]:
    return _rows(
        await conn.fetch(
            "SELECT id, violation_type, symbol, description, details, ts"
            " FROM risk_audit ORDER BY ts DESC LIMIT $1",
            min(limit, MAX_PAGE_SIZE),
        )
    )


async def candles_1m(conn: asyncpg.Connection, symbol: str, count: int) -> list[Row]:
    """The newest ``count`` 1-minute candles, oldest first."""
    records = await conn.fetch(
        "SELECT ts, open_price, high_price, low_price, close_price, volume FROM market_data"
        " WHERE symbol = $1 AND interval = '1m' ORDER BY ts DESC LIMIT $2",
        symbol,
        min(count, MAX_CANDLES),
    )
    return _rows(list(reversed(records)))


async def candles_1h(conn: asyncpg.Connection, symbol: str, count: int) -> list[Row]:
    """The newest ``count`` hourly candles built from stored minutes, oldest first.

    Bounded: only the minutes of the last ``count`` hours before the newest candle are read.
    """
    count = min(count, MAX_CANDLES)
    records = await conn.fetch(
        """
        WITH newest AS (
            SELECT ts FROM market_data WHERE symbol = $1 AND interval = '1m'
            ORDER BY ts DESC LIMIT 1
        ), minutes AS (
            SELECT m.* FROM market_data m, newest n
            WHERE m.symbol = $1 AND m.interval = '1m'
              AND m.ts > date_trunc('hour', n.ts, 'UTC') - make_interval(hours => $2)
        )
        SELECT date_trunc('hour', ts, 'UTC') AS ts,
               (array_agg(open_price ORDER BY ts))[1] AS open_price,
               max(high_price) AS high_price,
               min(low_price) AS low_price,
               (array_agg(close_price ORDER BY ts DESC))[1] AS close_price,
               sum(volume) AS volume
        FROM minutes GROUP BY 1 ORDER BY 1 DESC LIMIT $2
        """,
        symbol,
        count,
    )
    return _rows(list(reversed(records)))


async def regimes_between(
    conn: asyncpg.Connection, symbol: str, start: datetime, end: datetime
) -> list[Row]:
    """Regime changes inside the window plus the one in force when it opened."""
    records = await conn.fetch(
        """
        (SELECT regime, detected_at FROM regime_history
         WHERE symbol = $1 AND detected_at <= $2 ORDER BY detected_at DESC LIMIT 1)
        UNION ALL
        (SELECT regime, detected_at FROM regime_history
         WHERE symbol = $1 AND detected_at > $2 AND detected_at <= $3
         ORDER BY detected_at LIMIT 500)
        ORDER BY detected_at
        """,
        symbol,
        start,
        end,
    )
    return _rows(records)


async def trades_between(
    conn: asyncpg.Connection, symbol: str, start: datetime, end: datetime
) -> list[Row]:
    return _rows(
        await conn.fetch(
            "SELECT side, price, quantity, executed_at, candle_ts, exit_reason"
            " FROM trading_history WHERE symbol = $1 AND executed_at >= $2"
            " AND executed_at <= $3 ORDER BY executed_at LIMIT 200",
            symbol,
            start,
            end,
        )
    )


async def job_runs(conn: asyncpg.Connection) -> list[Row]:
    return _rows(
        await conn.fetch(
            "SELECT job, started_at, finished_at, status, detail FROM job_runs"
            " ORDER BY job LIMIT 100"
        )
    )


async def outbox_state(conn: asyncpg.Connection) -> Row:
    """Pending backlog (partial index) and recent failures (a bounded tail by id)."""
    pending = await conn.fetchrow(
        "SELECT count(*) AS pending, min(created_at) AS oldest_pending"
        " FROM outbox WHERE status = 'pending'"
    )
    failures = await conn.fetch(
        """
        SELECT id, kind, status, attempts, last_error, created_at FROM (
            SELECT * FROM outbox ORDER BY id DESC LIMIT 1000
        ) recent WHERE status IN ('failed', 'disabled') ORDER BY id DESC LIMIT 20
        """
    )
    return {
        "pending": pending["pending"] if pending else 0,
        "oldest_pending": pending["oldest_pending"] if pending else None,
        "recent_failures": _rows(failures),
    }
