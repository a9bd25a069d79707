"""A three-line summary of the daily report from OpenAI (gpt-6-luna by default).

Without ``OPENAI_API_KEY``, or when the call fails in any way, the deterministic template
is used instead, so the report always goes out. The answer is normalised to exactly three
lines whatever the model returns.

A passing failure (rate limit, overload, lost connection) is asked once more. The SDK's own
retry is off because it treats every 429 alike, and ``insufficient_quota`` shares the 429
of a rate limit while no wait brings credit back (EXTERNAL_APIS §3.2).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import structlog

from coinpilot.config import Settings
from coinpilot.observability import Metrics

log = structlog.get_logger(__name__)

SYSTEM_PROMPT = (
    "You write the daily briefing of a paper-trading bot on the Upbit KRW market. "
    "Summarise the report in exactly 3 short lines, with at least one number. "
    "State missing data instead of guessing. At most one suggestion."
)


def _passing(exc: Exception) -> bool:
    import openai

    if isinstance(exc, openai.RateLimitError):
        return exc.code != "insufficient_quota"
    return isinstance(exc, openai.APIConnectionError | openai.InternalServerError)


def _retry_delay(exc: Exception) -> float:
    """The server's retry-after(-ms) when it is sane, else half a second (the SDK's first)."""
    response = getattr(exc, "response", None)
    headers = response.headers if response is not None else {}
    for name, per_second in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        try:
            delay = float(headers.get(name, "")) / per_second
        except ValueError:
            continue
        if 0 < delay <= 60:
            return delay
    return 0.5


def three_lines(text: str, fallback: Sequence[str]) -> list[str]:
    """The first three non-empty lines, topped up from ``fallback`` when fewer."""
    lines = [ln.strip().lstrip("-•* ").strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln][:3]
    return lines + list(fallback[len(lines) : 3])


async def summarise(
    settings: Settings, report_text: str, fallback: Sequence[str], metrics: Metrics | None = None
) -> tuple[list[str], str]:
    """(three lines, source) where source is 'openai' or 'template'."""
    key = settings.env.openai_api_key
    if key is None:
        return list(fallback[:3]), "template"
    import openai  # imported on use: a third of a second the CLI and daemon rarely need

    cfg = settings.app.report
    client = openai.AsyncOpenAI(
        api_key=key.get_secret_value(),
        base_url=settings.env.openai_base_url,
        timeout=cfg.timeout_s,
        max_retries=0,
    )
    # Reasoning models refuse temperature and spend part of max_completion_tokens on
    # reasoning: each knob is sent only when configured.
    knobs: dict[str, Any] = {}
    if cfg.reasoning_effort is not None:
        knobs["reasoning_effort"] = cfg.reasoning_effort
    if cfg.temperature is not None:
        knobs["temperature"] = cfg.temperature
    try:
        try:
            resp = await _create(
                client, cfg.openai_model, cfg.max_completion_tokens, report_text, knobs
            )
        except openai.OpenAIError as first:
            if not _passing(first):
                raise
            log.info("report_summary_retry", error=type(first).__name__)
            await asyncio.sleep(_retry_delay(first))
            resp = await _create(
                client, cfg.openai_model, cfg.max_completion_tokens, report_text, knobs
            )
        content = resp.choices[0].message.content if resp.choices else None
    except openai.OpenAIError as exc:
        kind = getattr(exc, "code", None) or type(exc).__name__
        if metrics is not None:
            metrics.dependency_error("openai", str(kind))
        log.warning("report_summary_fallback", error=type(exc).__name__, code=kind)
        return list(fallback[:3]), "template"
    finally:
        await client.close()
    if not content or not content.strip():
        # e.g. a reasoning model that used the whole output cap before answering
        finish = resp.choices[0].finish_reason if resp.choices else None
        log.warning("report_summary_fallback", error="empty answer", finish_reason=finish)
        return list(fallback[:3]), "template"
    return three_lines(content, fallback), "openai"


async def _create(
    client: Any, model: str, max_tokens: int, report_text: str, knobs: dict[str, Any]
) -> Any:
    return await client.chat.completions.create(
        model=model,
        max_completion_tokens=max_tokens,
        messages=[
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": report_text},
        ],
        **knobs,
    )
