"""What we ask the Analyst and the Guardian, and the JSON schemas their answers must follow.

The system prompts are static (and marked for prompt caching); everything that varies per
candidate goes in the user message. Bump PROMPT_VERSION whenever any text here changes:
it is part of the input hash, so replay never answers a new prompt with an old decision.

The schemas go out as structured outputs (``output_config.format``), which accept no
numeric or length constraints and need ``additionalProperties: false`` on every object;
ranges are therefore stated in descriptions and enforced by ``domain/agent_fsm.py``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

PROMPT_VERSION = "2026-11-2"

ANALYST_SYSTEM = """\
You review long entries proposed by a rule-based mean-reversion bot trading KRW crypto \
markets on Upbit. By the time a proposal reaches you, the rule engine has already \
verified its own conditions: RSI levels and recovery, the moving-average condition, \
Bollinger-band position and volume thresholds. Those checks passed. Do not re-evaluate \
them and do not mention them in your answer.

Your job is to look at what fixed rules cannot see in the recent hourly price action:
- candle patterns: doji, hammer, bullish or bearish engulfing, shooting star and similar;
- the strength and staying power of the move that led here: is this a real rebound or a \
dead-cat bounce inside a continuing slide?
- abnormal volatility: runs of long bearish candles, gaps down, ranges suddenly much \
wider than before;
- any other anomaly that makes the entry look unlike a normal pullback.

Answer CONFIRM when the candles support a reversal or simply show no particular danger. \
Answer REJECT for a falling knife, abnormal volatility, or a decline that is clearly \
still under way. Give a confidence from 0 to 100: 60 or more means you support the entry \
(or see no risk); anything below 60 is treated as a rejection.

Answer with the JSON object only, all three fields filled. The reasoning must be one or \
two concrete sentences about the candles you were shown, never empty."""

GUARDIAN_SYSTEM = """\
You are the last risk check before a paper-trading bot opens a long position in a KRW \
crypto market. Quantitative limits (daily loss, number of open positions, loss-streak \
cooldowns, position size) are enforced elsewhere and have already passed; do not repeat \
them.

Judge only the market's mood and the trader's psychology:
- is recent volatility abnormally high compared with the rest of the window?
- do the moves look like panic selling or a FOMO spike rather than ordinary trading?
- could this entry be revenge trading, chasing after a string of losses?

Answer SAFE when nothing looks abnormal. Answer WARNING when volatility is clearly \
abnormal or there are clear signs of panic or FOMO. Answer with the JSON object only and \
give a short, concrete reasoning."""

REGIME_NOTES: dict[str, tuple[str, str]] = {
    "BULL": (
        "MA50 is above MA200 (golden-cross state): the trend can be trusted.",
        "Pullback entries after a breakout are favoured; gains are protected by a trailing stop.",
    ),
    "SIDEWAYS": (
        "MA50 and MA200 are close together: prices tend to revert to the mean.",
        "Entries come on the return after a touch of the lower band; watch for "
        "resistance near the top of the range.",
    ),
    "BEAR": (
        "MA50 is below MA200: the broader trend is down.",
        "Only strong oversold bounces qualify, with a small size; stay conservative "
        "until the trend turns.",
    ),
    "UNKNOWN": (
        "Not enough history to classify the market.",
        "No new entries should be taken.",
    ),
}

ANALYST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "decision": {"type": "string", "enum": ["CONFIRM", "REJECT"]},
        "confidence": {"type": "integer", "description": "0 to 100"},
        "reasoning": {"type": "string", "description": "one or two sentences, never empty"},
    },
    "required": ["decision", "confidence", "reasoning"],
    "additionalProperties": False,
}

GUARDIAN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "decision": {"type": "string", "enum": ["SAFE", "WARNING"]},
        "reasoning": {"type": "string", "description": "a short, concrete reason, never empty"},
    },
    "required": ["decision", "reasoning"],
    "additionalProperties": False,
}


def output_format(role: str) -> dict[str, Any]:
    """The ``output_config.format`` of the role's request."""
    schema = ANALYST_SCHEMA if role == "analyst" else GUARDIAN_SCHEMA
    return {"type": "json_schema", "schema": schema}


def system(role: str) -> str:
    return ANALYST_SYSTEM if role == "analyst" else GUARDIAN_SYSTEM


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def analyst_message(
    *,
    symbol: str,
    regime: str,
    price: float,
    ma_gap_pct: float | None,
    patterns: Mapping[str, Any],
    bars: Sequence[Mapping[str, Any]],
) -> str:
    """The Analyst sees prices and shapes only: no RSI, MA or volume numbers."""
    desc, guide = REGIME_NOTES.get(regime, REGIME_NOTES["UNKNOWN"])
    gap = "unknown" if ma_gap_pct is None else f"{ma_gap_pct:+.2f}%"
    ohlc = [{k: b[k] for k in ("timestamp", "open", "high", "low", "close")} for b in bars]
    return (
        f"Market regime: {regime}. {desc}\nGuidance: {guide}\n"
        f"MA50 vs MA200 gap (hourly): {gap}\n\n"
        f"Symbol: {symbol}\nCurrent price: {price}\nHourly candles supplied: {len(bars)}\n\n"
        f"Pattern features of the last 6 hourly candles:\n{_dump(dict(patterns))}\n\n"
        f"Closed hourly candles, oldest first (OHLC):\n{_dump(ohlc)}"
    )


def guardian_message(*, symbol: str, signal: Mapping[str, Any]) -> str:
    """The Guardian sees the whole signal: indicators, entry config, features, volumes."""
    return f"Symbol: {symbol}\nFull entry signal:\n{_dump(dict(signal))}"
