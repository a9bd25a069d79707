"""Loading the shared real-candle CSVs into market_data for the job tests."""

from __future__ import annotations

import functools
from datetime import datetime
from pathlib import Path

import asyncpg

from coinpilot.adapters.csvdata import read_csv
from coinpilot.adapters.marketdata import CandleRow, upsert_candles


@functools.cache
def parsed(path: Path) -> tuple[CandleRow, ...]:
    """Each file is parsed once per test session; tests only read the rows."""
    return tuple(read_csv(path))


async def load_csv(
    pool: asyncpg.Pool, path: Path, symbol: str, last: int | None = None
) -> datetime:
    """Store the file's candles (only the last N when given) as ``symbol``; returns the last ts."""
    rows = parsed(path)
    if last is not None:
        rows = rows[-last:]
    rows = tuple(r._replace(symbol=symbol) for r in rows)
    await upsert_candles(pool, rows)
    return rows[-1].ts
