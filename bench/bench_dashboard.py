"""Dashboard figures: latency of each page and API view on a database with a year of history.

The history is large on purpose (200,000 fills, 200,000 AI decisions, 50,000 risk events,
100,000 outbox rows, a week of minutes for five symbols) so a view that scans instead of
using its index shows up here, long before an operator's page slows the bot loop.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp

from bench.bench_marketdata import BTC, DATA, _admin_dsn, _drop_db, _fresh_db
from coinpilot.adapters import db
from coinpilot.adapters.cache import Keys, create_redis
from coinpilot.adapters.csvdata import read_csv
from coinpilot.adapters.marketdata import upsert_candles
from coinpilot.app import Deps
from coinpilot.clock import SimulatedClock
from coinpilot.config import load_config
from coinpilot.httpserver import start_http
from coinpilot.web.routes import install

ROOT = Path(__file__).resolve().parents[1]
SYMBOLS = ("KRW-BTC", "KRW-ETH", "KRW-XRP", "KRW-SOL", "KRW-DOGE")
PATHS = (
    "/api/overview",
    "/api/market/KRW-BTC",
    "/api/market/KRW-BTC?interval=1h",
    "/api/trades?symbol=KRW-ETH&page=20",
    "/api/round-trips?symbol=KRW-ETH&page=20",
    "/api/decisions?day=2018-01-30",
    "/api/risk",
    "/api/system",
    "/",
    "/market?symbol=KRW-BTC",
    "/history?symbol=KRW-BTC",
)
REPEATS = 30

HISTORY_SQL = """
INSERT INTO trading_history (idempotency_key, symbol, side, price, quantity, notional,
    strategy_name, candle_ts, executed_at)
SELECT 'bench|' || g, ($1::text[])[1 + g % 5], CASE WHEN g % 2 = 0 THEN 'BUY' ELSE 'SELL' END,
    1000, 1, 1000, 'AdaptiveMeanReversion', $2::timestamptz - g * interval '150 seconds',
    $2::timestamptz - g * interval '150 seconds'
FROM generate_series(1, 200000) g;
"""
DECISIONS_SQL = """
INSERT INTO agent_decisions (symbol, strategy_name, decision, reasoning, confidence,
    model_used, cost_usd, created_at)
SELECT ($1::text[])[1 + g % 5], 'AdaptiveMeanReversion',
    CASE WHEN g % 3 = 0 THEN 'CONFIRM' ELSE 'REJECT' END, repeat('reasoning ', 40), 60,
    'bench-model', 0.004, $2::timestamptz - g * interval '150 seconds'
FROM generate_series(1, 200000) g;
"""
OTHER_SQL = """
INSERT INTO risk_audit (violation_type, symbol, description, ts)
SELECT 'MAX_POSITIONS', 'KRW-BTC', 'bench', $1::timestamptz - g * interval '10 minutes'
FROM generate_series(1, 50000) g;
INSERT INTO outbox (kind, payload, status, attempts, created_at)
SELECT 'trade', '{}'::jsonb, CASE WHEN g % 50 = 0 THEN 'failed' ELSE 'sent' END, 1,
    $1::timestamptz - g * interval '5 minutes'
FROM generate_series(1, 100000) g;
INSERT INTO regime_history (symbol, regime, hourly_candles, detected_at)
SELECT 'KRW-BTC', (ARRAY['BULL', 'SIDEWAYS', 'BEAR'])[1 + g % 3], 200,
    $1::timestamptz - g * interval '1 hour'
FROM generate_series(1, 8760) g;
"""


async def _seed(pool: Any) -> Any:
    rows = read_csv(DATA / BTC)
    for sym in SYMBOLS:
        await upsert_candles(pool, [r._replace(symbol=sym) for r in rows])
    end = rows[-1].ts
    async with pool.acquire() as conn:
        await conn.execute(HISTORY_SQL.replace(";", ""), list(SYMBOLS), end)
        await conn.execute(DECISIONS_SQL.replace(";", ""), list(SYMBOLS), end)
        for stmt in filter(str.strip, OTHER_SQL.split(";")):
            await conn.execute(stmt, end)
        await conn.execute("ANALYZE")
    return end


async def _time(url: str) -> list[dict[str, Any]]:
    figures = []
    async with aiohttp.ClientSession() as http:
        for path in PATHS:
            samples = []
            for _ in range(REPEATS):
                started = time.perf_counter()
                async with http.get(url + path) as resp:
                    await resp.read()
                    assert resp.status == 200, (path, resp.status)
                samples.append((time.perf_counter() - started) * 1000)
            samples.sort()
            figures.append(
                {
                    "figure": f"dashboard {path} p95",
                    "value": round(samples[int(len(samples) * 0.95) - 1], 1),
                    "unit": "ms",
                    "target": "< 250",
                    "note": f"median {statistics.median(samples):.1f} ms over {REPEATS} requests",
                }
            )
    return figures


async def _main() -> list[dict[str, Any]]:
    stack: list[Any] = []
    admin = _admin_dsn(stack)
    name, dsn = await _fresh_db(admin)
    pool = await db.create_pool(dsn, min_size=1, max_size=4)
    redis = create_redis("redis://127.0.0.1:6379/0")
    try:
        end = await _seed(pool)
        settings = load_config(ROOT / "config" / "coinpilot.yaml", environ={})
        deps = Deps(
            settings=settings,
            pool=pool,
            redis=redis,
            http=aiohttp.ClientSession(),
            clock=SimulatedClock(end + timedelta(seconds=90)),
            keys=Keys(prefix=f"bench{uuid.uuid4().hex[:6]}:"),
        )
        runner, port = await start_http(deps, "127.0.0.1", 0, [install(deps)])
        try:
            return await _time(f"http://127.0.0.1:{port}")
        finally:
            await runner.cleanup()
            await deps.http.close()
    finally:
        await redis.aclose()
        await pool.close()
        await _drop_db(admin, name)
        for server in stack:
            server.stop()


def run() -> list[dict[str, Any]]:
    return asyncio.run(_main())
