"""Anthropic Messages API: client construction, one structured-output call, failure classes.

Answers come as structured outputs (``output_config.format``): the reply's ``text`` block
holds the JSON document. Forced tool use is not used because the 5.5 generation refuses it
with a 400. Thinking models put ``thinking`` blocks first, so blocks are chosen by type.

The SDK is pinned to its 2.x line (``Authorization: Bearer``, ``anthropic-version:
2026-10-21``, no sampling keyword arguments). Its own retries are off (``max_retries=0``):
it would otherwise retry 429/5xx/529 up to three times and sleep on any ``retry-after``
inside our run budget. The runner applies its own bounded policy using the classes below.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import anthropic

from coinpilot.config import ModelPrice, ModelSettings


def create_client(api_key: str, base_url: str | None = None) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(api_key=api_key, base_url=base_url, max_retries=0)


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
            self.cache_read_tokens + other.cache_read_tokens,
        )

    @property
    def total_input(self) -> int:
        return self.input_tokens + self.cache_write_tokens + self.cache_read_tokens


@dataclass(frozen=True)
class JsonReply:
    data: Any
    usage: Usage
    stop_reason: str | None
    request_id: str | None
    model: str


@dataclass(eq=False)
class LlmFailure(Exception):
    """A call that produced no usable answer, with a reason code for the verdict."""

    code: str
    message: str
    retryable: bool = False
    retry_after_s: float | None = None
    status: int | None = None
    usage: Usage = field(default_factory=Usage)

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def estimate_cost(usage: Usage, price: ModelPrice | None) -> Decimal | None:
    """USD at the configured list prices (cache writes and reads at their own rates)."""
    if price is None:
        return None
    total = (
        usage.input_tokens * price.input_per_mtok
        + usage.cache_write_tokens * price.cache_write_per_mtok
        + usage.cache_read_tokens * price.cache_read_per_mtok
        + usage.output_tokens * price.output_per_mtok
    )
    return (total / Decimal(1_000_000)).quantize(Decimal("0.00000001"))


def build_request(
    *,
    model: str,
    system: str,
    user: str,
    output_format: dict[str, Any],
    options: ModelSettings,
) -> dict[str, Any]:
    """The exact body sent: structured output, cached static system prompt, no sampling knobs.

    ``effort`` and ``thinking`` are sent only when configured for the model: each model
    refuses some values with a 400, and leaving them out keeps the model's own default.
    """
    config: dict[str, Any] = {"format": output_format}
    if options.effort is not None:
        config["effort"] = options.effort
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": options.max_tokens,
        "system": [{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": user}],
        "output_config": config,
    }
    if options.thinking is not None:
        body["thinking"] = {"type": options.thinking}
    return body


def _usage(raw: Any) -> Usage:
    if raw is None:
        return Usage()
    return Usage(
        int(raw.input_tokens or 0),
        int(raw.output_tokens or 0),
        int(getattr(raw, "cache_creation_input_tokens", 0) or 0),
        int(getattr(raw, "cache_read_input_tokens", 0) or 0),
    )


async def call_json(
    client: anthropic.AsyncAnthropic, request: dict[str, Any], timeout_s: float
) -> JsonReply:
    """One request; raise LlmFailure unless the reply's text block is a JSON document."""
    try:
        msg = await client.messages.create(**request, timeout=timeout_s)
    except anthropic.AnthropicError as exc:
        raise classify(exc) from exc
    except ValueError as exc:  # a JSON content type with a body that is not JSON
        raise LlmFailure("bad_response", f"response body is not JSON: {exc}"[:500]) from exc
    if not isinstance(msg, anthropic.types.Message):
        # The SDK hands back the text of a 200 whose content type is not JSON.
        raise LlmFailure("bad_response", f"response is not a message: {str(msg)[:200]!r}")
    usage = _usage(msg.usage)
    if msg.stop_reason == "refusal":
        details = getattr(msg, "stop_details", None)
        category = getattr(details, "category", None) or "unspecified"
        raise LlmFailure("refusal", f"the model declined to answer ({category})", usage=usage)
    if msg.stop_reason == "max_tokens":
        raise LlmFailure("truncated", "answer cut off at max_tokens", usage=usage)
    texts = [b.text for b in msg.content if b.type == "text"]
    if not texts:
        kinds = ",".join(b.type for b in msg.content) or "none"
        raise LlmFailure("schema_violation", f"no text block (got {kinds})", usage=usage)
    try:
        data = json.loads("".join(texts))
    except ValueError:
        raise LlmFailure(
            "schema_violation", f"answer is not JSON: {''.join(texts)[:200]!r}", usage=usage
        ) from None
    return JsonReply(data, usage, msg.stop_reason, msg._request_id, msg.model)


def _error_message(exc: anthropic.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("message") or exc.type or "")
    return str(body or exc.message)[:500]


def _retry_after(exc: anthropic.APIStatusError) -> float | None:
    value = exc.response.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _error_code(exc: anthropic.APIStatusError) -> str | None:
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        details = body["error"].get("details")
        if isinstance(details, dict):
            return details.get("error_code")
    return None


CONFIG_STATUSES = frozenset({400, 401, 403, 404})


@dataclass(frozen=True)
class ModelStatus:
    """What the Models API says about a configured id."""

    requested: str
    resolved: str | None  # the snapshot an alias points at; None when unknown
    lifecycle: str  # active | deprecated | retired | unknown
    retires_at: str | None = None

    @property
    def usable(self) -> bool:
        return self.lifecycle in ("active", "deprecated")


async def model_status(
    client: anthropic.AsyncAnthropic, model: str, timeout_s: float
) -> ModelStatus:
    """``GET /v1/models/{id}``: 404 means unknown; retired models stay listed as retired."""
    try:
        info = await client.models.retrieve(model, timeout=timeout_s)
    except anthropic.NotFoundError:
        return ModelStatus(model, None, "unknown")
    except anthropic.AnthropicError as exc:
        raise classify(exc) from exc
    retires = getattr(info, "retires_at", None)
    return ModelStatus(
        model,
        info.id,
        str(getattr(info, "lifecycle", None) or "active"),
        retires.isoformat() if retires is not None else None,
    )


def classify(exc: BaseException) -> LlmFailure:
    """Map an SDK exception to a reason code by type and HTTP status, not by message text."""
    if isinstance(exc, anthropic.APITimeoutError | TimeoutError):
        return LlmFailure("timeout", "request timed out", retryable=True)
    if isinstance(exc, anthropic.APIConnectionError):
        return LlmFailure("connection_error", type(exc).__name__, retryable=True)
    if not isinstance(exc, anthropic.APIStatusError):
        return LlmFailure("api_error", f"{type(exc).__name__}: {exc}"[:500])
    status, msg = exc.status_code, _error_message(exc)
    text = f"HTTP {status} {exc.type or ''}: {msg}".strip()
    if status == 402 or (status == 400 and "credit balance is too low" in msg.lower()):
        return LlmFailure("low_credit", text, status=status)
    if status in CONFIG_STATUSES:
        # The request itself is wrong for this account or model (retired or unknown id,
        # refused parameter, bad key): repeating it cannot help, the operator must act.
        return LlmFailure("config_error", text, status=status)
    if status == 429:
        if _error_code(exc) == "enforced_spend_limit_reached":
            return LlmFailure("low_credit", text, status=status)
        return LlmFailure("rate_limited", text, True, _retry_after(exc), status)
    if status == 529:
        return LlmFailure("overloaded", text, True, _retry_after(exc), status)
    if status >= 500:
        return LlmFailure("server_error", text, True, _retry_after(exc), status)
    return LlmFailure("api_error", text, status=status)
