"""Dashboard routes: GET only. Registered through ``install(deps)`` in coinpilot/wiring.py."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

import structlog
from aiohttp import web

from coinpilot.web import api, controls, pages
from coinpilot.web import queries as q
from coinpilot.web.auth import auth_middleware, login_handler, require_token_when_exposed

if TYPE_CHECKING:
    from coinpilot.app import Deps

log = structlog.get_logger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
SYMBOL_RE = re.compile(r"^KRW-[A-Z0-9]{1,16}$")
MAX_PAGE = 1000
# Two concurrent dashboard reads at most: a refresh storm must not starve the bot's pool.
READ_SLOTS = 2
QUERY_BUDGET_S = 10.0
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self';"
        " frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(payload: Any) -> str:
    return json.dumps(payload, default=_default, ensure_ascii=False)


def _bad(detail: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(
        text=json.dumps({"error": "bad_request", "detail": detail}), content_type="application/json"
    )


def parse_filter(request: web.Request, deps: Deps, prefix: str = "") -> q.ListFilter:
    """symbol, day (YYYY-MM-DD in the configured zone), page and limit from the query string."""
    query = request.query
    symbol = query.get("symbol") or None
    if symbol is not None and not SYMBOL_RE.match(symbol):
        raise _bad(f"symbol {symbol!r} is not a KRW market such as KRW-BTC")
    start = end = None
    if day_text := query.get("day"):
        try:
            day = date.fromisoformat(day_text)
            start, end = api.day_window(day, deps.settings.app.tz)
        except (ValueError, OverflowError):  # 9999-12-31 has no next day in UTC
            raise _bad(f"day {day_text!r} is not a date (YYYY-MM-DD) we can show") from None
    page = _int(query.get(f"{prefix}page", "1"), "page", 1, MAX_PAGE)
    limit = _int(query.get("limit", "50"), "limit", 1, q.MAX_PAGE_SIZE)
    return q.ListFilter(symbol, start, end, limit, (page - 1) * limit)


def _int(text: str, name: str, lo: int, hi: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise _bad(f"{name} must be a whole number") from None
    if not lo <= value <= hi:
        raise _bad(f"{name} must be between {lo} and {hi}")
    return value


def _symbol(request: web.Request, deps: Deps) -> str:
    symbol = request.match_info.get("symbol") or request.query.get("symbol")
    symbols = deps.settings.app.symbols
    if symbol is None:
        return symbols[0]
    if symbol not in symbols:
        raise web.HTTPNotFound(text=f"{symbol} is not one of the configured symbols\n")
    return symbol


def _interval(request: web.Request) -> str:
    interval = request.query.get("interval", "1m")
    if interval not in api.INTERVALS:
        raise _bad(f"interval must be one of {', '.join(api.INTERVALS)}")
    return interval


View = Callable[[web.Request, "Deps"], Awaitable[Any]]


async def _load(view: View, request: web.Request, deps: Deps, slots: asyncio.Semaphore) -> Any:
    """Run one view within the read slots and a time budget; a database failure is a 503."""
    try:
        async with slots, asyncio.timeout(QUERY_BUDGET_S):
            return await view(request, deps)
    except api.DB_ERRORS as exc:
        deps.metrics.dependency_error("postgres", "dashboard_read")
        log.warning("dashboard_query_failed", path=request.path, error=type(exc).__name__)
        raise web.HTTPServiceUnavailable(
            text=json.dumps({"error": "unavailable", "detail": "database read failed; retry"}),
            content_type="application/json",
        ) from exc


def _json_route(view: View, deps: Deps, slots: asyncio.Semaphore) -> Callable[..., Any]:
    async def handler(request: web.Request) -> web.Response:
        payload = await _load(view, request, deps, slots)
        return web.Response(text=dumps(payload), content_type="application/json")

    return handler


def _page_route(
    view: View, render: Callable[[Any, pages.Ctx], str], deps: Deps, slots: asyncio.Semaphore
) -> Callable[..., Any]:
    async def handler(request: web.Request) -> web.Response:
        payload = await _load(view, request, deps, slots)
        html = render(payload, pages.Ctx(deps.settings, request, deps.clock.now()))
        return web.Response(text=html, content_type="text/html")

    return handler


async def _overview(request: web.Request, deps: Deps) -> Any:
    return await api.overview(deps)


async def _market(request: web.Request, deps: Deps) -> Any:
    return await api.market(deps, _symbol(request, deps), _interval(request))


async def _trades(request: web.Request, deps: Deps) -> Any:
    return await api.trades(deps, parse_filter(request, deps))


async def _decisions(request: web.Request, deps: Deps) -> Any:
    return await api.decisions(deps, parse_filter(request, deps))


async def _round_trips(request: web.Request, deps: Deps) -> Any:
    return await api.round_trips(deps, parse_filter(request, deps))


async def _history(request: web.Request, deps: Deps) -> Any:
    trips_f = parse_filter(request, deps, prefix="r")
    trades_f = parse_filter(request, deps, prefix="t")
    decisions_f = parse_filter(request, deps, prefix="d")
    return {
        "round_trips": await api.round_trips(deps, trips_f),
        "trades": await api.trades(deps, trades_f),
        "decisions": await api.decisions(deps, decisions_f),
    }


async def _risk(request: web.Request, deps: Deps) -> Any:
    return await api.risk(deps)


async def _system(request: web.Request, deps: Deps) -> Any:
    return await api.system(deps)


async def _favicon(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "favicon.svg", headers={"Content-Type": "image/svg+xml"})


@web.middleware
async def _headers(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        resp = await handler(request)
    except web.HTTPException as exc:
        resp = exc
    if request.path not in ("/health", "/metrics"):
        for name, value in SECURITY_HEADERS.items():
            resp.headers.setdefault(name, value)
    if isinstance(resp, web.HTTPException):
        raise resp
    return resp


def install(deps: Deps) -> Callable[[web.Application], None]:
    """The HTTP installer: checks the token rule, then adds the dashboard's routes."""
    token = require_token_when_exposed(deps.settings)
    slots = asyncio.Semaphore(READ_SLOTS)

    def installer(app: web.Application) -> None:
        app.middlewares.append(_headers)  # type: ignore[arg-type]
        app.middlewares.append(auth_middleware(token))  # type: ignore[arg-type]
        r = app.router
        r.add_get("/login", login_handler(token))
        for path, view in (
            ("/api/overview", _overview),
            ("/api/market/{symbol}", _market),
            ("/api/trades", _trades),
            ("/api/round-trips", _round_trips),
            ("/api/decisions", _decisions),
            ("/api/risk", _risk),
            ("/api/system", _system),
        ):
            r.add_get(path, _json_route(view, deps, slots))
        for path, view, render in (
            ("/", _overview, pages.overview),
            ("/market", _market, pages.market),
            ("/history", _history, pages.history),
            ("/risk", _risk, pages.risk),
            ("/system", _system, pages.system),
        ):
            r.add_get(path, _page_route(view, render, deps, slots))
        controls.install(app, deps)
        r.add_static("/static/", STATIC_DIR, append_version=False)
        r.add_get("/favicon.ico", _favicon)

    return installer
