"""The OpenAI fake against the documented wire (EXTERNAL_APIS §3.1–3.5, §9.B).

The examples of the reference are replayed byte for byte over HTTP, and the same calls go
through the real SDK, so the fake cannot drift from what the API and the SDK do.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import aiohttp
import openai
import pytest

from tests.fakes.openai import FakeOpenAI, start_fake_openai

# §3.1, verbatim
EXAMPLE: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "Summarise in exactly 3 lines."},
        {"role": "user", "content": "<daily report text>"},
    ],
    "max_completion_tokens": 200,
    "temperature": 0.2,
}
AUTH = {"Authorization": "Bearer sk-test"}


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    server, runner = await start_fake_openai()
    server.today = date(2026, 11, 29)  # before gpt-4o-mini's shutdown
    yield server
    await runner.cleanup()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def client(fake: FakeOpenAI) -> AsyncIterator[openai.AsyncOpenAI]:
    sdk = openai.AsyncOpenAI(api_key="sk-test", base_url=fake.base_url, max_retries=0)
    yield sdk
    await sdk.close()


async def post(
    http: aiohttp.ClientSession, fake: FakeOpenAI, body: Any, headers: dict[str, str] = AUTH
) -> tuple[int, Any, Any]:
    kwargs: dict[str, Any] = {"data": body} if isinstance(body, bytes) else {"json": body}
    async with http.post(f"{fake.base_url}/chat/completions", headers=headers, **kwargs) as r:
        return r.status, r.headers.copy(), await r.json()  # headers stay case-blind


async def test_the_documented_request_gets_the_documented_response_shape(
    http: aiohttp.ClientSession, fake: FakeOpenAI
) -> None:
    status, headers, body = await post(http, fake, EXAMPLE)
    assert status == 200
    assert set(body) >= {"id", "object", "created", "model", "choices", "usage"}
    assert body["object"] == "chat.completion"
    assert isinstance(body["created"], int)
    assert body["model"] == "gpt-4o-mini-2024-07-18"  # the alias answers with its snapshot
    (choice,) = body["choices"]
    assert (choice["index"], choice["finish_reason"], choice["logprobs"]) == (0, "stop", None)
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["refusal"] is None
    assert choice["message"]["content"].count("\n") == 2  # three lines
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert headers["x-request-id"]
    for name in ("limit", "remaining", "reset"):
        assert f"x-ratelimit-{name}-requests" in headers


async def test_the_sdk_reads_the_answer_and_the_request_id(
    client: openai.AsyncOpenAI, fake: FakeOpenAI
) -> None:
    resp = await client.chat.completions.create(**EXAMPLE)
    assert resp.choices[0].message.content == fake.answer
    assert resp._request_id
    assert resp._request_id.startswith("req_")
    sent = fake.requests[0]
    assert sent["headers"]["Authorization"] == "Bearer sk-test"
    assert sent["body"] == EXAMPLE  # the SDK sends the documented body unchanged


async def test_no_bearer_is_a_401_invalid_api_key(
    http: aiohttp.ClientSession, fake: FakeOpenAI
) -> None:
    status, _, body = await post(http, fake, EXAMPLE, headers={"Authorization": "sk-test"})
    assert status == 401
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["code"] == "invalid_api_key"


@pytest.mark.parametrize(
    ("raw", "param"),
    [(b"{not json", None),
     (b'["a list"]', None),
     (b'{"messages": []}', "model"),
     (b'{"model": "gpt-6-luna"}', "messages")],
)  # fmt: skip
async def test_a_malformed_body_is_a_400_with_the_error_shape(
    http: aiohttp.ClientSession, fake: FakeOpenAI, raw: bytes, param: str | None
) -> None:
    headers = {**AUTH, "Content-Type": "application/json"}
    status, _, body = await post(http, fake, raw, headers=headers)
    assert status == 400
    assert (body["error"]["type"], body["error"]["param"]) == ("invalid_request_error", param)


async def test_an_unknown_model_is_a_404_model_not_found(client: openai.AsyncOpenAI) -> None:
    """A typo in the configured model must fail as it would against the API."""
    with pytest.raises(openai.NotFoundError) as err:
        await client.chat.completions.create(
            model="gpt-6-lunaa", messages=[{"role": "user", "content": "x"}]
        )
    assert err.value.code == "model_not_found"


async def test_gpt_4o_mini_is_gone_from_its_shutdown_date(
    client: openai.AsyncOpenAI, fake: FakeOpenAI
) -> None:
    await client.chat.completions.create(**EXAMPLE)  # 2026-11-29: still served
    fake.today = date(2027, 1, 14)
    with pytest.raises(openai.NotFoundError):
        await client.chat.completions.create(**EXAMPLE)


async def test_a_rate_limit_says_when_to_retry_and_the_sdk_obeys(fake: FakeOpenAI) -> None:
    """429 rate_limit_exceeded carries retry-after-ms; one SDK retry then succeeds."""
    fake.fail_next(429, "rate_limit_exceeded")
    sdk = openai.AsyncOpenAI(api_key="sk-test", base_url=fake.base_url, max_retries=1)
    try:
        resp = await sdk.chat.completions.create(**EXAMPLE)
    finally:
        await sdk.close()
    assert resp.choices[0].finish_reason == "stop"
    assert len(fake.requests) == 2


async def test_out_of_credit_is_a_429_with_its_own_type_and_code(
    http: aiohttp.ClientSession, fake: FakeOpenAI
) -> None:
    fake.fail_next(429, "insufficient_quota")
    status, headers, body = await post(http, fake, EXAMPLE)
    assert status == 429
    assert (body["error"]["type"], body["error"]["code"]) == (
        "insufficient_quota", "insufficient_quota"
    )  # fmt: skip
    assert "retry-after-ms" not in headers  # waiting does not bring credit back


async def test_tools_with_reasoning_are_the_documented_400(client: openai.AsyncOpenAI) -> None:
    tool: Any = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    msgs: Any = [{"role": "user", "content": "x"}]
    with pytest.raises(openai.BadRequestError) as err:
        await client.chat.completions.create(model="gpt-6-luna", messages=msgs, tools=[tool])
    assert err.value.param == "reasoning_effort"  # type: ignore[attr-defined]
    resp = await client.chat.completions.create(
        model="gpt-6-luna", messages=msgs, tools=[tool], reasoning_effort="none"
    )
    assert resp.choices[0].finish_reason == "stop"


async def test_reasoning_tokens_come_out_of_the_output_cap(
    client: openai.AsyncOpenAI, fake: FakeOpenAI
) -> None:
    """§9.B.5: 120 reasoning tokens fit a 1,024 cap; against a 100 cap nothing is left."""
    fake.reasoning_tokens = 120
    msgs: Any = [{"role": "user", "content": "x"}]
    roomy = await client.chat.completions.create(
        model="gpt-6-luna", messages=msgs, max_completion_tokens=1024
    )
    assert roomy.usage is not None
    assert roomy.usage.completion_tokens_details is not None
    assert roomy.usage.completion_tokens_details.reasoning_tokens == 120
    assert roomy.usage.completion_tokens > 120  # reasoning plus the answer
    tight = await client.chat.completions.create(
        model="gpt-6-luna", messages=msgs, max_completion_tokens=100
    )
    assert (tight.choices[0].message.content, tight.choices[0].finish_reason) == ("", "length")
    assert tight.usage is not None
    assert tight.usage.completion_tokens == 100
