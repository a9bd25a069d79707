"""The collector's WebSocket path against the Upbit fake over real sockets, on a clock that
runs 30 times faster than real time (a minute every 2 s): minutes closed and stored once
with their last values, REST fallback and gap fill after a drop, stalls and garbage
counted and survived, reconnects backed off."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from coinpilot.adapters.marketdata import CandleRow
from coinpilot.adapters.upbit import UpbitClient
from coinpilot.adapters.upbit_ws import stream_url
from coinpilot.clock import floor_minute
from coinpilot.config import CollectorConfig
from coinpilot.observability import Health, Metrics
from coinpilot.services.candle_stream import CandleStream
from coinpilot.services.collector import Collector
from coinpilot.services.minute_events import MinuteEvents
from tests.fakes.upbit import FakeUpbit, load_markets, running_fake_upbit
from tests.fast_clock import FastClock

BTC_FILE = "upbit_KRW-BTC_1m_2018-01-25_2018-02-01.csv"
ETH_FILE = "binance_ETHUSDT_1m_2025-12-18_2025-12-29.csv"
SPEED = 30.0
MIN = timedelta(minutes=1)
# After the last minute's end: the grace (2 s), the stream's 0.25 s check (7.5 s on this
# clock) and room for a loaded machine (a real second is 30 s here).
SETTLE = timedelta(seconds=60)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


class Rig:
    """The fake in live mode on a fast clock, a collector with its stream, and its events."""

    def __init__(self, fake: FakeUpbit, collector: Collector, clock: FastClock) -> None:
        self.fake = fake
        self.collector = collector
        self.clock = clock
        assert collector.stream is not None
        assert collector.events is not None
        self.stream: CandleStream = collector.stream
        self.events: MinuteEvents = collector.events
        self.metrics = collector.metrics

    def disconnects(self, reason: str) -> float:
        value = self.metrics.registry.get_sample_value(
            "coinpilot_upbit_ws_disconnects_total", {"reason": reason}
        )
        return value or 0.0

    def messages(self, kind: str) -> float:
        value = self.metrics.registry.get_sample_value(
            "coinpilot_upbit_ws_messages_total", {"kind": kind}
        )
        return value or 0.0

    async def until_connected(self) -> None:
        await until(lambda: self.stream.connected, self.clock, self.clock.now() + 2 * MIN)


@contextlib.asynccontextmanager
async def rig(
    http: aiohttp.ClientSession,
    pool: asyncpg.Pool,
    data_dir: Path,
    markets: int,
    held: set[str] | None = None,
    **config: float,
) -> AsyncIterator[Rig]:
    # Start a little after a minute's first second so the first boundary comes soon.
    start = floor_minute(datetime.now(UTC)) + timedelta(seconds=40)
    clock = FastClock(start, SPEED)
    fake = FakeUpbit(clock=clock, limit_per_s=None)
    names = load_markets(
        fake,
        [str(data_dir / BTC_FILE), str(data_dir / ETH_FILE)],
        markets=markets,
        live_history_min=120,
        now=start,
    )
    metrics = Metrics()
    events = MinuteEvents()
    settings = CollectorConfig(
        backfill_days=0.05, recent_candles=5, ws_ping_interval_s=3.0, **config
    )
    async with running_fake_upbit(fake) as (_, url):
        client = UpbitClient(
            http, url, clock=clock, metrics=metrics, requests_per_second=None, retry_base_s=0.0
        )
        collector = Collector(
            client=client,
            pool=pool,
            symbols=names if held is None else names[:-1],  # the last one only held
            config=settings,
            clock=clock,
            health=Health(),
            metrics=metrics,
            events=events,
            held=None if held is None else (lambda: held),
        )
        collector.stream = CandleStream(
            http=http,
            url=stream_url(url),
            symbols=collector.watched,
            pool=pool,
            config=settings,
            clock=clock,
            metrics=metrics,
            events=events,
            on_reconnect=collector.fill_gap,
        )
        stop = asyncio.Event()
        await collector.startup()  # the catch-up, then the stream starts
        task = asyncio.create_task(collector.stream.run(stop))
        try:
            yield Rig(fake, collector, clock)
        finally:
            stop.set()
            await task


async def stored(pool: asyncpg.Pool, since: datetime) -> dict[tuple[str, datetime], CandleRow]:
    records = await pool.fetch(
        """SELECT symbol, interval, ts, open_price, high_price, low_price, close_price, volume,
                  value_krw FROM market_data WHERE ts >= $1""",
        since,
    )
    return {(r["symbol"], r["ts"]): CandleRow(*r.values()) for r in records}


def expected(
    fake: FakeUpbit, first: datetime, end: datetime
) -> dict[tuple[str, datetime], CandleRow]:
    """The fake's rows (what the last message of each minute carries) in [first, end)."""
    out = {}
    for market, series in fake.series.items():
        for row in series.rows:
            if first <= row.ts < end:
                out[(market, row.ts)] = row
    return out


def assert_rows_equal(got: dict, want: dict) -> None:
    """Stored values equal the fake's rows; a row without a traded value goes over the wire
    (REST and stream alike) as 0.0, as Upbit always sends a number."""
    assert set(got) >= set(want)
    wrong = [k for k in want if got[k][3:] != (*want[k][3:8], want[k].value_krw or Decimal(0))]
    assert wrong == []


async def test_stream_stores_every_closed_minute_once_with_its_last_values(
    http: aiohttp.ClientSession, pool: asyncpg.Pool, data_dir: Path
) -> None:
    """Five markets for four minutes: each closed minute stored with exactly the row the
    fake replayed, announced once (by the stream, not corrected), none missing."""
    async with rig(http, pool, data_dir, 5) as r:
        await r.until_connected()
        first = floor_minute(r.clock.now()) + MIN  # the first minute the stream sees whole
        end = first + 4 * MIN
        await r.clock.until(end + SETTLE)
    want = expected(r.fake, first, end)
    got = await stored(pool, first)
    assert len(want) == 5 * 4
    assert_rows_equal(got, want)
    events = [e for e in r.events if first <= e.minute < end]
    counts = Counter((e.symbol, e.minute) for e in events)
    assert set(counts) == set(want)
    assert max(counts.values()) == 1
    assert {e.source for e in events} == {"websocket"}
    assert not any(e.corrected for e in events)
    assert r.disconnects("dropped") == 0
    assert r.messages("candle") > 0


async def until(predicate: object, clock: FastClock, limit: datetime) -> None:
    """Poll a condition; fail the test (not hang) if the fast clock passes ``limit``."""
    while not predicate():  # type: ignore[operator]
        assert clock.now() < limit, "condition not reached in time"
        await asyncio.sleep(0.05)


async def test_a_dropped_socket_falls_back_to_rest_and_the_gap_is_filled(
    http: aiohttp.ClientSession, pool: asyncpg.Pool, data_dir: Path
) -> None:
    """The socket drops and reconnects are refused for two minutes: REST cycles collect
    meanwhile, the reconnect fills the gap, and every minute is stored once, none missing."""
    async with rig(http, pool, data_dir, 3, ws_reconnect_min_s=0.2, ws_reconnect_max_s=1.0) as r:
        await r.until_connected()
        first = floor_minute(r.clock.now()) + MIN
        await r.clock.until(first + MIN + timedelta(seconds=20))
        r.fake.ws.handshakes_per_s = 0
        assert r.fake.ws.drop_all() == 1
        await until(lambda: not r.stream.connected, r.clock, first + 3 * MIN)
        for _ in range(2):  # the REST fallback while the socket is down
            await r.clock.until(floor_minute(r.clock.now()) + MIN + timedelta(seconds=3))
            assert not r.stream.connected
            await r.collector.run_once()
        r.fake.ws.handshakes_per_s = 5
        await until(lambda: r.stream.connections >= 2, r.clock, r.clock.now() + 3 * MIN)
        end = floor_minute(r.clock.now()) + 2 * MIN
        await r.clock.until(end + SETTLE)
    want = expected(r.fake, first, end)
    assert len(want) == 3 * int((end - first) / MIN)
    assert_rows_equal(await stored(pool, first), want)
    events = [e for e in r.events if first <= e.minute < end]
    counts = Counter((e.symbol, e.minute) for e in events)
    assert set(counts) == set(want)
    assert max(counts.values()) == 1
    assert {e.source for e in events} == {"websocket", "rest"}
    assert r.disconnects("dropped") == 1
    assert r.disconnects("handshake_refused") >= 2  # and it kept trying, backed off


async def test_garbage_frames_and_a_stall_are_counted_and_survived(
    http: aiohttp.ClientSession, pool: asyncpg.Pool, data_dir: Path
) -> None:
    """Malformed frames are counted and skipped on a live connection; a server that goes
    silent and withholds pongs is detected by the ping, counted, and reconnected to."""
    async with rig(http, pool, data_dir, 2, ws_reconnect_min_s=0.2, ws_reconnect_max_s=1.0) as r:
        await r.until_connected()
        first = floor_minute(r.clock.now()) + MIN
        r.fake.ws.garbage(3)
        await until(lambda: r.messages("malformed") == 3, r.clock, first + 2 * MIN)
        assert r.stream.connections == 1
        assert r.stream.connected
        r.fake.ws.stall = True
        await until(lambda: r.disconnects("stall") == 1, r.clock, first + 5 * MIN)
        r.fake.ws.stall = False
        await until(lambda: r.stream.connections >= 2, r.clock, first + 6 * MIN)
        end = floor_minute(r.clock.now()) + MIN
        await r.clock.until(end + SETTLE)
    want = expected(r.fake, first, end)
    assert_rows_equal(await stored(pool, first), want)
    counts = Counter((e.symbol, e.minute) for e in r.events if first <= e.minute < end)
    assert set(counts) == set(want)
    assert max(counts.values()) == 1
    assert r.disconnects("dropped") == 0


def test_reconnect_backoff_doubles_up_to_the_cap_with_jitter() -> None:
    config = CollectorConfig(ws_reconnect_min_s=1.0, ws_reconnect_max_s=30.0)
    stream = CandleStream(
        http=None,  # type: ignore[arg-type]
        url="ws://127.0.0.1:1/websocket/v1",
        symbols=list,
        pool=None,  # type: ignore[arg-type]
        config=config,
        clock=FastClock(datetime(2026, 1, 1, tzinfo=UTC), 1.0),
        metrics=Metrics(),
    )
    caps = [1, 2, 4, 8, 16, 30, 30]
    delays = [[stream.backoff(n) for _ in range(200)] for n in range(1, 8)]
    for cap, seen in zip(caps, delays, strict=True):
        assert cap * 0.5 <= min(seen)
        assert max(seen) <= cap
        assert max(seen) - min(seen) > cap * 0.3  # jittered, not one fixed value


async def test_a_market_held_after_start_is_subscribed_and_collected(
    http: aiohttp.ClientSession, pool: asyncpg.Pool, data_dir: Path
) -> None:
    """A position opened in a market outside the configuration: the next REST cycle sees
    it, the stream re-subscribes with it on the same connection, and its minutes arrive."""
    held: set[str] = set()
    async with rig(http, pool, data_dir, 3, held=held) as r:
        await r.until_connected()
        (extra,) = set(r.fake.series) - set(r.collector.symbols)
        assert extra not in r.collector.watched()
        held.add(extra)
        await r.collector.run_once()
        await until(lambda: extra in r.stream._subscribed, r.clock, r.clock.now() + 2 * MIN)
        first = floor_minute(r.clock.now()) + MIN
        end = first + 2 * MIN
        await r.clock.until(end + SETTLE)
    assert r.stream.connections == 1
    assert [extra in s.candle_codes() for s in r.fake.ws_subscriptions] == [False, True]
    want = {k: v for k, v in expected(r.fake, first, end).items() if k[0] == extra}
    assert len(want) == 2
    assert_rows_equal(await stored(pool, first), want)
    assert {(e.symbol, e.source) for e in r.events if e.symbol == extra} >= {(extra, "websocket")}
