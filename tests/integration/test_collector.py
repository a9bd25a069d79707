"""The collector service on a simulated clock against the fake: closed minutes only, catch-up,
revisions, one symbol's faults isolated and counted, unknown markets left out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from prometheus_client import generate_latest
from structlog.testing import capture_logs

from coinpilot.adapters.csvdata import read_csv
from coinpilot.adapters.marketdata import CandleRow, load_closed_candles
from coinpilot.adapters.upbit import UpbitClient, UpbitError
from coinpilot.clock import SimulatedClock, floor_minute
from coinpilot.config import CollectorConfig
from coinpilot.observability import Health, Metrics
from coinpilot.services.collector import Collector, replay_collector
from coinpilot.services.minute_events import MinuteEvents, MinuteStored
from tests.fakes.upbit import FakeUpbit, running_fake_upbit

BTC_FILE = "upbit_KRW-BTC_1m_2018-01-25_2018-02-01.csv"
T0 = datetime(2018, 1, 25, 6, 42, tzinfo=UTC)
MIN = timedelta(minutes=1)


@pytest.fixture
def day(data_dir: Path) -> list[CandleRow]:
    """The first ~day of real KRW-BTC minutes."""
    return read_csv(data_dir / BTC_FILE)[:1500]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def as_market(rows: list[CandleRow], market: str) -> list[CandleRow]:
    return [r._replace(symbol=market) for r in rows]


def make_collector(
    http: aiohttp.ClientSession,
    url: str,
    pool: asyncpg.Pool,
    clock: SimulatedClock,
    symbols: list[str],
    *,
    timeout_s: float = 5.0,
    events: MinuteEvents | None = None,
    held: object = None,
) -> Collector:
    metrics = Metrics()
    client = UpbitClient(
        http,
        url,
        clock=clock,
        metrics=metrics,
        timeout_s=timeout_s,
        requests_per_second=None,
        max_retries=1,
        retry_base_s=0.0,
    )
    config = CollectorConfig(backfill_days=0.5, recent_candles=5)
    return Collector(
        client=client,
        pool=pool,
        symbols=symbols,
        config=config,
        clock=clock,
        health=Health(),
        metrics=metrics,
        events=events,
        held=held,  # type: ignore[arg-type]
    )


async def stored(pool: asyncpg.Pool, symbol: str) -> list[CandleRow]:
    records = await pool.fetch(
        """SELECT symbol, interval, ts, open_price, high_price, low_price, close_price, volume,
                  value_krw FROM market_data WHERE symbol = $1 ORDER BY ts""",
        symbol,
    )
    return [CandleRow(*r.values()) for r in records]


async def test_startup_backfills_closed_minutes_then_follows_minute_by_minute(
    pool: asyncpg.Pool, http: aiohttp.ClientSession, day: list[CandleRow]
) -> None:
    """Start-up stores every closed minute of the window, never the forming one; each cycle
    adds the minute that just closed, and a 30-minute outage is caught up in one cycle."""
    now = T0 + timedelta(hours=20, seconds=2)
    clock = SimulatedClock(now)
    fake = FakeUpbit(clock=clock, limit_per_s=None)
    fake.add_rows(day)
    by_ts = {r.ts: r for r in day}
    async with running_fake_upbit(fake) as (_, url):
        collector = make_collector(http, url, pool, clock, ["KRW-BTC"])
        await collector.startup()
        window_start = floor_minute(now) - timedelta(hours=12)
        expect = [r for r in day if window_start <= r.ts and r.ts + MIN <= now]
        assert await stored(pool, "KRW-BTC") == expect
        assert expect[-1].ts == floor_minute(now) - MIN

        clock.advance(60)
        await collector.run_once()
        newest = (await stored(pool, "KRW-BTC"))[-1]
        assert newest == by_ts[floor_minute(now)]

        clock.advance(timedelta(minutes=30))
        results = await collector.run_once()
        rows = await stored(pool, "KRW-BTC")
        assert rows[-1] == by_ts[floor_minute(clock.now()) - MIN]
        assert results[0].stored == 30
        age = collector.metrics.registry.get_sample_value(
            "coinpilot_candle_age_seconds", {"symbol": "KRW-BTC"}
        )
        assert age == 62.0


async def test_a_revised_closed_minute_replaces_the_stored_row(
    pool: asyncpg.Pool, http: aiohttp.ClientSession, day: list[CandleRow]
) -> None:
    """Upbit correcting a recent closed minute is picked up by the next cycle's upsert."""
    clock = SimulatedClock(T0 + timedelta(hours=2, seconds=3))
    fake = FakeUpbit(clock=clock, limit_per_s=None)
    fake.add_rows(day)
    async with running_fake_upbit(fake) as (_, url):
        collector = make_collector(http, url, pool, clock, ["KRW-BTC"])
        await collector.run_once()
        target = floor_minute(clock.now()) - 2 * MIN
        old = next(r for r in await stored(pool, "KRW-BTC") if r.ts == target)
        revised = old._replace(volume=old.volume + Decimal("0.5"), close_price=old.high_price)
        fake.revise(revised)
        clock.advance(60)
        await collector.run_once()
        now_row = next(r for r in await stored(pool, "KRW-BTC") if r.ts == target)
        assert now_row == revised


async def test_one_symbols_faults_leave_the_others_collected_and_are_counted(
    pool: asyncpg.Pool, http: aiohttp.ClientSession, day: list[CandleRow]
) -> None:
    """500s, a stall and garbage for KRW-XRP: BTC and ETH advance every cycle, each error
    kind shows in the metrics exposition, no cycle fails, and XRP catches up afterwards."""
    clock = SimulatedClock(T0 + timedelta(hours=3, seconds=2))
    fake = FakeUpbit(clock=clock, limit_per_s=None, stall_s=5)
    for market in ("KRW-BTC", "KRW-ETH", "KRW-XRP"):
        fake.add_rows(as_market(day, market))
    async with running_fake_upbit(fake) as (_, url):
        collector = make_collector(
            http, url, pool, clock, ["KRW-BTC", "KRW-ETH", "KRW-XRP"], timeout_s=0.3
        )
        await collector.startup()
        xrp_before = len(await stored(pool, "KRW-XRP"))
        for fault in ("500", "stall", "garbage"):
            fake.fail("KRW-XRP", fault)
            clock.advance(60)
            assert await collector.cycle() is True
            newest = floor_minute(clock.now()) - MIN
            for market in ("KRW-BTC", "KRW-ETH"):
                assert (await stored(pool, market))[-1].ts == newest
        assert len(await stored(pool, "KRW-XRP")) == xrp_before
        text = generate_latest(collector.metrics.registry).decode()
        for kind in ("http_5xx", "timeout", "malformed"):
            assert f'coinpilot_dependency_errors_total{{dependency="upbit",kind="{kind}"}}' in text
        assert 'coinpilot_symbol_errors_total{symbol="KRW-XRP"} 3.0' in text
        fake.clear_faults()
        clock.advance(60)
        await collector.run_once()
        assert await stored(pool, "KRW-XRP") == as_market(await stored(pool, "KRW-BTC"), "KRW-XRP")


async def test_a_cycle_where_everything_fails_is_survived(
    pool: asyncpg.Pool, http: aiohttp.ClientSession, day: list[CandleRow]
) -> None:
    """Every symbol failing makes the cycle report failure; the service keeps going."""
    clock = SimulatedClock(T0 + timedelta(hours=1, seconds=2))
    fake = FakeUpbit(clock=clock, limit_per_s=None)
    fake.add_rows(day)
    async with running_fake_upbit(fake) as (_, url):
        collector = make_collector(http, url, pool, clock, ["KRW-BTC"])
        fake.fail("KRW-BTC", "500")
        assert await collector.cycle() is False
        assert collector.state.last_error is not None
        fake.clear_faults()
        clock.advance(60)
        assert await collector.cycle() is True
        assert len(await stored(pool, "KRW-BTC")) > 0


async def test_unknown_markets_are_reported_once_and_left_out(
    pool: asyncpg.Pool,
    http: aiohttp.ClientSession,
    day: list[CandleRow],
) -> None:
    """A market Upbit does not list is dropped at start; the rest are collected."""
    clock = SimulatedClock(T0 + timedelta(hours=1, seconds=2))
    fake = FakeUpbit(clock=clock, limit_per_s=None)
    fake.add_rows(day)
    async with running_fake_upbit(fake) as (_, url):
        collector = make_collector(http, url, pool, clock, ["KRW-GONE", "KRW-BTC"])
        with capture_logs() as logs:
            await collector.startup()
            clock.advance(60)
            await collector.run_once()
        assert collector.active_symbols == ["KRW-BTC"]
        assert fake.stats["market_requests"] == 1
        assert not any(q.get("market") == "KRW-GONE" for q in fake.requests)
        assert len(await stored(pool, "KRW-BTC")) == 61  # 06:42 .. 07:42
    reported = [e for e in logs if e["event"] == "symbols_unavailable"]
    assert [e["symbols"] for e in reported] == [["KRW-GONE"]]


async def test_replayed_collection_feeds_the_bot_query(
    pool: asyncpg.Pool, http: aiohttp.ClientSession, day: list[CandleRow]
) -> None:
    """Collector → database → closed-window query, minute by minute, never a future candle."""
    clock = SimulatedClock(T0 + timedelta(hours=4, seconds=2))
    fake = FakeUpbit(clock=clock, limit_per_s=None)
    fake.add_rows(day)
    async with running_fake_upbit(fake) as (_, url):
        collector = replay_collector(
            http=http,
            base_url=url,
            pool=pool,
            symbols=["KRW-BTC"],
            config=CollectorConfig(backfill_days=0.5),
            clock=clock,
            metrics=Metrics(),
            health=Health(),
        )
        await collector.startup()
        for _ in range(5):
            clock.advance(60)
            await collector.run_once()
            window = (await load_closed_candles(pool, ["KRW-BTC"], 200, clock.now()))["KRW-BTC"]
            assert len(window) == 200
            assert int(window.ts[-1]) + 60 <= clock.now().timestamp()
            assert window.last_ts == floor_minute(clock.now()) - MIN


async def test_a_startup_backfill_cut_short_resumes_without_gaps(
    pool: asyncpg.Pool, http: aiohttp.ClientSession, day: list[CandleRow]
) -> None:
    """A catch-up that dies after two windows leaves a contiguous prefix; the next collector
    continues from its newest minute and ends with exactly the closed minutes."""
    now = T0 + timedelta(hours=20, seconds=2)
    clock = SimulatedClock(now)
    fake = FakeUpbit(clock=clock, limit_per_s=None)
    fake.add_rows(day)
    async with running_fake_upbit(fake) as (_, url):
        first = make_collector(http, url, pool, clock, ["KRW-BTC"])
        pages = 0

        def crash_after_two(*_: object) -> None:
            nonlocal pages
            pages += 1
            if pages == 2:
                raise RuntimeError("process died")

        first.filler.on_page = crash_after_two
        with pytest.raises(UpbitError, match="process died"):
            await first.run_once()
        partial = await stored(pool, "KRW-BTC")
        assert len(partial) == 400
        second = make_collector(http, url, pool, clock, ["KRW-BTC"])
        await second.run_once()
    window_start = floor_minute(now) - timedelta(hours=12)
    assert await stored(pool, "KRW-BTC") == [
        r for r in day if window_start <= r.ts and r.ts + MIN <= now
    ]


async def test_rest_cycles_publish_each_minute_stored_or_corrected_after_the_catch_up(
    pool: asyncpg.Pool, http: aiohttp.ClientSession, day: list[CandleRow]
) -> None:
    """The catch-up announces nothing but ends with caught_up; each later cycle publishes
    the minutes it committed, a revision as corrected, and a re-read of equal rows nothing."""
    now = T0 + timedelta(hours=2, seconds=2)
    clock = SimulatedClock(now)
    fake = FakeUpbit(clock=clock, limit_per_s=None)
    fake.add_rows(day)
    by_ts = {r.ts: r for r in day}
    events = MinuteEvents()
    sub = events.subscribe()
    async with running_fake_upbit(fake) as (_, url):
        collector = make_collector(http, url, pool, clock, ["KRW-BTC"], events=events)
        await collector.startup()
        assert events.caught_up.is_set()
        assert sub.drain() == []

        clock.advance(60)
        await collector.run_once()
        closed = floor_minute(now)
        assert sub.drain() == [MinuteStored("KRW-BTC", closed, False, "rest")]

        await collector.run_once()  # the same minutes again: nothing changed, nothing said
        assert sub.drain() == []

        old = by_ts[closed - MIN]
        fake.revise(old._replace(volume=old.volume + Decimal("1")))
        clock.advance(120)
        await collector.run_once()
        assert sub.drain() == [
            MinuteStored("KRW-BTC", closed - MIN, True, "rest"),
            MinuteStored("KRW-BTC", closed + MIN, False, "rest"),
            MinuteStored("KRW-BTC", closed + 2 * MIN, False, "rest"),
        ]
        assert events.latest("KRW-BTC") == closed + 2 * MIN


async def test_a_held_market_outside_the_config_is_collected_too(
    pool: asyncpg.Pool, http: aiohttp.ClientSession, day: list[CandleRow]
) -> None:
    """An open position's market stays watched after it left the configuration."""
    clock = SimulatedClock(T0 + timedelta(hours=1, seconds=2))
    fake = FakeUpbit(clock=clock, limit_per_s=None)
    fake.add_rows(day)
    fake.add_rows(as_market(day, "KRW-ETH"))
    held: set[str] = {"KRW-ETH"}
    async with running_fake_upbit(fake) as (_, url):
        collector = make_collector(http, url, pool, clock, ["KRW-BTC"], held=lambda: held)
        with capture_logs() as logs:
            await collector.run_once()
        assert collector.watched() == ["KRW-BTC", "KRW-ETH"]
        assert await stored(pool, "KRW-ETH") == as_market(await stored(pool, "KRW-BTC"), "KRW-ETH")
        assert [e["symbols"] for e in logs if e["event"] == "watching_held_symbols"] == [
            ["KRW-ETH"]
        ]
        held.clear()
        clock.advance(60)
        await collector.run_once()
        assert collector.watched() == ["KRW-BTC"]
