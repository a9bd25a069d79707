"""`coinpilot import-csv`: whole files in, bad files rejected by line with nothing stored."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from coinpilot.adapters.csvdata import read_csv
from coinpilot.adapters.marketdata import insert_csv
from coinpilot.commands import import_csv
from coinpilot.config import Settings

BTC_FILE = "upbit_KRW-BTC_1m_2018-01-25_2018-02-01.csv"
ETH_FILE = "binance_ETHUSDT_1m_2025-12-18_2025-12-29.csv"


@pytest.fixture
def settings(make_settings: Callable[..., Settings], db_dsn: str, redis_url_base: str) -> Settings:
    return make_settings(
        env={"COINPILOT_DATABASE_URL": db_dsn, "COINPILOT_REDIS_URL": redis_url_base}
    )


def run(settings: Settings, *files: Path, symbol: str | None = None) -> int:
    args = argparse.Namespace(files=list(files), symbol=symbol)
    return import_csv.main(args, settings)


async def count(pool: asyncpg.Pool, symbol: str) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM market_data WHERE symbol = $1", symbol))


async def test_import_loads_every_row_and_a_rerun_changes_nothing(
    settings: Settings,
    pool: asyncpg.Pool,
    data_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The real week of KRW-BTC goes in exactly; importing it again stores no row."""
    path = data_dir / BTC_FILE
    assert await _to_thread(run, settings, path) == 0
    assert "rows stored: 9999" in capsys.readouterr().out
    rows = await pool.fetch(
        """SELECT symbol, interval, ts, open_price, high_price, low_price, close_price,
                  volume, value_krw FROM market_data ORDER BY ts"""
    )
    assert [tuple(r.values()) for r in rows] == [tuple(r) for r in read_csv(path)]
    assert await _to_thread(run, settings, path) == 0
    assert "rows stored: 0" in capsys.readouterr().out


async def test_symbol_override_stores_under_the_given_market(
    settings: Settings, pool: asyncpg.Pool, data_dir: Path
) -> None:
    """A Binance file imported as KRW-ETH lands under KRW-ETH with no value_krw."""
    assert await _to_thread(run, settings, data_dir / ETH_FILE, symbol="KRW-ETH") == 0
    assert await count(pool, "KRW-ETH") == 15840
    assert await count(pool, "ETHUSDT") == 0
    nulls = await pool.fetchval("SELECT count(*) FROM market_data WHERE value_krw IS NULL")
    assert nulls == 15840


async def test_a_bad_file_reports_line_numbers_and_nothing_is_committed(
    settings: Settings,
    pool: asyncpg.Pool,
    data_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """One good file plus one with bad rows: every bad line is named, no row of either lands."""
    lines = (data_dir / BTC_FILE).read_text().splitlines()[:50]
    lines[10] = lines[10].replace(",13", ",-13", 1)  # a negative open price
    lines[20] = "KRW-BTC,2018-01-25T07:01:00Z,1,2,3"  # too few fields
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(lines) + "\n")
    status = await _to_thread(run, settings, data_dir / BTC_FILE, bad)
    err = capsys.readouterr().err
    assert status == 1
    assert f"{bad}:11:" in err
    assert f"{bad}:21:" in err
    assert "nothing imported" in err
    assert await count(pool, "KRW-BTC") == 0


async def test_an_hourly_file_given_as_minutes_is_refused(
    settings: Settings, pool: asyncpg.Pool, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The shared 60-minute ETH file is named as not 1-minute and nothing is stored."""
    path = data_dir / "upbit_KRW-ETH_60m_2023-12-31_2024-12-30.csv"
    assert await _to_thread(run, settings, path) == 1
    err = capsys.readouterr().err
    assert f"{path}:3: candles of KRW-ETH are 1 h apart" in err
    assert "nothing imported" in err
    assert await count(pool, "KRW-ETH") == 0


async def test_a_minute_stored_after_the_span_check_falls_back_to_the_upsert(
    pool: asyncpg.Pool, data_dir: Path
) -> None:
    """A direct COPY that meets a stored key (a writer got there after the check) is rolled
    back to its savepoint and the rows are merged instead: nothing fails, nothing doubles."""
    rows = import_csv.read_all([data_dir / BTC_FILE], None).head(10)
    one = rows.slice(5, 1)
    long_ago = datetime(2000, 1, 1, tzinfo=UTC)
    async with pool.acquire() as conn:
        assert await insert_csv(conn, import_csv.copy_payload(one), import_csv.spans(one)) == 1
        # Spans that miss the stored minute, as if it had been written after the check.
        stored = await insert_csv(
            conn, import_csv.copy_payload(rows), [("KRW-BTC", long_ago, long_ago)]
        )
    assert stored == 9  # the identical stored minute is no change
    assert await count(pool, "KRW-BTC") == 10


async def _to_thread(fn: Callable[..., int], *args: object, **kwargs: object) -> int:
    """The command runs its own event loop, so it needs a thread of its own here."""
    import asyncio

    return await asyncio.to_thread(fn, *args, **kwargs)
