"""The Upbit fake's WebSocket and rate limits behave as documented (EXTERNAL_APIS §1.4,
§1.9–§1.13), so the collector is tested against something no kinder than Upbit."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from tests.fakes.upbit import FakeUpbit, load_markets, running_fake_upbit
from tests.integration.ops_support import free_port

BTC_FILE = "upbit_KRW-BTC_1m_2018-01-25_2018-02-01.csv"


@pytest.fixture
async def served(data_dir: Path) -> AsyncIterator[tuple[FakeUpbit, str, aiohttp.ClientSession]]:
    fake = FakeUpbit()
    load_markets(fake, [str(data_dir / BTC_FILE)], markets=2)
    fake.set_now(datetime(2018, 1, 26, 0, 0, 30, tzinfo=UTC))
    async with running_fake_upbit(fake) as (_, url), aiohttp.ClientSession() as http:
        yield fake, url, http


async def answer(ws: aiohttp.ClientWebSocketResponse, request: object) -> object:
    await ws.send_str(request if isinstance(request, str) else json.dumps(request))
    msg = await ws.receive(timeout=5)
    assert msg.type == aiohttp.WSMsgType.BINARY
    return json.loads(msg.data)


async def test_requests_are_checked_in_the_documented_order(
    served: tuple[FakeUpbit, str, aiohttp.ClientSession],
) -> None:
    fake, url, http = served
    t = {"ticket": "t"}
    cases = [
        ("not json", "WRONG_FORMAT"),
        ({"ticket": "t"}, "WRONG_FORMAT"),
        ([{"type": "candle.1m", "codes": ["KRW-BTC"]}], "NO_TICKET"),
        ([t, {"format": "SIMPLE"}], "NO_TYPE"),
        ([t, {"type": "candle.1m"}], "NO_CODES"),
        ([t, {"type": "candle.1m", "codes": []}], "INVALID_PARAM"),
        ([t, {"type": "candle.7m", "codes": ["KRW-BTC"]}], "INVALID_PARAM"),
        ([t, {"type": "candle.1m", "codes": ["KRW-BTC"]}, {"format": "XML"}], "INVALID_PARAM"),
    ]
    async with http.ws_connect(url + "/websocket/v1") as ws:
        for request, name in cases:  # and the connection stays open after each error
            got = await answer(ws, request)
            assert isinstance(got, dict)
            assert got["error"]["name"] == name
        sub = [t, {"type": "candle.1m", "codes": ["KRW-BTC"], "isOnlyRealtime": False}]
        snapshot = await answer(ws, sub)
        assert snapshot["stream_type"] == "SNAPSHOT"
        assert snapshot["candle_date_time_utc"] == "2018-01-26T00:00:00"
        listed = await answer(ws, [t, {"method": "LIST_SUBSCRIPTIONS"}])
        assert listed["result"] == [{"type": "candle.1m", "codes": ["KRW-BTC"]}]
        assert await answer(ws, "PING") == {"status": "UP"}
        await ws.ping(b"x")
    assert fake.stats["ws_pings"] == 1
    assert fake.stats["ws_error_INVALID_PARAM"] == 3


async def test_an_idle_connection_is_dropped_without_a_close_frame(
    served: tuple[FakeUpbit, str, aiohttp.ClientSession],
) -> None:
    fake, url, http = served
    fake.ws.idle_timeout_s = 1.5
    async with http.ws_connect(url + "/websocket/v1", autoclose=False) as ws:
        msg = await ws.receive(timeout=10)
        assert msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
        assert ws.close_code != 1000  # no close frame came
    assert fake.stats["ws_idle_drops"] == 1


async def test_handshakes_past_five_a_second_are_refused(
    served: tuple[FakeUpbit, str, aiohttp.ClientSession],
) -> None:
    _, url, http = served
    results = []
    for _ in range(7):
        try:
            ws = await http.ws_connect(url + "/websocket/v1")
            results.append(101)
            await ws.close()
        except aiohttp.WSServerHandshakeError as exc:
            results.append(exc.status)
    assert results.count(429) >= 1
    assert results[:5] == [101] * 5


async def test_rest_limits_are_per_group_over_a_sliding_second(
    served: tuple[FakeUpbit, str, aiohttp.ClientSession],
) -> None:
    """Ten candle requests use up the candle group but not the market group; a burst that
    straddles a second boundary is still refused."""
    fake, url, http = served

    async def get(path: str, **params: str) -> tuple[int, str]:
        async with http.get(url + path, params=params) as resp:
            return resp.status, resp.headers["Remaining-Req"]

    # Five at the end of one second, five at the start of the next, then one more.
    loop = asyncio.get_running_loop()
    await asyncio.sleep(1.0 - loop.time() % 1.0 + 0.85)
    statuses = [(await get("/v1/candles/minutes/1", market="KRW-BTC"))[0] for _ in range(10)]
    assert statuses == [200] * 10
    status, remaining = await get("/v1/candles/minutes/1", market="KRW-BTC")
    assert (status, remaining) == (429, "group=candles; min=600; sec=0")
    status, remaining = await get("/v1/market/all")
    assert status == 200
    assert remaining.startswith("group=market;")
    assert fake.stats["429_candles"] == 1


@pytest.mark.parametrize("fmt", ["JSON_LIST", "SIMPLE_LIST"])
async def test_list_formats_send_one_array_per_cycle_and_text_frames_on_demand(
    served: tuple[FakeUpbit, str, aiohttp.ClientSession], fmt: str
) -> None:
    fake, url, http = served
    fake.ws.text_frames = True
    request = [{"ticket": "t"}, {"type": "candle.1m", "codes": ["KRW-BTC", "KRW-BTC2"]}]
    async with http.ws_connect(url + "/websocket/v1") as ws:
        await ws.send_str(json.dumps([*request, {"format": fmt}]))
        msg = await ws.receive(timeout=5)
    assert msg.type == aiohttp.WSMsgType.TEXT
    frame = json.loads(msg.data)
    key = "cd" if fmt == "SIMPLE_LIST" else "code"
    assert sorted(item[key] for item in frame) == ["KRW-BTC", "KRW-BTC2"]


async def test_the_drop_fault_ends_every_connection_after_its_time(
    served: tuple[FakeUpbit, str, aiohttp.ClientSession],
) -> None:
    fake, url, http = served
    fake.ws.drop_after_s = 1.0
    async with http.ws_connect(url + "/websocket/v1") as ws:
        msg = await ws.receive(timeout=10)
    assert msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
    assert fake.stats["ws_dropped_by_fault"] == 1


def test_live_markets_are_shifted_to_now_and_copies_named_apart(data_dir: Path) -> None:
    fake = FakeUpbit()
    now = datetime(2026, 11, 29, 22, 0, 30, tzinfo=UTC)
    eth = "binance_ETHUSDT_1m_2025-12-18_2025-12-29.csv"
    names = load_markets(
        fake,
        [str(data_dir / BTC_FILE), str(data_dir / eth)],
        markets=5,
        live_history_min=100,
        now=now,
    )
    assert names == ["KRW-BTC", "KRW-ETH", "KRW-BTC2", "KRW-ETH2", "KRW-BTC3"]
    first = fake.series["KRW-BTC"]
    assert first.rows[100].ts == datetime(2026, 11, 29, 22, 0, tzinfo=UTC)
    assert fake.series["KRW-BTC2"].rows[197].ts == first.rows[100].ts  # a copy starts later
    assert fake.series["KRW-BTC2"].rows[197].close_price == first.rows[197].close_price


async def test_the_command_line_fake_serves_live_markets_on_one_port(data_dir: Path) -> None:
    """``python -m tests.fakes.upbit --live --markets 3``: REST lists the three markets and
    the stream's snapshot is a candle of the current minute (or the one before)."""
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.fakes.upbit", "--csv", str(data_dir / BTC_FILE),
        "--port", str(port), "--live", "--markets", "3",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=60)
        assert b"fake upbit serving" in line
        url = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as http:
            async with http.get(url + "/v1/market/all") as resp:
                markets = [m["market"] for m in await resp.json()]
            assert markets == ["KRW-BTC", "KRW-BTC2", "KRW-BTC3"]
            async with http.ws_connect(url + "/websocket/v1") as ws:
                request = [{"ticket": "t"}, {"type": "candle.1m", "codes": ["KRW-BTC3"]}]
                snapshot = await answer(ws, request)
        assert isinstance(snapshot, dict)
        start = datetime.fromisoformat(snapshot["candle_date_time_utc"]).replace(tzinfo=UTC)
        now = datetime.now(UTC)
        assert now - timedelta(minutes=2) < start <= now
    finally:
        proc.terminate()
        await proc.wait()
