"""The market_data repository: bulk upsert of closed candles and the reads everyone shares.

Writes go through COPY (CSV text) into a per-connection temporary staging table and one
``INSERT ... ON CONFLICT DO UPDATE``: tens of thousands of rows per second instead of one
round trip per candle, and a revised closed minute replaces the stored row. Reads return
``Candles`` (float columns) for indicators; the ledger re-reads exact prices itself.

Every stored row is a closed minute (the collector never stores the forming one), but the
reads still cut at ``ts + 60 s <= now`` so a replay clock behind the data sees no future.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import NamedTuple

import asyncpg
import numpy as np

from coinpilot.domain.candles import Candles

INTERVAL = "1m"
MINUTE = timedelta(seconds=60)

COLUMNS = (
    "symbol",
    "interval",
    "ts",
    "open_price",
    "high_price",
    "low_price",
    "close_price",
    "volume",
    "value_krw",
)


class CandleRow(NamedTuple):
    """One market_data row, exact values, in table column order."""

    symbol: str
    interval: str
    ts: datetime
    open_price: Decimal
    high_price: Decimal
    low_price: Decimal
    close_price: Decimal
    volume: Decimal
    value_krw: Decimal | None


_STAGE = "cp_market_data_stage"
_CREATE_STAGE = f"""
CREATE TEMP TABLE IF NOT EXISTS {_STAGE} (
    symbol varchar(20), interval varchar(10), ts timestamptz,
    open_price numeric, high_price numeric, low_price numeric, close_price numeric,
    volume numeric, value_krw numeric
) ON COMMIT DELETE ROWS
"""
# The WHERE clause makes an identical re-delivery a no-op, so the count is "rows changed".
_UPSERT = f"""
INSERT INTO market_data AS m ({", ".join(COLUMNS)})
SELECT {", ".join(COLUMNS)} FROM {_STAGE}
ON CONFLICT (symbol, interval, ts) DO UPDATE SET
    open_price = EXCLUDED.open_price, high_price = EXCLUDED.high_price,
    low_price = EXCLUDED.low_price, close_price = EXCLUDED.close_price,
    volume = EXCLUDED.volume, value_krw = EXCLUDED.value_krw
WHERE (m.open_price, m.high_price, m.low_price, m.close_price, m.volume, m.value_krw)
      IS DISTINCT FROM
      (EXCLUDED.open_price, EXCLUDED.high_price, EXCLUDED.low_price, EXCLUDED.close_price,
       EXCLUDED.volume, EXCLUDED.value_krw)
"""


def _csv_bytes(rows: Sequence[CandleRow]) -> bytes:
    """COPY's CSV text: decimals go over the wire as written, and text COPY parses faster
    on the server than Python encodes binary numerics (about twice the rows per second).
    The stdlib writer quotes any field that needs it; None becomes an unquoted empty (NULL)."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode()


async def _upsert_on(conn: asyncpg.Connection, rows: Sequence[CandleRow]) -> int:
    for r in rows:
        if r.ts.tzinfo is None:
            raise ValueError(f"candle time without a zone: {r.symbol} {r.ts}")
    return await upsert_csv(conn, _csv_bytes(rows))


async def upsert_csv(conn: asyncpg.Connection, payload: bytes) -> int:
    """Store rows already in COPY's CSV text (COLUMNS order, zoned times, one row per key)
    in one transaction; returns the number of rows inserted or changed."""
    async with conn.transaction():
        await conn.execute(_CREATE_STAGE)
        await conn.copy_to_table(_STAGE, source=io.BytesIO(payload), columns=COLUMNS, format="csv")
        status = await conn.execute(_UPSERT)
    return int(status.rsplit(" ", 1)[-1])


# Whether any stored row falls in one of the given (symbol, first, last) spans.
_ANY_STORED = f"""
SELECT EXISTS (
    SELECT 1 FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[]) AS s(symbol, lo, hi)
    WHERE EXISTS (SELECT 1 FROM market_data m WHERE m.symbol = s.symbol
                  AND m.interval = '{INTERVAL}' AND m.ts BETWEEN s.lo AND s.hi)
)
"""


async def insert_csv(
    conn: asyncpg.Connection,
    payload: bytes,
    spans: Sequence[tuple[str, datetime, datetime]],
) -> int:
    """``upsert_csv`` for bulk imports: when nothing is stored yet in any (symbol, first,
    last) span of the payload, COPY goes straight into market_data (half the server's work
    of staging and merging); a writer that stores one of those minutes meanwhile makes the
    direct COPY fail on the key, and the rows then go the staged way. One transaction."""
    symbols, los, his = (list(col) for col in zip(*spans, strict=True)) if spans else ([], [], [])
    async with conn.transaction():
        if spans and not await conn.fetchval(_ANY_STORED, symbols, los, his):
            try:
                async with conn.transaction():
                    status = await conn.copy_to_table(
                        "market_data", source=io.BytesIO(payload), columns=COLUMNS, format="csv"
                    )
                return int(status.rsplit(" ", 1)[-1])
            except asyncpg.UniqueViolationError:
                pass
        return await upsert_csv(conn, payload)


async def upsert_candles(
    conn_or_pool: asyncpg.Connection | asyncpg.Pool, rows: Iterable[CandleRow]
) -> int:
    """Store closed candles in one transaction; returns the number of rows inserted or changed."""
    # ON CONFLICT refuses a key twice in one statement; the last copy of a minute wins.
    batch = list({(r.symbol, r.interval, r.ts): r for r in rows}.values())
    if not batch:
        return 0
    if isinstance(conn_or_pool, asyncpg.Pool):
        async with conn_or_pool.acquire() as conn:
            return await _upsert_on(conn, batch)
    return await _upsert_on(conn_or_pool, batch)


class StoredMinute(NamedTuple):
    symbol: str
    ts: datetime
    inserted: bool  # False: the minute was stored before and its values changed


async def upsert_candles_changed(
    conn_or_pool: asyncpg.Connection | asyncpg.Pool, rows: Iterable[CandleRow]
) -> list[StoredMinute]:
    """``upsert_candles`` that names the minutes it inserted or changed, oldest first.

    The list is read after the commit, so a caller may announce those minutes at once."""
    batch = list({(r.symbol, r.interval, r.ts): r for r in rows}.values())
    if not batch:
        return []
    for r in batch:
        if r.ts.tzinfo is None:
            raise ValueError(f"candle time without a zone: {r.symbol} {r.ts}")
    payload = _csv_bytes(batch)
    if isinstance(conn_or_pool, asyncpg.Pool):
        async with conn_or_pool.acquire() as conn:
            records = await _upsert_returning(conn, payload)
    else:
        records = await _upsert_returning(conn_or_pool, payload)
    changed = [StoredMinute(r["symbol"], r["ts"], r["inserted"]) for r in records]
    return sorted(changed, key=lambda m: (m.ts, m.symbol))


async def _upsert_returning(conn: asyncpg.Connection, payload: bytes) -> list[asyncpg.Record]:
    async with conn.transaction():
        await conn.execute(_CREATE_STAGE)
        await conn.copy_to_table(_STAGE, source=io.BytesIO(payload), columns=COLUMNS, format="csv")
        # xmax is 0 on a freshly inserted row version and set on an updated one.
        return await conn.fetch(_UPSERT + " RETURNING m.symbol, m.ts, (m.xmax = 0) AS inserted")


_SELECT_COLS = """extract(epoch FROM ts)::int8 AS t, open_price::float8 AS o,
    high_price::float8 AS h, low_price::float8 AS l, close_price::float8 AS c,
    volume::float8 AS v"""

# One LATERAL probe per symbol walks the (symbol, interval, ts) primary key backwards.
_LAST_CLOSED_MANY = f"""
SELECT s.symbol, c.* FROM unnest($1::text[]) AS s(symbol)
CROSS JOIN LATERAL (
    SELECT {_SELECT_COLS} FROM market_data m
    WHERE m.symbol = s.symbol AND m.interval = '{INTERVAL}' AND m.ts <= $3
    ORDER BY m.ts DESC LIMIT $2
) c
"""

# Everything newer than a per-symbol cursor: the bot's incremental read of its windows.
_CLOSED_SINCE_MANY = f"""
SELECT s.symbol, c.* FROM unnest($1::text[], $2::timestamptz[]) AS s(symbol, since)
CROSS JOIN LATERAL (
    SELECT {_SELECT_COLS} FROM market_data m
    WHERE m.symbol = s.symbol AND m.interval = '{INTERVAL}' AND m.ts > s.since AND m.ts <= $3
    ORDER BY m.ts
) c
"""

_RANGE = f"""
SELECT {_SELECT_COLS} FROM market_data
WHERE symbol = $1 AND interval = '{INTERVAL}' AND ts >= $2 AND ts < $3
ORDER BY ts
"""


def _to_candles(symbol: str, records: Sequence[asyncpg.Record], newest_first: bool) -> Candles:
    if not records:
        return Candles.empty(symbol)
    arr = np.array([r[-6:] for r in records], dtype=np.float64)
    if newest_first:
        arr = arr[::-1]
    return Candles(
        symbol,
        arr[:, 0].astype(np.int64),
        np.ascontiguousarray(arr[:, 1]),
        np.ascontiguousarray(arr[:, 2]),
        np.ascontiguousarray(arr[:, 3]),
        np.ascontiguousarray(arr[:, 4]),
        np.ascontiguousarray(arr[:, 5]),
    )


def last_closed_start(now: datetime) -> datetime:
    """The latest candle start whose minute has fully passed at ``now``."""
    return now.astimezone(UTC) - MINUTE


async def load_closed_candles(
    pool: asyncpg.Pool | asyncpg.Connection, symbols: Sequence[str], window: int, now: datetime
) -> dict[str, Candles]:
    """The last ``window`` closed 1-minute candles of every symbol, oldest first, one query.

    Every requested symbol is a key; a symbol without data maps to empty ``Candles``.
    """
    records = await pool.fetch(_LAST_CLOSED_MANY, list(symbols), window, last_closed_start(now))
    grouped: dict[str, list[asyncpg.Record]] = {s: [] for s in symbols}
    for rec in records:
        grouped[rec["symbol"]].append(rec)
    return {s: _to_candles(s, recs, newest_first=True) for s, recs in grouped.items()}


async def load_closed_since(
    pool: asyncpg.Pool | asyncpg.Connection, since: dict[str, datetime], now: datetime
) -> dict[str, Candles]:
    """Closed candles strictly after ``since[symbol]``, oldest first, one query."""
    symbols = list(since)
    records = await pool.fetch(
        _CLOSED_SINCE_MANY, symbols, [since[s] for s in symbols], last_closed_start(now)
    )
    grouped: dict[str, list[asyncpg.Record]] = {s: [] for s in symbols}
    for rec in records:
        grouped[rec["symbol"]].append(rec)
    return {s: _to_candles(s, recs, newest_first=False) for s, recs in grouped.items()}


async def load_last_closed(
    pool: asyncpg.Pool | asyncpg.Connection, symbol: str, count: int, now: datetime
) -> Candles:
    """The last ``count`` closed 1-minute candles of one symbol, oldest first."""
    return (await load_closed_candles(pool, [symbol], count, now))[symbol]


async def load_range(
    pool: asyncpg.Pool | asyncpg.Connection, symbol: str, start: datetime, end: datetime
) -> Candles:
    """Candles with ``start <= ts < end``, oldest first."""
    records = await pool.fetch(_RANGE, symbol, start, end)
    return _to_candles(symbol, records, newest_first=False)


async def newest_closed_ts(pool: asyncpg.Pool | asyncpg.Connection, symbol: str) -> datetime | None:
    """Start of the newest stored minute of ``symbol`` (None when there is none)."""
    return await pool.fetchval(
        f"SELECT max(ts) FROM market_data WHERE symbol = $1 AND interval = '{INTERVAL}'",
        symbol,
    )


async def newest_closed_ts_many(
    pool: asyncpg.Pool | asyncpg.Connection, symbols: Sequence[str]
) -> dict[str, datetime | None]:
    """Newest stored minute per symbol, one index probe each."""
    records = await pool.fetch(
        f"""SELECT s.symbol, (SELECT max(ts) FROM market_data m
               WHERE m.symbol = s.symbol AND m.interval = '{INTERVAL}') AS newest
            FROM unnest($1::text[]) AS s(symbol)""",
        list(symbols),
    )
    return {r["symbol"]: r["newest"] for r in records}


async def count_range(
    pool: asyncpg.Pool | asyncpg.Connection, symbol: str, start: datetime, end: datetime
) -> int:
    """How many minutes are stored with ``start <= ts < end``."""
    return int(
        await pool.fetchval(
            f"""SELECT count(*) FROM market_data
                WHERE symbol = $1 AND interval = '{INTERVAL}' AND ts >= $2 AND ts < $3""",
            symbol,
            start,
            end,
        )
    )
