"""Drains the notification outbox to Discord webhooks after commit.

Delivery guarantees:
- A row is claimed by one atomic UPDATE … FOR UPDATE SKIP LOCKED that counts the attempt
  and leases the row for one send (timeout + margin), so two senders never post the same
  row, and a sender killed mid-send leaves the row to be retried once the lease ends.
  A kill between Discord's answer and our "sent" update can still repeat that one row:
  webhooks have no idempotency key.
- 429: ``retry_after`` (body, else ``Retry-After``) blocks that route, or every route when
  the limit is global; the row waits without losing an attempt.
- Other failures back off exponentially with jitter (capped at ``notify.backoff_max_s``), for
  as long as the row is younger than ``notify.max_age_h``: an outage of hours loses nothing.
  Then the row is marked 'failed', kept and counted (outcome "expired"). 400 (a payload
  Discord will never accept) fails at once.
- Messages go out with ``?wait=true``: Discord answers with the message id, stored with the
  row. Once the request is sent we wait ``notify.reply_timeout_s`` for that answer, so a slow
  reply is not taken for a failure and posted again (the connect timeout stays short).
- 404 / 401 mean the webhook is gone: the route is disabled (logged once, remembered in
  notify_disabled_routes across restarts), rows for it are marked 'disabled' and kept, and
  so are rows of kinds with no webhook. At start-up, rows 'disabled' younger than
  ``notify.max_age_h`` whose kind now has a working webhook are queued again.
Webhook URLs are secrets: logs name a route by a short hash, never by its URL.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import structlog

from coinpilot.adapters.notify import build_message
from coinpilot.adapters.outbox import KINDS, enqueue
from coinpilot.clock import Clock
from coinpilot.config import Settings
from coinpilot.observability import Health, Metrics
from coinpilot.services.base import PeriodicService

log = structlog.get_logger(__name__)

LEASE_MARGIN_S = 2.0
OUTCOMES = {400: "rejected", 401: "disabled", 404: "disabled", 429: "rate_limited"}
MAX_ROWS_PER_CYCLE = 200

CLAIM_SQL = """
WITH next AS (
    SELECT id FROM outbox
    WHERE status = 'pending' AND next_attempt_at <= $1 AND NOT (kind = ANY($2::text[]))
    ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
UPDATE outbox o SET attempts = o.attempts + 1, next_attempt_at = $3
FROM next WHERE o.id = next.id
RETURNING o.id, o.kind, o.payload, o.attempts, o.created_at
"""


@dataclass
class Route:
    label: str
    blocked_until: datetime | None = None
    disabled: bool = False


@dataclass(frozen=True)
class Outcome:
    status: int  # HTTP status, 0 for a transport error
    retry_after_s: float = 0.0
    global_limit: bool = False
    reset_after_s: float | None = None
    error: str = ""
    message_id: str | None = None


def route_label(url: str) -> str:
    return "route-" + hashlib.sha256(url.encode()).hexdigest()[:8]


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


async def read_outcome(resp: aiohttp.ClientResponse) -> Outcome:
    reset = _float(resp.headers.get("X-RateLimit-Reset-After"))
    if resp.headers.get("X-RateLimit-Remaining") != "0":
        reset = None
    if 200 <= resp.status < 300:
        message_id = None
        if resp.status == 200:
            try:
                message = await resp.json(content_type=None)
            except ValueError:
                message = None
            if isinstance(message, dict) and message.get("id") is not None:
                message_id = str(message["id"])
        return Outcome(resp.status, reset_after_s=reset, message_id=message_id)
    if resp.status != 429:
        text = (await resp.text())[:200]
        return Outcome(resp.status, reset_after_s=reset, error=text)
    try:
        body = await resp.json(content_type=None)
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    retry = _float(body.get("retry_after")) or _float(resp.headers.get("Retry-After")) or 1.0
    is_global = bool(body.get("global")) or resp.headers.get("X-RateLimit-Global") == "true"
    return Outcome(429, retry_after_s=retry, global_limit=is_global, error="rate limited")


class OutboxSender(PeriodicService):
    name = "notify"

    def __init__(
        self,
        *,
        settings: Settings,
        pool: asyncpg.Pool,
        http: aiohttp.ClientSession,
        clock: Clock,
        health: Health,
        metrics: Metrics,
        rng: random.Random | None = None,
    ) -> None:
        self.cfg = settings.app.notify
        super().__init__(
            clock=clock, health=health, metrics=metrics, interval_s=self.cfg.poll_interval_s
        )
        self.settings = settings
        self.pool = pool
        self.http = http
        self.rng = rng or random.Random()
        self.routes: dict[str, Route] = {}
        self.global_until: datetime | None = None
        self._unrouted_logged: set[str] = set()

    @property
    def max_silence_s(self) -> float:
        return max(3 * self.interval_s + 3 * self.cfg.timeout_s + self.cfg.reply_timeout_s, 180.0)

    def url_for(self, kind: str) -> str | None:
        if not self.cfg.enabled:
            return None
        secret = self.settings.webhook_for(kind)
        return secret.get_secret_value() if secret is not None else None

    def route(self, url: str) -> Route:
        return self.routes.setdefault(url, Route(route_label(url)))

    async def run_once(self) -> int:
        sent = await self.drain()
        backlog = await self.pool.fetchval("SELECT count(*) FROM outbox WHERE status = 'pending'")
        self.metrics.outbox_backlog.set(backlog)
        return sent

    async def drain(self, max_rows: int = MAX_ROWS_PER_CYCLE) -> int:
        """Send what is due now; returns the number of rows delivered."""
        sent = 0
        for _ in range(max_rows):
            row = await self.claim()
            if row is None:
                break
            sent += await self.deliver(row)
        return sent

    def _blocked_kinds(self, now: datetime) -> list[str]:
        blocked = []
        for kind in KINDS:
            url = self.url_for(kind)
            until = self.routes[url].blocked_until if url in self.routes else None
            if until is not None and until > now:
                blocked.append(kind)
        return blocked

    async def claim(self) -> asyncpg.Record | None:
        now = self.clock.now()
        if self.global_until is not None and self.global_until > now:
            return None
        lease = now + timedelta(
            seconds=self.cfg.timeout_s + self.cfg.reply_timeout_s + LEASE_MARGIN_S
        )
        return await self.pool.fetchrow(CLAIM_SQL, now, self._blocked_kinds(now), lease)

    async def deliver(self, row: asyncpg.Record) -> int:
        kind = row["kind"]
        url = self.url_for(kind)
        if url is None or self.route(url).disabled:
            if url is None:
                reason = "notify disabled" if not self.cfg.enabled else "no webhook configured"
            else:
                reason = "webhook disabled (404)"
            if url is None and kind not in self._unrouted_logged:
                self._unrouted_logged.add(kind)
                log.warning("notify_unrouted", kind=kind, reason=reason)
            self.metrics.notifications.labels(kind=kind, outcome="disabled").inc()
            await self._finish(row, "disabled", reason)
            return 0
        outcome = await self._post(url, row)
        return await self._apply(row, url, outcome)

    async def _post(self, url: str, row: asyncpg.Record) -> Outcome:
        payload = row["payload"]
        if not isinstance(payload, dict):
            payload = {"message": payload}
        body = build_message(
            row["kind"],
            payload,
            footer=f"coinpilot · #{row['id']}",
            timestamp=row["created_at"].isoformat(),
        )
        # Short to connect (nothing sent yet: retrying is safe), long for the answer.
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=self.cfg.timeout_s,
            sock_connect=self.cfg.timeout_s,
            sock_read=self.cfg.reply_timeout_s,
        )
        sep = "&" if "?" in url else "?"
        try:
            async with self.http.post(f"{url}{sep}wait=true", json=body, timeout=timeout) as r:
                return await read_outcome(r)
        except aiohttp.ServerTimeoutError as exc:
            if isinstance(exc, aiohttp.ConnectionTimeoutError):
                return Outcome(0, error="connect timeout")
            # Sent, but no answer in reply_timeout_s: Discord may have it. Retrying may repeat
            # the message; not retrying may lose it. Never lose: retry, and say so.
            log.warning("notify_reply_timeout", kind=row["kind"], outbox_id=row["id"])
            return Outcome(0, error="no reply within notify.reply_timeout_s")
        except (aiohttp.ClientError, TimeoutError) as exc:
            return Outcome(0, error=type(exc).__name__)

    async def _apply(self, row: asyncpg.Record, url: str, out: Outcome) -> int:
        route, now, kind = self.route(url), self.clock.now(), row["kind"]
        if out.reset_after_s is not None:
            route.blocked_until = now + timedelta(seconds=out.reset_after_s)
        if 200 <= out.status < 300:
            await self._finish(row, "sent", None, out.message_id)
            self.metrics.notifications.labels(kind=kind, outcome="sent").inc()
            log.info(
                "notify_sent",
                kind=kind,
                outbox_id=row["id"],
                route=route.label,
                message_id=out.message_id,
            )
            return 1
        self.metrics.notifications.labels(
            kind=kind, outcome=OUTCOMES.get(out.status, "error")
        ).inc()
        if out.status == 429:
            await self._rate_limited(row, route, now, out)
        elif out.status in (401, 404):
            await self._disable(route, kind, out.status)
            await self._finish(row, "disabled", f"HTTP {out.status}: webhook unknown")
        elif out.status == 400:
            log.error("notify_rejected", kind=kind, outbox_id=row["id"], error=out.error)
            await self._finish(row, "failed", f"HTTP 400: {out.error}")
        else:
            await self._retry_or_fail(row, now, out)
        return 0

    async def _disable(self, route: Route, kind: str, status: int) -> None:
        if route.disabled:
            return
        route.disabled = True
        log.error("webhook_disabled", route=route.label, kind=kind, status=status)
        await self.pool.execute(
            "INSERT INTO notify_disabled_routes (route, status) VALUES ($1, $2) "
            "ON CONFLICT (route) DO NOTHING",
            route.label,
            status,
        )

    async def load_disabled_routes(self) -> None:
        """Remember webhooks found dead before a restart (Discord: stop using them)."""
        labels = {
            r["route"] for r in await self.pool.fetch("SELECT route FROM notify_disabled_routes")
        }
        for kind in KINDS:
            url = self.url_for(kind)
            if url is not None and route_label(url) in labels:
                self.route(url).disabled = True

    async def _rate_limited(
        self, row: asyncpg.Record, route: Route, now: datetime, out: Outcome
    ) -> None:
        until = now + timedelta(seconds=out.retry_after_s)
        if out.global_limit:
            self.global_until = until
        else:
            route.blocked_until = until
        log.warning(
            "notify_rate_limited",
            route=route.label,
            retry_after_s=out.retry_after_s,
            global_limit=out.global_limit,
        )
        # A rate limit is Discord's pacing, not a failed delivery: give the attempt back.
        await self.pool.execute(
            "UPDATE outbox SET attempts = attempts - 1, next_attempt_at = $2, last_error = $3 "
            "WHERE id = $1",
            row["id"],
            until,
            "HTTP 429",
        )

    def backoff_s(self, attempts: int) -> float:
        """base x 2^(n-1), at most backoff_max_s, times a jitter factor in [0.5, 1.5)."""
        step = min(self.cfg.backoff_base_s * 2.0 ** min(attempts - 1, 60), self.cfg.backoff_max_s)
        return step * (0.5 + self.rng.random())

    async def _retry_or_fail(self, row: asyncpg.Record, now: datetime, out: Outcome) -> None:
        error = f"HTTP {out.status}: {out.error}" if out.status else out.error
        self.metrics.dependency_error("discord", "http" if out.status else "transport")
        max_age = timedelta(hours=self.cfg.max_age_h)
        if now - row["created_at"] >= max_age:
            log.error(
                "notify_failed",
                kind=row["kind"],
                outbox_id=row["id"],
                attempts=row["attempts"],
                error=error,
                reason="notify.max_age_h",
            )
            self.metrics.notifications.labels(kind=row["kind"], outcome="expired").inc()
            given_up = f"given up after notify.max_age_h ({self.cfg.max_age_h:g} h): {error}"
            await self._finish(row, "failed", given_up)
            return
        delay = self.backoff_s(row["attempts"])
        log.warning(
            "notify_retry",
            kind=row["kind"],
            outbox_id=row["id"],
            attempts=row["attempts"],
            delay_s=round(delay, 3),
            error=error,
        )
        await self.pool.execute(
            "UPDATE outbox SET next_attempt_at = $2, last_error = $3 WHERE id = $1",
            row["id"],
            now + timedelta(seconds=delay),
            error[:500],
        )

    async def _finish(
        self, row: asyncpg.Record, status: str, error: str | None, message_id: str | None = None
    ) -> None:
        await self.pool.execute(
            "UPDATE outbox SET status = $2::text, last_error = $3, discord_message_id = $5, "
            "sent_at = CASE WHEN $2::text = 'sent' THEN $4 ELSE sent_at END WHERE id = $1",
            row["id"],
            status,
            error[:500] if error else None,
            self.clock.now(),
            message_id,
        )

    async def requeue_disabled(self) -> int:
        """Rows kept 'disabled' (dead or missing webhook) whose kind has a working webhook now
        (the configuration changed): queue them again while they are young enough."""
        kinds = [
            kind
            for kind in KINDS
            if (url := self.url_for(kind)) is not None and not self.route(url).disabled
        ]
        if not kinds:
            return 0
        now = self.clock.now()
        result = await self.pool.execute(
            "UPDATE outbox SET status = 'pending', next_attempt_at = $1, last_error = NULL "
            "WHERE status = 'disabled' AND kind = ANY($2::text[]) AND created_at >= $3",
            now,
            kinds,
            now - timedelta(hours=self.cfg.max_age_h),
        )
        count = int(result.rsplit(" ", 1)[-1])
        if count:
            log.info("notify_requeued", rows=count, kinds=kinds)
        return count

    async def startup(self) -> None:
        await self.load_disabled_routes()
        await self.requeue_disabled()
        await notify_system(self.pool, "start", "CoinPilot daemon started")

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await super().run(stop)
        finally:
            await self._announce_stop()

    async def _announce_stop(self) -> None:
        """Queue the stop notice and give it one short chance to go out now."""
        try:
            await notify_system(self.pool, "stop", "CoinPilot daemon stopping")
            await asyncio.wait_for(self.drain(max_rows=5), timeout=self.cfg.timeout_s / 2)
        except (asyncpg.PostgresError, OSError, TimeoutError, asyncpg.InterfaceError) as exc:
            log.warning("notify_stop_notice_deferred", error=type(exc).__name__)


async def notify_system(
    conn: asyncpg.Pool | asyncpg.Connection,
    event: str,
    message: str,
    level: str = "INFO",
    **fields: Any,
) -> int:
    """Queue a 'system' notification (start, stop, job errors)."""
    return await enqueue(
        conn, "system", {"event": event, "level": level, "message": message, **fields}
    )


async def outbox_summary(
    conn: asyncpg.Pool | asyncpg.Connection, recent: int = 5
) -> dict[str, Any]:
    """Counts by status and the newest undeliverable rows, for `coinpilot status`."""
    counts = await conn.fetch("SELECT status, count(*) AS n FROM outbox GROUP BY status")
    rows = await conn.fetch(
        "SELECT id, kind, status, attempts, last_error, created_at FROM outbox "
        "WHERE status IN ('failed', 'disabled') ORDER BY id DESC LIMIT $1",
        recent,
    )
    return {
        "counts": {r["status"]: r["n"] for r in counts},
        "undelivered": [dict(r) for r in rows],
    }
