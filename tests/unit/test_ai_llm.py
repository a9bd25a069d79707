"""Anthropic failure classification, request shape and cost estimate (no network)."""

from __future__ import annotations

import inspect
from decimal import Decimal
from typing import Any

import anthropic
import httpx2
import pytest

from coinpilot import prompts
from coinpilot.adapters.llm import Usage, build_request, classify, estimate_cost
from coinpilot.config import ModelPrice, ModelSettings

REQ = httpx2.Request("POST", "http://127.0.0.1/v1/messages")


def status_error(status: int, etype: str, message: str, **extra: Any) -> anthropic.APIStatusError:
    body = {"type": "error", "error": {"type": etype, "message": message, **extra}}
    headers = {"retry-after": "2"} if status == 429 else {}
    resp = httpx2.Response(status, json=body, headers=headers, request=REQ)
    client = anthropic.AsyncAnthropic(api_key="x", base_url="http://127.0.0.1")
    return client._make_status_error(f"Error code: {status}", body=body, response=resp)


@pytest.mark.parametrize(
    ("status", "etype", "message", "code", "retryable"),
    [
        (400, "invalid_request_error", "Your credit balance is too low to access", "low_credit",
         False),
        (400, "invalid_request_error", "messages: Field required", "config_error", False),
        (401, "authentication_error", "invalid x-api-key", "config_error", False),
        (404, "not_found_error", "model: claude-sonnet-4-5", "config_error", False),
        (413, "request_too_large", "too large", "api_error", False),
        (429, "rate_limit_error", "slow down", "rate_limited", True),
        (500, "api_error", "boom", "server_error", True),
        (529, "overloaded_error", "Overloaded", "overloaded", True),
    ],
)  # fmt: skip
def test_status_errors_map_by_status(
    status: int, etype: str, message: str, code: str, retryable: bool
) -> None:
    """Each HTTP status maps to its reason code and retry decision."""
    f = classify(status_error(status, etype, message))
    assert (f.code, f.retryable, f.status) == (code, retryable, status)


def test_rate_limit_keeps_retry_after_and_spend_cap_is_not_retried() -> None:
    """A 429 carries retry-after; the monthly spend cap is treated like low credit."""
    assert classify(status_error(429, "rate_limit_error", "x")).retry_after_s == 2.0
    cap = status_error(
        429, "rate_limit_error", "x", details={"error_code": "enforced_spend_limit_reached"}
    )
    assert classify(cap).code == "low_credit"


def test_timeouts_and_connection_errors() -> None:
    """SDK timeouts and connection errors are retryable with their own codes."""
    assert classify(anthropic.APITimeoutError(REQ)).code == "timeout"
    assert classify(anthropic.APIConnectionError(request=REQ)).code == "connection_error"


def test_request_uses_structured_output_caches_the_system_prompt_and_sends_no_sampling() -> None:
    """output_config.format carries the schema; no tool forcing, no temperature."""
    fmt = prompts.output_format("analyst")
    body = build_request(
        model="m", system="s", user="u", output_format=fmt, options=ModelSettings(max_tokens=64)
    )
    assert body["output_config"] == {"format": fmt}
    assert not {"tools", "tool_choice", "thinking"} & set(body)
    assert body["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert not {"temperature", "top_p", "top_k"} & set(body)


@pytest.mark.parametrize("role", ["analyst", "guardian"])
def test_schemas_stay_within_what_structured_outputs_accept(role: str) -> None:
    """No numeric or length constraints; every object closes additionalProperties."""
    schema = prompts.output_format(role)["schema"]
    banned = {"minimum", "maximum", "multipleOf", "minLength", "maxLength"}
    assert schema["additionalProperties"] is False
    for prop in schema["properties"].values():
        assert not banned & set(prop)


def test_prompts_no_longer_mention_a_tool() -> None:
    """The system prompts ask for the JSON object, not for a tool call."""
    for role in ("analyst", "guardian"):
        assert "tool" not in prompts.system(role).lower()
        assert "JSON object" in prompts.system(role)


def test_effort_and_thinking_are_sent_only_when_configured() -> None:
    """A model's effort and thinking type go into the body; unset ones are left out."""
    fmt = prompts.output_format("guardian")
    opts = ModelSettings(max_tokens=2048, effort="low", thinking="disabled")
    body = build_request(model="m", system="s", user="u", output_format=fmt, options=opts)
    assert body["output_config"] == {"format": fmt, "effort": "low"}
    assert body["thinking"] == {"type": "disabled"}
    assert body["max_tokens"] == 2048


def test_cost_uses_the_four_configured_prices() -> None:
    """Sonnet 5.5 list prices: 2 in, 10 out, 2.50 cache write, 0.10 cache read per MTok.

    412 input + 1,000 cache write + 2,000 cache read + 190 output tokens:
    412×2 + 1000×2.5 + 2000×0.1 + 190×10 = 824 + 2500 + 200 + 1900 = 5424 µ$ = $0.005424.
    """
    price = ModelPrice(
        input_per_mtok=Decimal("2"), output_per_mtok=Decimal("10"),
        cache_write_per_mtok=Decimal("2.5"), cache_read_per_mtok=Decimal("0.10"),
    )  # fmt: skip
    assert estimate_cost(Usage(412, 190, 1000, 2000), price) == Decimal("0.005424")
    assert estimate_cost(Usage(412, 190, 1000, 2000), None) is None


def test_every_request_key_is_a_keyword_of_the_installed_sdk() -> None:
    """SDK 1.x removed temperature/top_p/top_k and output_format from create(): we send none."""
    client = anthropic.AsyncAnthropic(api_key="x", base_url="http://127.0.0.1")
    accepted = set(inspect.signature(client.messages.create).parameters)
    opts = ModelSettings(max_tokens=512, effort="low", thinking="adaptive")
    body = build_request(
        model="m", system="s", user="u", output_format=prompts.output_format("analyst"),
        options=opts,
    )  # fmt: skip
    assert set(body) <= accepted
    assert not {"temperature", "top_p", "top_k", "output_format"} & accepted
    assert anthropic.__version__.startswith("2.")
