"""What /health looks at beyond the loops: candle freshness, the AI step, notifications.

Each check returns its detail for the body and the problems it found; none of them makes
/health 503 (only the database or a stopped loop do), they make it ``degraded``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import asyncpg

from coinpilot.adapters.outbox import KINDS
from coinpilot.services.outbox_sender import route_label
from coinpilot.web.queries import latest_candles

if TYPE_CHECKING:
    from coinpilot.app import Deps

DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)
CANDLE_S = 60  # a 1-minute candle closes a minute after its start
# Rows failing for longer than this (or given up on within it) count as failing.
RECENT_FAILURES = timedelta(hours=24)


async def candle_check(
    conn: asyncpg.Connection, deps: Deps, now: datetime
) -> tuple[dict[str, Any], list[str]]:
    """Age of each watched market's newest candle since it closed, against the limit."""
    limit = deps.settings.app.health.max_candle_age_s
    symbols = list(deps.settings.app.symbols)
    latest = await latest_candles(conn, symbols)
    detail: dict[str, Any] = {}
    problems: list[str] = []
    for symbol in symbols:
        ts = latest.get(symbol, {}).get("ts")
        if ts is None:
            detail[symbol] = {"last_candle": None, "age_s": None, "stale": True}
            problems.append(f"{symbol}: no candle stored")
            continue
        age = (now - ts).total_seconds() - CANDLE_S
        stale = age > limit
        detail[symbol] = {"last_candle": ts.isoformat(), "age_s": round(age), "stale": stale}
        if stale:
            problems.append(
                f"{symbol}: newest candle closed {_span(age)} ago "
                f"(health.max_candle_age_s is {limit:g})"
            )
    return detail, problems


def _span(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} days"


def configured_routes(deps: Deps) -> set[str]:
    """Route labels of the webhooks the notifications would use now."""
    if not deps.settings.app.notify.enabled:
        return set()
    labels = set()
    for kind in KINDS:
        url = deps.settings.webhook_for(kind)
        if url is not None:
            labels.add(route_label(url.get_secret_value()))
    return labels


async def notify_check(
    conn: asyncpg.Connection, deps: Deps, now: datetime
) -> tuple[dict[str, Any], list[str]]:
    """Dead webhooks among the configured ones, rows being retried, rows given up on."""
    routes = configured_routes(deps)
    disabled = await conn.fetch(
        "SELECT route, status FROM notify_disabled_routes WHERE route = ANY($1::text[])",
        sorted(routes),
    )
    failing = await conn.fetchrow(
        "SELECT count(*) AS n, max(last_error) AS error FROM outbox WHERE status = 'pending'"
        " AND attempts > 0 AND last_error IS NOT NULL AND last_error <> 'HTTP 429'"
    )
    # 'failed' rows: given up after notify.max_age_h (or refused by Discord with a 400).
    # 'disabled' ones are reported through their route above, or are the operator's choice
    # (no webhook set). A row fails at the latest max_age_h after it was created.
    max_age = timedelta(hours=deps.settings.app.notify.max_age_h)
    given_up = await conn.fetchval(
        "SELECT count(*) FROM outbox WHERE status = 'failed' AND created_at >= $1",
        now - max_age - RECENT_FAILURES,
    )
    problems = [
        f"notifications: webhook {r['route']} disabled after HTTP {r['status']}; "
        "set a new webhook URL"
        for r in disabled
    ]
    if failing["n"]:
        problems.append(
            f"notifications: {failing['n']} failing, waiting for a retry ({failing['error']})"
        )
    if given_up:
        problems.append(f"notifications: {given_up} given up on in the last day (kept as failed)")
    state = "off" if not routes else ("failing" if problems else "ok")
    detail = {
        "state": state,
        "routes": len(routes),
        "disabled_routes": [r["route"] for r in disabled],
        "retrying": failing["n"],
        "failed_recently": given_up,
    }
    return detail, problems


def ai_check(deps: Deps) -> tuple[dict[str, Any], list[str]]:
    """The AI step's own verdict on its configuration (unknown or retired model, bad key)."""
    value = deps.metrics.registry.get_sample_value("coinpilot_ai_misconfigured")
    bad = bool(value)
    problems = ["ai: misconfigured (the log names the setting); entries follow the fallback"]
    return {"mode": deps.settings.ai_mode, "misconfigured": bad}, problems if bad else []
