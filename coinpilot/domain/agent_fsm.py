"""The Analyst → Guardian state machine: states and transitions as data, one pure step.

START → ANALYST → GUARDIAN → APPROVED, with REJECTED reachable from ANALYST and GUARDIAN.
The runner (services/agent.py) performs the calls and feeds their results in as events;
everything that decides the verdict, its reason code and its reasoning text lives here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any


class State(StrEnum):
    START = "START"
    ANALYST = "ANALYST"
    GUARDIAN = "GUARDIAN"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"


class Ev(StrEnum):
    BEGIN = "begin"
    CONFIRM = "analyst_confirm"
    REJECT = "analyst_reject"
    LOW_CONFIDENCE = "analyst_low_confidence"
    SAFE = "guardian_safe"
    WARNING = "guardian_warning"
    FAILED = "failed"  # the model gave no usable answer (API error, schema, refusal…)
    TIMEOUT = "timeout"


TRANSITIONS: dict[tuple[State, Ev], State] = {
    (State.START, Ev.BEGIN): State.ANALYST,
    (State.ANALYST, Ev.CONFIRM): State.GUARDIAN,
    (State.ANALYST, Ev.REJECT): State.REJECTED,
    (State.ANALYST, Ev.LOW_CONFIDENCE): State.REJECTED,
    (State.ANALYST, Ev.FAILED): State.REJECTED,
    (State.ANALYST, Ev.TIMEOUT): State.REJECTED,
    (State.GUARDIAN, Ev.SAFE): State.APPROVED,
    (State.GUARDIAN, Ev.WARNING): State.REJECTED,
    (State.GUARDIAN, Ev.FAILED): State.REJECTED,
    (State.GUARDIAN, Ev.TIMEOUT): State.REJECTED,
}
TERMINAL = frozenset({State.APPROVED, State.REJECTED})

TIMEOUT_TEXT = "AI Analysis Timed Out (Conservative Fallback: REJECT)"


class InvalidTransition(ValueError):
    pass


class SchemaViolation(ValueError):
    """The answer does not match the role's JSON schema or its ranges."""


@dataclass(frozen=True)
class AnalystOpinion:
    decision: str  # CONFIRM | REJECT
    confidence: int
    reasoning: str


@dataclass(frozen=True)
class GuardianOpinion:
    decision: str  # SAFE | WARNING
    reasoning: str


@dataclass(frozen=True)
class Failure:
    code: str  # reason code: timeout, overloaded, low_credit, schema_violation, …
    message: str


@dataclass(frozen=True)
class Event:
    kind: Ev
    analyst: AnalystOpinion | None = None
    guardian: GuardianOpinion | None = None
    failure: Failure | None = None


@dataclass(frozen=True)
class Run:
    state: State = State.START
    analyst: AnalystOpinion | None = None
    guardian: GuardianOpinion | None = None
    reason_code: str = ""
    reasoning: str = ""

    @property
    def done(self) -> bool:
        return self.state in TERMINAL

    @property
    def approved(self) -> bool:
        return self.state is State.APPROVED

    @property
    def confidence(self) -> int | None:
        return None if self.analyst is None else self.analyst.confidence


def analyst_event(opinion: AnalystOpinion, min_confidence: int) -> Event:
    if opinion.decision == "REJECT":
        return Event(Ev.REJECT, analyst=opinion)
    if opinion.confidence < min_confidence:
        return Event(Ev.LOW_CONFIDENCE, analyst=opinion)
    return Event(Ev.CONFIRM, analyst=opinion)


def guardian_event(opinion: GuardianOpinion) -> Event:
    return Event(Ev.SAFE if opinion.decision == "SAFE" else Ev.WARNING, guardian=opinion)


def step(run: Run, event: Event) -> Run:
    """Apply one event; raise InvalidTransition for an event the state does not accept."""
    nxt = TRANSITIONS.get((run.state, event.kind))
    if nxt is None:
        raise InvalidTransition(f"{event.kind} is not valid in state {run.state}")
    analyst = event.analyst or run.analyst
    guardian = event.guardian or run.guardian
    out = replace(run, state=nxt, analyst=analyst, guardian=guardian)
    if nxt not in TERMINAL:
        return out
    code, text = _verdict(run.state, event, analyst, guardian)
    return replace(out, reason_code=code, reasoning=text)


def _verdict(
    at: State, event: Event, analyst: AnalystOpinion | None, guardian: GuardianOpinion | None
) -> tuple[str, str]:
    if event.kind is Ev.SAFE and analyst and guardian:
        return "approved", f"[Analyst] {analyst.reasoning} | [Guardian] {guardian.reasoning}"
    if event.kind is Ev.TIMEOUT:
        return "timeout", TIMEOUT_TEXT
    if event.kind is Ev.FAILED and event.failure:
        role = "Analyst" if at is State.ANALYST else "Guardian"
        return event.failure.code, f"AI Analysis Error ({role}): {event.failure.message}"
    if event.kind is Ev.WARNING and guardian:
        return "guardian_warning", f"[Risk Warning] {guardian.reasoning or 'Guardian check failed'}"
    if event.kind is Ev.LOW_CONFIDENCE and analyst:
        return "low_confidence", f"[Low Confidence: {analyst.confidence}] {analyst.reasoning}"
    if analyst is not None:
        return "analyst_reject", analyst.reasoning or "Market Analysis failed."
    return "analyst_reject", "Market Analysis failed."


def _text(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise SchemaViolation(f"{key} must be a non-empty string")
    return value.strip()


def _choice(data: dict[str, Any], key: str, allowed: tuple[str, ...]) -> str:
    """Structured outputs do not guarantee enum casing, so "confirm" reads as CONFIRM."""
    value = data.get(key)
    if not isinstance(value, str) or value.strip().upper() not in allowed:
        raise SchemaViolation(f"{key} must be one of {'/'.join(allowed)}, got {value!r}")
    return value.strip().upper()


def parse_analyst(data: Any) -> AnalystOpinion:
    if not isinstance(data, dict):
        raise SchemaViolation(f"analyst output must be an object, got {type(data).__name__}")
    decision = _choice(data, "decision", ("CONFIRM", "REJECT"))
    conf = data.get("confidence")
    integral = isinstance(conf, int) or (isinstance(conf, float) and conf.is_integer())
    if isinstance(conf, bool) or not isinstance(conf, int | float) or not integral:
        raise SchemaViolation(f"confidence must be an integer 0-100, got {conf!r}")
    if not 0 <= conf <= 100:
        raise SchemaViolation(f"confidence must be an integer 0-100, got {conf!r}")
    return AnalystOpinion(decision, int(conf), _text(data, "reasoning"))


def parse_guardian(data: Any) -> GuardianOpinion:
    if not isinstance(data, dict):
        raise SchemaViolation(f"guardian output must be an object, got {type(data).__name__}")
    return GuardianOpinion(_choice(data, "decision", ("SAFE", "WARNING")), _text(data, "reasoning"))


# Audit only: the Analyst is asked not to re-judge what the rule engine already checked.
# Word edges are ASCII letters, digits and "_" only: Python's \w counts Hangul as a word
# character, so "RSI가" (RSI + a Korean particle) would otherwise not be a whole word.
_EDGE_BEFORE, _EDGE_AFTER = r"(?<![A-Za-z0-9_])", r"(?![A-Za-z0-9_])"
_BOUNDARY_WORDS = re.compile(
    _EDGE_BEFORE
    + r"(rsi|ma20|ma\(20\)|moving average|volume ratio|vol_ratio|bb_lower|bb 하단)"
    + _EDGE_AFTER,
    re.IGNORECASE,
)
_BOUNDARY_KO = ("거래량", "볼린저")


def boundary_terms(reasoning: str) -> list[str]:
    """Rule-engine terms the reasoning mentions as whole words ("reversion" is not "rsi")."""
    found = {m.group(1).lower() for m in _BOUNDARY_WORDS.finditer(reasoning)}
    found.update(t for t in _BOUNDARY_KO if t in reasoning)
    return sorted(found)
