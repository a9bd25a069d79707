"""The market_data repository: bulk upsert semantics and the closed-candle reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import pytest

from coinpilot.adapters import marketdata as md

T0 = datetime(2024, 3, 1, tzinfo=UTC)
MIN = timedelta(minutes=1)


def row(symbol: str, minute: int, close: str = "100", volume: str = "1") -> md.CandleRow:
    c = Decimal(close)
    return md.CandleRow(
        symbol, "1m", T0 + minute * MIN, c, c + 1, c - 1, c, Decimal(volume), Decimal("10")
    )


async def test_upsert_counts_new_and_changed_rows_only(pool: asyncpg.Pool) -> None:
    """New rows count, identical re-deliveries do not, a revision replaces the stored row."""
    rows = [row("KRW-BTC", m) for m in range(50)]
    assert await md.upsert_candles(pool, rows) == 50
    assert await md.upsert_candles(pool, rows) == 0
    revised = row("KRW-BTC", 10, close="105", volume="2.5")
    assert await md.upsert_candles(pool, [*rows[:5], revised]) == 1
    got = await pool.fetchrow(
        "SELECT close_price, volume FROM market_data WHERE ts = $1", T0 + 10 * MIN
    )
    assert (got["close_price"], got["volume"]) == (Decimal("105"), Decimal("2.5"))
    assert await md.upsert_candles(pool, []) == 0


async def test_a_batch_repeating_a_minute_keeps_its_last_copy(pool: asyncpg.Pool) -> None:
    """Two copies of one minute in a batch: one row, the later values."""
    assert await md.upsert_candles(pool, [row("A", 1, "10"), row("A", 1, "12")]) == 1
    assert await pool.fetchval("SELECT close_price FROM market_data") == Decimal("12")


async def test_a_failed_batch_stores_nothing(pool: asyncpg.Pool) -> None:
    """A row the table refuses rolls back the whole batch."""
    bad = row("A", 3)._replace(low_price=Decimal("-1"))
    with pytest.raises(asyncpg.CheckViolationError):
        await md.upsert_candles(pool, [row("A", 1), row("A", 2), bad])
    assert await pool.fetchval("SELECT count(*) FROM market_data") == 0


async def test_closed_window_per_symbol_in_one_query(pool: asyncpg.Pool) -> None:
    """Each symbol's last N closed minutes, oldest first; unclosed ones and other symbols'
    rows never leak in; a symbol without data maps to empty candles."""
    await md.upsert_candles(pool, [row("A", m, str(100 + m)) for m in range(300)])
    await md.upsert_candles(pool, [row("B", m, str(500 + m)) for m in range(0, 300, 2)])
    now = T0 + 250 * MIN + timedelta(seconds=30)  # minute 250 is still forming
    got = await md.load_closed_candles(pool, ["A", "B", "C"], 100, now)
    assert set(got) == {"A", "B", "C"}
    a, b = got["A"], got["B"]
    assert len(a) == 100
    assert a.last_ts == T0 + 249 * MIN
    assert list(a.close[:3]) == [250.0, 251.0, 252.0]
    assert list(a.ts) == sorted(a.ts)
    assert b.last_ts == T0 + 248 * MIN
    assert b.close[-1] == 748.0
    assert len(got["C"]) == 0
    exactly = await md.load_closed_candles(pool, ["A"], 5, T0 + 250 * MIN)
    assert exactly["A"].last_ts == T0 + 249 * MIN


async def test_closed_window_query_walks_the_primary_key(pool: asyncpg.Pool) -> None:
    """The bot's per-cycle query is an index scan on the primary key, not a table scan."""
    await md.upsert_candles(pool, [row(f"S{s}", m) for s in range(20) for m in range(300)])
    await pool.execute("ANALYZE market_data")
    plan = "\n".join(
        r[0]
        for r in await pool.fetch(
            "EXPLAIN " + md._LAST_CLOSED_MANY, [f"S{s}" for s in range(20)], 200, T0 + 400 * MIN
        )
    )
    assert "market_data_pkey" in plan
    assert "Seq Scan on market_data" not in plan


async def test_range_newest_and_count(pool: asyncpg.Pool) -> None:
    """Range reads are start-inclusive and end-exclusive; newest is per symbol."""
    await md.upsert_candles(pool, [row("A", m) for m in range(10)])
    got = await md.load_range(pool, "A", T0 + 2 * MIN, T0 + 5 * MIN)
    assert [int(t) for t in got.ts] == [int((T0 + m * MIN).timestamp()) for m in (2, 3, 4)]
    assert await md.newest_closed_ts(pool, "A") == T0 + 9 * MIN
    assert await md.newest_closed_ts(pool, "Z") is None
    assert await md.newest_closed_ts_many(pool, ["A", "Z"]) == {"A": T0 + 9 * MIN, "Z": None}
    assert await md.count_range(pool, "A", T0, T0 + 4 * MIN) == 4
    last = await md.load_last_closed(pool, "A", 3, T0 + 8 * MIN)
    assert last.last_ts == T0 + 7 * MIN
    assert len(last) == 3


async def test_awkward_text_survives_the_copy(pool: asyncpg.Pool) -> None:
    """Commas and quotes in a market code (a bad --symbol) cannot break the COPY framing."""
    odd = 'X,"Y'
    assert await md.upsert_candles(pool, [row(odd, 1), row("A", 1)]) == 2
    assert await md.newest_closed_ts(pool, odd) == T0 + MIN
