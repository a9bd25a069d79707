"""The Upbit fake answers candle requests as EXTERNAL_APIS §1.1, §1.4 and §1.5 describe.

Read-only checks of the wire format (the rate-limit budget has its own tests): the
documented fields and their types, newest first, ``to`` exclusive in any of its spellings,
minutes without trades skipped, the Remaining-Req header, and the error body shape.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import aiohttp

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
