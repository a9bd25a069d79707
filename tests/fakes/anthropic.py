"""A local Anthropic API that enforces today's contract per model (EXTERNAL_APIS §2.6, §9.A).

``POST /v1/messages`` accepts ``x-api-key`` or ``Authorization: Bearer`` and any
``anthropic-version``; a missing key is 401, a body without model/max_tokens/messages is
400. Per model (``MODELS``; the retirement date is checked against ``today``, injectable):

* unknown ids, and retired ids on or after their retirement date → 404 ``not_found_error``;
* forced tool use (``tool_choice`` ``tool``/``any``) on the 5.5 generation (but Haiku) → 400
  with the documented message; elsewhere one ``tool_use`` block, ``stop_reason: tool_use``;
* ``output_config.format`` (and ``strict`` tools) validated: ``minimum``/``maximum``/
  ``multipleOf``/``minLength``/``maxLength``/other array limits, and objects without
  ``additionalProperties: false`` → 400; the answer is one ``text`` block holding the JSON;
* models that think by default prepend ``thinking`` blocks (empty text, a signature) and
  count their tokens as output; ``thinking`` types, ``effort`` and sampling parameters follow
  §9.A.4 with its 400 messages (``anthropic-version: 2026-10-21`` refuses sampling on every
  model); assistant prefill is refused on the 5.5 generation.

``GET /v1/models/{id}`` is the Models API: aliases resolve to their snapshot, retired models
stay listed with ``lifecycle: "retired"``, unknown ids are 404.

Replies are scripted: ``fake.script(reply, ...)`` queues replies consumed in order; a reply
with ``match`` is only used for a request whose role ("analyst"/"guardian", read from the
schema's decision enum) or user text contains it, so concurrent symbols can be scripted
independently. With nothing queued, ``default`` answers (CONFIRM 80 to the Analyst, SAFE
otherwise). ``requests`` records every accepted request, ``rejected`` every 4xx, ``lookups``
every Models API call; ``in_flight`` counts the requests being held now (a reply's ``delay_s``,
or its ``hold`` event until the test sets it), ``max_in_flight`` the most ever held at once.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from aiohttp import web

CREDIT_MESSAGE = (
    "Your credit balance is too low to access the Anthropic API. "
    "Please go to Plans & Billing to upgrade or purchase credits."
)
FORCED_TOOL_MESSAGE = 'tool_choice: type "tool" and "any" are not supported for this model.'
THINKING_ENABLED_MESSAGE = (
    '"thinking.type.enabled" is not supported for this model. Use "thinking.type.adaptive" '
    'and "output_config.effort" to control thinking behavior.'
)
THINKING_DISABLED_MESSAGE = (
    'To turn thinking off on this model, send "thinking": {"type": "between_tools"} instead '
    'of {"type": "disabled"}. The model does not think before responding. The short updates '
    "it writes between tool calls come back as thinking blocks."
)
ADAPTIVE_MESSAGE = "adaptive thinking is not supported on this model"
# The exact wording of these two is not published (EXTERNAL_APIS §9.A.9); the status is.
EFFORT_MESSAGE = "output_config.effort: this model does not support effort"
SCHEMA_MESSAGE = "output_config.format.schema: {detail} is not supported in structured outputs"
SAMPLING_MESSAGE = "{name}: this parameter is not supported for this model"
PREFILL_MESSAGE = "Prefilling assistant messages is not supported for this model."

UNSUPPORTED_KEYWORDS = (
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
    "minLength", "maxLength", "maxItems", "uniqueItems", "minProperties", "maxProperties",
)  # fmt: skip


@dataclass(frozen=True)
class ModelSpec:
    """What the API does with one model id (EXTERNAL_APIS §9.A.1, §9.A.2, §9.A.4)."""

    snapshot: str  # the id the Models API resolves it to
    display_name: str
    released: date
    forced_tool: bool  # accepts tool_choice tool/any
    thinking_types: frozenset[str]  # accepted thinking.type values
    thinks_by_default: bool  # thinking blocks when `thinking` is omitted
    effort: bool
    sampling: bool  # accepts non-default temperature/top_p/top_k (under 2023-06-01)
    prefill: bool = True
    retires: date | None = None
    deprecated: bool = False


def _spec(snapshot: str, name: str, released: date, **kw: Any) -> ModelSpec:
    return ModelSpec(snapshot, name, released, **kw)


_CLASSIC = {"thinking_types": frozenset({"enabled", "disabled"}), "thinks_by_default": False,
            "effort": False, "sampling": True, "forced_tool": True}  # fmt: skip
_SONNET_45 = _spec("claude-sonnet-4-5-20250929", "Claude Sonnet 4.5", date(2025, 9, 29),
                   retires=date(2026, 11, 30), deprecated=True, **_CLASSIC)  # fmt: skip
_HAIKU_45 = _spec("claude-haiku-4-5-20251001", "Claude Haiku 4.5", date(2025, 10, 15), **_CLASSIC)
_NEW_GEN = {"thinks_by_default": True, "effort": True, "sampling": False, "prefill": False}

MODELS: dict[str, ModelSpec] = {
    "claude-sonnet-5-5": _spec(
        "claude-sonnet-5-5", "Claude Sonnet 5.5", date(2026, 9, 28), forced_tool=False,
        thinking_types=frozenset({"adaptive", "between_tools"}), **_NEW_GEN,
    ),
    "claude-opus-5-5": _spec(
        "claude-opus-5-5", "Claude Opus 5.5", date(2026, 9, 28), forced_tool=False,
        thinking_types=frozenset({"adaptive"}), **_NEW_GEN,
    ),
    "claude-haiku-5-5": _spec(
        "claude-haiku-5-5", "Claude Haiku 5.5", date(2026, 10, 7), forced_tool=True,
        thinking_types=frozenset({"adaptive", "disabled"}), **_NEW_GEN,
    ),
    "claude-sonnet-5": _spec(
        "claude-sonnet-5", "Claude Sonnet 5", date(2026, 6, 30), forced_tool=True,
        thinking_types=frozenset({"adaptive"}), thinks_by_default=True, effort=True,
        sampling=True,
    ),
    "claude-sonnet-4-6": _spec(
        "claude-sonnet-4-6", "Claude Sonnet 4.6", date(2026, 2, 17), forced_tool=True,
        thinking_types=frozenset({"adaptive", "disabled"}), thinks_by_default=False,
        effort=True, sampling=True,
    ),
    "claude-haiku-4-5": _HAIKU_45,
    "claude-haiku-4-5-20251001": _HAIKU_45,
    "claude-sonnet-4-5": _SONNET_45,
    "claude-sonnet-4-5-20250929": _SONNET_45,
}  # fmt: skip


@dataclass
class Reply:
    data: Any = None  # the JSON answer (text block or tool input)
    status: int = 200
    error_type: str = ""
    message: str = ""
    error_code: str | None = None  # error.details.error_code
    delay_s: float = 0.0
    hold: asyncio.Event | None = None  # answer only once the test sets it (a stall it controls)
    stop_reason: str | None = None  # "refusal" or "max_tokens" shape the content as documented
    text: str | None = None  # the text block verbatim instead of the JSON of ``data``
    raw_body: str | None = None  # a 200 whose body is this text, not a message
    raw_content_type: str = "text/html"
    thinking_blocks: int | None = None  # None: the model's default (one when it thinks)
    refusal_category: str | None = "general_harms"
    headers: dict[str, str] = field(default_factory=dict)
    match: str | None = None
    input_tokens: int = 420
    output_tokens: int = 60
    thinking_tokens: int = 90
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0


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


def refusal(category: str | None = "general_harms", **kw: Any) -> Reply:
    return Reply(stop_reason="refusal", refusal_category=category, output_tokens=0, **kw)


def error(status: int, error_type: str, message: str, **kw: Any) -> Reply:
    return Reply(status=status, error_type=error_type, message=message, **kw)


def overloaded(**kw: Any) -> Reply:
    return error(529, "overloaded_error", "Overloaded", **kw)


def rate_limited(retry_after: str = "1", **kw: Any) -> Reply:
    return error(
        429, "rate_limit_error", "Rate limited", headers={"retry-after": retry_after}, **kw
    )


def spend_limit(**kw: Any) -> Reply:
    """The monthly spend cap: 429 without retry-after, error.details.error_code set."""
    msg = "You have reached your specified workspace API usage limits."
    return error(429, "rate_limit_error", msg, error_code="enforced_spend_limit_reached", **kw)


def low_credit(**kw: Any) -> Reply:
    return error(400, "invalid_request_error", CREDIT_MESSAGE, **kw)


def not_json(body: str = "<html><body>502 Bad Gateway</body></html>", **kw: Any) -> Reply:
    return Reply(raw_body=body, **kw)


def role_of(body: dict[str, Any]) -> str:
    """'analyst' or 'guardian' from the decision enum of the schema the request carries."""
    schemas = [((body.get("output_config") or {}).get("format") or {}).get("schema")]
    schemas += [t.get("input_schema") for t in body.get("tools") or [] if isinstance(t, dict)]
    for schema in schemas:
        if isinstance(schema, dict):
            enum = ((schema.get("properties") or {}).get("decision") or {}).get("enum") or []
            if "CONFIRM" in enum:
                return "analyst"
            if "SAFE" in enum:
                return "guardian"
    return ""


def _default(body: dict[str, Any]) -> Reply:
    return confirm() if role_of(body) == "analyst" else safe()


@dataclass
class Seen:
    body: dict[str, Any]
    headers: dict[str, str]
    role: str
    user_text: str
    path: str = "/v1/messages"


class ApiError(Exception):
    def __init__(self, status: int, etype: str, message: str) -> None:
        super().__init__(message)
        self.status, self.etype, self.message = status, etype, message


class FakeAnthropic:
    def __init__(self, today: date | None = None) -> None:
        self.queue: list[Reply] = []
        self.default: Callable[[dict[str, Any]], Reply] = _default
        self.requests: list[Seen] = []
        self.rejected: list[tuple[Seen, int, str]] = []
        self.lookups: list[str] = []
        self.today = today  # None: the real date, like the real service
        self.in_flight = 0
        self.max_in_flight = 0  # the most requests ever held at once
        self.moved = asyncio.Event()  # set whenever ``in_flight`` changes, for tests to wait on
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    def script(self, *replies: Reply) -> None:
        self.queue.extend(replies)

    @property
    def count(self) -> int:
        return len(self.requests)

    def _today(self) -> date:
        return self.today or datetime.now(UTC).date()

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_get("/v1/models/{model_id}", self._model)
        self._runner = web.AppRunner(app, access_log=None)
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
            if reply.match is None or reply.match == seen.role or reply.match in seen.user_text:
                return self.queue.pop(i)
        return self.default(seen.body)

    def _spec(self, model: str) -> ModelSpec:
        spec = MODELS.get(model)
        if spec is None or (spec.retires is not None and self._today() >= spec.retires):
            raise ApiError(404, "not_found_error", f"model: {model}")
        return spec

    async def _model(self, request: web.Request) -> web.Response:
        rid = self._rid()
        if not _key(request):
            return _error(401, "authentication_error", "x-api-key header is required", rid)
        model_id = request.match_info["model_id"]
        self.lookups.append(model_id)
        spec = MODELS.get(model_id)
        if spec is None:
            return _error(404, "not_found_error", f"model: {model_id}", rid)
        retired = spec.retires is not None and self._today() >= spec.retires
        lifecycle = "retired" if retired else "deprecated" if spec.deprecated else "active"
        info = {
            "type": "model",
            "id": spec.snapshot,
            "display_name": spec.display_name,
            "created_at": f"{spec.released.isoformat()}T00:00:00Z",
            "lifecycle": lifecycle,
            "deprecated_at": "2026-09-28T00:00:00Z" if spec.deprecated else None,
            "retires_at": f"{spec.retires.isoformat()}T00:00:00Z" if spec.retires else None,
            "max_input_tokens": 200_000 if spec.retires or not spec.effort else 1_000_000,
            "max_tokens": 64_000 if not spec.effort else 128_000,
        }
        return web.json_response(info, headers={"request-id": rid})

    def _rid(self) -> str:
        return f"req_fake{next(self._ids):06d}"

    async def _messages(self, request: web.Request) -> web.Response:
        rid = self._rid()
        if not _key(request):
            return _error(401, "authentication_error", "x-api-key header is required", rid)
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(400, "invalid_request_error", "body is not valid JSON", rid)
        if not isinstance(body, dict):
            return _error(400, "invalid_request_error", "body must be an object", rid)
        headers = {k.lower(): v for k, v in request.headers.items()}
        seen = Seen(body, headers, role_of(body), _user_text(body))
        try:
            spec = self._validate(body, headers)
        except ApiError as exc:
            self.rejected.append((seen, exc.status, exc.message))
            return _error(exc.status, exc.etype, exc.message, rid)
        self.requests.append(seen)
        reply = self._pick(seen)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.moved.set()
        try:
            if reply.delay_s:
                await asyncio.sleep(reply.delay_s)
            if reply.hold is not None:
                await reply.hold.wait()
        finally:
            self.in_flight -= 1
            self.moved.set()
        if reply.status != 200:
            return _error(
                reply.status, reply.error_type, reply.message, rid, reply.headers, reply.error_code
            )
        if reply.raw_body is not None:
            return web.Response(text=reply.raw_body, content_type=reply.raw_content_type,
                                headers={"request-id": rid})  # fmt: skip
        return web.json_response(_message(body, spec, reply), headers={"request-id": rid})

    def _validate(self, body: dict[str, Any], headers: dict[str, str]) -> ModelSpec:
        missing = [k for k in ("model", "max_tokens", "messages") if not body.get(k)]
        if missing:
            raise ApiError(400, "invalid_request_error", f"{missing[0]}: Field required")
        spec = self._spec(str(body["model"]))
        for name in ("temperature", "top_p", "top_k"):
            if name in body and (
                headers.get("anthropic-version") == "2026-10-21" or not spec.sampling
            ):
                raise ApiError(400, "invalid_request_error", SAMPLING_MESSAGE.format(name=name))
        _check_thinking(spec, body.get("thinking"))
        config = body.get("output_config") or {}
        kind = (body.get("thinking") or {}).get("type")
        if (
            spec.effort
            and kind in ("between_tools", "disabled")
            and config.get("effort") in ("xhigh", "max")
        ):  # §9.A.4: thinking off only at effort high or lower (wording not published)
            raise ApiError(
                400, "invalid_request_error", f'thinking.type "{kind}" needs effort high or lower'
            )
        if "effort" in config and not spec.effort:
            raise ApiError(400, "invalid_request_error", EFFORT_MESSAGE)
        choice = (body.get("tool_choice") or {}).get("type")
        if choice in ("tool", "any") and not spec.forced_tool:
            raise ApiError(400, "invalid_request_error", FORCED_TOOL_MESSAGE)
        if config.get("format") is not None:
            _check_schema(config["format"].get("schema"), "schema")
        for tool in body.get("tools") or []:
            if tool.get("strict"):
                _check_schema(tool.get("input_schema"), "input_schema")
        messages = body["messages"]
        if not spec.prefill and messages and messages[-1].get("role") == "assistant":
            raise ApiError(400, "invalid_request_error", PREFILL_MESSAGE)
        return spec


def _key(request: web.Request) -> str:
    auth = request.headers.get("authorization", "")
    bearer = auth[len("Bearer ") :] if auth.startswith("Bearer ") else ""
    return request.headers.get("x-api-key") or bearer


def _check_thinking(spec: ModelSpec, thinking: Any) -> None:
    if thinking is None:
        return
    kind = thinking.get("type")
    if kind in spec.thinking_types:
        return
    if kind == "enabled" and spec.effort:
        msg = THINKING_ENABLED_MESSAGE
    elif kind == "disabled" and "between_tools" in spec.thinking_types:
        msg = THINKING_DISABLED_MESSAGE
    elif kind == "adaptive":
        msg = ADAPTIVE_MESSAGE
    else:
        msg = f"thinking.type: {kind!r} is not supported for this model"
    raise ApiError(400, "invalid_request_error", msg)


def _check_schema(schema: Any, where: str) -> None:
    """The structured-outputs subset (EXTERNAL_APIS §9.A.3), applied recursively."""
    if not isinstance(schema, dict):
        raise ApiError(400, "invalid_request_error", f"{where}: must be an object")
    for word in UNSUPPORTED_KEYWORDS:
        if word in schema:
            raise ApiError(
                400, "invalid_request_error", SCHEMA_MESSAGE.format(detail=f"{where}.{word}")
            )
    if schema.get("type") == "object" and schema.get("additionalProperties") is not False:
        raise ApiError(
            400,
            "invalid_request_error",
            f"output_config.format.schema: {where}: For 'object' type, "
            "'additionalProperties' must be explicitly set to false",
        )
    for name, sub in (schema.get("properties") or {}).items():
        _check_schema(sub, f"{where}.properties.{name}")
    if isinstance(schema.get("items"), dict):
        _check_schema(schema["items"], f"{where}.items")


def _user_text(body: dict[str, Any]) -> str:
    parts = []
    for msg in body.get("messages", []):
        content = msg.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(str(b.get("text", "")) for b in content if isinstance(b, dict))
    return "\n".join(parts)


def _thinks(spec: ModelSpec, body: dict[str, Any]) -> bool:
    kind = (body.get("thinking") or {}).get("type")
    if kind is None:
        return spec.thinks_by_default
    return kind in ("adaptive", "enabled")


def _message(body: dict[str, Any], spec: ModelSpec, reply: Reply) -> dict[str, Any]:
    choice = body.get("tool_choice") or {}
    forced = choice.get("type") in ("tool", "any")
    n_thinking = 0 if forced else reply.thinking_blocks
    if n_thinking is None:
        n_thinking = 1 if _thinks(spec, body) else 0
    thinking = [
        {"type": "thinking", "thinking": "", "signature": f"EqQBfake{i}"} for i in range(n_thinking)
    ]
    thinking_tokens = reply.thinking_tokens if thinking else 0
    stop_details = None
    if reply.stop_reason == "refusal":
        content: list[dict[str, Any]] = []
        stop = "refusal"
        stop_details = {"type": "refusal", "category": reply.refusal_category,
                        "explanation": "The request was declined."}  # fmt: skip
    elif reply.stop_reason == "max_tokens":
        content, stop = thinking, "max_tokens"
    elif forced:
        name = choice.get("name") or (body.get("tools") or [{}])[0].get("name", "")
        content = [{"type": "tool_use", "id": "toolu_fake01", "name": name, "input": reply.data}]
        stop = "tool_use"
    else:
        text = reply.text if reply.text is not None else json.dumps(reply.data)
        content, stop = [*thinking, {"type": "text", "text": text}], reply.stop_reason or "end_turn"
    return {
        "id": "msg_fake01",
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "stop_details": stop_details,
        "usage": {
            "input_tokens": reply.input_tokens,
            "output_tokens": reply.output_tokens + thinking_tokens,
            "cache_creation_input_tokens": reply.cache_write_tokens,
            "cache_read_input_tokens": reply.cache_read_tokens,
            "output_tokens_details": {"thinking_tokens": thinking_tokens},
        },
    }


def _error(
    status: int,
    etype: str,
    message: str,
    rid: str,
    headers: dict[str, str] | None = None,
    error_code: str | None = None,
) -> web.Response:
    err: dict[str, Any] = {"type": etype, "message": message}
    if error_code is not None:
        err["details"] = {"error_code": error_code}
    body = {"type": "error", "error": err, "request_id": rid}
    return web.json_response(body, status=status, headers={"request-id": rid, **(headers or {})})


async def serve(port: int, today: date | None) -> None:
    fake = FakeAnthropic(today=today)
    app = web.Application()
    app.router.add_post("/v1/messages", fake._messages)
    app.router.add_get("/v1/models/{model_id}", fake._model)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print(f"fake Anthropic API on http://127.0.0.1:{port} (today {fake._today()})", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        last = fake.requests[-1].body if fake.requests else None
        print(json.dumps({"requests": fake.count, "lookups": fake.lookups, "last": last}))
        await runner.cleanup()


def main() -> None:
    """``python -m tests.fakes.anthropic --port 8766 [--today 2026-12-01]``: try the daemon or
    ``coinpilot ai-review`` against today's contract without a key or a network."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--today", type=date.fromisoformat, default=None)
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.today))


if __name__ == "__main__":
    main()
