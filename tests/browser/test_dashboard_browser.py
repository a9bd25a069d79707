"""The dashboard in headless Chromium on replayed data: every page loads clean and shows it.

One replay per module (it takes a while): four hours of real minutes through the live path
with the AI step on the local Anthropic fake. The tests then read what the replay wrote and
check the pages show exactly that.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio

from coinpilot.adapters import db as dbmod
from coinpilot.adapters.cache import Keys, create_redis
from coinpilot.app import Deps
from tests.browser.cdp import Page, launch
from tests.browser.replay_seed import CONFIRM_TEXT, REJECT_TEXT, Replayed, replay_into
from tests.conftest import _with_db
from tests.integration.dashboard_data import start_dashboard

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

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
# Each candle's body, sampled at its own position, has the colour of its direction.
BODIES_JS = """
(() => {
  const c = document.getElementById("chart");
  const g = JSON.parse(c.dataset.geometry);
  const data = JSON.parse(document.getElementById("chart-data").textContent);
  const r = c.width / c.clientWidth;
  const px = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  const y = (p) => g.top + g.height * (g.hi - p) / (g.hi - g.lo);
  let checked = 0, agree = 0;
  data.candles.forEach((k, i) => {
    const y0 = y(Math.max(k.o, k.c)), y1 = y(Math.min(k.o, k.c));
    if (y1 - y0 < 4) return;  // a body too thin to sample apart from its edges
    const row = Math.round((y0 + y1) / 2 * r), col = Math.round((g.left + g.step * (i + 0.5)) * r);
    const at = 4 * (row * c.width + col);
    const green = px[at + 1] > 100 && px[at] < 80 && px[at + 2] < 90;
    const red = px[at] > 170 && px[at + 1] < 80 && px[at + 2] < 90;
    checked++;
    if ((k.c >= k.o && green) || (k.c < k.o && red)) agree++;
  });
  return {checked, agree, candles: data.candles.length};
})()
"""
ROWS_JS = "document.querySelectorAll('table.%s tbody tr').length"


@dataclass
class Site:
    url: str
    page: Page
    pool: asyncpg.Pool
    data: Replayed

    @property
    def traded(self) -> str:
        """The symbol with the most fills in the replay."""
        counts: dict[str, int] = {}
        for t in self.data.trades:
            counts[t["symbol"]] = counts.get(t["symbol"], 0) + 1
        return max(counts, key=lambda s: counts[s])


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def site(
    chromium: str,
    pg_admin_dsn: str,
    pg_template: str,
    redis_url_base: str,
    data_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Site]:
    """Replay into a fresh database, serve the dashboard with a token, log a browser in."""
    tmp = tmp_path_factory.mktemp("dashboard-browser")
    name = f"cp_b_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(pg_admin_dsn)
    await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    await admin.close()
    pool = await dbmod.create_pool(_with_db(pg_admin_dsn, name), min_size=1, max_size=8)
    redis = create_redis(redis_url_base)
    keys = Keys(prefix=f"b{uuid.uuid4().hex[:10]}:")
    deps: Deps | None = None
    runner = browser = None
    try:
        settings, data = await replay_into(pool, redis, keys, data_dir, tmp, TOKEN)
        assert data.trades, "the replay made no trades: nothing to show"
        assert data.decisions, "the replay made no AI decisions: nothing to show"
        deps, runner, url = await start_dashboard(settings, pool, redis, keys, data.now)
        browser = await launch(chromium, tmp / "profile")
        page = await browser.new_page()
        await page.viewport(1280, 900)
        await page.goto(f"{url}/login?token={TOKEN}")
        yield Site(url, page, pool, data)
    finally:
        if browser is not None:
            await browser.close()
        if runner is not None:
            await runner.cleanup()
        if deps is not None:
            await deps.http.close()
        async for key in redis.scan_iter(match=f"{keys.prefix}*", count=500):
            await redis.delete(key)
        await redis.aclose()
        await pool.close()
        admin = await asyncpg.connect(pg_admin_dsn)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
def page(site: Site) -> Page:
    """The logged-in page, with this test's console errors only."""
    site.page.errors.clear()
    return site.page


async def _text(page: Page) -> str:
    return str(await page.eval("document.body.innerText"))


async def _desktop(page: Page) -> None:
    await page.viewport(1280, 900)


async def test_every_page_loads_clean_and_shows_the_replay(site: Site, page: Page) -> None:
    """Each page loads without console errors and shows the replay's fills and AI decisions."""
    await _desktop(page)
    sym = site.traded
    await page.goto(site.url + "/")
    assert "Equity (KRW)" in await _text(page)
    await page.screenshot(SHOTS / "overview.png")
    await page.goto(f"{site.url}/market?symbol={sym}")
    assert await page.eval(ROWS_JS % "fills") == sum(t["symbol"] == sym for t in site.data.trades)
    await page.screenshot(SHOTS / "market.png")
    await page.goto(site.url + "/history")
    assert await page.eval(ROWS_JS % "trades") == min(50, len(site.data.trades))
    assert await page.eval(ROWS_JS % "decisions") == min(50, len(site.data.decisions))
    text = await _text(page)
    verdicts = {d["decision"] for d in site.data.decisions}
    assert all(v in text for v in verdicts)
    # The page lists the 50 newest decisions: each text is there exactly when one of them
    # carries it (the replay's analyst gives one text for a confirm, another for a reject).
    newest = sorted(site.data.decisions, key=lambda d: (d["created_at"], d["id"]))[-50:]
    expected = {t: any(t in (d["reasoning"] or "") for d in newest)
                for t in (CONFIRM_TEXT, REJECT_TEXT)}  # fmt: skip
    assert any(expected.values())
    assert {t: t[:40] in text for t in expected} == expected
    await page.screenshot(SHOTS / "history.png")
    for path, needle in (("/risk", "BUY fills today"), ("/system", "Calls today")):
        await page.goto(site.url + path)
        assert needle in await _text(page)
        await page.screenshot(SHOTS / f"{path.strip('/')}.png")
    assert page.errors == []


async def test_chart_renders_candles_bands_and_markers(site: Site, page: Page) -> None:
    """The Market canvas is painted with 240 one-minute candles in both directions, and hourly."""
    await _desktop(page)
    for interval in ("1m", "1h"):
        await page.goto(f"{site.url}/market?symbol={site.traded}&interval={interval}")
        px = await page.eval(PIXELS_JS)
        assert px["painted"] > px["total"] * 0.05, px
        assert px["green"] > 50, px
        assert px["red"] > 50, px
        if interval == "1m":
            assert px["candles"] == "240"
        bodies = await page.eval(BODIES_JS)
        # The MA line or a fill marker may cover a few bodies; the rest match the data.
        assert bodies["checked"] >= 20, bodies
        assert bodies["agree"] >= 0.9 * bodies["checked"], bodies
    await page.screenshot(SHOTS / "market-1h.png")
    assert page.errors == []


async def test_history_filter_narrows_to_one_symbol(site: Site, page: Page) -> None:
    """Choosing a symbol in the History filter reloads with only that symbol's rows."""
    await _desktop(page)
    sym = site.traded
    await page.goto(site.url + "/history")
    await page.eval(f"document.getElementById('f-symbol').value = '{sym}'")
    await page.click_and_wait("#f-apply")
    assert f"symbol={sym}" in await page.eval("location.search")
    shown = await page.eval(
        "[...document.querySelectorAll('table.trades td[data-label=Symbol],"
        " table.decisions td[data-label=Symbol]')].map(td => td.textContent)"
    )
    expected = await site.pool.fetchval(
        "SELECT (SELECT count(*) FROM trading_history WHERE symbol = $1)"
        " + (SELECT count(*) FROM agent_decisions WHERE symbol = $1)",
        sym,
    )
    assert shown == [sym] * expected
    await page.screenshot(SHOTS / "history-filtered.png")
    assert page.errors == []


async def test_phone_layout_has_no_horizontal_overflow(site: Site, page: Page) -> None:
    """At phone width the pages fit the screen (tables stack) and the chart still draws."""
    await page.viewport(390, 844, mobile=True)
    try:
        for path in ("/", f"/market?symbol={site.traded}", "/history"):
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
    finally:
        await _desktop(page)
    assert page.errors == []


async def test_auto_refresh_swaps_in_new_rows_without_reloading(site: Site, page: Page) -> None:
    """A refresh fetches the page again and shows a fill written since, keeping the filter."""
    await _desktop(page)
    await page.goto(site.url + "/history?symbol=KRW-XRP")
    await page.eval("window.__same_document = true")
    assert await page.eval(ROWS_JS % "trades") == 0
    await site.pool.execute(
        "INSERT INTO trading_history (idempotency_key, symbol, side, price, quantity, notional,"
        " strategy_name, exit_reason, candle_ts, executed_at)"
        " VALUES ('refresh-test', 'KRW-XRP', 'SELL', 800, 10, 8000, 'AdaptiveMeanReversion',"
        " 'TRAILING_STOP', $1, $1)",
        site.data.now,
    )
    try:
        await page.eval("window.CoinPilotDashboard.refresh()")
        assert await page.eval("window.__same_document") is True
        assert await page.eval(ROWS_JS % "trades") == 1
        assert "TRAILING_STOP" in await _text(page)
    finally:
        await site.pool.execute(
            "DELETE FROM trading_history WHERE idempotency_key = 'refresh-test'"
        )
    await page.goto(f"{site.url}/market?symbol={site.traded}")
    await page.eval("window.CoinPilotDashboard.refresh()")
    px = await page.eval(PIXELS_JS)
    assert px["painted"] > px["total"] * 0.05, px
    assert page.errors == []


CHART_JS = """
(() => {
  const c = document.getElementById("chart");
  return {markers: c.dataset.markers, levels: c.dataset.levels, rsi: c.dataset.rsi,
          candles: c.dataset.candles};
})()
"""


async def test_overview_equity_curve_and_all_time_stats(site: Site, page: Page) -> None:
    """The curve has one point per closed round trip plus the start; the cards agree with
    the ledger: win rate over the SELLs, fees from the account row."""
    await _desktop(page)
    sells = [t for t in site.data.trades if t["side"] == "SELL"]
    await page.goto(site.url + "/")
    points = await page.eval("document.getElementById('equity-curve').dataset.points")
    assert int(points) == len(sells) + 1
    cards = str(await page.eval("document.getElementById('all-time').innerText"))
    fees = await site.pool.fetchval("SELECT fees_paid FROM account_state")
    assert f"{fees:,.0f}" in cards
    assert f"Round trips\n{len(sells)}" in cards
    await page.screenshot(SHOTS / "overview-equity.png")
    assert page.errors == []


async def test_market_chart_has_rsi_levels_and_every_fill(site: Site, page: Page) -> None:
    """Under the price an RSI pane is drawn; the open position's four levels are on the
    chart; every fill of the window is a marker; every time shown names its zone."""
    await _desktop(page)
    held = await site.pool.fetch("SELECT symbol FROM positions")
    sym = held[0]["symbol"] if held else site.traded
    await page.goto(f"{site.url}/market?symbol={sym}")
    chart = await page.eval(CHART_JS)
    assert int(chart["rsi"]) >= int(chart["candles"]) - 13
    assert int(chart["levels"]) == (4 if held else 0)
    assert int(chart["markers"]) == await page.eval(ROWS_JS % "fills")
    cells = await page.eval(
        "[...document.querySelectorAll('table.fills td[data-label=Executed]')]"
        ".map(td => td.textContent)"
    )
    assert cells
    assert all(c.endswith(" KST") for c in cells)
    await page.screenshot(SHOTS / "market-levels-rsi.png")
    assert page.errors == []


async def test_history_lists_round_trips_net_of_fees(site: Site, page: Page) -> None:
    """One row per closed round trip, with net PnL equal to the ledger's gross minus both fees."""
    await _desktop(page)
    await page.goto(site.url + "/history")
    sells = [t for t in site.data.trades if t["side"] == "SELL"]
    assert await page.eval(ROWS_JS % "round-trips") == min(50, len(sells))
    nets = await page.eval(
        "[...document.querySelectorAll('table.round-trips td[data-label=\"Net PnL (KRW)\"]')]"
        ".map(td => td.textContent)"
    )
    expected = await site.pool.fetch(
        "SELECT s.realized_pnl - s.fee - (SELECT b.fee FROM trading_history b"
        "  WHERE b.symbol = s.symbol AND b.side = 'BUY' AND b.executed_at < s.executed_at"
        "  ORDER BY b.executed_at DESC LIMIT 1) AS net"
        " FROM trading_history s WHERE s.side = 'SELL' ORDER BY s.executed_at DESC"
    )
    assert nets == [f"{r['net']:+,.0f}" for r in expected]
    await page.screenshot(SHOTS / "history-round-trips.png")
    assert page.errors == []
