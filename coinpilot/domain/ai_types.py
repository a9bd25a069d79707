"""The contract between the bot loop and the AI second opinion.

The bot loop hands an ``EntryCandidate`` to an ``AiStep`` and acts only on an approving
``AiVerdict``. With AI off the step approves everything; the AI capability supplies the
Analyst → Guardian pipeline (services/agent.py) behind the same protocol.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True)
class EntryCandidate:
    symbol: str
    regime: str
    candle_ts: datetime  # start of the closed candle the rules passed on
    price: float  # its close
    indicators: Mapping[str, Any]
    entry_config: Mapping[str, Any]
    order_krw: float  # the sized order the AI is asked about
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AiVerdict:
    approved: bool
    reason_code: str  # "approved", "ai_off", "analyst_reject", "timeout", ...
    reasoning: str = ""
    decision_id: int | None = None


class AiStep(Protocol):
    async def review(self, candidate: EntryCandidate) -> AiVerdict: ...


class AiOff:
    """Rules alone: every candidate the rules and the risk manager passed is approved."""

    async def review(self, candidate: EntryCandidate) -> AiVerdict:
        return AiVerdict(approved=True, reason_code="ai_off", reasoning="AI second opinion off")
