"""`coinpilot import-csv FILE... [--symbol S]`: seed market_data from candle CSV files.

Every file is read and checked completely before anything is written; bad rows are listed
with their line numbers and then nothing at all is stored. All files go in through one
transaction, so an import is all or nothing. Re-importing a file is a no-op.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from pathlib import Path

import asyncpg

from coinpilot.adapters import db
from coinpilot.adapters.csvdata import CsvFormatError, read_csv
from coinpilot.adapters.marketdata import CandleRow, upsert_candles
from coinpilot.config import Settings
from coinpilot.errors import DependencyDown

HELP = "load candle CSV files (symbol,ts_utc,open,high,low,close,volume,value_krw)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE")
    parser.add_argument("--symbol", help="store every row under this market code instead")


def read_all(files: list[Path], symbol: str | None) -> list[CandleRow]:
    """Rows of every file; raises CsvFormatError/OSError before anything is written."""
    rows: list[CandleRow] = []
    for path in files:
        rows.extend(read_csv(path, symbol))
    return rows


async def store(settings: Settings, rows: list[CandleRow]) -> int:
    from coinpilot.app import resolve_urls

    async with contextlib.AsyncExitStack() as stack:
        dsn, _ = await resolve_urls(stack, settings)
        pool = await db.create_pool(dsn, min_size=1, max_size=1)
        stack.push_async_callback(pool.close)
        async with pool.acquire() as conn:
            await db.migrate(conn)
            return await upsert_candles(conn, rows)


def main(args: argparse.Namespace, settings: Settings) -> int:
    started = time.perf_counter()
    try:
        rows = read_all(args.files, args.symbol)
    except CsvFormatError as exc:
        for problem in exc.problems:
            print(f"{exc.path}:{problem.line}: {problem.reason}", file=sys.stderr)
        print(f"coinpilot import-csv: {exc.path}: nothing imported", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"coinpilot import-csv: {exc}; nothing imported", file=sys.stderr)
        return 1
    try:
        stored = asyncio.run(store(settings, rows))
    except DependencyDown as exc:
        print(f"coinpilot import-csv: {exc}; nothing imported", file=sys.stderr)
        return 1
    except asyncpg.PostgresError as exc:
        print(f"coinpilot import-csv: database refused the rows ({exc}); nothing imported",
              file=sys.stderr)  # fmt: skip
        return 1
    seconds = time.perf_counter() - started
    symbols = sorted({r.symbol for r in rows})
    print(
        f"rows read: {len(rows)}, rows stored: {stored}, symbols: {','.join(symbols)}, "
        f"seconds: {seconds:.1f}"
    )
    return 0
