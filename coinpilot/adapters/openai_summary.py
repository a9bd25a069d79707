"""A three-line summary of the daily report from OpenAI (gpt-6-luna by default).

Without ``OPENAI_API_KEY``, or when the call fails in any way, the deterministic template
is used instead, so the report always goes out. The answer is normalised to exactly three
lines whatever the model returns.
"""

from __future__ import annotations

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
        max_retries=1,
    )
    # Reasoning models refuse temperature and spend part of max_completion_tokens on
    # reasoning: each knob is sent only when configured.
    knobs: dict[str, Any] = {}
    if cfg.reasoning_effort is not None:
        knobs["reasoning_effort"] = cfg.reasoning_effort
    if cfg.temperature is not None:
        knobs["temperature"] = cfg.temperature
    try:
        resp = await client.chat.completions.create(
            model=cfg.openai_model,
            max_completion_tokens=cfg.max_completion_tokens,
            messages=[
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": report_text},
            ],
            **knobs,
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
