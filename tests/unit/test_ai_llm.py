"""Anthropic failure classification, request shape and cost estimate (no network)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import anthropic
import httpx
import pytest

from coinpilot import prompts
from coinpilot.adapters.llm import Usage, build_request, classify, estimate_cost
from coinpilot.config import ModelPrice

REQ = httpx.Request("POST", "http://127.0.0.1/v1/messages")


def status_error(status: int, etype: str, message: str, **extra: Any) -> anthropic.APIStatusError:
    body = {"type": "error", "error": {"type": etype, "message": message, **extra}}
    headers = {"retry-after": "2"} if status == 429 else {}
    resp = httpx.Response(status, json=body, headers=headers, request=REQ)
    client = anthropic.AsyncAnthropic(api_key="x", base_url="http://127.0.0.1")
    return client._make_status_error(f"Error code: {status}", body=body, response=resp)


@pytest.mark.parametrize(
    ("status", "etype", "message", "code", "retryable"),
    [
        (400, "invalid_request_error", "Your credit balance is too low to access", "low_credit",
         False),
        (400, "invalid_request_error", "messages: Field required", "api_error", False),
        (401, "authentication_error", "invalid x-api-key", "api_error", False),
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
    body = build_request(model="m", system="s", user="u", output_format=fmt, max_tokens=64)
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


def test_cost_counts_cache_tokens_at_their_rates() -> None:
    """1M input at $1, 1M output at $5, cache write 1.25×, cache read 0.1×."""
    price = ModelPrice(input_per_mtok=1.0, output_per_mtok=5.0)
    usage = Usage(1_000_000, 1_000_000, 1_000_000, 1_000_000)
    assert estimate_cost(usage, price) == Decimal("7.35")
    assert estimate_cost(usage, None) is None
