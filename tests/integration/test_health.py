"""/health tells the truth: stale candles, AI and notification trouble degrade it; only the
database or a stopped loop make it 503; no request, however malformed, gets a 500."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import aiohttp
import asyncpg
import pytest
import redis.asyncio as aioredis
from prometheus_client import Gauge

from coinpilot.adapters.cache import Keys, create_redis
from coinpilot.app import Deps
from coinpilot.clock import SimulatedClock
from coinpilot.config import Settings
from coinpilot.httpserver import start_http
from coinpilot.services.outbox_sender import route_label
from coinpilot.web.routes import install
from tests.integration.ops_support import free_port

NOW = datetime(2026, 3, 2, 12, 0, 30, tzinfo=UTC)
TOKEN = "a-dashboard-token-of-some-length"
HOOK = "http://127.0.0.1:9/api/webhooks/1/abc"


async def add_candle(pool: asyncpg.Pool, symbol: str, ts: datetime) -> None:
    await pool.execute(
        "INSERT INTO market_data (symbol, interval, ts, open_price, high_price, low_price,"
        " close_price, volume) VALUES ($1, '1m', $2, 100, 100, 100, 100, 1)",
        symbol,
        ts,
    )


@contextlib.asynccontextmanager
async def serving(
    settings: Settings, pool: asyncpg.Pool, redis: aioredis.Redis, keys: Keys
) -> AsyncIterator[tuple[Deps, str]]:
    async with aiohttp.ClientSession() as http:
        deps = Deps(
            settings=settings,
            pool=pool,
            redis=redis,
            http=http,
            clock=SimulatedClock(NOW),
            keys=keys,
        )
        runner, port = await start_http(deps, "127.0.0.1", 0, [install(deps)])
        try:
            yield deps, f"http://127.0.0.1:{port}"
        finally:
            await runner.cleanup()


async def health(url: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.get(url + "/health") as resp:
        return resp.status, await resp.json()


@pytest.fixture
def two_symbols(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(symbols=["KRW-BTC", "KRW-ETH"], health={"max_candle_age_s": 300})


async def fresh(pool: asyncpg.Pool, *symbols: str) -> None:
    # The candle that closed 30 s ago (started 90 s ago).
    for symbol in symbols:
        await add_candle(pool, symbol, NOW - timedelta(seconds=90))


async def test_ok_when_every_candle_is_fresh(
    pool: asyncpg.Pool, redis: aioredis.Redis, keys: Keys, two_symbols: Settings
) -> None:
    await fresh(pool, "KRW-BTC", "KRW-ETH")
    async with serving(two_symbols, pool, redis, keys) as (_, url):
        code, body = await health(url)
    assert (code, body["status"], body["problems"]) == (200, "ok", [])


async def test_degraded_when_one_candle_is_older_than_the_limit(
    pool: asyncpg.Pool, redis: aioredis.Redis, keys: Keys, two_symbols: Settings
) -> None:
    """ETH's newest candle is 8.8 years old, BTC's fresh: 200, degraded, ETH named."""
    await fresh(pool, "KRW-BTC")
    await add_candle(pool, "KRW-ETH", NOW - timedelta(days=int(8.8 * 365)))
    async with serving(two_symbols, pool, redis, keys) as (_, url):
        code, body = await health(url)
    assert (code, body["status"]) == (200, "degraded")
    stale = [p for p in body["problems"] if "candle" in p]
    assert len(stale) == 1, body["problems"]
    assert "KRW-ETH" in stale[0]
    assert body["candles"]["KRW-BTC"]["stale"] is False
    assert body["candles"]["KRW-ETH"]["stale"] is True


async def test_limit_is_measured_from_the_candle_close(
    pool: asyncpg.Pool, redis: aioredis.Redis, keys: Keys, two_symbols: Settings
) -> None:
    """A candle that closed 299 s ago is fresh under a 300 s limit; one closed 301 s ago not."""
    await add_candle(pool, "KRW-BTC", NOW - timedelta(seconds=60 + 299))
    await add_candle(pool, "KRW-ETH", NOW - timedelta(seconds=60 + 301))
    async with serving(two_symbols, pool, redis, keys) as (_, url):
        _, body = await health(url)
    assert (body["candles"]["KRW-BTC"]["stale"], body["candles"]["KRW-ETH"]["stale"]) == (
        False,
        True,
    )


async def test_degraded_when_a_symbol_has_no_candle(
    pool: asyncpg.Pool, redis: aioredis.Redis, keys: Keys, two_symbols: Settings
) -> None:
    await fresh(pool, "KRW-BTC")
    async with serving(two_symbols, pool, redis, keys) as (_, url):
        code, body = await health(url)
    assert (code, body["status"]) == (200, "degraded")
    assert any("KRW-ETH" in p and "no candle" in p for p in body["problems"])


async def test_redis_down_is_200_degraded(
    pool: asyncpg.Pool, keys: Keys, two_symbols: Settings
) -> None:
    """Trading goes on from the database while Redis is down: degraded, not unavailable."""
    await fresh(pool, "KRW-BTC", "KRW-ETH")
    dead = create_redis(f"redis://127.0.0.1:{free_port()}/0")
    try:
        async with serving(two_symbols, pool, dead, keys) as (_, url):
            code, body = await health(url)
    finally:
        await dead.aclose()
    assert (code, body["status"], body["redis"], body["database"]) == (
        200,
        "degraded",
        False,
        True,
    )


def ai_misconfigured_gauge(deps: Deps) -> Gauge:
    """The AI step's gauge (set when the model id is unknown or retired)."""
    gauge = getattr(deps.metrics, "ai_misconfigured", None)
    if gauge is None:
        gauge = Gauge("coinpilot_ai_misconfigured", "test stand-in", registry=deps.metrics.registry)
    return gauge


async def test_degraded_when_the_ai_is_misconfigured(
    pool: asyncpg.Pool, redis: aioredis.Redis, keys: Keys, two_symbols: Settings
) -> None:
    await fresh(pool, "KRW-BTC", "KRW-ETH")
    async with serving(two_symbols, pool, redis, keys) as (deps, url):
        gauge = ai_misconfigured_gauge(deps)
        gauge.set(0)
        assert (await health(url))[1]["status"] == "ok"
        gauge.set(1)
        code, body = await health(url)
    assert (code, body["status"]) == (200, "degraded")
    assert any("ai" in p.lower() and "misconfigured" in p for p in body["problems"])


async def test_degraded_when_the_webhook_route_is_disabled(
    pool: asyncpg.Pool, redis: aioredis.Redis, keys: Keys, make_settings: Callable[..., Settings]
) -> None:
    """Discord answered 404 for the configured webhook: notifications go nowhere."""
    settings = make_settings(symbols=["KRW-BTC"], env={"COINPILOT_DISCORD_WEBHOOK_URL": HOOK})
    await fresh(pool, "KRW-BTC")
    await pool.execute(
        "INSERT INTO notify_disabled_routes (route, status) VALUES ($1, 404)", route_label(HOOK)
    )
    async with serving(settings, pool, redis, keys) as (_, url):
        code, body = await health(url)
    assert (code, body["status"]) == (200, "degraded")
    assert any("notifications" in p and "404" in p for p in body["problems"]), body["problems"]


async def test_a_disabled_route_of_an_old_url_does_not_count(
    pool: asyncpg.Pool, redis: aioredis.Redis, keys: Keys, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(symbols=["KRW-BTC"], env={"COINPILOT_DISCORD_WEBHOOK_URL": HOOK})
    await fresh(pool, "KRW-BTC")
    await pool.execute(
        "INSERT INTO notify_disabled_routes (route, status) VALUES ($1, 404)",
        route_label(HOOK + "-replaced"),
    )
    async with serving(settings, pool, redis, keys) as (_, url):
        assert (await health(url))[1]["status"] == "ok"


async def test_degraded_while_notifications_are_failing(
    pool: asyncpg.Pool, redis: aioredis.Redis, keys: Keys, make_settings: Callable[..., Settings]
) -> None:
    """A row waiting for a retry after an HTTP 500 means Discord is not taking our messages."""
    settings = make_settings(symbols=["KRW-BTC"], env={"COINPILOT_DISCORD_WEBHOOK_URL": HOOK})
    await fresh(pool, "KRW-BTC")
    await pool.execute(
        "INSERT INTO outbox (kind, payload, attempts, last_error, created_at, next_attempt_at)"
        " VALUES ('system', '{}', 2, 'HTTP 500: oops', $1, $2)",
        NOW - timedelta(minutes=3),
        NOW + timedelta(minutes=1),
    )
    async with serving(settings, pool, redis, keys) as (_, url):
        code, body = await health(url)
    assert (code, body["status"]) == (200, "degraded")
    assert any("notifications" in p and "failing" in p for p in body["problems"])


async def test_503_when_the_database_is_down(
    db_dsn: str, redis: aioredis.Redis, keys: Keys, two_symbols: Settings
) -> None:
    pool = await asyncpg.create_pool(db_dsn, min_size=1, max_size=2)
    async with serving(two_symbols, pool, redis, keys) as (_, url):
        await pool.close()
        code, body = await health(url)
    assert (code, body["status"], body["database"]) == (503, "unavailable", False)


# --- every request path answers 4xx, never 500, on bad input --------------------------

BAD_QUERIES = [
    "day=9999-12-31",
    "day=0001-01-01",
    "day=2026-02-30",
    "day=%ff%fe",
    "day=" + "9" * 400,
    "page=0",
    "page=-1",
    "page=99999999999999999999999",
    "limit=1e3",
    "limit=%00",
    "symbol=krw-btc",
    "symbol=KRW-%ff",
    "interval=7m",
    "interval=1h&symbol=KRW-NOPE",
    "tpage=2&dpage=x",
    "tday=9999-12-31&dday=0001-01-01",
    "token=%ff",
    "%ff=%fe",
]
PATHS = [
    "/",
    "/market",
    "/market?symbol=KRW-BTC",
    "/history",
    "/risk",
    "/system",
    "/api/overview",
    "/api/market/KRW-BTC",
    "/api/market/KRW-NOPE",
    "/api/market/%ff",
    "/api/trades",
    "/api/decisions",
    "/api/risk",
    "/api/system",
    "/login",
    "/health",
    "/metrics",
    "/static/%2e%2e/%2e%2e/config.py",
    "/favicon.ico",
]


async def raw_status(url: str, head: bytes) -> int:
    """Send raw request bytes (no client library tidies them up); return the status code."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(head)
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 20)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return int(line.split()[1])


def requests(token: str) -> list[bytes]:
    auth = f"Authorization: Bearer {token}\r\n".encode()
    out = []
    for path in PATHS:
        for query in ["", *BAD_QUERIES]:
            sep = "&" if "?" in path else "?"
            target = path + (sep + query if query else "")
            out.append(f"GET {target} HTTP/1.1\r\nHost: x\r\n".encode() + auth + b"\r\n")
    for header in (
        b"Authorization: Bearer \xff\xfe\xfa\r\n",
        b"Authorization: \xc3\x28\r\n",
        b"Cookie: coinpilot_dashboard=\xff\xfe\r\n",
        b"Authorization: Bearer " + token.encode() + b"\xff\r\n",
    ):
        for path in (b"/", b"/api/overview", b"/api/trades?day=2026-03-02", b"/login?token=x"):
            out.append(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n" + header + b"\r\n")
    return out


async def test_no_request_gets_a_500(
    pool: asyncpg.Pool, redis: aioredis.Redis, keys: Keys, make_settings: Callable[..., Settings]
) -> None:
    """Malformed dates, numbers, symbols, encodings and credentials all answer below 500."""
    settings = make_settings(
        symbols=["KRW-BTC"],
        env={"COINPILOT_DASHBOARD_TOKEN": TOKEN},
    )
    await fresh(pool, "KRW-BTC")
    await pool.execute(
        "INSERT INTO account_state (id, cash, initial_balance) VALUES (1, $1, $1) "
        "ON CONFLICT DO NOTHING",
        Decimal("10000000"),
    )
    server_errors = []
    async with serving(settings, pool, redis, keys) as (_, url):
        for head in requests(TOKEN):
            status = await raw_status(url, head)
            if status >= 500:
                server_errors.append((status, head.split(b"\r\n")[0:3]))
    assert server_errors == []


async def test_notifications_off_by_choice_do_not_degrade(
    pool: asyncpg.Pool, redis: aioredis.Redis, keys: Keys, make_settings: Callable[..., Settings]
) -> None:
    """No webhook configured: rows kept as 'disabled' are the operator's choice, not trouble."""
    settings = make_settings(symbols=["KRW-BTC"])
    await fresh(pool, "KRW-BTC")
    await pool.execute(
        "INSERT INTO outbox (kind, payload, status, attempts, last_error, created_at)"
        " VALUES ('system', '{}', 'disabled', 1, 'no webhook configured', $1)",
        NOW - timedelta(minutes=3),
    )
    async with serving(settings, pool, redis, keys) as (_, url):
        code, body = await health(url)
    assert (code, body["status"], body["notifications"]["state"]) == (200, "ok", "off")


async def test_a_notification_given_up_on_degrades(
    pool: asyncpg.Pool, redis: aioredis.Redis, keys: Keys, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(symbols=["KRW-BTC"], env={"COINPILOT_DISCORD_WEBHOOK_URL": HOOK})
    await fresh(pool, "KRW-BTC")
    await pool.execute(
        "INSERT INTO outbox (kind, payload, status, attempts, last_error, created_at)"
        " VALUES ('trade', '{}', 'failed', 40, 'given up after notify.max_age_h', $1)",
        NOW - timedelta(hours=25),
    )
    async with serving(settings, pool, redis, keys) as (_, url):
        code, body = await health(url)
    assert (code, body["status"]) == (200, "degraded")
    assert any("given up" in p for p in body["problems"]), body["problems"]


def post(path: str, ctype: bytes, body: bytes) -> bytes:
    return (
        b"POST " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: " + ctype
        + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )  # fmt: skip


async def test_no_control_post_gets_a_500(
    pool: asyncpg.Pool, redis: aioredis.Redis, keys: Keys, make_settings: Callable[..., Settings]
) -> None:
    """Malformed bodies to the control routes answer 4xx and change nothing."""
    settings = make_settings(symbols=["KRW-BTC"])
    await fresh(pool, "KRW-BTC")
    bodies = [
        (b"application/json", b"{not json"),
        (b"application/json", b"\xff\xfe{}"),
        (b"application/json", b"[1, 2]"),
        (b"application/json", b'{"symbol": "\\ud800"}'),
        (b"application/json", b'{"confirm": null, "symbol": 5}'),
        (b"application/x-www-form-urlencoded", b"symbol=%ff%fe&confirm=%00"),
        (b"multipart/form-data; boundary=zz", b"--zz\r\nbroken"),
        (b"multipart/form-data", b"no boundary at all"),
        (b"text/plain", b"\xff" * 100),
    ]
    server_errors = []
    async with serving(settings, pool, redis, keys) as (_, url):
        for path in ("/api/control/force-exit", "/api/control/reset", "/api/control/nope"):
            for ctype, body in bodies:
                status = await raw_status(url, post(path, ctype, body))
                if status >= 500:
                    server_errors.append((status, path, ctype, body[:30]))
    assert server_errors == []
    assert await pool.fetchval("SELECT count(*) FROM risk_audit") == 0


async def test_a_control_post_with_the_database_down_is_503(
    db_dsn: str, redis: aioredis.Redis, keys: Keys, two_symbols: Settings
) -> None:
    pool = await asyncpg.create_pool(db_dsn, min_size=1, max_size=2)
    async with serving(two_symbols, pool, redis, keys) as (_, url):
        await pool.close()
        async with aiohttp.ClientSession() as http, http.post(url + "/api/control/pause") as r:
            assert r.status == 503
