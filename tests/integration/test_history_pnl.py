"""The History page and /api/trades show a round trip's PnL net of both fees (what Discord
and the backtest show), with the gross and the fees beside it."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import aiohttp
import asyncpg
import redis.asyncio as aioredis

from coinpilot.adapters.cache import Keys
from coinpilot.config import Settings
from coinpilot.domain.money_format import won
from coinpilot.services import control
from tests.integration.dashboard_data import start_dashboard
from tests.integration.test_control import NOW, open_btc


async def test_sell_rows_carry_net_gross_and_both_fees(
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    keys: Keys,
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(symbols=["KRW-BTC"])
    await open_btc(pool, settings)
    await control.force_exit(pool, settings.app, "KRW-BTC", by="t", now=NOW)
    # By hand: bought 0.00444222 at 90,045,000, sold at 95,952,000, 0.05 % fee each side.
    qty = Decimal("0.00444222")
    buy_fee = Decimal(90_045_000) * qty * Decimal("0.0005")
    sell_fee = Decimal(95_952_000) * qty * Decimal("0.0005")
    gross = (Decimal(95_952_000) - Decimal(90_045_000)) * qty
    net = gross - buy_fee - sell_fee
    deps, runner, url = await start_dashboard(settings, pool, redis, keys, NOW)
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(url + "/api/trades") as resp:
                items = (await resp.json())["items"]
            async with http.get(url + "/history") as resp:
                page = await resp.text()
    finally:
        await runner.cleanup()
        await deps.http.close()
    sell = next(t for t in items if t["side"] == "SELL")
    buy = next(t for t in items if t["side"] == "BUY")
    assert Decimal(sell["net_pnl"]) == net  # exact decimal strings in JSON
    assert Decimal(sell["realized_pnl"]) == gross
    assert Decimal(sell["round_trip_fees"]) == buy_fee + sell_fee
    assert buy["net_pnl"] is None
    assert "Net PnL" in page
    assert won(net, sign=True) in page
    assert won(gross, sign=True) in page
