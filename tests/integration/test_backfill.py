"""Backfill against the local Upbit fake at the real limit: exact, idempotent, crash-safe."""

from __future__ import annotations

import asyncio
import math
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from coinpilot.adapters.csvdata import read_csv
from coinpilot.adapters.marketdata import COLUMNS, CandleRow
from coinpilot.adapters.upbit import UpbitClient
from coinpilot.clock import SystemClock
from coinpilot.observability import Metrics
from coinpilot.services.collector import CandleFiller
from tests.fakes.upbit import FakeUpbit, running_fake_upbit

ROOT = Path(__file__).resolve().parents[2]
BTC_FILE = "upbit_KRW-BTC_1m_2018-01-25_2018-02-01.csv"
START = datetime(2018, 1, 25, 6, 42, tzinfo=UTC)
END = datetime(2018, 2, 1, 5, 21, tzinfo=UTC)  # just after the file's last candle


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def stored_rows(pool: asyncpg.Pool, symbol: str = "KRW-BTC") -> list[CandleRow]:
    records = await pool.fetch(
        f"SELECT {', '.join(COLUMNS)} FROM market_data WHERE symbol = $1 ORDER BY ts", symbol
    )
    return [CandleRow(*r.values()) for r in records]


async def test_backfill_stores_the_file_row_for_row_with_no_429_and_is_idempotent(
    pool: asyncpg.Pool, http: aiohttp.ClientSession, data_dir: Path
) -> None:
    """The whole week comes back exactly as the file has it; a second run stores nothing."""
    expected = read_csv(data_dir / BTC_FILE)
    fake = FakeUpbit(limit_per_s=10)
    fake.add_rows(expected)
    async with running_fake_upbit(fake) as (_, url):
        client = UpbitClient(http, url, clock=SystemClock(), metrics=Metrics())
        filler = CandleFiller(client, pool, client.metrics)
        first = await filler.fill("KRW-BTC", START, END, datetime.now(UTC))
        assert first.stored == len(expected)
        assert await stored_rows(pool) == expected
        again = await filler.fill("KRW-BTC", START, END, datetime.now(UTC))
        assert again.stored == 0
        assert fake.stats["429"] == 0
        assert fake.max_count_seen <= 200
    assert await stored_rows(pool) == expected


async def test_windows_without_trades_are_requested_once(
    pool: asyncpg.Pool, http: aiohttp.ClientSession, data_dir: Path
) -> None:
    """A 10-hour trading gap costs its windows once; the fill neither loops nor invents rows."""
    rows = read_csv(data_dir / BTC_FILE)[:2000]
    hole = [r for i, r in enumerate(rows) if not 300 <= i < 900]
    fake = FakeUpbit(limit_per_s=None)
    fake.add_rows(hole)
    async with running_fake_upbit(fake) as (_, url):
        client = UpbitClient(http, url, clock=SystemClock(), metrics=Metrics())
        filler = CandleFiller(client, pool, client.metrics)
        end = rows[-1].ts + timedelta(minutes=1)
        result = await filler.fill("KRW-BTC", START, end, datetime.now(UTC))
        assert result.requests == 10  # 2,000 minutes in windows of 200
        assert await stored_rows(pool) == hole


def _env(db_dsn: str, redis_url: str, upbit_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COINPILOT_")}
    env.update(
        COINPILOT_DATABASE_URL=db_dsn,
        COINPILOT_REDIS_URL=redis_url,
        COINPILOT_UPBIT_URL=upbit_url,
        COINPILOT_CONFIG=str(ROOT / "config" / "coinpilot.yaml"),
    )
    return env


async def _spawn(env: dict[str, str]) -> asyncio.subprocess.Process:
    args = ["--symbols", "KRW-BTC", "--from", START.isoformat(), "--to", END.isoformat()]
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "coinpilot",
        "backfill",
        *args,
        "--no-progress",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _count(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM market_data WHERE symbol = 'KRW-BTC'"))


async def test_sigkill_mid_backfill_then_rerun_finishes_without_gaps_or_duplicates(
    pool: asyncpg.Pool, db_dsn: str, redis_url_base: str, data_dir: Path
) -> None:
    """A backfill process killed with SIGKILL resumes where it stopped and ends exact."""
    expected = read_csv(data_dir / BTC_FILE)
    fake = FakeUpbit(limit_per_s=10)
    fake.add_rows(expected)
    async with running_fake_upbit(fake) as (_, url):
        env = _env(db_dsn, redis_url_base, url)
        proc = await _spawn(env)
        while await _count(pool) < 3000:
            assert proc.returncode is None, (await proc.communicate())[1].decode()[-2000:]
            await asyncio.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        at_kill = await _count(pool)
        assert 3000 <= at_kill < len(expected)
        # The killed process may have used part of the current second's budget, which a
        # fresh process cannot know about; real restarts take longer than a second anyway.
        fake.let_a_second_pass()
        rerun = await _spawn(env)
        out, err = await asyncio.wait_for(rerun.communicate(), timeout=120)
        assert rerun.returncode == 0, err.decode()[-2000:]
        final = re.search(r"candles stored: (\d+), requests: (\d+)", out.decode())
        assert final is not None, out.decode()
        assert int(final.group(1)) == len(expected) - at_kill
        full_run = math.ceil(len(expected) / 200)  # requests of 200 candles
        assert int(final.group(2)) < full_run  # resumed, not started over
        assert fake.stats["429"] == 0
    assert await stored_rows(pool) == expected
