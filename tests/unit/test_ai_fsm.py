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


def guarded(reasoning: str = "hammer") -> Run:
    """A run the Analyst confirmed (confidence 75, minimum 60), waiting for the Guardian."""
    return fsm.step(begun(), analyst("CONFIRM", 75, reasoning))


def test_approval_keeps_both_opinions_and_its_reason_code() -> None:
    """The decision row records the reason code and both opinions of an approved run."""
    calm = fsm.GuardianOpinion("SAFE", "calm")
    run = fsm.step(guarded(), fsm.guardian_event(calm))
    assert (run.state, run.reason_code) == (State.APPROVED, "approved")
    assert run.guardian == calm
    assert run.analyst == fsm.AnalystOpinion("CONFIRM", 75, "hammer")
    assert run.done


def test_analyst_events_carry_the_opinion() -> None:
    """Each analyst event names its kind and carries the opinion it came from."""
    for decision, conf, kind in [("REJECT", 90, Ev.REJECT), ("REJECT", 10, Ev.REJECT),
                                 ("CONFIRM", 59, Ev.LOW_CONFIDENCE), ("CONFIRM", 60, Ev.CONFIRM),
                                 ("CONFIRM", 61, Ev.CONFIRM)]:  # fmt: skip
        op = fsm.AnalystOpinion(decision, conf, "why")
        assert fsm.analyst_event(op, 60) == Event(kind, analyst=op)
    warn = fsm.GuardianOpinion("WARNING", "thin book")
    assert fsm.guardian_event(warn) == Event(Ev.WARNING, guardian=warn)


def test_a_guardian_failure_names_the_guardian() -> None:
    """The operator reads which role failed in the reasoning."""
    run = fsm.step(guarded(), Event(Ev.FAILED, failure=fsm.Failure("server_error", "HTTP 500")))
    assert (run.state, run.reason_code, run.reasoning) == (
        State.REJECTED, "server_error", "AI Analysis Error (Guardian): HTTP 500"
    )  # fmt: skip
    timed_out = fsm.step(guarded(), Event(Ev.TIMEOUT))
    assert (timed_out.reason_code, timed_out.reasoning) == ("timeout", fsm.TIMEOUT_TEXT)
    assert fsm.TIMEOUT_TEXT == "AI Analysis Timed Out (Conservative Fallback: REJECT)"


def test_empty_reasonings_get_a_readable_fallback() -> None:
    """A reject or warning without reasoning still tells the operator what happened."""
    run = fsm.step(begun(), analyst("REJECT", 90, ""))
    assert (run.reason_code, run.reasoning) == ("analyst_reject", "Market Analysis failed.")
    run = fsm.step(guarded(), fsm.guardian_event(fsm.GuardianOpinion("WARNING", "")))
    assert (run.reason_code, run.reasoning) == (
        "guardian_warning", "[Risk Warning] Guardian check failed"
    )  # fmt: skip
    # a failure without details, before any opinion: nothing to quote
    run = fsm.step(begun(), Event(Ev.FAILED))
    assert (run.reason_code, run.reasoning) == ("analyst_reject", "Market Analysis failed.")


def test_the_event_kind_decides_the_verdict_not_what_rides_along() -> None:
    """Details attached to an event of another kind do not change its verdict."""
    warn = fsm.GuardianOpinion("WARNING", "panic")
    stray_failure = Event(Ev.WARNING, guardian=warn, failure=fsm.Failure("overloaded", "529"))
    run = fsm.step(guarded(), stray_failure)
    assert (run.reason_code, run.reasoning) == ("guardian_warning", "[Risk Warning] panic")
    # a detail-less failure at the Guardian quotes the Analyst, never a risk warning
    stray_opinion = Event(Ev.FAILED, guardian=fsm.GuardianOpinion("SAFE", "calm"))
    run = fsm.step(guarded("hammer"), stray_opinion)
    assert (run.reason_code, run.reasoning) == ("analyst_reject", "hammer")


def test_an_invalid_transition_says_what_and_where() -> None:
    with pytest.raises(fsm.InvalidTransition) as err:
        fsm.step(Run(), Event(Ev.CONFIRM))
    assert str(err.value) == "analyst_confirm is not valid in state START"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (None, "analyst output must be an object, got NoneType"),
        ([1], "analyst output must be an object, got list"),
        ({"decision": "YES", "confidence": 70, "reasoning": "x"},
         "decision must be one of CONFIRM/REJECT, got 'YES'"),
        ({"confidence": 70, "reasoning": "x"}, "decision must be one of CONFIRM/REJECT, got None"),
        ({"decision": "CONFIRM", "confidence": 101, "reasoning": "x"},
         "confidence must be an integer 0-100, got 101"),
        ({"decision": "CONFIRM", "confidence": -1, "reasoning": "x"},
         "confidence must be an integer 0-100, got -1"),
        ({"decision": "CONFIRM", "confidence": 70.5, "reasoning": "x"},
         "confidence must be an integer 0-100, got 70.5"),
        ({"decision": "CONFIRM", "confidence": "70", "reasoning": "x"},
         "confidence must be an integer 0-100, got '70'"),
        ({"decision": "CONFIRM", "confidence": 70, "reasoning": " "},
         "reasoning must be a non-empty string"),
        ({"decision": "CONFIRM", "confidence": 70}, "reasoning must be a non-empty string"),
    ],
)  # fmt: skip
def test_analyst_schema_messages(data: object, message: str) -> None:
    """The message is the reasoning recorded for a schema violation: the operator reads it."""
    with pytest.raises(fsm.SchemaViolation) as err:
        fsm.parse_analyst(data)
    assert str(err.value) == message


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("SAFE", "guardian output must be an object, got str"),
        ({"decision": "OK", "reasoning": "x"}, "decision must be one of SAFE/WARNING, got 'OK'"),
        ({"decision": "SAFE", "reasoning": 3}, "reasoning must be a non-empty string"),
    ],
)  # fmt: skip
def test_guardian_schema_messages(data: object, message: str) -> None:
    with pytest.raises(fsm.SchemaViolation) as err:
        fsm.parse_guardian(data)
    assert str(err.value) == message


@pytest.mark.parametrize(
    ("data", "opinion"),
    [
        ({"decision": "reject", "confidence": 0, "reasoning": "knife"},
         fsm.AnalystOpinion("REJECT", 0, "knife")),
        ({"decision": " Confirm ", "confidence": 100, "reasoning": "hammer\n"},
         fsm.AnalystOpinion("CONFIRM", 100, "hammer")),
        ({"decision": "REJECT", "confidence": 1, "reasoning": "x"},
         fsm.AnalystOpinion("REJECT", 1, "x")),
        ({"decision": "CONFIRM", "confidence": 99.0, "reasoning": "x"},
         fsm.AnalystOpinion("CONFIRM", 99, "x")),
    ],
)  # fmt: skip
def test_analyst_edges_parse(data: dict[str, object], opinion: fsm.AnalystOpinion) -> None:
    """Confidence 0 and 100 are in range; decisions are read regardless of case and spaces."""
    assert fsm.parse_analyst(data) == opinion


def test_guardian_parses_both_decisions_with_reasoning() -> None:
    assert fsm.parse_guardian({"decision": "warning", "reasoning": " thin book "}) == (
        fsm.GuardianOpinion("WARNING", "thin book")
    )
    assert fsm.parse_guardian({"decision": "SAFE", "reasoning": "calm"}) == (
        fsm.GuardianOpinion("SAFE", "calm")
    )
