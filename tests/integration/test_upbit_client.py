"""The Upbit client against the local fake: wire behaviour, limits, blocks and faults."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from coinpilot.adapters.csvdata import read_csv
from coinpilot.adapters.upbit import UpbitBlocked, UpbitClient, UpbitError
from coinpilot.clock import SimulatedClock, SystemClock
from coinpilot.observability import Metrics
from tests.fakes.upbit import FakeUpbit, running_fake_upbit

BTC_FILE = "upbit_KRW-BTC_1m_2018-01-25_2018-02-01.csv"
T0 = datetime(2018, 1, 25, 6, 42, tzinfo=UTC)  # the file's first candle


@pytest.fixture
def btc_rows(data_dir: Path) -> list:
    return read_csv(data_dir / BTC_FILE)[:600]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def client(http: aiohttp.ClientSession, url: str, **kw: object) -> UpbitClient:
    options: dict[str, object] = {"retry_base_s": 0.0, "timeout_s": 2.0} | kw
    return UpbitClient(http, url, clock=SystemClock(), metrics=Metrics(), **options)  # type: ignore[arg-type]


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


async def test_fake_pages_newest_first_with_exclusive_to_and_capped_count(
    http: aiohttp.ClientSession, btc_rows: list
) -> None:
    """Raw wire: newest first, `to` exclusive, count clamped to 200, header on every answer."""
    fake = FakeUpbit()
    fake.add_rows(btc_rows)
    async with running_fake_upbit(fake) as (_, url):
        params = {"market": "KRW-BTC", "count": "3", "to": "2018-01-25 06:50:00"}
        async with http.get(url + "/v1/candles/minutes/1", params=params) as resp:
            body = await resp.json()
            assert resp.headers["Remaining-Req"].startswith("group=candles; min=600; sec=")
        assert [c["candle_date_time_utc"][-8:] for c in body] == [
            "06:49:00",
            "06:48:00",
            "06:47:00",
        ]
        assert body[0]["candle_date_time_kst"] == "2018-01-25T15:49:00"
        assert isinstance(body[0]["opening_price"], float)
        assert isinstance(body[0]["timestamp"], int)
        params = {"market": "KRW-BTC", "count": "500"}
        async with http.get(url + "/v1/candles/minutes/1", params=params) as resp:
            assert len(await resp.json()) == 200
        params = {"market": "KRW-BTC", "count": "5", "to": "2018-01-25T15:42:00+09:00"}
        async with http.get(url + "/v1/candles/minutes/1", params=params) as resp:
            assert await resp.json() == []
        async with http.get(url + "/v1/candles/minutes/1", params={"market": "KRW-NOPE"}) as resp:
            assert resp.status == 404
            assert (await resp.json())["error"]["name"] == "not_found_market"


async def test_client_reads_pages_and_the_forming_minute_is_partial(
    http: aiohttp.ClientSession, btc_rows: list
) -> None:
    """Without `to` the newest candle is the fake's in-progress minute, with partial values."""
    fake = FakeUpbit()
    fake.add_rows(btc_rows)
    fake.set_now(T0 + timedelta(minutes=10, seconds=20))
    async with running_fake_upbit(fake) as (_, url):
        page = await client(http, url).candles("KRW-BTC", to=None, count=3)
        final = {r.ts: r for r in btc_rows}
        assert [r.ts for r in page.rows] == [T0 + timedelta(minutes=m) for m in (8, 9, 10)]
        forming = page.rows[-1]
        assert forming.volume < final[forming.ts].volume
        assert page.rows[0] == final[page.rows[0].ts]
        exact = await client(http, url).candles("KRW-BTC", to=T0 + timedelta(minutes=10), count=2)
        assert exact.rows == [final[T0 + timedelta(minutes=m)] for m in (8, 9)]


async def test_minutes_without_trades_are_skipped_not_invented(
    http: aiohttp.ClientSession, btc_rows: list
) -> None:
    """A page over a gap returns fewer, older candles; nothing is synthesised."""
    fake = FakeUpbit()
    fake.add_rows([r for i, r in enumerate(btc_rows[:50]) if not 10 <= i < 20])
    async with running_fake_upbit(fake) as (_, url):
        page = await client(http, url).candles("KRW-BTC", to=T0 + timedelta(minutes=25), count=10)
        minutes = [int((r.ts - T0).total_seconds() // 60) for r in page.rows]
        assert minutes == [5, 6, 7, 8, 9, 20, 21, 22, 23, 24]


async def test_budget_keeps_a_burst_under_the_limit(
    http: aiohttp.ClientSession, btc_rows: list
) -> None:
    """35 concurrent requests through the budget draw no 429 from a 10/s server."""
    fake = FakeUpbit(limit_per_s=10)
    fake.add_rows(btc_rows)
    async with running_fake_upbit(fake) as (_, url):
        c = client(http, url)
        await asyncio.gather(*(c.candles("KRW-BTC", to=None, count=1) for _ in range(35)))
        assert fake.stats["429"] == 0
        assert fake.stats["requests"] == 35


async def test_unpaced_client_recovers_from_429(
    http: aiohttp.ClientSession, btc_rows: list
) -> None:
    """With pacing off, 429s are counted, the budget holds, and every call still succeeds."""
    fake = FakeUpbit(limit_per_s=3)
    fake.add_rows(btc_rows)
    async with running_fake_upbit(fake) as (_, url):
        c = client(http, url, requests_per_second=None, max_retries=5)
        pages = await asyncio.gather(*(c.candles("KRW-BTC", to=None, count=1) for _ in range(6)))
        assert all(len(p.rows) == 1 for p in pages)
        assert fake.stats["429"] >= 1
        assert (
            sample(c.metrics, "coinpilot_upbit_requests_total", outcome="rate_limited")
            == (fake.stats["429"])
        )


async def test_418_blocks_every_call_until_the_stated_time(
    http: aiohttp.ClientSession, btc_rows: list
) -> None:
    """After a 418 the client sends nothing while blocked and raises the blocked gauge."""
    fake = FakeUpbit(limit_per_s=1, block_after=1, block_s=30)
    fake.add_rows(btc_rows)
    async with running_fake_upbit(fake) as (_, url):
        c = client(http, url, requests_per_second=None, max_retries=0)
        # Another program on the same IP overspends the budget and earns the block.
        for _ in range(2):
            async with http.get(url + "/v1/candles/minutes/1", params={"market": "KRW-BTC"}):
                pass
        with pytest.raises(UpbitBlocked):
            await c.candles("KRW-BTC", to=None, count=1)
        sent = fake.stats["requests"]
        with pytest.raises(UpbitBlocked):
            await c.candles("KRW-BTC", to=None, count=1)
        assert fake.stats["requests"] == sent
        assert sample(c.metrics, "coinpilot_upbit_blocked") == 1
        assert c.blocked_until - c.clock.monotonic() > 20


async def test_429_and_418_are_counted_waited_out_and_survived(
    http: aiohttp.ClientSession, btc_rows: list
) -> None:
    """On one simulated clock shared with the fake: a 429 is counted and retried after the
    budget's 1.05 s window; a 418 is counted, raises the blocked gauge and stops every send
    until its Retry-After has passed; then the client works again and the gauge drops.
    The client also holds a window after any ``sec=0``, which moves its next send."""
    clock = SimulatedClock(T0)
    fake = FakeUpbit(limit_per_s=1, block_after=2, block_s=30, timer=clock.monotonic)
    fake.add_rows(btc_rows)
    async with running_fake_upbit(fake) as (_, url):
        c = UpbitClient(http, url, clock=clock, metrics=Metrics(), requests_per_second=None,
                        max_retries=3, retry_base_s=0.0)  # fmt: skip

        async def other_program() -> None:  # another program on this IP, same budget
            async with http.get(url + "/v1/candles/minutes/1", params={"market": "KRW-BTC"}):
                pass

        await other_program()  # t = 0: the second's one request is spent
        page = await c.candles("KRW-BTC", to=None, count=1)  # 429, waits 1.05 s, then 200
        assert len(page.rows) == 1
        assert clock.monotonic() == 1.05
        assert sample(c.metrics, "coinpilot_upbit_requests_total", outcome="rate_limited") == 1
        assert sample(c.metrics, "coinpilot_upbit_requests_total", outcome="ok") == 1
        # The other program overspends twice in a row at 1.05: blocked until 31.05.
        await other_program()
        await other_program()
        # The client saw sec=0 at 1.05, so it sends at 1.05 + 1.05 = 2.1; the 418 states
        # ceil(31.05 - 2.1) = ceil(28.95) = 29 s, so the client stays away until 31.1.
        with pytest.raises(UpbitBlocked):
            await c.candles("KRW-BTC", to=None, count=1)
        assert clock.monotonic() == 2.1
        assert c.blocked_until == 2.1 + 29
        assert sample(c.metrics, "coinpilot_upbit_requests_total", outcome="blocked") == 1
        assert sample(c.metrics, "coinpilot_upbit_blocked") == 1
        sent = fake.stats["requests"]
        clock.advance(28)  # 30.1: 1 s of the block left, nothing is sent
        with pytest.raises(UpbitBlocked):
            await c.candles("KRW-BTC", to=None, count=1)
        assert fake.stats["requests"] == sent
        clock.advance(1)  # 31.1: the block is over for the client and (since 31.05) the fake
        page = await c.candles("KRW-BTC", to=None, count=1)
        assert len(page.rows) == 1
        assert sample(c.metrics, "coinpilot_upbit_blocked") == 0
        assert fake.stats["requests"] == sent + 1


@pytest.mark.parametrize(
    ("fault", "kind"),
    [("500", "http_5xx"), ("stall", "timeout"), ("garbage", "malformed"), ("reset", "connection")],
)
async def test_faults_raise_their_kind_after_bounded_retries(
    http: aiohttp.ClientSession, btc_rows: list, fault: str, kind: str
) -> None:
    """Each injected fault surfaces as its error kind and is counted per attempt."""
    fake = FakeUpbit(stall_s=5)
    fake.add_rows(btc_rows)
    fake.fail("KRW-BTC", fault)
    async with running_fake_upbit(fake) as (_, url):
        c = client(http, url, timeout_s=0.3, max_retries=2)
        with pytest.raises(UpbitError) as err:
            await c.candles("KRW-BTC", to=None, count=1)
        assert err.value.kind == kind
        retried = 1 if kind == "malformed" else 3
        # aiohttp itself re-sends once on a dropped keep-alive connection.
        assert fake.stats["requests"] >= retried
        errors = sample(
            c.metrics, "coinpilot_dependency_errors_total", dependency="upbit", kind=kind
        )
        assert errors == retried


async def test_a_transient_500_is_retried_to_success(
    http: aiohttp.ClientSession, btc_rows: list
) -> None:
    """One 500 then success: the caller sees the page, the metric sees the error."""
    fake = FakeUpbit()
    fake.add_rows(btc_rows)
    fake.fail("KRW-BTC", "500", times=1)
    async with running_fake_upbit(fake) as (_, url):
        c = client(http, url)
        page = await c.candles("KRW-BTC", to=None, count=2)
        assert len(page.rows) == 2
        assert sample(c.metrics, "coinpilot_upbit_requests_total", outcome="http_5xx") == 1


async def test_impossible_candles_from_the_wire_are_counted_and_dropped(
    http: aiohttp.ClientSession, btc_rows: list
) -> None:
    """NaN prices and negative volume are rejected by reason, never returned."""
    fake = FakeUpbit()
    fake.add_rows(btc_rows)
    fake.fail("KRW-BTC", "nan")
    async with running_fake_upbit(fake) as (_, url):
        c = client(http, url)
        page = await c.candles("KRW-BTC", to=None, count=1)
        assert page.rows == []
        assert sample(c.metrics, "coinpilot_candles_rejected_total", reason="malformed_field") == 1


async def test_market_list(http: aiohttp.ClientSession, btc_rows: list) -> None:
    """/v1/market/all lists loaded markets and extras, with or without details."""
    fake = FakeUpbit(extra_markets=("KRW-ETH", "BTC-ETH"))
    fake.add_rows(btc_rows)
    async with running_fake_upbit(fake) as (_, url):
        assert await client(http, url).listed_markets() == {"KRW-BTC", "KRW-ETH", "BTC-ETH"}
        async with http.get(url + "/v1/market/all", params={"is_details": "true"}) as resp:
            assert "market_event" in (await resp.json())[0]


async def test_fake_ticker_snapshot_follows_its_clock(
    http: aiohttp.ClientSession, btc_rows: list
) -> None:
    """The ticker's price is the newest candle's close at the fake's clock; day figures add up."""
    fake = FakeUpbit()
    fake.add_rows(btc_rows)
    fake.set_now(T0 + timedelta(minutes=100, seconds=59))
    async with running_fake_upbit(fake) as (_, url):
        params = {"markets": "KRW-BTC"}
        async with http.get(url + "/v1/ticker", params=params) as resp:
            (tick,) = await resp.json()
    closed = [r for r in btc_rows if r.ts <= T0 + timedelta(minutes=99)]
    assert tick["trade_price"] == float(btc_rows[100].open_price)  # the forming minute so far
    assert tick["high_price"] >= float(max(r.high_price for r in closed))
    assert tick["trade_date"] == "20180125"


async def test_fake_reads_a_kst_to_whose_plus_arrived_as_a_space(
    http: aiohttp.ClientSession, btc_rows: list
) -> None:
    """`to=...15:45:00 09:00` (an unencoded +) still means 06:45 UTC."""
    fake = FakeUpbit()
    fake.add_rows(btc_rows)
    async with running_fake_upbit(fake) as (_, url):
        query = "market=KRW-BTC&count=1&to=2018-01-25T15:45:00+09:00"
        async with http.get(f"{url}/v1/candles/minutes/1?{query}") as resp:
            (candle,) = await resp.json()
    assert candle["candle_date_time_utc"] == "2018-01-25T06:44:00"
