"""A local Discord webhook server speaking the real wire format (EXTERNAL_APIS §4.4).

Routes ``POST /api/webhooks/{id}/{token}`` (and ``/api/v10/...``). Known webhooks answer
204, or 200 with a message object when ``?wait=true``; unknown ones 404 code 10015.
Every Discord embed limit is enforced with 400 code 50035 (50006 for an empty message).
Failures are scripted per webhook: ``fail_next(hook, 429, retry_after=2.0, global_=False)``,
``fail_next(hook, 500)`` or ``stall_next(hook)`` (hold the request until ``release`` is
set, then answer 503: nothing delivered) or ``slow_next(hook, delay_s)`` (accept the message,
answer only after ``delay_s``).
``delivered`` records each accepted payload with its arrival time; ``requests`` records
every request, accepted or not.

Like Discord, the fake holds a client to what it was told: after an answer saying
``X-RateLimit-Remaining: 0`` a request to that webhook before ``X-RateLimit-Reset-After``
has passed draws an unscripted 429, and so does one sent before a 429's ``retry_after``
(every webhook's after a global 429). ``Retry-After`` is the whole seconds rounded up, as
in Discord's example (body 64.57, header 65).
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

LIMITS = {
    "title": 256,
    "description": 4096,
    "footer": 2048,
    "author": 256,
    "field_name": 256,
    "field_value": 1024,
}


@dataclass
class Received:
    hook: str
    status: int
    payload: Any
    at: float  # time.monotonic() on arrival
    wait: bool


@dataclass
class Script:
    status: int
    retry_after: float = 0.0
    global_: bool = False
    stall: bool = False
    delay_s: float = 0.0


def _len(value: Any) -> int:
    return len(str(value).strip()) if value is not None else 0


def limit_errors(body: Any) -> tuple[int, str] | None:
    """(code, message) for the first Discord limit the body breaks, else None."""
    if not isinstance(body, dict):
        return 50109, "The request body contains invalid JSON."
    embeds = body.get("embeds") or []
    if not body.get("content") and not embeds:
        return 50006, "Cannot send an empty message"
    if _len(body.get("content")) > 2000 or len(embeds) > 10:
        return 50035, "Invalid Form Body"
    total = 0
    for embed in embeds:
        fields = embed.get("fields") or []
        parts = {
            "title": _len(embed.get("title")),
            "description": _len(embed.get("description")),
            "footer": _len((embed.get("footer") or {}).get("text")),
            "author": _len((embed.get("author") or {}).get("name")),
        }
        if len(fields) > 25 or any(parts[k] > LIMITS[k] for k in parts):
            return 50035, "Invalid Form Body"
        for f in fields:
            name, value = _len(f.get("name")), _len(f.get("value"))
            if not name or not value or name > 256 or value > 1024:
                return 50035, "Invalid Form Body"
            total += name + value
        total += sum(parts.values())
        if not isinstance(embed.get("color", 0), int):
            return 50035, "Invalid Form Body"
    if total > 6000:
        return 50035, "Invalid Form Body"
    return None


@dataclass
class FakeDiscord:
    hooks: set[str] = field(default_factory=set)
    requests: list[Received] = field(default_factory=list)
    scripts: dict[str, list[Script]] = field(default_factory=dict)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1_000_000))
    base_url: str = ""
    stalled: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    # When set, every answer says the bucket is empty for the next 0.4 s (Remaining: 0).
    bucket_exhausted: bool = False
    # monotonic time before which a webhook (or, under "*", every webhook) answers 429
    blocked_until: dict[str, float] = field(default_factory=dict)
    # Ids of the messages created (wait=true), in order.
    message_ids: list[str] = field(default_factory=list)

    def add_hook(self, hook_id: str = "111", token: str = "tok") -> str:
        """Register a webhook; returns its full URL."""
        key = f"{hook_id}/{token}"
        self.hooks.add(key)
        return f"{self.base_url}/api/webhooks/{key}"

    def fail_next(
        self,
        url: str,
        status: int,
        *,
        retry_after: float = 0.0,
        global_: bool = False,
        times: int = 1,
    ) -> None:
        for _ in range(times):
            self.scripts.setdefault(self._key(url), []).append(Script(status, retry_after, global_))

    def stall_next(self, url: str) -> None:
        self.scripts.setdefault(self._key(url), []).append(Script(0, stall=True))

    def slow_next(self, url: str, delay_s: float) -> None:
        """Accept the next message at once, but answer only after ``delay_s``."""
        self.scripts.setdefault(self._key(url), []).append(Script(200, delay_s=delay_s))

    @property
    def delivered(self) -> list[Received]:
        return [r for r in self.requests if r.status in (200, 204)]

    @staticmethod
    def _key(url: str) -> str:
        return url.split("/api/webhooks/", 1)[1].split("?", 1)[0]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        key = f"{request.match_info['hook_id']}/{request.match_info['token']}"
        wait = request.query.get("wait", "false").lower() == "true"
        try:
            body = await request.json()
        except ValueError:
            body = None
        arrived = time.monotonic()
        if key not in self.hooks:
            return self._record(
                key,
                404,
                body,
                arrived,
                wait,
                web.json_response({"message": "Unknown Webhook", "code": 10015}, status=404),
            )
        wait_s = max(self.blocked_until.get(key, 0.0), self.blocked_until.get("*", 0.0))
        if arrived < wait_s:  # the client did not wait as it was told
            global_ = self.blocked_until.get("*", 0.0) > arrived
            script = Script(429, retry_after=round(wait_s - arrived, 3), global_=global_)
            return self._record(key, 429, body, arrived, wait, self._scripted(script))
        queue = self.scripts.get(key) or []
        script = queue.pop(0) if queue else None
        if script is not None and script.stall:
            # Held until the test releases it (the client has usually gone by then);
            # recorded with status 0: nothing was delivered.
            self.stalled.set()
            await self.release.wait()
            return self._record(key, 0, body, arrived, wait, web.Response(status=503))
        delay = 0.0
        if script is not None and script.delay_s:
            delay, script = script.delay_s, None  # delivered below; only the answer is late
        if script is not None:
            if script.status == 429:
                self.blocked_until["*" if script.global_ else key] = arrived + script.retry_after
            return self._record(key, script.status, body, arrived, wait, self._scripted(script))
        problem = limit_errors(body)
        if problem is not None:
            code, message = problem
            return self._record(
                key,
                400,
                body,
                arrived,
                wait,
                web.json_response({"code": code, "message": message}, status=400),
            )
        message = self._message(key, body)
        self.message_ids.append(message["id"])
        if delay:
            await asyncio.sleep(delay)
        if not wait:
            return self._record(key, 204, body, arrived, wait, web.Response(status=204))
        return self._record(key, 200, body, arrived, wait, web.json_response(message))

    def _record(
        self, key: str, status: int, body: Any, at: float, wait: bool, response: web.StreamResponse
    ) -> web.StreamResponse:
        self.requests.append(Received(key, status, body, at, wait))
        remaining = 0 if status == 429 or self.bucket_exhausted else 4
        if self.bucket_exhausted and status != 429:
            self.blocked_until[key] = max(self.blocked_until.get(key, 0.0), at + 0.4)
        # A 429 already carries its own reset time; the defaults only fill the gaps.
        for name, value in self._ratelimit_headers(remaining=remaining).items():
            response.headers.setdefault(name, value)
        return response

    @staticmethod
    def _ratelimit_headers(remaining: int, reset_after: float = 0.4) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": "5",
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": "fakebucket",
        }

    @staticmethod
    def _scripted(script: Script) -> web.Response:
        if script.status != 429:
            return web.json_response(
                {"message": "scripted failure", "code": 0}, status=script.status
            )
        resp = web.json_response(
            {
                "message": "You are being rate limited.",
                "retry_after": script.retry_after,
                "global": script.global_,
            },
            status=429,
        )
        resp.headers["Retry-After"] = str(max(1, math.ceil(script.retry_after)))
        resp.headers["X-RateLimit-Scope"] = "global" if script.global_ else "user"
        resp.headers["X-RateLimit-Reset-After"] = f"{script.retry_after:.3f}"
        resp.headers["X-RateLimit-Reset"] = f"{time.time() + script.retry_after:.3f}"
        if script.global_:
            resp.headers["X-RateLimit-Global"] = "true"
        return resp

    def _message(self, key: str, body: dict[str, Any]) -> dict[str, Any]:
        hook_id = key.split("/", 1)[0]
        return {
            "id": str(next(self._ids)),
            "type": 0,
            "channel_id": "42",
            "content": body.get("content", ""),
            "embeds": body.get("embeds", []),
            "timestamp": datetime.now(UTC).isoformat(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [],
            "pinned": False,
            "flags": 0,
            "webhook_id": hook_id,
            "author": {"id": hook_id, "username": body.get("username", "hook"), "bot": True},
        }

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/webhooks/{hook_id}/{token}", self.handle)
        app.router.add_post("/api/v10/webhooks/{hook_id}/{token}", self.handle)
        return app


async def start_fake_discord() -> tuple[FakeDiscord, web.AppRunner]:
    fake = FakeDiscord()
    runner = web.AppRunner(fake.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    fake.base_url = f"http://127.0.0.1:{port}"
    return fake, runner
