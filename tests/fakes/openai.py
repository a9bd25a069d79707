"""A local OpenAI Chat Completions server speaking the real wire format (EXTERNAL_APIS §3, §9.B).

``POST /v1/chat/completions`` requires ``Authorization: Bearer …`` (401 invalid_api_key
otherwise) and answers the full response shape with ``x-request-id``. ``answer`` sets the
assistant text; ``fail_next(status, code)`` scripts 429 rate_limit_exceeded /
insufficient_quota, 500 or 503, each with its own error ``type``; ``finish_reason`` can be
set to "length"; ``delay_s`` holds every answer that long (a client timeout).

Reasoning models (``gpt-6-*``, §9.B.5): ``reasoning_tokens`` of ``max_completion_tokens``
go to reasoning first (the answer is ``""`` with ``finish_reason: "length"`` when nothing is
left), and ``temperature`` other than 1 is a 400 unless ``reasoning_effort`` is "none".
``gpt-4o-mini*`` is a 404 model_not_found from its shutdown date (``today``, injectable),
and so is any model not in ``models``, as the API answers a typo. A body that is not a JSON
object, or one without ``model`` or ``messages``, is a 400; function tools with reasoning on
are the 400 of §9.B.1. Every answer carries the ``x-ratelimit-*`` headers of §3.1.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from aiohttp import web

GPT_4O_MINI_SHUTDOWN = date(2027, 1, 14)
MODELS = frozenset({"gpt-6-luna", "gpt-4o-mini", "gpt-4o-mini-2024-07-18"})
SNAPSHOTS = {"gpt-4o-mini": "gpt-4o-mini-2024-07-18"}  # an alias answers with its snapshot
REQUEST_LIMIT = 5000  # requests per minute, for the x-ratelimit-* headers
# error.type per code, as the API sends them (EXTERNAL_APIS §3.2)
ERROR_TYPES = {
    "invalid_api_key": "invalid_request_error",
    "model_not_found": "invalid_request_error",
    "rate_limit_exceeded": "requests",
    "insufficient_quota": "insufficient_quota",
    "server_error": "server_error",
}


@dataclass
class FakeOpenAI:
    answer: str = "line one\nline two\nline three"
    finish_reason: str = "stop"
    failures: list[tuple[int, str]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    base_url: str = ""
    delay_s: float = 0.0
    reasoning_tokens: int = 120
    today: date | None = None  # None: the real date
    models: frozenset[str] = MODELS
    _ids: itertools.count = field(default_factory=itertools.count)

    def fail_next(self, status: int, code: str = "server_error", times: int = 1) -> None:
        self.failures.extend([(status, code)] * times)

    @staticmethod
    def _error(
        status: int, code: str | None, message: str, param: str | None = None
    ) -> web.Response:
        kind = ERROR_TYPES.get(code or "", "invalid_request_error")
        resp = web.json_response(
            {"error": {"message": message, "type": kind, "param": param, "code": code}},
            status=status,
        )
        if status == 429 and code == "rate_limit_exceeded":
            resp.headers["retry-after-ms"] = "10"
        return resp

    async def handle(self, request: web.Request) -> web.Response:
        resp = await self._answer(request)
        resp.headers["x-request-id"] = f"req_{next(self._ids)}"
        resp.headers["x-ratelimit-limit-requests"] = str(REQUEST_LIMIT)
        resp.headers["x-ratelimit-remaining-requests"] = str(REQUEST_LIMIT - 1)
        resp.headers["x-ratelimit-reset-requests"] = "12ms"
        return resp

    async def _answer(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        self.requests.append({"headers": dict(request.headers), "body": body})
        if not request.headers.get("Authorization", "").startswith("Bearer "):
            return self._error(401, "invalid_api_key", "Incorrect API key provided.")
        if not isinstance(body, dict):
            return self._error(400, None, "We could not parse the JSON body of your request.")
        for required in ("model", "messages"):
            if required not in body:
                return self._error(
                    400, None, f"Missing required parameter: '{required}'.", required
                )
        if self.failures:
            status, code = self.failures.pop(0)
            return self._error(status, code, f"scripted {code}")
        model = str(body["model"])
        today = self.today or datetime.now(UTC).date()
        retired = model.startswith("gpt-4o-mini") and today >= GPT_4O_MINI_SHUTDOWN
        if retired or model not in self.models:
            msg = f"The model `{model}` does not exist or you do not have access to it."
            return self._error(404, "model_not_found", msg)
        reasoning = model.startswith("gpt-6")
        effort = body.get("reasoning_effort", "medium")
        if reasoning and body.get("tools") and effort != "none":
            msg = (
                f"Function tools with reasoning_effort are not supported for {model} in "
                "/v1/chat/completions. To use function tools, use /v1/responses or set "
                "reasoning_effort to 'none'."
            )
            return self._error(400, None, msg, param="reasoning_effort")
        if reasoning and body.get("temperature", 1) != 1 and effort != "none":
            msg = (
                f"Unsupported value: 'temperature' does not support {body['temperature']} "
                "with this model. Only the default (1) value is supported."
            )
            return self._error(400, None, msg, param="temperature")
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        cap = int(body.get("max_completion_tokens") or body.get("max_tokens") or 4096)
        spent = min(cap, self.reasoning_tokens) if reasoning and effort != "none" else 0
        content, finish, answer_tokens = self.answer, self.finish_reason, 20
        if spent >= cap:
            content, finish, answer_tokens = "", "length", 0
        return web.json_response(
            {
                "id": f"chatcmpl-{len(self.requests)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": SNAPSHOTS.get(model, model),
                "system_fingerprint": "fp_fake",
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": finish,
                        "logprobs": None,
                        "message": {"role": "assistant", "content": content, "refusal": None},
                    }
                ],
                "usage": {
                    "prompt_tokens": 100,
                    "completion_tokens": spent + answer_tokens,
                    "total_tokens": 100 + spent + answer_tokens,
                    "completion_tokens_details": {"reasoning_tokens": spent},
                },
            }
        )

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.handle)
        return app


async def start_fake_openai() -> tuple[FakeOpenAI, web.AppRunner]:
    fake = FakeOpenAI()
    runner = web.AppRunner(fake.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    fake.base_url = f"http://127.0.0.1:{port}/v1"
    return fake, runner
