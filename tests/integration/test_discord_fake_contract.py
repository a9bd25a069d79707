"""The Discord fake replays the documented wire examples (EXTERNAL_APIS §4) over a socket.

Each request and expected answer below is the reference's example or rule; a fake that
drifts from them (or is kinder than Discord) fails here, not silently in the sender tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.fakes.discord import FakeDiscord, start_fake_discord

# §4.1 example body
EXAMPLE = {
    "username": "CoinPilot",
    "content": "Paper entry KRW-BTC",
    "allowed_mentions": {"parse": []},
    "embeds": [
        {
            "title": "BUY KRW-BTC",
            "color": 3066993,
            "timestamp": "2026-01-01T00:00:00Z",
            "fields": [{"name": "Price", "value": "95,000,000", "inline": True}],
            "footer": {"text": "coinpilot"},
        }
    ],
}
RATE_HEADERS = (
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "X-RateLimit-Reset-After",
    "X-RateLimit-Bucket",
)


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    fake, runner = await start_fake_discord()
    yield fake
    fake.release.set()
    await runner.cleanup()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def post(
    http: aiohttp.ClientSession, url: str, body: Any, *, wait: bool = True
) -> tuple[int, dict[str, str], Any]:
    raw = body if isinstance(body, str) else None
    kwargs: dict[str, Any] = {"data": raw, "headers": {"Content-Type": "application/json"}}
    if raw is None:
        kwargs = {"json": body}
    async with http.post(url, params={"wait": "true"} if wait else {}, **kwargs) as resp:
        text = await resp.text()
        data = await resp.json(content_type=None) if text else None
        return resp.status, dict(resp.headers), data


async def test_execute_with_wait_returns_the_message_object(
    fake: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    url = fake.add_hook("123", "tok")
    status, headers, message = await post(http, url, EXAMPLE)
    assert status == 200
    for name in ("id", "channel_id", "content", "embeds", "timestamp", "webhook_id", "author"):
        assert name in message
    assert message["content"] == "Paper entry KRW-BTC"
    assert message["embeds"] == EXAMPLE["embeds"]
    assert message["webhook_id"] == "123"
    assert message["author"]["bot"] is True
    assert all(name in headers for name in RATE_HEADERS)
    assert fake.delivered[0].payload["allowed_mentions"] == {"parse": []}


async def test_execute_without_wait_is_204_with_no_body(
    fake: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    url = fake.add_hook()
    versioned = url.replace("/api/webhooks/", "/api/v10/webhooks/")
    for target in (url, versioned):
        status, _, body = await post(http, target, EXAMPLE, wait=False)
        assert (status, body) == (204, None)


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda b: {"username": "x"}, 50006),  # nothing to send
        (lambda b: {**b, "content": "x" * 2001}, 50035),
        (lambda b: {**b, "embeds": [{"title": "t"}] * 11}, 50035),
        (lambda b: {**b, "embeds": [{"title": "t" * 257}]}, 50035),
        (lambda b: {**b, "embeds": [{"description": "d" * 4097}]}, 50035),
        (lambda b: {**b, "embeds": [{"fields": [{"name": "n", "value": "v" * 1025}]}]}, 50035),
        (lambda b: {**b, "embeds": [{"footer": {"text": "f" * 2049}}]}, 50035),
        # 2 × (title 256 + description 2,745) = 6,002 characters across embeds > 6,000
        (lambda b: {**b, "embeds": [{"title": "t" * 256, "description": "d" * 2745}] * 2}, 50035),
        (lambda b: "{not json", 50109),
    ],
)
async def test_limits_answer_400_with_discords_codes(
    fake: FakeDiscord, http: aiohttp.ClientSession, mutate: Any, code: int
) -> None:
    url = fake.add_hook()
    status, _, body = await post(http, url, mutate(EXAMPLE))
    assert status == 400
    assert body["code"] == code
    assert fake.delivered == []


async def test_the_limits_themselves_are_allowed(
    fake: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    url = fake.add_hook()
    edge = {**EXAMPLE, "content": "x" * 2000,
            "embeds": [{"title": "t" * 256, "description": "d" * 2744}] * 2}  # fmt: skip
    status, _, _ = await post(http, url, edge)
    assert status == 200


async def test_unknown_webhook_is_404_code_10015(
    fake: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    fake.add_hook("1", "right")
    status, _, body = await post(http, f"{fake.base_url}/api/webhooks/1/wrong", EXAMPLE)
    assert (status, body) == (404, {"message": "Unknown Webhook", "code": 10015})


async def test_scripted_429_says_the_same_wait_in_body_and_headers(
    fake: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    """retry_after 2.5: the body says 2.5, Reset-After 2.500, Retry-After rounded UP to 3."""
    url = fake.add_hook()
    fake.fail_next(url, 429, retry_after=2.5)
    status, headers, body = await post(http, url, EXAMPLE)
    assert status == 429
    assert body == {"message": "You are being rate limited.", "retry_after": 2.5, "global": False}
    assert headers["Retry-After"] == "3"
    assert headers["X-RateLimit-Reset-After"] == "2.500"
    assert headers["X-RateLimit-Remaining"] == "0"
    assert headers["X-RateLimit-Scope"] == "user"
    assert "X-RateLimit-Global" not in headers


async def test_global_429_is_marked_global(fake: FakeDiscord, http: aiohttp.ClientSession) -> None:
    url = fake.add_hook()
    fake.fail_next(url, 429, retry_after=0.05, global_=True)
    status, headers, body = await post(http, url, EXAMPLE)
    assert status == 429
    assert body["global"] is True
    assert headers["X-RateLimit-Global"] == "true"
    assert headers["X-RateLimit-Scope"] == "global"
    assert headers["Retry-After"] == "1"


async def test_a_client_that_does_not_wait_is_rate_limited(
    fake: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    """Sending again before retry_after, or into an empty bucket, draws an unscripted 429."""
    url, other = fake.add_hook("1", "a"), fake.add_hook("2", "b")
    fake.fail_next(url, 429, retry_after=0.3)
    assert (await post(http, url, EXAMPLE))[0] == 429
    status, _, body = await post(http, url, EXAMPLE)
    assert status == 429
    assert 0 < body["retry_after"] <= 0.3
    assert (await post(http, other, EXAMPLE))[0] == 200  # a route limit holds one webhook
    await asyncio.sleep(0.35)
    assert (await post(http, url, EXAMPLE))[0] == 200
    fake.bucket_exhausted = True
    status, headers, _ = await post(http, url, EXAMPLE)
    assert (status, headers["X-RateLimit-Remaining"]) == (200, "0")
    assert (await post(http, url, EXAMPLE))[0] == 429


async def test_after_a_global_429_every_webhook_waits(
    fake: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    url, other = fake.add_hook("1", "a"), fake.add_hook("2", "b")
    fake.fail_next(url, 429, retry_after=0.3, global_=True)
    assert (await post(http, url, EXAMPLE))[0] == 429
    status, headers, _ = await post(http, other, EXAMPLE)
    assert (status, headers["X-RateLimit-Global"]) == (429, "true")
