"""Bot-loop figures: one full cycle (database read through decisions, AI off) for 5, 50 and
200 symbols × 200 closed candles, on a real PostgreSQL and Redis.

A cycle here is what the daemon does each minute: the closed-window query, regime and
volatility reads, the batched indicator pass, the ledger state, exits for open positions,
entries → risk → sizing, and the status publication. Three symbols hold positions so the
exit path runs too. Each timed cycle sees one new closed minute per symbol, as in steady
operation: the bot tops up its in-memory windows instead of re-reading them (the full
200 × 200 read is `marketdata`'s "closed window" figure).
"""

from __future__ import annotations

import asyncio
import math
import os
import socket
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
import structlog

from bench.bench_marketdata import _admin_dsn, _drop_db, _fresh_db
from coinpilot.adapters import db, ledger
from coinpilot.adapters import marketdata as md
from coinpilot.adapters.cache import Keys, create_redis
from coinpilot.clock import SimulatedClock
from coinpilot.config import Settings, load_config
from coinpilot.embedded import EmbeddedRedis
from coinpilot.observability import Health, Metrics
from coinpilot.services.bot import BotService

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2024, 1, 1, tzinfo=UTC)
WINDOW = 200
CYCLES = 12  # the first two are warm-up
HOUR = 61  # the first cycle after start up to and including the next hourly full read


def _redis_url(servers: list[Any]) -> str:
    env = os.environ.get("COINPILOT_TEST_REDIS_URL")
    if env:
        return env
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return "redis://127.0.0.1:6379/0"
    except OSError:
        server = EmbeddedRedis(Path(tempfile.mkdtemp(prefix="cp-bench-redis-")))
        servers.append(server)
        return server.start()


def _rows(symbols: list[str], minutes: int) -> list[md.CandleRow]:
    """A gentle wave per symbol, phase-shifted, so the rules see varied indicators."""
    out = []
    for i, sym in enumerate(symbols):
        for m in range(minutes):
            p = Decimal(str(round(10_000 * (1 + 0.02 * math.sin((m + 17 * i) / 25)), 1)))
            out.append(md.CandleRow(sym, "1m", T0 + timedelta(minutes=m), p, p + 5, p - 5, p,
                                    Decimal("3.5"), p * Decimal("3.5")))  # fmt: skip
    return out


def _settings(symbols: list[str]) -> Settings:
    import yaml

    data = yaml.safe_load((ROOT / "config" / "coinpilot.yaml").read_text())
    data["symbols"] = symbols
    path = Path(tempfile.mkdtemp(prefix="cp-bench-cfg-")) / "coinpilot.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_config(path, environ={})


async def _cycle_ms(
    dsn: str, redis: aioredis.Redis, n: int, cycles: int = CYCLES
) -> tuple[float, float, list[float]]:
    """Median ms of a whole cycle and of its closed-window read, and every cycle's ms
    (the first is the first cycle after start)."""
    symbols = [f"KRW-B{i:03d}" for i in range(n)]
    minutes = WINDOW + cycles + 5
    settings = _settings(symbols)
    keys = Keys(prefix=f"bench{uuid.uuid4().hex[:8]}:")
    pool = await db.create_pool(dsn, min_size=1, max_size=8)
    try:
        await md.upsert_candles(pool, _rows(symbols, minutes))
        await pool.execute("ANALYZE market_data")
        for sym in symbols:
            await redis.set(keys.regime(sym), "SIDEWAYS", ex=3600)
        clock = SimulatedClock(T0 + timedelta(minutes=WINDOW + 1, seconds=5))
        metrics = Metrics()
        bot = BotService(settings=settings, pool=pool, redis=redis, keys=keys, clock=clock,
                         health=Health(), metrics=metrics)  # fmt: skip
        await bot.startup()
        await _hold_positions(pool, settings, symbols[:3], clock.now())
        times, reads = [], []
        for _ in range(cycles):
            read0 = metrics.db_query_duration._sum.get()
            t0 = time.perf_counter()
            outcomes = await bot.run_once()
            times.append((time.perf_counter() - t0) * 1000)
            reads.append((metrics.db_query_duration._sum.get() - read0) * 1000)
            assert len(outcomes) == n
            clock.advance(timedelta(minutes=1))
        return statistics.median(times[2:]), statistics.median(reads[2:]), times
    finally:
        async for key in redis.scan_iter(match=f"{keys.prefix}*", count=1000):
            await redis.delete(key)
        await pool.close()


async def _hold_positions(pool: Any, settings: Settings, symbols: list[str], now: datetime) -> None:
    for i, sym in enumerate(symbols):
        order = ledger.BuyOrder(sym, now - timedelta(minutes=3 + i), Decimal(10_000),
                                Decimal(100_000), "SIDEWAYS", {})  # fmt: skip
        await ledger.buy(pool, order, settings.app, now)


def _json_logs_to(sink: Any) -> dict[str, Any]:
    """The daemon's per-symbol JSON log lines, written to ``sink``; returns the old config."""
    old = structlog.get_config()
    structlog.configure(
        processors=[structlog.processors.add_log_level,
                    structlog.processors.TimeStamper(fmt="iso", utc=True),
                    structlog.processors.JSONRenderer()],
        logger_factory=structlog.PrintLoggerFactory(file=sink),
        wrapper_class=structlog.make_filtering_bound_logger(20),
    )  # fmt: skip
    return old


async def _main() -> list[dict[str, object]]:
    servers: list[Any] = []
    admin = _admin_dsn(servers)
    redis = create_redis(_redis_url(servers))
    figures: list[dict[str, object]] = []
    try:
        for n in (5, 50, 200):
            name, dsn = await _fresh_db(admin)
            try:
                ms, read_ms, times = await _cycle_ms(dsn, redis, n, HOUR if n == 200 else CYCLES)
            finally:
                await _drop_db(admin, name)
            figures.append({
                "figure": f"bot cycle {n} sym x {WINDOW}", "value": round(ms, 1), "unit": "ms",
                "target": "<= 100" if n == 200 else "",
                "note": "DB read through decisions, status and JSON log lines, AI off, "
                        "3 open positions, median",
            })  # fmt: skip
            figures.append({
                "figure": f"  of which window read {n} sym", "value": round(read_ms, 1),
                "unit": "ms", "note": "load_closed_candles: one query and the column build",
            })  # fmt: skip
            if n == 200:
                worst = max(range(len(times)), key=times.__getitem__)
                figures.append({
                    "figure": f"bot cycle {n} sym, worst of an hour",
                    "value": round(times[worst], 1), "unit": "ms", "target": "<= 100",
                    "note": f"{len(times)} cycles from start (the first {times[0]:.0f} ms, the "
                    f"hourly full read {times[HOUR - 1]:.0f} ms); worst was cycle {worst + 1}",
                })  # fmt: skip
    finally:
        await redis.aclose()
        for server in servers:
            server.stop()
    return figures


def run() -> list[dict[str, object]]:
    with open(os.devnull, "w") as sink:
        old = _json_logs_to(sink)
        try:
            return asyncio.run(_main())
        finally:
            structlog.configure(**old)
