"""The volatility job over every real 1-minute file, off the event loop."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import redis.asyncio as aioredis

from coinpilot.adapters.cache import Keys
from coinpilot.app import Deps
from coinpilot.config import Settings
from coinpilot.domain.volatility import VolatilityEstimate, estimate_volatility
from coinpilot.httpserver import start_http
from coinpilot.observability import Metrics
from coinpilot.services.jobs import JobContext
from coinpilot.services.jobs.volatility import missing_state, run_volatility_job
from tests.integration.jobdata import load_csv

FILES = {
    "KRW-BTC": "upbit_KRW-BTC_1m_2018-01-25_2018-02-01.csv",
    "KRW-WBTC": "binance_BTCUSDT_1m_2024-02-01_2024-02-29.csv",
    "KRW-ETH": "binance_ETHUSDT_1m_2025-12-18_2025-12-29.csv",
    "KRW-AVAX": "binance_AVAXUSDT_1m_2025-02-01_2025-02-28.csv",
}


def one_minute_files(data_dir: Path) -> list[str]:
    return sorted(p.name for p in data_dir.glob("*_1m_*.csv"))


def context(
    settings: Settings, pool: asyncpg.Pool, redis: aioredis.Redis, keys: Keys
) -> JobContext:
    return JobContext(settings=settings, pool=pool, redis=redis, keys=keys, metrics=Metrics())


async def test_every_one_minute_file_gets_a_state(
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    keys: Keys,
    data_dir: Path,
    make_settings: Callable[..., Settings],
) -> None:
    """Each real 1-minute file yields a published state and gauges for its symbol."""
    assert one_minute_files(data_dir) == sorted(FILES.values())
    lasts = [await load_csv(pool, data_dir / name, sym, last=1200) for sym, name in FILES.items()]
    ctx = context(make_settings(symbols=list(FILES)), pool, redis, keys)
    now = max(lasts) + timedelta(minutes=1)
    assert await missing_state(ctx)
    await run_volatility_job(ctx, now)
    for symbol in FILES:
        state = json.loads(await redis.get(keys.volatility(symbol)))
        assert 0 < state["volatility_pct"] < 2.0
        assert state["is_high"] is False
        assert state["computed_at"] == now.isoformat()
        assert ctx.metrics.volatility.labels(symbol=symbol)._value.get() == state["volatility_pct"]
        row = await pool.fetchrow("SELECT * FROM volatility_state WHERE symbol = $1", symbol)
        assert (row["volatility_pct"], row["is_high"], row["computed_at"]) == (
            state["volatility_pct"], False, now)  # fmt: skip
    assert not await missing_state(ctx)


async def test_low_threshold_flags_high_volatility(
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    keys: Keys,
    data_dir: Path,
    make_settings: Callable[..., Settings],
) -> None:
    """With a threshold below the forecast the flag and gauge say high."""
    last = await load_csv(pool, data_dir / FILES["KRW-AVAX"], "KRW-AVAX", last=1000)
    settings = make_settings(symbols=["KRW-AVAX"], volatility={"threshold_pct": 0.001})
    ctx = context(settings, pool, redis, keys)
    await run_volatility_job(ctx, last + timedelta(minutes=1))
    assert json.loads(await redis.get(keys.volatility("KRW-AVAX")))["is_high"] is True
    assert ctx.metrics.high_volatility.labels(symbol="KRW-AVAX")._value.get() == 1


async def test_too_few_candles_keep_the_previous_state(
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    keys: Keys,
    data_dir: Path,
    make_settings: Callable[..., Settings],
) -> None:
    """Under min_candles the symbol is skipped and its earlier state stays untouched."""
    last = await load_csv(pool, data_dir / FILES["KRW-ETH"], "KRW-ETH", last=300)
    previous = json.dumps({"volatility_pct": 0.1, "is_high": False, "computed_at": "x"})
    await redis.set(keys.volatility("KRW-ETH"), previous)
    ctx = context(make_settings(symbols=["KRW-ETH"]), pool, redis, keys)
    detail = await run_volatility_job(ctx, last + timedelta(minutes=1))
    assert detail == "KRW-ETH=skipped"
    assert await redis.get(keys.volatility("KRW-ETH")) == previous


FIT_IN_CHILD = """
import asyncio, json, sys
import numpy as np
from coinpilot.services.jobs.fit_pool import fit_pool

closes = np.array(json.loads(sys.stdin.read()))

async def main():
    async with fit_pool() as fit:
        est = await fit(closes, threshold_pct=2.0, min_returns=100)
    loaded = sorted(m for m in ("arch", "scipy") if m in sys.modules)
    print(json.dumps([est.volatility_pct, est.status, loaded]))

asyncio.run(main())
"""


def test_the_fit_runs_in_a_child_and_the_caller_never_imports_arch(data_dir: Path) -> None:
    """A fresh process fits through the pool and ends without arch or scipy loaded; the
    child's answer is the one the same fit gives in this process."""
    from coinpilot.adapters.csvdata import load_candles

    closes = load_candles(data_dir / FILES["KRW-AVAX"]).close[-1000:]
    proc = subprocess.run(
        [sys.executable, "-c", FIT_IN_CHILD],
        input=json.dumps(closes.tolist()),
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    vol, status, loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert loaded == []
    assert status == "ok"
    here = estimate_volatility(closes, threshold_pct=2.0, min_returns=100)
    assert vol == here.volatility_pct


async def test_health_answers_while_a_fit_runs(
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    keys: Keys,
    data_dir: Path,
    make_settings: Callable[..., Settings],
) -> None:
    """/health is served while the GARCH fit is still in progress in its worker thread."""
    last = await load_csv(pool, data_dir / FILES["KRW-AVAX"], "KRW-AVAX", last=1000)
    settings = make_settings(symbols=["KRW-AVAX"])
    started, release = threading.Event(), threading.Event()

    def held_fit(closes: Any, **kwargs: Any) -> VolatilityEstimate:
        started.set()
        release.wait(30)
        return estimate_volatility(closes, **kwargs)

    async with aiohttp.ClientSession() as http:
        deps = Deps(settings=settings, pool=pool, redis=redis, http=http, keys=keys)
        runner, port = await start_http(deps, "127.0.0.1", 0)
        try:
            ctx = context(settings, pool, redis, keys)
            job = asyncio.create_task(
                run_volatility_job(ctx, last + timedelta(minutes=1), estimator=held_fit)
            )
            assert await asyncio.to_thread(started.wait, 30)
            async with http.get(f"http://127.0.0.1:{port}/health") as resp:
                body = await resp.json()
            assert resp.status == 200
            assert body["database"] is True
            assert not job.done()
            release.set()
            detail = await job
            vol = json.loads(await redis.get(keys.volatility("KRW-AVAX")))["volatility_pct"]
            assert detail == f"KRW-AVAX={vol:.4f}%"
        finally:
            release.set()
            await runner.cleanup()
