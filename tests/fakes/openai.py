"""A local OpenAI Chat Completions server speaking the real wire format (EXTERNAL_APIS §3.5).

``POST /v1/chat/completions`` requires ``Authorization: Bearer …`` (401 invalid_api_key
otherwise) and answers the full response shape with ``x-request-id``. ``answer`` sets the
assistant text; ``fail_next(status, code)`` scripts 429 rate_limit_exceeded /
insufficient_quota, 500 or 503; ``finish_reason`` can be set to "length".
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class FakeOpenAI:
    answer: str = "line one\nline two\nline three"
    finish_reason: str = "stop"
    failures: list[tuple[int, str]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    base_url: str = ""
    _ids: itertools.count = field(default_factory=itertools.count)

    def fail_next(self, status: int, code: str = "server_error", times: int = 1) -> None:
        self.failures.extend([(status, code)] * times)

    @staticmethod
    def _error(status: int, code: str, message: str) -> web.Response:
        kind = "insufficient_quota" if code == "insufficient_quota" else "invalid_request_error"
        resp = web.json_response(
            {"error": {"message": message, "type": kind, "param": None, "code": code}},
            status=status,
        )
        if status == 429 and code == "rate_limit_exceeded":
            resp.headers["retry-after-ms"] = "10"
        return resp

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append({"headers": dict(request.headers), "body": body})
        if not request.headers.get("Authorization", "").startswith("Bearer "):
            return self._error(401, "invalid_api_key", "Incorrect API key provided.")
        if self.failures:
            status, code = self.failures.pop(0)
            return self._error(status, code, f"scripted {code}")
        n = next(self._ids)
        resp = web.json_response(
            {
                "id": f"chatcmpl-{n}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", "gpt-4o-mini"),
                "system_fingerprint": "fp_fake",
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": self.finish_reason,
                        "logprobs": None,
                        "message": {"role": "assistant", "content": self.answer, "refusal": None},
                    }
                ],
                "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
            }
        )
        resp.headers["x-request-id"] = f"req_{n}"
        return resp

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
