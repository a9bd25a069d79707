"""A backtest over history read from market_data equals the same backtest over the CSV file."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from coinpilot.adapters.csvdata import read_csv, to_candles
from coinpilot.adapters.marketdata import upsert_candles
from coinpilot.backtest.data import DataError, load_db
from coinpilot.backtest.engine import run_backtest

ETH = "binance_ETHUSDT_1m_2025-12-18_2025-12-29.csv"


async def test_db_history_gives_the_csv_result(
    data_dir: Path, pool: asyncpg.Pool, make_settings: Any
) -> None:
    """Stored candles (NUMERIC → float) drive exactly the trades the CSV floats drive."""
    rows = read_csv(data_dir / ETH, "KRW-ETH")
    await upsert_candles(pool, rows)
    app = make_settings().app
    from_csv = await run_backtest({"KRW-ETH": to_candles(rows, "KRW-ETH")}, app)
    start, end = datetime(2025, 12, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)
    stored = await load_db(pool, ["KRW-ETH"], start, end)
    from_db = await run_backtest(stored, app)
    assert len(stored["KRW-ETH"]) == len(rows)
    assert from_csv.trades
    assert from_db.trades == from_csv.trades
    assert from_db.final_cash == from_csv.final_cash


async def test_db_symbol_without_history_is_an_error(pool: asyncpg.Pool) -> None:
    """Asking for a market with nothing stored in the range says so instead of running empty."""
    start, end = datetime(2025, 12, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(DataError, match="KRW-NONE"):
        await load_db(pool, ["KRW-NONE"], start, end)


async def test_a_window_from_the_database_reproduces_the_csv_window(
    data_dir: Path,
    pool: asyncpg.Pool,
    db_dsn: str,
    redis_url_base: str,
    make_settings: Any,
    tmp_path: Path,
) -> None:
    """`--symbols --start --end` reads the regime's look-back before --start from the
    database and gives the trades the same window gives over the CSV file."""
    import argparse
    import asyncio
    import json

    from coinpilot.commands import backtest

    rows = read_csv(data_dir / ETH, "KRW-ETH")
    await upsert_candles(pool, rows)
    settings = make_settings(
        env={"COINPILOT_DATABASE_URL": db_dsn, "COINPILOT_REDIS_URL": redis_url_base}
    )
    window = ["--start", "2025-12-27", "--end", "2025-12-29T12:00", "--quiet"]
    docs = []
    for source in (["--csv", f"{data_dir / ETH}=KRW-ETH"], ["--symbols", "KRW-ETH"]):
        parser = argparse.ArgumentParser()
        backtest.add_arguments(parser)
        out = tmp_path / f"{source[0].strip('-')}.json"
        args = parser.parse_args([*source, *window, "--json", str(out)])
        assert await asyncio.to_thread(backtest.main, args, settings) == 0
        docs.append(json.loads(out.read_text()))
    from_csv, from_db = docs
    assert from_csv["trades"]
    assert from_db["trades"] == from_csv["trades"]
    assert from_db["meta"]["from"] == from_csv["meta"]["from"]
    assert from_db["summary"] == from_csv["summary"]
