"""The dashboard's JSON API and pages against real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
import redis.asyncio as aioredis

from coinpilot.adapters.cache import Keys, create_redis
from coinpilot.app import Deps
from coinpilot.config import Settings
from coinpilot.errors import ConfigError
from coinpilot.web import queries as q
from tests.integration.dashboard_data import XSS, Seeded, seed_book, start_dashboard

TOKEN = "s3cret-dashboard-token-for-tests"


@dataclass
class Dashboard:
    url: str
    deps: Deps
    seeded: Seeded
    session: aiohttp.ClientSession

    async def get(self, path: str, **kw: Any) -> tuple[int, Any]:
        async with self.session.get(self.url + path, **kw) as resp:
            if resp.content_type == "application/json":
                return resp.status, await resp.json()
            return resp.status, await resp.text()


@pytest.fixture
async def dash(
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    keys: Keys,
    data_dir: Path,
    make_settings: Callable[..., Settings],
) -> AsyncIterator[Dashboard]:
    seeded = await seed_book(pool, redis, keys, data_dir)
    settings = make_settings(symbols=["KRW-BTC", "KRW-ETH"])
    deps, runner, url = await start_dashboard(settings, pool, redis, keys, seeded.now)
    async with aiohttp.ClientSession() as session:
        yield Dashboard(url, deps, seeded, session)
    await runner.cleanup()
    await deps.http.close()


async def test_overview_marks_positions_at_the_latest_candle(dash: Dashboard) -> None:
    """Equity is cash plus the open position marked at the newest stored close, exactly."""
    status, body = await dash.get("/api/overview")
    assert status == 200
    close = dash.seeded.last_close
    value = Decimal("0.04") * close
    assert Decimal(body["cash"]) == Decimal("9500000")
    assert Decimal(body["exposure"]) == value
    assert Decimal(body["equity"]) == Decimal("9500000") + value
    assert Decimal(body["today_pnl"]) == Decimal("9500000") + value - Decimal("10000000")
    [pos] = body["positions"]
    expected_pct = ((close - Decimal(11000000)) / Decimal(11000000) * 100).quantize(Decimal("0.01"))
    assert Decimal(pos["pnl_pct"]) == expected_pct
    btc = next(s for s in body["symbols"] if s["symbol"] == "KRW-BTC")
    assert btc["status"]["action"] == "HOLD (POS)"
    assert btc["regime"] == "BEAR"
    assert body["today"]["buy_count"] == 2


async def test_trades_filter_by_symbol_day_and_page(dash: Dashboard) -> None:
    """Trades narrow by symbol and by KST day, and pages split the list with has_next."""
    _, everything = await dash.get("/api/trades")
    assert len(everything["items"]) == 3
    _, eth = await dash.get("/api/trades", params={"symbol": "KRW-ETH"})
    assert {t["symbol"] for t in eth["items"]} == {"KRW-ETH"}
    assert len(eth["items"]) == 2
    _, first = await dash.get("/api/trades", params={"limit": "2"})
    _, second = await dash.get("/api/trades", params={"limit": "2", "page": "2"})
    assert first["has_next"] is True
    assert second["has_next"] is False
    ids = {t["id"] for t in first["items"]} | {t["id"] for t in second["items"]}
    assert len(ids) == 3
    _, other_day = await dash.get("/api/trades", params={"day": "2019-01-01"})
    assert other_day["items"] == []
    kst_day = dash.seeded.buy_ts.astimezone(dash.deps.settings.app.tz).date().isoformat()
    _, same_day = await dash.get("/api/trades", params={"day": kst_day})
    assert len(same_day["items"]) >= 2


async def test_decisions_carry_reasoning_model_and_cost(dash: Dashboard) -> None:
    """AI decisions come back newest first with reasoning, confidence, model and cost."""
    _, body = await dash.get("/api/decisions")
    assert [d["decision"] for d in body["items"]] == ["REJECT", "CONFIRM"]
    reject = body["items"][0]
    assert reject["confidence"] == 41
    assert reject["model_used"] == "claude-test-model"
    assert Decimal(reject["cost_usd"]) == Decimal("0.0061")
    _, btc = await dash.get("/api/decisions", params={"symbol": "KRW-BTC"})
    assert [d["symbol"] for d in btc["items"]] == ["KRW-BTC"]


async def test_market_series_has_bands_regimes_and_markers(dash: Dashboard) -> None:
    """The 1-minute chart holds 240 candles, MA20 from the first one, BEAR shading, fills."""
    status, body = await dash.get("/api/market/KRW-BTC")
    assert status == 200
    assert len(body["candles"]) == 240
    assert all(v is not None for v in body["ma20"])
    closes = [c["c"] for c in body["candles"]]
    assert body["ma20"][-1] == pytest.approx(sum(closes[-20:]) / 20)
    assert all(lo < hi for lo, hi in zip(body["bb_lower"], body["bb_upper"], strict=True))
    assert body["regimes"][-1]["regime"] == "BEAR"
    assert {t["side"] for t in body["trades"]} == {"BUY"}
    _, hourly = await dash.get("/api/market/KRW-BTC", params={"interval": "1h"})
    assert 9 <= len(hourly["candles"]) <= 11
    assert all(c["t"] % 3600 == 0 for c in hourly["candles"])


async def test_risk_reports_usage_against_limits(dash: Dashboard) -> None:
    """Risk shows today's BUY count, positions and exposure against the configured limits."""
    _, body = await dash.get("/api/risk")
    usage = body["usage"]
    assert usage["daily_buys"] == {"used": 2, "limit": 10, "pct": "20.0"}
    assert usage["open_positions"]["used"] == 1
    assert usage["open_positions"]["limit"] == 3
    assert usage["consecutive_losses"]["used"] == 1
    assert body["audit"][0]["violation_type"] == "MAX_POSITIONS"


async def test_system_shows_candle_age_jobs_outbox_and_guardrails(dash: Dashboard) -> None:
    """System reports candle age from the clock, job runs, outbox backlog and guardrail keys."""
    _, body = await dash.get("/api/system")
    ages = {c["symbol"]: c["age_s"] for c in body["candles"]}
    assert ages == {"KRW-BTC": 30.0, "KRW-ETH": None}
    assert {j["job"]: j["status"] for j in body["jobs"]} == {"regime": "ok", "volatility": "error"}
    assert body["outbox"]["pending"] == 2
    assert body["outbox"]["recent_failures"][0]["last_error"] == "HTTP 500 from webhook"
    guard = body["ai"]["guardrails"]
    assert guard["calls_this_hour"]["used"] == 3
    assert guard["calls_today"]["used"] == 7
    eth = next(s for s in guard["symbols"] if s["symbol"] == "KRW-ETH")
    assert eth["reject_count"] == 2
    assert 0 < eth["cooldown_s"] <= 600


async def test_pages_render_and_escape_model_text(dash: Dashboard) -> None:
    """Every page renders; model-written reasoning is escaped, never executed as markup."""
    for path in ("/", "/market?symbol=KRW-BTC", "/history", "/risk", "/system"):
        status, text = await dash.get(path)
        assert status == 200, path
        assert '<main id="main">' in text
    _, history = await dash.get("/history")
    assert XSS not in history
    assert "&lt;script&gt;window.__pwned" in history
    assert "TAKE_PROFIT" in history


async def test_bad_parameters_get_a_clear_400(dash: Dashboard) -> None:
    """Malformed filters are refused with a message naming the parameter."""
    for params, word in (
        ({"day": "yesterday"}, "day"),
        ({"page": "0"}, "page"),
        ({"limit": "5000"}, "limit"),
        ({"symbol": "btc"}, "symbol"),
    ):
        status, body = await dash.get("/api/trades", params=params)
        assert status == 400, params
        assert word in body["detail"]
    status, _ = await dash.get("/api/market/KRW-NOPE")
    assert status == 404


async def test_dashboard_accepts_no_writes(dash: Dashboard) -> None:
    """Every dashboard route is read-only: POST, PUT and DELETE are refused with 405."""
    for method in ("POST", "PUT", "DELETE"):
        for path in ("/", "/api/overview", "/history", "/api/trades"):
            async with dash.session.request(method, dash.url + path) as resp:
                assert resp.status == 405, (method, path)


async def test_token_guards_pages_but_not_health_or_metrics(
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    keys: Keys,
    data_dir: Path,
    make_settings: Callable[..., Settings],
) -> None:
    """With a token, pages and API need it (header or login cookie); /health and /metrics do not."""
    seeded = await seed_book(pool, redis, keys, data_dir)
    settings = make_settings(env={"COINPILOT_DASHBOARD_TOKEN": TOKEN}, symbols=["KRW-BTC"])
    deps, runner, url = await start_dashboard(settings, pool, redis, keys, seeded.now)
    try:
        async with aiohttp.ClientSession() as anon:
            for path in ("/", "/api/overview", "/system"):
                async with anon.get(url + path) as resp:
                    assert resp.status == 401, path
            async with anon.get(url + "/api/overview", headers={"Authorization": "Bearer x"}) as r:
                assert r.status == 401
            async with anon.get(url + "/metrics") as resp:
                assert resp.status == 200
            async with anon.get(url + "/health") as resp:
                assert resp.status in (200, 503)
            auth = {"Authorization": f"Bearer {TOKEN}"}
            async with anon.get(url + "/api/overview", headers=auth) as resp:
                assert resp.status == 200
        # unsafe=True: aiohttp's jar ignores cookies from bare IP hosts unless told otherwise.
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
            async with browser.get(url + "/login", params={"token": "wrong"}) as resp:
                assert resp.status == 401
            async with browser.get(url + "/login", params={"token": TOKEN}) as resp:
                assert resp.status == 200
                assert "Overview" in await resp.text()
            async with browser.get(url + "/history") as resp:
                assert resp.status == 200
    finally:
        await runner.cleanup()
        await deps.http.close()


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::", "dashboard.example"])
async def test_public_bind_without_token_refuses_to_start(
    host: str, make_settings: Callable[..., Settings]
) -> None:
    """A public bind without a token is refused while loading the config, before serve()
    opens anything (and so by check-config too)."""
    with pytest.raises(ConfigError, match="COINPILOT_DASHBOARD_TOKEN"):
        make_settings(http={"host": host, "port": 0})


async def test_coinpilot_run_exits_2_on_public_bind_without_token(tmp_path: Path) -> None:
    """`coinpilot run` on 0.0.0.0 without a token exits with status 2 and names the variable."""
    env = {"COINPILOT_HTTP_HOST": "0.0.0.0", "STATE_DIRECTORY": str(tmp_path), "PATH": "/usr/bin"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "coinpilot",
        "run",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 2
    assert b"COINPILOT_DASHBOARD_TOKEN" in err


async def test_loopback_bind_needs_no_token(make_settings: Callable[..., Settings]) -> None:
    """On 127.0.0.1 or ::1 the token is optional; a short token is refused anywhere."""
    from coinpilot.web.auth import require_token_when_exposed

    assert require_token_when_exposed(make_settings(http={"host": "127.0.0.1"})) is None
    assert require_token_when_exposed(make_settings(http={"host": "::1"})) is None
    public = make_settings(env={"COINPILOT_DASHBOARD_TOKEN": TOKEN}, http={"host": "0.0.0.0"})
    assert require_token_when_exposed(public) == TOKEN
    with pytest.raises(ConfigError, match="16 characters"):
        require_token_when_exposed(make_settings(env={"COINPILOT_DASHBOARD_TOKEN": "short"}))


class ExplainingConn:
    """Runs each dashboard query as EXPLAIN on a real connection and keeps the plans."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.plans: list[tuple[str, Any]] = []

    async def _explain(self, sql: str, args: tuple[Any, ...]) -> None:
        raw = await self.conn.fetchval("EXPLAIN (FORMAT JSON) " + sql, *args)
        plan = raw if isinstance(raw, list) else json.loads(raw)
        self.plans.append((sql, plan[0]["Plan"]))

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        await self._explain(sql, args)
        return []

    async def fetchrow(self, sql: str, *args: Any) -> None:
        await self._explain(sql, args)

    async def fetchval(self, sql: str, *args: Any) -> None:
        await self._explain(sql, args)


def _seq_scans(node: dict[str, Any]) -> list[str]:
    found = [node["Relation Name"]] if node["Node Type"] == "Seq Scan" else []
    for child in node.get("Plans", []):
        found += _seq_scans(child)
    return found


async def test_every_dashboard_query_can_run_from_an_index(pool: asyncpg.Pool) -> None:
    """With sequential scans disabled no dashboard query scans a table: each has an index path."""
    t0, t1 = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC)
    async with pool.acquire() as conn:
        await conn.execute("SET enable_seqscan = off")
        spy = ExplainingConn(conn)
        c: Any = spy
        await q.account(c)
        await q.positions(c)
        await q.latest_candles(c, ["KRW-BTC", "KRW-ETH"])
        await q.daily_risk(c, t0.date())
        for f in (q.ListFilter(), q.ListFilter("KRW-BTC"), q.ListFilter(None, t0, t1)):
            await q.trades(c, f)
            await q.round_trips(c, f)
            await q.decisions(c, f)
        await q.trades(c, q.ListFilter("KRW-BTC", t0, t1))
        await q.round_trips(c, q.ListFilter("KRW-BTC", t0, t1))
        await q.recent_round_trips(c)
        await q.open_entry_fees(c)
        await q.risk_audit(c)
        await q.candles_1m(c, "KRW-BTC", 259)
        await q.candles_1h(c, "KRW-BTC", 187)
        await q.regimes_between(c, "KRW-BTC", t0, t1)
        await q.trades_between(c, "KRW-BTC", t0, t1)
        await q.job_runs(c)
        await q.outbox_state(c)
    assert len(spy.plans) == 25
    for sql, plan in spy.plans:
        assert _seq_scans(plan) == [], sql
        unbounded = "LIMIT" not in sql and "WHERE id = 1" not in sql
        assert not unbounded or "trade_date = $1" in sql or "status = 'pending'" in sql, sql


async def test_pages_survive_redis_down(
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    keys: Keys,
    data_dir: Path,
    make_settings: Callable[..., Settings],
) -> None:
    """With Redis unreachable, pages still render from PostgreSQL, say so, and count the error."""
    seeded = await seed_book(pool, redis, keys, data_dir)
    dead = create_redis("redis://127.0.0.1:9/0")
    deps, runner, url = await start_dashboard(make_settings(), pool, dead, keys, seeded.now)
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(url + "/") as resp:
                assert resp.status == 200
                assert "Redis is unreachable" in await resp.text()
            async with http.get(url + "/api/system") as resp:
                body = await resp.json()
                assert body["ai"]["guardrails"] is None
                assert body["health"]["redis"] is False
        errors = deps.metrics.registry.get_sample_value(
            "coinpilot_dependency_errors_total", {"dependency": "redis", "kind": "dashboard_read"}
        )
        assert errors is not None
        assert errors >= 2
    finally:
        await runner.cleanup()
        await deps.http.close()
        await dead.aclose()


async def test_database_down_gives_503_but_system_page_still_renders(
    db_dsn: str,
    redis: aioredis.Redis,
    keys: Keys,
    make_settings: Callable[..., Settings],
) -> None:
    """When the pool is gone, data views answer 503 with a reason; System shows the outage."""
    from coinpilot.adapters import db as dbmod

    lost = await dbmod.create_pool(db_dsn, min_size=1, max_size=2)
    await lost.close()
    now = datetime(2024, 1, 1, tzinfo=UTC)
    deps, runner, url = await start_dashboard(make_settings(), lost, redis, keys, now)
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(url + "/api/trades") as resp:
                assert resp.status == 503
                assert "database" in (await resp.json())["detail"]
            async with http.get(url + "/system") as resp:
                assert resp.status == 200
                assert "DOWN" in await resp.text()
    finally:
        await runner.cleanup()
        await deps.http.close()


async def test_overview_has_all_time_stats_and_the_equity_curve(dash: Dashboard) -> None:
    """All-time PnL net of fees with gross, fees and the open position beside it; the ETH
    round trip nets 12,000 - 100 - 100 = 11,800, so the curve runs 9,999,400 -> 10,011,200
    (initial 10,000,000 + gross 12,000 - fees 800, no open BUY fee recorded)."""
    _, body = await dash.get("/api/overview")
    perf = body["performance"]
    value = Decimal("0.04") * dash.seeded.last_close
    assert Decimal(perf["pnl_krw"]) == Decimal("9500000") + value - Decimal("10000000")
    assert Decimal(perf["gross_krw"]) == 12000
    assert Decimal(perf["fees_krw"]) == 800
    assert Decimal(perf["unrealized_krw"]) == value - Decimal("440000")
    assert (perf["round_trips"], perf["wins"], perf["complete"]) == (1, 1, True)
    assert Decimal(perf["win_rate_pct"]) == 100
    assert Decimal(perf["max_drawdown_pct"]) == 0
    assert Decimal(perf["curve_start"]) == Decimal("9999400")
    assert [Decimal(p["equity"]) for p in perf["curve"]] == [Decimal("10011200")]
    _, page = await dash.get("/")
    assert 'id="equity-curve"' in page
    assert "gross +12,000 · fees 800" in page
    assert "100.00%" in page


async def test_round_trips_are_net_of_both_fees(dash: Dashboard) -> None:
    """History lists the ETH round trip once: gross +12,000, fees 100 + 100, net +11,800."""
    _, body = await dash.get("/api/round-trips")
    [trip] = body["items"]
    assert trip["symbol"] == "KRW-ETH"
    assert Decimal(trip["gross_pnl"]) == 12000
    assert Decimal(trip["entry_fee"]) + Decimal(trip["exit_fee"]) == 200
    assert Decimal(trip["net_pnl"]) == 11800
    assert trip["entry_at"] == (dash.seeded.buy_ts + timedelta(seconds=5)).isoformat()
    _, page = await dash.get("/history")
    trips = page.split("<h2>Round trips</h2>")[1].split("</section>")[0]
    assert "+11,800" in trips
    assert "+12,000" in trips
    # cost 600,000 + 100: 11,800 / 600,100 = 1.966...%
    assert "+1.97%" in trips
    assert " KST" in trips


async def test_market_draws_the_exit_levels_and_an_rsi_pane(dash: Dashboard) -> None:
    """BTC held since BEAR at 11,000,000 with HWM 11,500,000, BEAR exits (SL 5 %, TP 3 %,
    trailing 2 % once 1 % up): stop 10,450,000, take 11,330,000, trailing 11,500,000 x 0.98."""
    _, body = await dash.get("/api/market/KRW-BTC")
    levels = {lv["kind"]: Decimal(lv["price"]) for lv in body["levels"]}
    assert levels == {
        "entry": Decimal("11000000"),
        "stop_loss": Decimal("10450000"),
        "take_profit": Decimal("11330000"),
        "trailing_stop": Decimal("11270000"),
    }
    assert len(body["rsi14"]) == len(body["candles"]) == 240
    assert all(v is not None and 0 <= v <= 100 for v in body["rsi14"])
    assert body["tz_label"] == "KST"
    _, page = await dash.get("/market", params={"symbol": "KRW-BTC"})
    assert "10,450,000" in page  # the stop loss, listed under the chart
    assert "times in Asia/Seoul (KST)" in page
    _, eth = await dash.get("/api/market/KRW-ETH")
    assert eth["levels"] == []


async def test_a_fill_on_the_newest_candle_is_drawn_at_once(dash: Dashboard) -> None:
    """A SELL decided on the newest candle executes a few seconds after it closes, past the
    chart window's end: it is drawn now, not a minute later."""
    last = dash.seeded.last_candle
    await dash.deps.pool.execute(
        "INSERT INTO trading_history (idempotency_key, symbol, side, price, quantity, notional,"
        " fee, realized_pnl, strategy_name, regime, exit_reason, candle_ts, executed_at)"
        " VALUES ('KRW-BTC|sell', 'KRW-BTC', 'SELL', 11200000, 0.04, 448000, 224, 8000,"
        " 'AdaptiveMeanReversion', 'BEAR', 'TRAILING_STOP', $1, $2)",
        last,
        last + timedelta(seconds=65),
    )
    _, body = await dash.get("/api/market/KRW-BTC")
    sells = [t for t in body["trades"] if t["side"] == "SELL"]
    assert [(s["t"], s["price"]) for s in sells] == [(int(last.timestamp()), 11200000.0)]
