"""The daily summary on a reasoning model, through the real SDK against the OpenAI fake.

The fake follows §9.B: gpt-6-luna refuses a temperature while reasoning, reasoning tokens
come out of max_completion_tokens, gpt-4o-mini is gone after 2027-01-14, and errors carry
their real types. Whatever happens, the report keeps its template summary.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import date
from typing import Any

import openai
import pytest

from coinpilot.adapters.openai_summary import summarise
from coinpilot.config import Settings
from coinpilot.observability import Metrics
from tests.fakes.openai import FakeOpenAI, start_fake_openai

FALLBACK = ["template one", "template two", "template three"]


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    server, runner = await start_fake_openai()
    yield server
    await runner.cleanup()


@pytest.fixture
def settings_for(make_settings: Callable[..., Settings], fake: FakeOpenAI) -> Callable[..., Any]:
    def build(**report: Any) -> Settings:
        env = {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": fake.base_url}
        return make_settings(env=env, report=report)

    return build


def errors(metrics: Metrics, kind: str) -> float:
    return metrics.dependency_errors.labels(dependency="openai", kind=kind)._value.get()


async def test_default_is_a_reasoning_model_with_effort_and_no_temperature(
    settings_for: Any, fake: FakeOpenAI
) -> None:
    """gpt-6-luna, reasoning_effort low, 1,024 tokens for reasoning plus the answer."""
    lines, source = await summarise(settings_for(), "report", FALLBACK)
    assert (lines, source) == (["line one", "line two", "line three"], "openai")
    body = fake.requests[0]["body"]
    assert (body["model"], body["reasoning_effort"], body["max_completion_tokens"]) == (
        "gpt-6-luna", "low", 1024
    )  # fmt: skip
    assert "temperature" not in body


async def test_temperature_on_a_reasoning_model_falls_back_to_the_template(
    settings_for: Any, fake: FakeOpenAI
) -> None:
    """A configured temperature is refused (400, param temperature): template, counted."""
    metrics = Metrics()
    lines, source = await summarise(settings_for(temperature=0.2), "r", FALLBACK, metrics)
    assert (lines, source) == (FALLBACK, "template")
    assert errors(metrics, "BadRequestError") == 1


async def test_temperature_with_reasoning_off_is_accepted(
    settings_for: Any, fake: FakeOpenAI
) -> None:
    """reasoning_effort none lets a temperature through (and spends no reasoning tokens)."""
    cfg = settings_for(temperature=0.2, reasoning_effort="none")
    assert (await summarise(cfg, "r", FALLBACK))[1] == "openai"
    assert fake.requests[0]["body"]["temperature"] == 0.2


async def test_reasoning_that_eats_the_cap_leaves_the_template(
    settings_for: Any, fake: FakeOpenAI
) -> None:
    """120 reasoning tokens against a 64-token cap: empty answer, finish length → template."""
    fake.reasoning_tokens = 120
    lines, source = await summarise(settings_for(max_completion_tokens=64), "r", FALLBACK)
    assert (lines, source) == (FALLBACK, "template")


async def test_a_timeout_falls_back_and_is_counted(settings_for: Any, fake: FakeOpenAI) -> None:
    """The fake holds its answer past report.timeout_s: APITimeoutError, template."""
    fake.delay_s = 1.0
    metrics = Metrics()
    lines, source = await summarise(settings_for(timeout_s=0.2), "r", FALLBACK, metrics)
    assert (lines, source) == (FALLBACK, "template")
    assert errors(metrics, "APITimeoutError") == 1


async def test_retired_gpt_4o_mini_is_a_404_then_the_template(
    settings_for: Any, fake: FakeOpenAI
) -> None:
    """After 2027-01-14 gpt-4o-mini answers 404 model_not_found."""
    fake.today = date(2027, 1, 14)
    metrics = Metrics()
    cfg = settings_for(openai_model="gpt-4o-mini", reasoning_effort=None)
    assert (await summarise(cfg, "r", FALLBACK, metrics))[1] == "template"
    assert errors(metrics, "model_not_found") == 1


@pytest.mark.parametrize(
    ("status", "code", "exc", "etype"),
    [(429, "rate_limit_exceeded", openai.RateLimitError, "requests"),
     (429, "insufficient_quota", openai.RateLimitError, "insufficient_quota"),
     (503, "server_error", openai.InternalServerError, "server_error"),
     (401, "invalid_api_key", openai.AuthenticationError, "invalid_request_error")],
)  # fmt: skip
async def test_error_types_reach_the_sdk(
    fake: FakeOpenAI, status: int, code: str, exc: type[Exception], etype: str
) -> None:
    """Each scripted failure is the SDK's exception class with the API's type and code."""
    fake.fail_next(status, code)
    client = openai.AsyncOpenAI(api_key="sk-test", base_url=fake.base_url, max_retries=0)
    try:
        with pytest.raises(exc) as err:
            await client.chat.completions.create(
                model="gpt-6-luna", messages=[{"role": "user", "content": "x"}]
            )
    finally:
        await client.close()
    assert (err.value.type, err.value.code) == (etype, code)  # type: ignore[attr-defined]


async def test_out_of_credit_is_not_asked_again(settings_for: Any, fake: FakeOpenAI) -> None:
    """insufficient_quota shares 429 with rate limits but waiting cannot cure it (§3.2)."""
    fake.fail_next(429, "insufficient_quota")
    metrics = Metrics()
    assert (await summarise(settings_for(), "r", FALLBACK, metrics))[1] == "template"
    assert len(fake.requests) == 1
    assert errors(metrics, "insufficient_quota") == 1


@pytest.mark.parametrize(("status", "code"), [(429, "rate_limit_exceeded"), (503, "server_error")])
async def test_a_passing_failure_is_asked_once_more(
    settings_for: Any, fake: FakeOpenAI, status: int, code: str
) -> None:
    """A rate limit or an overloaded server gets one more try, then the real summary."""
    fake.fail_next(status, code)
    lines, source = await summarise(settings_for(), "r", FALLBACK)
    assert (lines, source) == (["line one", "line two", "line three"], "openai")
    assert len(fake.requests) == 2
