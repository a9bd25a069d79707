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
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg

from coinpilot.adapters.csvdata import NUMBERS, CsvFormatError, read_frame
from coinpilot.adapters.marketdata import INTERVAL, insert_csv
from coinpilot.config import Settings
from coinpilot.errors import DependencyDown

if TYPE_CHECKING:
    import polars as pl


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE")
    parser.add_argument("--symbol", help="store every row under this market code instead")


def read_all(files: list[Path], symbol: str | None) -> pl.DataFrame:
    """Rows of every file; raises CsvFormatError/OSError before anything is written.
    When files overlap, the last file's copy of a minute wins (one row per key for COPY)."""
    import polars as pl

    frames = [read_frame(path, symbol) for path in files]
    rows = pl.concat(frames) if len(frames) > 1 else frames[0]
    if len(frames) > 1:
        rows = rows.unique(subset=["symbol", "ts"], keep="last", maintain_order=True)
    return rows


def copy_payload(rows: pl.DataFrame) -> bytes:
    """market_data rows as COPY CSV text: the numbers exactly as the files wrote them."""
    import polars as pl

    table = rows.select(
        "symbol",
        pl.lit(INTERVAL).alias("interval"),
        pl.col("ts").dt.strftime("%Y-%m-%dT%H:%M:%S+00"),
        *(f"{n}_text" for n in NUMBERS),
    )
    return table.write_csv(include_header=False).encode()


def spans(rows: pl.DataFrame) -> list[tuple[str, datetime, datetime]]:
    """(symbol, first, last candle time) of each symbol in ``rows``."""
    import polars as pl

    agg = rows.group_by("symbol").agg(
        pl.col("ts").min().alias("lo"), pl.col("ts").max().alias("hi")
    )
    return [(str(s), lo, hi) for s, lo, hi in agg.iter_rows()]


async def store(settings: Settings, rows: pl.DataFrame) -> int:
    from coinpilot.app import open_database

    async with contextlib.AsyncExitStack() as stack:
        pool = await open_database(stack, settings, max_size=1)
        if rows.height == 0:
            return 0
        async with pool.acquire() as conn:
            return await insert_csv(conn, copy_payload(rows), spans(rows))


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
    symbols = sorted(rows["symbol"].unique().to_list())
    print(
        f"rows read: {rows.height}, rows stored: {stored}, symbols: {','.join(symbols)}, "
        f"seconds: {seconds:.1f}"
    )
    return 0
