"""The Analyst → Guardian state machine: transitions, verdict texts, schema checks."""

from __future__ import annotations

import pytest

from coinpilot.domain import agent_fsm as fsm
from coinpilot.domain.agent_fsm import Ev, Event, Run, State


def begun() -> Run:
    return fsm.step(Run(), Event(Ev.BEGIN))


def analyst(decision: str, conf: int, text: str = "ok") -> Event:
    return fsm.analyst_event(fsm.AnalystOpinion(decision, conf, text), 60)


def test_confirm_then_safe_approves_with_both_reasonings() -> None:
    """Only CONFIRM followed by SAFE reaches APPROVED."""
    run = fsm.step(begun(), analyst("CONFIRM", 75, "hammer"))
    assert run.state is State.GUARDIAN
    run = fsm.step(run, fsm.guardian_event(fsm.GuardianOpinion("SAFE", "calm")))
    assert run.approved
    assert run.reasoning == "[Analyst] hammer | [Guardian] calm"
    assert run.confidence == 75


@pytest.mark.parametrize(
    ("event", "code", "text"),
    [
        (analyst("REJECT", 90, "knife"), "analyst_reject", "knife"),
        (analyst("CONFIRM", 59, "meh"), "low_confidence", "[Low Confidence: 59] meh"),
        (Event(Ev.TIMEOUT), "timeout", fsm.TIMEOUT_TEXT),
        (Event(Ev.FAILED, failure=fsm.Failure("overloaded", "HTTP 529")), "overloaded",
         "AI Analysis Error (Analyst): HTTP 529"),
    ],
)  # fmt: skip
def test_analyst_outcomes_that_reject(event: Event, code: str, text: str) -> None:
    """REJECT, low confidence, timeout and failures end in REJECTED with their reason."""
    run = fsm.step(begun(), event)
    assert run.state is State.REJECTED
    assert (run.reason_code, run.reasoning) == (code, text)


def test_confidence_60_is_enough() -> None:
    """CONFIRM at exactly the minimum confidence goes on to the Guardian."""
    assert fsm.step(begun(), analyst("CONFIRM", 60)).state is State.GUARDIAN


def test_guardian_warning_rejects_with_risk_warning() -> None:
    """A Guardian WARNING after CONFIRM is a rejection tagged as a risk warning."""
    run = fsm.step(begun(), analyst("CONFIRM", 80))
    run = fsm.step(run, fsm.guardian_event(fsm.GuardianOpinion("WARNING", "panic")))
    assert (run.state, run.reason_code, run.reasoning) == (
        State.REJECTED, "guardian_warning", "[Risk Warning] panic"
    )  # fmt: skip


def test_invalid_transitions_are_refused() -> None:
    """Events a state does not accept raise, and terminal states accept nothing."""
    with pytest.raises(fsm.InvalidTransition):
        fsm.step(Run(), Event(Ev.SAFE))
    done = fsm.step(begun(), analyst("REJECT", 90))
    with pytest.raises(fsm.InvalidTransition):
        fsm.step(done, Event(Ev.TIMEOUT))


def test_transition_table_reaches_only_known_states() -> None:
    """Every non-terminal state has a way out and every target is a declared state."""
    sources = {s for s, _ in fsm.TRANSITIONS}
    assert sources == {State.START, State.ANALYST, State.GUARDIAN}
    assert set(fsm.TRANSITIONS.values()) <= set(State)


@pytest.mark.parametrize(
    "data",
    [
        None,
        {"decision": "YES", "confidence": 70, "reasoning": "x"},
        {"decision": "CONFIRM", "confidence": 101, "reasoning": "x"},
        {"decision": "CONFIRM", "confidence": 70.5, "reasoning": "x"},
        {"decision": "CONFIRM", "confidence": True, "reasoning": "x"},
        {"decision": "CONFIRM", "confidence": 70, "reasoning": "  "},
    ],
)
def test_analyst_schema_violations(data: object) -> None:
    """Outputs outside the Analyst schema raise SchemaViolation."""
    with pytest.raises(fsm.SchemaViolation):
        fsm.parse_analyst(data)


def test_analyst_and_guardian_parse_valid_output() -> None:
    """Valid outputs parse; an integral float confidence is accepted."""
    op = fsm.parse_analyst({"decision": "CONFIRM", "confidence": 70.0, "reasoning": " fine "})
    assert op == fsm.AnalystOpinion("CONFIRM", 70, "fine")
    assert fsm.parse_guardian({"decision": "SAFE", "reasoning": "ok"}).decision == "SAFE"
    with pytest.raises(fsm.SchemaViolation):
        fsm.parse_guardian({"decision": "OK", "reasoning": "x"})


def test_boundary_terms_match_whole_words_only() -> None:
    """ "reversion" and "persistent" are not RSI; "RSI" and "moving average" are."""
    assert fsm.boundary_terms("A persistent reversion pattern") == []
    assert fsm.boundary_terms("RSI is low and the Moving Average flat") == [
        "moving average", "rsi"
    ]  # fmt: skip
    assert fsm.boundary_terms("거래량이 늘었다") == ["거래량"]


@pytest.mark.parametrize(
    ("text", "terms"),
    [("RSI가 낮고 MA20을 넘었다", ["ma20", "rsi"]),
     ("볼린저 밴드와 bb_lower는 무시", ["bb_lower", "볼린저"]),
     ("이번 RSI는 과매도", ["rsi"]),
     ("반등(RSI)이 약하다", ["rsi"]),
     ("평균회귀 reversion 패턴", []),
     ("RSI14 and MA200 are other words", [])],
)  # fmt: skip
def test_boundary_terms_in_korean_text(text: str, terms: list[str]) -> None:
    """An English term followed or preceded by Hangul (a particle) is a whole word."""
    assert fsm.boundary_terms(text) == terms
