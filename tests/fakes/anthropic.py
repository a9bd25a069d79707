"""A local Anthropic Messages API speaking the real wire format (EXTERNAL_APIS §2.6).

``POST /v1/messages`` accepts ``x-api-key`` or ``Authorization: Bearer`` and any
``anthropic-version``; a missing key is 401, a body without model/max_tokens/messages is
400. With ``tool_choice.type == "tool"`` the answer is one ``tool_use`` block for that tool
(``stop_reason: "tool_use"``) with usage and a ``request-id`` header.

Replies are scripted: ``fake.script(reply, ...)`` queues replies consumed in order; a reply
with ``match`` is only used for a request whose tool name or user text contains it, so
concurrent symbols can be scripted independently. With nothing queued, ``default`` answers
(CONFIRM 80 for the Analyst tool, SAFE otherwise). ``requests`` records every request;
``max_in_flight`` is the highest number of requests held at the same time.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

CREDIT_MESSAGE = (
    "Your credit balance is too low to access the Anthropic API. "
    "Please go to Plans & Billing to upgrade or purchase credits."
)


@dataclass
class Reply:
    tool_input: Any = None
    status: int = 200
    error_type: str = ""
    message: str = ""
    delay_s: float = 0.0
    stop_reason: str | None = None  # override: "refusal", "max_tokens", "end_turn"
    text: str | None = None  # answer with a text block instead of tool_use
    headers: dict[str, str] = field(default_factory=dict)
    match: str | None = None
    input_tokens: int = 420
    output_tokens: int = 60


def confirm(
    confidence: int = 80, reasoning: str = "Hammer after a shallow pullback.", **kw: Any
) -> Reply:
    return Reply({"decision": "CONFIRM", "confidence": confidence, "reasoning": reasoning}, **kw)


def reject(
    confidence: int = 85, reasoning: str = "Long bearish candles, still falling.", **kw: Any
) -> Reply:
    return Reply({"decision": "REJECT", "confidence": confidence, "reasoning": reasoning}, **kw)


def safe(reasoning: str = "Volatility is ordinary.", **kw: Any) -> Reply:
    return Reply({"decision": "SAFE", "reasoning": reasoning}, **kw)


def warning(reasoning: str = "Panic selling in the last hours.", **kw: Any) -> Reply:
    return Reply({"decision": "WARNING", "reasoning": reasoning}, **kw)


def error(status: int, error_type: str, message: str, **kw: Any) -> Reply:
    return Reply(status=status, error_type=error_type, message=message, **kw)


def overloaded(**kw: Any) -> Reply:
    return error(529, "overloaded_error", "Overloaded", **kw)


def rate_limited(retry_after: str = "1", **kw: Any) -> Reply:
    return error(
        429, "rate_limit_error", "Rate limited", headers={"retry-after": retry_after}, **kw
    )


def low_credit(**kw: Any) -> Reply:
    return error(400, "invalid_request_error", CREDIT_MESSAGE, **kw)


def _default(body: dict[str, Any]) -> Reply:
    name = (body.get("tool_choice") or {}).get("name", "")
    return confirm() if "analysis" in name else safe()


@dataclass
class Seen:
    body: dict[str, Any]
    headers: dict[str, str]
    tool: str
    user_text: str


class FakeAnthropic:
    def __init__(self) -> None:
        self.queue: list[Reply] = []
        self.default: Callable[[dict[str, Any]], Reply] = _default
        self.requests: list[Seen] = []
        self.in_flight = 0
        self.max_in_flight = 0  # the most requests ever held at once
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    def script(self, *replies: Reply) -> None:
        self.queue.extend(replies)

    @property
    def count(self) -> int:
        return len(self.requests)

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/v1/messages", self._messages)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _pick(self, seen: Seen) -> Reply:
        for i, reply in enumerate(self.queue):
            if reply.match is None or reply.match in seen.tool or reply.match in seen.user_text:
                return self.queue.pop(i)
        return self.default(seen.body)

    async def _messages(self, request: web.Request) -> web.Response:
        rid = f"req_fake{next(self._ids):06d}"
        key = request.headers.get("x-api-key") or request.headers.get("authorization", "")
        if not key:
            return _error(401, "authentication_error", "x-api-key header is required", rid)
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(400, "invalid_request_error", "body is not valid JSON", rid)
        missing = [k for k in ("model", "max_tokens", "messages") if not body.get(k)]
        if missing:
            return _error(400, "invalid_request_error", f"{missing[0]}: Field required", rid)
        headers = {k.lower(): v for k, v in request.headers.items()}
        seen = Seen(body, headers, _tool(body), _user_text(body))
        self.requests.append(seen)
        reply = self._pick(seen)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if reply.delay_s:
                await asyncio.sleep(reply.delay_s)
        finally:
            self.in_flight -= 1
        if reply.status != 200:
            return _error(reply.status, reply.error_type, reply.message, rid, reply.headers)
        return web.json_response(_message(body, seen.tool, reply), headers={"request-id": rid})


def _tool(body: dict[str, Any]) -> str:
    choice = body.get("tool_choice") or {}
    return str(choice.get("name", "")) if choice.get("type") == "tool" else ""


def _user_text(body: dict[str, Any]) -> str:
    parts = []
    for msg in body.get("messages", []):
        content = msg.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(str(b.get("text", "")) for b in content if isinstance(b, dict))
    return "\n".join(parts)


def _message(body: dict[str, Any], tool: str, reply: Reply) -> dict[str, Any]:
    if reply.text is not None or not tool:
        content = [{"type": "text", "text": reply.text or ""}]
        stop = reply.stop_reason or "end_turn"
    else:
        content = [
            {"type": "tool_use", "id": "toolu_fake01", "name": tool, "input": reply.tool_input}
        ]
        stop = reply.stop_reason or "tool_use"
    return {
        "id": "msg_fake01",
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {
            "input_tokens": reply.input_tokens,
            "output_tokens": reply.output_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    }


def _error(
    status: int, etype: str, message: str, rid: str, headers: dict[str, str] | None = None
) -> web.Response:
    body = {"type": "error", "error": {"type": etype, "message": message}, "request_id": rid}
    return web.json_response(body, status=status, headers={"request-id": rid, **(headers or {})})
