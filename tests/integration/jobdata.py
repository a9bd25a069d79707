"""Loading the shared real-candle CSVs into market_data for the job tests."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import asyncpg

COLUMNS = (
    "symbol",
    "interval",
    "ts",
    "open_price",
    "high_price",
    "low_price",
    "close_price",
    "volume",
)


def read_rows(path: Path, symbol: str, last: int | None = None) -> list[tuple[object, ...]]:
    """CSV rows as market_data records (prices kept exact), optionally only the last N."""
    lines = path.read_text(encoding="utf-8").splitlines()[1:]
    if last is not None:
        lines = lines[-last:]
    rows = []
    for line in lines:
        _, ts, o, h, lo, c, v, _value = line.split(",")
        when = datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        rows.append(
            (symbol, "1m", when, Decimal(o), Decimal(h), Decimal(lo), Decimal(c), Decimal(v))
        )
    return rows


async def load_csv(
    pool: asyncpg.Pool, path: Path, symbol: str, last: int | None = None
) -> datetime:
    """COPY the file's candles in as ``symbol``; returns the last candle's start."""
    rows = read_rows(path, symbol, last)
    async with pool.acquire() as conn:
        await conn.copy_records_to_table("market_data", records=rows, columns=COLUMNS)
    return rows[-1][2]  # type: ignore[return-value]
