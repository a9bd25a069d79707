"""The Upbit fake answers candle requests as EXTERNAL_APIS §1.1, §1.4 and §1.5 describe.

Checks of the wire format: the documented fields and their types, newest first, ``to``
exclusive in any of its spellings, minutes without trades skipped, the Remaining-Req
header, the error body shape, and the 429 and 418 answers to a client that overspends.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from coinpilot.adapters.marketdata import CandleRow
from tests.fakes.upbit import FakeUpbit, running_fake_upbit

T0 = datetime(2020, 2, 25, 6, 37, tzinfo=UTC)
FIELDS = {
    "market": str, "candle_date_time_utc": str, "candle_date_time_kst": str,
    "opening_price": float, "high_price": float, "low_price": float, "trade_price": float,
    "timestamp": int, "candle_acc_trade_price": float, "candle_acc_trade_volume": float,
    "unit": int,
}  # fmt: skip
REMAINING = re.compile(r"group=([a-z-]+); min=(\d+); sec=(\d+)")


def rows() -> list[CandleRow]:
    """06:37 … 06:41 UTC with no trade at 06:39 (that minute has no candle)."""
    out = []
    for i in (0, 1, 3, 4):
        p = Decimal(11_436_000 + 1000 * i)
        out.append(CandleRow("KRW-BTC", "1m", T0 + timedelta(minutes=i), p, p + 7000,
                             p - 8000, p + 7000, Decimal("1.48642105"),
                             Decimal("17001839.06758")))  # fmt: skip
    return out


async def get(http: aiohttp.ClientSession, url: str, **query: str) -> tuple[int, Any, Any]:
    async with http.get(f"{url}/v1/candles/minutes/1", params=query) as resp:
        text = await resp.text()
        body = await resp.json(content_type=None) if resp.status == 200 or text[:1] == "{" else text
        return resp.status, resp.headers, body


async def test_candles_have_the_documented_fields_newest_first_with_gaps() -> None:
    fake = FakeUpbit()
    fake.add_rows(rows())
    fake.set_now(T0 + timedelta(minutes=10))
    async with running_fake_upbit(fake) as (_, url), aiohttp.ClientSession() as http:
        status, headers, one = await get(http, url, market="KRW-BTC")
        assert status == 200
        assert len(one) == 1  # count defaults to 1
        status, headers, body = await get(http, url, market="KRW-BTC", count="200")
        starts = [c["candle_date_time_utc"] for c in body]
        # newest first; 06:39 had no trade and is simply absent
        assert starts == ["2020-02-25T06:41:00", "2020-02-25T06:40:00",
                          "2020-02-25T06:38:00", "2020-02-25T06:37:00"]  # fmt: skip
        for c in body:
            assert {k: type(v) for k, v in c.items()} == FIELDS
            start = datetime.fromisoformat(c["candle_date_time_utc"]).replace(tzinfo=UTC)
            kst = datetime.fromisoformat(c["candle_date_time_kst"])
            assert kst == start.replace(tzinfo=None) + timedelta(hours=9)
            # the last tick's time in ms, inside the minute, not the minute's start
            assert start.timestamp() * 1000 < c["timestamp"] < (start.timestamp() + 60) * 1000
            assert c["unit"] == 1
            assert c["market"] == "KRW-BTC"
        assert body[0]["trade_price"] == 11_447_000.0  # close of 06:41 = 11,440,000 + 7,000
        match = REMAINING.fullmatch(headers["Remaining-Req"])
        assert match is not None
        assert match.group(1) == "candles"


async def test_to_is_exclusive_in_every_documented_spelling() -> None:
    fake = FakeUpbit()
    fake.add_rows(rows())
    fake.set_now(T0 + timedelta(minutes=10))
    async with running_fake_upbit(fake) as (_, url), aiohttp.ClientSession() as http:
        for to in ("2020-02-25T06:40:00Z", "2020-02-25 06:40:00", "2020-02-25T15:40:00+09:00"):
            status, _, body = await get(http, url, market="KRW-BTC", count="2", to=to)
            assert status == 200, to
            assert [c["candle_date_time_utc"] for c in body] == [
                "2020-02-25T06:38:00", "2020-02-25T06:37:00",
            ], to  # fmt: skip
        _, _, rest = await get(http, url, market="KRW-BTC", count="5", to="2020-02-25T06:37:00Z")
        assert rest == []  # the start of history: an empty array


async def test_errors_have_the_documented_body() -> None:
    fake = FakeUpbit()
    fake.add_rows(rows())
    async with running_fake_upbit(fake) as (_, url), aiohttp.ClientSession() as http:
        status, _, body = await get(http, url, market="KRW-NOPE")
        assert status == 404
        assert set(body) == {"error"}
        assert set(body["error"]) == {"name", "message"}
        status, _, body = await get(http, url, market="KRW-BTC", to="yesterday")
        assert status == 400
        assert body["error"]["name"] == "validation_error"


class Frozen:
    """The fake's second and block counted on a time that moves only when the test says."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


async def raw(http: aiohttp.ClientSession, url: str, path: str) -> tuple[int, Any, str]:
    query = {"market": "KRW-BTC"} if "candles" in path else {}
    async with http.get(url + path, params=query) as resp:
        return resp.status, resp.headers, await resp.text()


CANDLES, MARKETS = "/v1/candles/minutes/1", "/v1/market/all"


async def test_over_the_limit_is_the_documented_429() -> None:
    """§1.4/§1.5/§1.7: the third candle request in one second of a 2/s budget gets 429,
    Remaining-Req with sec=0, and the plain-text body ``Too many API requests.`` (not JSON);
    the market group keeps its own budget; a second later candles are served again."""
    now = Frozen()
    fake = FakeUpbit(limit_per_s=2, timer=now)
    fake.add_rows(rows())
    async with running_fake_upbit(fake) as (_, url), aiohttp.ClientSession() as http:
        answers = [await raw(http, url, CANDLES) for _ in range(3)]
        assert [a[0] for a in answers] == [200, 200, 429]
        # sec counts down the second's budget: 2 - 1 = 1 left, then 2 - 2 = 0
        assert [a[1]["Remaining-Req"] for a in answers] == [
            "group=candles; min=600; sec=1",
            "group=candles; min=600; sec=0",
            "group=candles; min=600; sec=0",
        ]
        _, headers, body = answers[2]
        assert body == "Too many API requests."
        assert headers["Content-Type"].startswith("text/plain")
        with pytest.raises(json.JSONDecodeError):
            json.loads(body)
        status, headers, _ = await raw(http, url, MARKETS)
        assert (status, headers["Remaining-Req"]) == (200, "group=market; min=600; sec=1")
        now.t += 1.0  # the requests at 1000.0 leave the sliding second at 1001.0
        status, headers, _ = await raw(http, url, CANDLES)
        assert (status, headers["Remaining-Req"]) == (200, "group=candles; min=600; sec=1")


async def test_continued_excess_is_the_documented_418_until_the_block_ends() -> None:
    """§1.4/§1.5/§1.7: two 429s in a row (block_after=2) block the IP for 30 s: every
    request, of any group, gets 418 with sec=0 and the time left, rounded up to whole
    seconds, in Retry-After and in a plain-text body; at the stated time the block is over."""
    now = Frozen()
    fake = FakeUpbit(limit_per_s=1, block_after=2, block_s=30, timer=now)
    fake.add_rows(rows())
    async with running_fake_upbit(fake) as (_, url), aiohttp.ClientSession() as http:
        assert [(await raw(http, url, CANDLES))[0] for _ in range(3)] == [200, 429, 429]
        for path, group in ((CANDLES, "candles"), (MARKETS, "market")):
            status, headers, body = await raw(http, url, path)
            assert status == 418, path
            assert headers["Remaining-Req"] == f"group={group}; min=600; sec=0"
            assert headers["Retry-After"] == "30"  # blocked at 1000.0 until 1030.0
            assert body == "blocked for 30 seconds"
            assert headers["Content-Type"].startswith("text/plain")
        now.t += 29.5  # 0.5 s left: stated as 1 whole second, rounded up
        status, headers, body = await raw(http, url, CANDLES)
        assert (status, headers["Retry-After"], body) == (418, "1", "blocked for 1 seconds")
        now.t += 0.5  # 1030.0: the block has ended and the 1000.0 request left the second
        status, headers, _ = await raw(http, url, CANDLES)
        assert (status, headers["Remaining-Req"]) == (200, "group=candles; min=600; sec=0")
        assert (fake.stats["429"], fake.stats["418"]) == (2, 3)
