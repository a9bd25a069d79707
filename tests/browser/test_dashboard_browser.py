"""The dashboard in headless Chromium: every page loads clean, shows the data, draws the chart."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis

from coinpilot.adapters.cache import Keys
from coinpilot.config import Settings
from tests.browser.cdp import Browser, Page, launch
from tests.integration.dashboard_data import seed_book, start_dashboard

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-output" / "dashboard"
TOKEN = "browser-test-token-0123456789"

PIXELS_JS = """
(() => {
  const c = document.getElementById("chart");
  const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  let painted = 0, green = 0, red = 0;
  for (let i = 0; i < d.length; i += 4) {
    if (d[i + 3] === 0) continue;
    painted++;
    if (d[i + 1] > 100 && d[i] < 80 && d[i + 2] < 90) green++;
    if (d[i] > 170 && d[i + 1] < 80 && d[i + 2] < 90) red++;
  }
  return {painted, green, red, total: d.length / 4, candles: c.dataset.candles};
})()
"""


@dataclass
class Site:
    url: str
    page: Page
    pool: asyncpg.Pool


@pytest.fixture
async def site(
    chromium: str,
    tmp_path: Path,
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    keys: Keys,
    data_dir: Path,
    make_settings: Callable[..., Settings],
) -> AsyncIterator[Site]:
    """A token-protected dashboard on seeded data, and a browser that has logged in."""
    seeded = await seed_book(pool, redis, keys, data_dir)
    settings = make_settings(
        env={"COINPILOT_DASHBOARD_TOKEN": TOKEN}, symbols=["KRW-BTC", "KRW-ETH"]
    )
    deps, runner, url = await start_dashboard(settings, pool, redis, keys, seeded)
    browser: Browser = await launch(chromium, tmp_path / "profile")
    try:
        page = await browser.new_page()
        await page.viewport(1280, 900)
        await page.goto(f"{url}/login?token={TOKEN}")
        yield Site(url, page, pool)
    finally:
        await browser.close()
        await runner.cleanup()
        await deps.http.close()


async def _text(page: Page) -> str:
    return str(await page.eval("document.body.innerText"))


async def test_every_page_loads_clean_and_shows_the_data(site: Site) -> None:
    """Each page loads without console errors and shows the seeded trades, decisions and rows."""
    page = site.page
    expectations = {
        "/": ["Equity (KRW)", "KRW-BTC", "HOLD (POS)", "holding position"],
        "/market?symbol=KRW-BTC": ["Market · KRW-BTC", "BUY", "BEAR"],
        "/history": ["TAKE_PROFIT", "LOW_CONFIDENCE", "claude-test-model", "KRW-ETH"],
        "/risk": ["BUY fills today", "MAX_POSITIONS", "three positions already open"],
        "/system": ["regime", "too few candles", "HTTP 500 from webhook", "Calls today"],
    }
    for path, needles in expectations.items():
        await page.goto(site.url + path)
        text = await _text(page)
        for needle in needles:
            assert needle in text, (path, needle)
        name = path.strip("/").split("?")[0] or "overview"
        await page.screenshot(SHOTS / f"{name}.png")
    assert await page.eval("window.__pwned === undefined")
    assert page.errors == []


async def test_chart_renders_candles_bands_and_markers(site: Site) -> None:
    """The Market canvas is painted: 240 candles, with green and red pixels (candles, markers)."""
    page = site.page
    for interval, candles in (("1m", "240"), ("1h", None)):
        await page.goto(f"{site.url}/market?symbol=KRW-BTC&interval={interval}")
        px = await page.eval(PIXELS_JS)
        assert px["painted"] > px["total"] * 0.05, px
        assert px["green"] > 50, px
        assert px["red"] > 50, px
        if candles:
            assert px["candles"] == candles
    await page.screenshot(SHOTS / "market-1h.png")
    assert page.errors == []


async def test_history_filter_narrows_to_one_symbol(site: Site) -> None:
    """Choosing KRW-ETH in the History filter reloads with only KRW-ETH trades and decisions."""
    page = site.page
    await page.goto(site.url + "/history")
    before = await page.eval("document.querySelectorAll('table.trades tbody tr').length")
    assert before == 3
    await page.eval("document.getElementById('f-symbol').value = 'KRW-ETH'")
    await page.click_and_wait("#f-apply")
    assert "symbol=KRW-ETH" in await page.eval("location.search")
    symbols = await page.eval(
        "[...document.querySelectorAll('table.trades td[data-label=Symbol],"
        " table.decisions td[data-label=Symbol]')].map(td => td.textContent)"
    )
    assert symbols == ["KRW-ETH", "KRW-ETH", "KRW-ETH"]
    await page.screenshot(SHOTS / "history-filtered.png")
    assert page.errors == []


async def test_phone_layout_has_no_horizontal_overflow(site: Site) -> None:
    """At phone width the pages fit the screen (tables stack) and the chart still draws."""
    page = site.page
    await page.viewport(390, 844, mobile=True)
    for path in ("/", "/market?symbol=KRW-BTC", "/history"):
        await page.goto(site.url + path)
        overflow = await page.eval(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 1, (path, overflow)
        name = path.strip("/").split("?")[0] or "overview"
        await page.screenshot(SHOTS / f"phone-{name}.png")
        if name == "market":
            px = await page.eval(PIXELS_JS)
            assert px["painted"] > px["total"] * 0.05, px
    assert page.errors == []


async def test_auto_refresh_swaps_in_new_rows_without_reloading(site: Site) -> None:
    """A refresh fetches the page again and shows a fill written since, keeping the filter."""
    page = site.page
    await page.goto(site.url + "/history?symbol=KRW-BTC")
    await page.eval("window.__same_document = true")
    assert await page.eval("document.querySelectorAll('table.trades tbody tr').length") == 1
    await site.pool.execute(
        "INSERT INTO trading_history (idempotency_key, symbol, side, price, quantity, notional,"
        " realized_pnl, strategy_name, exit_reason, candle_ts, executed_at)"
        " SELECT 'KRW-BTC|sell', 'KRW-BTC', 'SELL', 11250000, 0.04, 450000, 10000,"
        " 'AdaptiveMeanReversion', 'TRAILING_STOP', max(ts), max(ts) FROM market_data"
    )
    await page.eval("window.CoinPilotDashboard.refresh()")
    assert await page.eval("window.__same_document") is True
    assert await page.eval("document.querySelectorAll('table.trades tbody tr').length") == 2
    assert "TRAILING_STOP" in await _text(page)
    await page.goto(site.url + "/market?symbol=KRW-BTC")
    await page.eval("window.CoinPilotDashboard.refresh()")
    px = await page.eval(PIXELS_JS)
    assert px["painted"] > px["total"] * 0.05, px
    assert page.errors == []
