"""Minute close → stored latency over the candle WebSocket, for 5, 50 and 200 markets.

The Upbit fake runs live (real clock, CSV candles shifted so that they happen now) and
serves REST and the WebSocket from one port; the collector catches up over REST, then the
stream closes each minute when the next one arrives or at the grace, stores it and
publishes a "minute stored" event. Latency is measured from the minute's end to the
event, for every market and the two minute boundaries after the stream connected, and
any closed minute the fake served but nobody published counts as missed.
"""

from __future__ import annotations

import asyncio
import statistics
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg

from bench.bench_marketdata import DATA, _admin_dsn, _drop_db, _fresh_db
from coinpilot.adapters.upbit import UpbitClient
from coinpilot.adapters.upbit_ws import stream_url
from coinpilot.clock import SystemClock, floor_minute
from coinpilot.config import CollectorConfig
from coinpilot.observability import Health, Metrics
from coinpilot.services.candle_stream import CandleStream
from coinpilot.services.collector import Collector
from coinpilot.services.minute_events import MinuteEvents
from tests.fakes.upbit import FakeUpbit, load_markets, running_fake_upbit

FILES = (
    "upbit_KRW-BTC_1m_2018-01-25_2018-02-01.csv",
    "binance_BTCUSDT_1m_2024-02-01_2024-02-29.csv",
    "binance_ETHUSDT_1m_2025-12-18_2025-12-29.csv",
    "binance_AVAXUSDT_1m_2025-02-01_2025-02-28.csv",
)
SIZES = (5, 50, 200)
BOUNDARIES = 2
MINUTE = timedelta(minutes=1)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _measure(pool: asyncpg.Pool, markets: int) -> tuple[list[float], int, int]:
    """(latencies in s, minutes missed, disconnects) for ``markets`` markets."""
    clock = SystemClock()
    fake = FakeUpbit(clock=clock, limit_per_s=10)
    names = load_markets(fake, [str(DATA / f) for f in FILES], markets=markets, live_history_min=30)
    config = CollectorConfig(backfill_days=0.01)
    metrics, events = Metrics(), MinuteEvents()
    received: dict[tuple[str, datetime], datetime] = {}

    async def listen() -> None:
        with events.subscribe() as sub:
            async for event in sub:
                received.setdefault((event.symbol, event.minute), datetime.now(UTC))

    listener = asyncio.create_task(listen())
    async with aiohttp.ClientSession() as http, running_fake_upbit(fake) as (_, url):
        client = UpbitClient(http, url, clock=clock, metrics=metrics)
        collector = Collector(
            client=client, pool=pool, symbols=names, config=config, clock=clock,
            health=Health(), metrics=metrics, events=events,
        )  # fmt: skip
        stream = CandleStream(
            http=http, url=stream_url(url), symbols=collector.watched, pool=pool,
            config=config, clock=clock, metrics=metrics, events=events,
            on_reconnect=collector.fill_gap,
        )  # fmt: skip
        collector.stream = stream
        await collector.startup()
        stop = asyncio.Event()
        task = asyncio.create_task(stream.run(stop))
        await stream.up.wait()
        await asyncio.sleep(1.5)  # the gap fill after connecting settles first
        first = floor_minute(clock.now()) + MINUTE  # first minute the stream sees whole
        end = first + BOUNDARIES * MINUTE
        await asyncio.sleep((end + timedelta(seconds=10) - clock.now()).total_seconds())
        stop.set()
        await task
    listener.cancel()
    latencies = []
    missed = 0
    for name in names:
        for k in range(BOUNDARIES):
            row = fake.series[name].at(first + k * MINUTE)
            if row is None:
                continue  # no trades, no candle: nothing to store
            got = received.get((name, row.ts))
            if got is None:
                missed += 1
            else:
                latencies.append((got - row.ts - MINUTE).total_seconds())
    disconnects = sum(
        s.value
        for fam in metrics.registry.collect()
        if fam.name == "coinpilot_upbit_ws_disconnects"
        for s in fam.samples
        if s.name.endswith("_total")
    )
    return latencies, missed, int(disconnects)


async def _main() -> list[dict[str, Any]]:
    stack: list[Any] = []
    admin = _admin_dsn(stack)
    figures: list[dict[str, Any]] = []
    try:
        for size in SIZES:
            name, dsn = await _fresh_db(admin)
            try:
                pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
                try:
                    latencies, missed, drops = await _measure(pool, size)
                finally:
                    await pool.close()
            finally:
                await _drop_db(admin, name)
            note = f"{len(latencies)} minutes, {drops} disconnects"
            figures += [
                {
                    "figure": f"minute close -> stored p50, {size} markets (WebSocket)",
                    "value": round(statistics.median(latencies) * 1000, 1),
                    "unit": "ms",
                    "note": note,
                },
                {
                    "figure": f"minute close -> stored p99, {size} markets (WebSocket)",
                    "value": round(_percentile(latencies, 0.99) * 1000, 1),
                    "unit": "ms",
                    "target": "<= 2000" if size == 200 else "",
                },
                {
                    "figure": f"minutes missed, {size} markets",
                    "value": missed,
                    "unit": "minutes",
                    "target": "0",
                },
            ]
    finally:
        for server in stack:
            server.stop()
    return figures


def run() -> list[dict[str, Any]]:
    return asyncio.run(_main())
