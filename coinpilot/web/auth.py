"""Access control: an optional bearer token, mandatory once the dashboard leaves loopback.

A browser presents the token once at /login?token=... and then carries an HttpOnly cookie;
scripts send ``Authorization: Bearer <token>``. /health and /metrics stay open because
Prometheus and systemd probes scrape them without credentials.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from coinpilot.config import is_loopback, require_token_when_exposed

__all__ = ["auth_middleware", "is_loopback", "login_handler", "require_token_when_exposed"]

log = structlog.get_logger(__name__)

COOKIE = "coinpilot_dashboard"
OPEN_PATHS = frozenset({"/health", "/metrics", "/login", "/favicon.ico"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _presented(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, credential = header.partition(" ")
    if scheme.lower() == "bearer" and credential:
        return credential.strip()
    return request.cookies.get(COOKIE)


def _matches(presented: str | None, token: str) -> bool:
    if presented is None:
        return False
    # Header bytes that are not UTF-8 arrive as surrogates: they never match, never raise.
    return hmac.compare_digest(presented.encode("utf-8", "surrogateescape"), token.encode())


Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]


def auth_middleware(token: str | None) -> Middleware:
    """Reject dashboard requests without the token; a no-op when no token is configured."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if token is None or request.path in OPEN_PATHS:
            return await handler(request)
        if _matches(_presented(request), token):
            return await handler(request)
        log.warning("dashboard_unauthorized", path=request.path, peer=request.remote)
        if request.path.startswith("/api/"):
            return web.json_response(
                {"error": "unauthorized", "detail": "send Authorization: Bearer <token>"},
                status=401,
                headers={"WWW-Authenticate": 'Bearer realm="coinpilot"'},
            )
        return web.Response(
            status=401,
            content_type="text/html",
            text=(
                "<!doctype html><title>CoinPilot: sign in</title><p>This dashboard needs "
                "its access token. Open <code>/login?token=...</code> once in this browser.</p>"
            ),
            headers={"WWW-Authenticate": 'Bearer realm="coinpilot"'},
        )

    return middleware


def login_handler(token: str | None) -> Handler:
    """GET /login?token=...: set the session cookie and go to the overview."""

    async def login(request: web.Request) -> web.StreamResponse:
        if token is None:
            raise web.HTTPFound("/")
        if not _matches(request.query.get("token"), token):
            log.warning("dashboard_login_failed", peer=request.remote)
            return web.Response(status=401, text="wrong or missing token\n")
        resp = web.HTTPFound("/")
        resp.set_cookie(
            COOKIE,
            token,
            httponly=True,
            samesite="Strict",
            secure=request.secure,
            max_age=30 * 86400,
        )
        return resp

    return login
