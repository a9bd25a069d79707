"""The daemon's HTTP surface: /health and /metrics (the dashboard adds its routes here)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from coinpilot.adapters import cache, db

if TYPE_CHECKING:
    from coinpilot.app import Deps

DEPS = web.AppKey("deps", object)
RouteInstaller = Callable[[web.Application], None]


async def health_report(deps: Deps) -> tuple[int, dict[str, Any]]:
    """503 when the database is unreachable or a service loop stopped; else 200, with
    ``degraded`` for anything an operator should look at (Redis, stale candles, AI,
    notifications, loops without a good cycle)."""
    from coinpilot.healthchecks import DB_ERRORS, ai_check, candle_check, notify_check

    db_ok = await db.ping(deps.pool)
    redis_ok = await cache.ping(deps.redis)
    now = deps.clock.now()
    services = deps.health.snapshot()
    problems: list[str] = []
    stopped: list[str] = []
    for svc in deps.services:
        state = deps.health.service(svc.name)
        if not state.running:
            stopped.append(svc.name)
        elif state.last_cycle is not None and (
            state.last_success is None
            or now - state.last_success > timedelta(seconds=svc.max_silence_s)
        ):
            problems.append(f"{svc.name}: no successful cycle recently")
        if state.degraded_reason:
            problems.append(f"{svc.name}: {state.degraded_reason}")
    if not redis_ok:
        problems.append("redis unreachable: trading continues on database fallbacks")
    candles: dict[str, Any] = {}
    notifications: dict[str, Any] = {}
    if db_ok:
        try:
            async with deps.pool.acquire() as conn:
                candles, stale = await candle_check(conn, deps, now)
                notifications, undelivered = await notify_check(conn, deps, now)
            problems += stale + undelivered
        except DB_ERRORS:
            db_ok = False
    if not db_ok:
        problems.append("database unreachable")
    ai, ai_problems = ai_check(deps)
    problems += ai_problems
    problems += [f"{name}: loop not running" for name in stopped]
    fatal = (not db_ok) or bool(stopped)
    status = "ok" if not problems else ("unavailable" if fatal else "degraded")
    body = {
        "status": status,
        "timestamp": now.isoformat(),
        "database": db_ok,
        "redis": redis_ok,
        "problems": problems,
        "candles": candles,
        "notifications": notifications,
        "ai": ai,
        "services": services,
    }
    return (503 if fatal else 200), body


async def _health(request: web.Request) -> web.Response:
    deps: Deps = request.app[DEPS]  # type: ignore[assignment]
    code, body = await health_report(deps)
    return web.json_response(body, status=code)


async def _metrics(request: web.Request) -> web.Response:
    deps: Deps = request.app[DEPS]  # type: ignore[assignment]
    for hook in deps.before_scrape:
        await hook()
    payload = generate_latest(deps.metrics.registry)
    resp = web.Response(body=payload)
    resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return resp


def build_app(deps: Deps, installers: list[RouteInstaller] | None = None) -> web.Application:
    app = web.Application()
    app[DEPS] = deps
    app.router.add_get("/health", _health)
    app.router.add_get("/metrics", _metrics)
    for install in installers or []:
        install(app)
    return app


async def start_http(
    deps: Deps, host: str, port: int, installers: list[RouteInstaller] | None = None
) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(build_app(deps, installers), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    sockets = site._server.sockets if site._server else []  # type: ignore[union-attr,attr-defined]
    bound = sockets[0].getsockname()[1] if sockets else port
    return runner, int(bound)


ScrapeHook = Callable[[], Awaitable[None]]
