"""The control plane over HTTP: POST /api/control/{pause,resume,force-exit,reset}.

Behind the dashboard token whenever one is set (mandatory off loopback). A browser form
gets a redirect back to the System page, a script JSON. A POST from another site's page is
refused by its Origin header, so a page elsewhere cannot pause or reset a loopback
dashboard that has no token.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from coinpilot.healthchecks import DB_ERRORS
from coinpilot.services import control
from coinpilot.web.tables import esc

if TYPE_CHECKING:
    from coinpilot.app import Deps

log = structlog.get_logger(__name__)
Action = Callable[["Deps", dict[str, str], str], Awaitable[dict[str, Any]]]


async def _fields(request: web.Request) -> dict[str, str]:
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            raise _json_error(400, {"error": "bad_request", "detail": "invalid JSON"}) from None
        if not isinstance(body, dict):
            raise _json_error(400, {"error": "bad_request", "detail": "expected an object"})
        return {str(k): str(v) for k, v in body.items()}
    try:
        form = await request.post()
    except (ValueError, HttpProcessingError):  # a malformed form or multipart body
        raise _json_error(400, {"error": "bad_request", "detail": "unreadable form"}) from None
    return {k: str(v) for k, v in form.items()}


def _json_error(status: int, body: dict[str, Any]) -> web.HTTPException:
    exc = web.HTTPException(text=json.dumps(body), content_type="application/json")
    exc.set_status(status)
    return exc


def _same_origin(request: web.Request) -> bool:
    """Not a post from another site's page. Browsers say where a request comes from in
    Sec-Fetch-Site (our no-referrer policy makes their Origin "null" even for our own
    forms); older ones only in Origin. Scripts (curl) send neither."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = request.headers.get("Origin")
    return origin is None or origin.split("://", 1)[-1] == request.host


async def _pause(deps: Deps, fields: dict[str, str], by: str) -> dict[str, Any]:
    changed = await control.set_entries_paused(
        deps.pool, True, by=by, reason=fields.get("reason") or None, now=deps.clock.now()
    )
    return {"entries_paused": True, "changed": changed}


async def _resume(deps: Deps, fields: dict[str, str], by: str) -> dict[str, Any]:
    changed = await control.set_entries_paused(
        deps.pool, False, by=by, reason=None, now=deps.clock.now()
    )
    return {"entries_paused": False, "changed": changed}


async def _force_exit(deps: Deps, fields: dict[str, str], by: str) -> dict[str, Any]:
    symbol = fields.get("symbol", "")
    if symbol not in deps.settings.app.symbols:
        raise control.ControlError(f"{symbol!r} is not one of the configured symbols")
    sold = await control.force_exit(deps.pool, deps.settings.app, symbol, by=by,
                                    now=deps.clock.now())  # fmt: skip
    return {"symbol": symbol, "price": sold.fill.price, "net_pnl": sold.net_pnl}


async def _reset(deps: Deps, fields: dict[str, str], by: str) -> dict[str, Any]:
    return await control.reset_account(
        deps.pool,
        deps.settings.app,
        by=by,
        confirmation=fields.get("confirm", ""),
        now=deps.clock.now(),
    )


ACTIONS: dict[str, Action] = {
    "pause": _pause,
    "resume": _resume,
    "force-exit": _force_exit,
    "reset": _reset,
}


def handler(deps: Deps, action: Action) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def post(request: web.Request) -> web.StreamResponse:
        if not _same_origin(request):
            log.warning(
                "control_cross_origin", path=request.path, origin=request.headers.get("Origin")
            )
            raise _json_error(403, {"error": "forbidden", "detail": "cross-site request"})
        fields = await _fields(request)
        by = f"dashboard:{request.remote or '?'}"
        try:
            result = await action(deps, fields, by)
        except control.ControlError as exc:
            raise _json_error(409, {"error": "refused", "detail": str(exc)}) from None
        except DB_ERRORS as exc:
            deps.metrics.dependency_error("postgres", "control")
            log.warning("control_failed", path=request.path, error=type(exc).__name__)
            raise _json_error(503, {"error": "unavailable", "detail": "database"}) from exc
        log.info("control_action", path=request.path, by=by)
        if "text/html" in request.headers.get("Accept", ""):
            raise web.HTTPSeeOther("/system")  # a browser form: back to the page
        from coinpilot.web.routes import dumps

        return web.Response(text=dumps(result), content_type="application/json")

    return post


def install(app: web.Application, deps: Deps) -> None:
    for name, action in ACTIONS.items():
        app.router.add_post(f"/api/control/{name}", handler(deps, action))


def panel(controls: dict[str, Any] | None, positions: list[str]) -> str:
    """The System page's control forms (plain HTML forms: no script needed)."""
    if controls is None:
        return "<p>Controls unavailable: the database cannot be read.</p>"
    paused = controls["entries_paused"]
    state = (
        f"<p><strong>New entries are paused</strong> (by {esc(controls['changed_by'])}"
        + (f": {esc(controls['reason'])}" if controls.get("reason") else "")
        + "). Exits keep running.</p>"
        if paused
        else "<p>New entries are allowed.</p>"
    )
    toggle = (
        '<form method="post" action="/api/control/resume"><button>Resume entries</button></form>'
        if paused
        else '<form method="post" action="/api/control/pause">'
        '<input name="reason" placeholder="reason (optional)" maxlength="200">'
        "<button>Pause entries</button></form>"
    )
    options = "".join(f'<option value="{esc(s)}">{esc(s)}</option>' for s in positions)
    exit_form = (
        '<form method="post" action="/api/control/force-exit"><select name="symbol">'
        f"{options}</select><button>Force exit at the last closed price</button></form>"
        if positions
        else "<p>No open position to force-exit.</p>"
    )
    reset_form = (
        '<form method="post" action="/api/control/reset">'
        f'<input name="confirm" placeholder="type {control.RESET_CONFIRMATION}" required>'
        "<button>Reset the paper account</button></form>"
    )
    return f'<div class="controls">{state}{toggle}{exit_form}{reset_form}</div>'
