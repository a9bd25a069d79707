"""The AI step end to end: the real SDK against the local fake, real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
import structlog
import yaml

from coinpilot.adapters.cache import create_redis
from coinpilot.config import DEFAULT_CONFIG_PATH
from coinpilot.domain.ai_types import AiOff, AiStep
from coinpilot.services.agent import AgentRunner, build_ai_step
from coinpilot.services.ai_replay import ReplayStep
from tests.fakes import anthropic as fk
from tests.integration.ai_support import (
    CANDLE_TS,
    NOW,
    candidate,
    deps_for,
    insert_minutes,
    minute_rows,
)

SYMBOLS = ("KRW-BTC", "KRW-ETH", "KRW-XRP", "KRW-SOL", "KRW-DOGE", "KRW-ADA")


@pytest.fixture
async def fake() -> AsyncIterator[fk.FakeAnthropic]:
    server = fk.FakeAnthropic()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def market(pool: Any) -> None:
    for i, sym in enumerate(SYMBOLS):
        await insert_minutes(pool, minute_rows(sym, CANDLE_TS + timedelta(minutes=1), 36, seed=i))


@pytest.fixture
async def build(
    make_settings: Callable[..., Any], pool: Any, redis: Any, keys: Any, fake: Any, market: None
) -> AsyncIterator[Callable[..., Any]]:
    """An AiStep built by the production factory, pointed at the fake; its SDK client is
    closed afterwards, as the daemon closes it on shutdown."""
    built: list[Any] = []

    def make(env: dict[str, str] | None = None, redis_client: Any = None, **ai: Any) -> Any:
        environ = {"ANTHROPIC_API_KEY": "sk-test", "ANTHROPIC_BASE_URL": fake.base_url}
        settings = make_settings(env=environ if env is None else env, ai=ai)
        deps = deps_for(settings, pool, redis_client or redis, keys)
        built.append(deps)
        return build_ai_step(deps), deps

    yield make
    for deps in built:
        client = deps.extras.get("ai_client")
        if client is not None:
            await client.close()


async def _row(pool: Any, decision_id: int | None) -> Any:
    assert decision_id is not None
    return await pool.fetchrow("SELECT * FROM agent_decisions WHERE id = $1", decision_id)


async def test_confirm_and_safe_approve_and_record_everything(
    build: Any, fake: Any, pool: Any, redis: Any, keys: Any
) -> None:
    """CONFIRM + SAFE approves, with one full agent_decisions row and an outbox entry."""
    step, deps = build()
    assert isinstance(step, AgentRunner)
    verdict = await step.review(candidate())
    assert verdict.approved
    assert verdict.reason_code == "approved"
    assert verdict.reasoning.startswith("[Analyst] ")
    assert "| [Guardian] " in verdict.reasoning
    row = await _row(pool, verdict.decision_id)
    assert (row["decision"], row["confidence"], row["model_used"]) == (
        "CONFIRM", 80, "claude-haiku-5-5"
    )  # fmt: skip
    assert (row["input_tokens"], row["output_tokens"]) == (840, 120)
    assert row["cost_usd"] > 0
    assert len(row["input_hash"]) == 64
    assert row["raw_output"]["analyst"]["answer"]["decision"] == "CONFIRM"
    assert row["raw_output"]["guardian"]["answer"]["decision"] == "SAFE"
    analyst_req = row["request"]["analyst"]
    assert "tool_choice" not in analyst_req
    assert "tools" not in analyst_req
    assert analyst_req["output_config"]["format"]["type"] == "json_schema"
    assert analyst_req["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert fake.count == 2
    sent = fake.requests[0]
    # The 2.x SDK line: Bearer auth and the 2026-10-21 API version.
    assert sent.headers.get("authorization") == "Bearer sk-test"
    assert sent.headers.get("anthropic-version") == "2026-10-21"
    assert not {"temperature", "top_p", "top_k"} & set(sent.body)
    assert "RSI" not in sent.user_text
    assert "vol_ratio" not in sent.user_text
    assert "vol_ratio" in fake.requests[1].user_text  # the Guardian sees the whole signal
    outbox = await pool.fetchrow("SELECT kind, payload FROM outbox")
    assert outbox["kind"] == "ai-decision"
    assert outbox["payload"]["decision"] == "CONFIRM"
    assert outbox["payload"]["decision_id"] == verdict.decision_id
    assert await redis.get(keys.ai_usage_hour(NOW)) == "2"
    assert await redis.ttl(keys.ai_symbol_cooldown("KRW-BTC")) == -2
    reg = deps.metrics.registry
    assert reg.get_sample_value("coinpilot_ai_requests_total") == 1
    assert (
        reg.get_sample_value(
            "coinpilot_ai_decisions_total", {"outcome": "approved", "reason": "approved"}
        )
        == 1
    )
    assert reg.get_sample_value("coinpilot_ai_tokens_total", {"direction": "output"}) == 120
    assert reg.get_sample_value("coinpilot_ai_latency_seconds_count") == 1


@pytest.mark.parametrize(
    ("replies", "code", "prefix", "requests"),
    [
        ([fk.reject()], "analyst_reject", "Long bearish", 1),
        ([fk.confirm(59)], "low_confidence", "[Low Confidence: 59]", 1),
        ([fk.confirm(90), fk.warning()], "guardian_warning", "[Risk Warning] Panic", 2),
    ],
)
async def test_non_approving_answers_reject(
    build: Any, fake: Any, pool: Any, replies: list[Any], code: str, prefix: str, requests: int
) -> None:
    """REJECT, CONFIRM at confidence 59 and a Guardian WARNING all end as a recorded REJECT."""
    fake.script(*replies)
    step, _ = build()
    verdict = await step.review(candidate())
    assert not verdict.approved
    assert verdict.reason_code == code
    assert verdict.reasoning.startswith(prefix)
    row = await _row(pool, verdict.decision_id)
    assert row["decision"] == "REJECT"
    assert row["reason_code"] == code
    assert fake.count == requests
    payload = await pool.fetchval("SELECT payload FROM outbox WHERE kind = 'ai-decision'")
    assert payload["decision"] == "REJECT"
    assert payload["reason_code"] == code


@pytest.mark.parametrize(
    ("reply", "code", "cause"),
    [
        (fk.Reply({"decision": "MAYBE", "confidence": 70, "reasoning": "x"}), "schema_violation",
         "decision must be one of CONFIRM/REJECT"),
        (fk.Reply({"decision": "CONFIRM", "confidence": 140, "reasoning": "x"}), "schema_violation",
         "confidence must be an integer 0-100"),
        (fk.Reply({"decision": "CONFIRM", "confidence": 70}), "schema_violation",
         "reasoning must be a non-empty string"),
        (fk.Reply(text="I think you should buy."), "schema_violation", "answer is not JSON"),
        (fk.Reply(text="[1, 2]"), "schema_violation", "analyst output must be an object"),
        (fk.Reply({"decision": "CONFIRM"}, stop_reason="max_tokens"), "truncated", "max_tokens"),
        (fk.not_json(), "bad_response", "response is not a message"),
        (fk.not_json("{oops", raw_content_type="application/json"), "bad_response",
         "response body is not JSON"),
    ],
)  # fmt: skip
async def test_malformed_output_is_a_recorded_reject(
    build: Any, fake: Any, pool: Any, redis: Any, keys: Any, reply: Any, code: str, cause: str
) -> None:
    """A schema-breaking or unreadable answer is a REJECT recorded with its cause, an error."""
    fake.script(reply)
    step, _ = build()
    verdict = await step.review(candidate())
    assert not verdict.approved
    assert verdict.reason_code == code
    row = await _row(pool, verdict.decision_id)
    assert row["reason_code"] == code
    assert row["reasoning"].startswith("AI Analysis Error (Analyst): ")
    assert cause in row["reasoning"]
    assert row["raw_output"].get("analyst") or row["raw_output"].get("analyst_errors")
    assert await redis.get(keys.ai_error_streak()) == "1"


RETIRED = {"claude-sonnet-4-5", "claude-sonnet-4-5-20250929"}  # see test_ai_model_check.py
FAMILIES = [
    # 2 calls × (420 in; 60 out + 90 thinking when the model thinks), priced by hand from
    # the shipped table. Sonnet 5.5 also reads 1,000 cached tokens per call:
    # 840×2 + 2000×0.10 + 300×10 = 1680 + 200 + 3000 = 4880 µ$.
    ("claude-sonnet-5-5", 1000, 300, Decimal("0.00488")),
    # Haiku 5.5 with thinking disabled: 840×0.10 + 120×0.50 = 84 + 60 = 144 µ$.
    ("claude-haiku-5-5", 0, 120, Decimal("0.000144")),
    # Haiku 4.5 (alias and snapshot): 840×1 + 120×5 = 1440 µ$.
    ("claude-haiku-4-5", 0, 120, Decimal("0.00144")),
    ("claude-haiku-4-5-20251001", 0, 120, Decimal("0.00144")),
]


def test_every_priced_model_has_a_family_test() -> None:
    """Each model the shipped config prices is exercised below (or retired, elsewhere)."""
    shipped = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())["ai"]["prices"]
    assert set(shipped) - RETIRED == {m for m, *_ in FAMILIES}


@pytest.mark.parametrize(("model", "cached", "out_tokens", "cost"), FAMILIES)
async def test_every_model_family_through_the_sdk(
    build: Any, fake: Any, pool: Any, model: str, cached: int, out_tokens: int, cost: Decimal
) -> None:
    """Each configured model: accepted by the fake's per-model rules, answered, priced."""
    fake.default = lambda body: (
        fk.confirm(cache_read_tokens=cached) if fk.role_of(body) == "analyst"
        else fk.safe(cache_read_tokens=cached)
    )  # fmt: skip
    env = {"ANTHROPIC_API_KEY": "sk-test", "ANTHROPIC_BASE_URL": fake.base_url,
           "LLM_MODE": "prod"}  # fmt: skip
    step, deps = build(env=env, models={"dev": "claude-haiku-5-5", "prod": model})
    verdict = await step.review(candidate())
    assert verdict.approved, verdict.reasoning
    assert fake.rejected == []
    opts = deps.settings.app.ai.settings_for(model)
    for seen in fake.requests:
        assert seen.body["model"] == model
        assert "tool_choice" not in seen.body
        assert seen.body["output_config"]["format"]["type"] == "json_schema"
        assert seen.body["output_config"].get("effort") == opts.effort
        assert seen.body.get("thinking", {}).get("type") == opts.thinking
        assert seen.body["max_tokens"] == opts.max_tokens
    row = await _row(pool, verdict.decision_id)
    assert (row["model_used"], row["output_tokens"]) == (model, out_tokens)
    assert row["input_tokens"] == 840 + 2 * cached
    assert row["cost_usd"] == cost


async def test_thinking_blocks_before_the_answer_are_skipped(
    build: Any, fake: Any, pool: Any
) -> None:
    """Two leading thinking blocks, then the JSON text: parsed, approved, tokens counted."""
    fake.script(fk.confirm(77, thinking_blocks=2), fk.safe(thinking_blocks=1))
    step, _ = build(models={"dev": "claude-haiku-5-5", "prod": "claude-sonnet-5-5"})
    verdict = await step.review(candidate())
    assert verdict.approved
    row = await _row(pool, verdict.decision_id)
    assert row["confidence"] == 77
    assert row["output_tokens"] == 2 * (60 + 90)  # thinking tokens are billed as output


async def test_lower_case_enum_is_read_case_insensitively(build: Any, fake: Any) -> None:
    """Structured outputs do not guarantee enum casing: "confirm"/"safe" still approve."""
    fake.script(
        fk.Reply({"decision": "confirm", "confidence": 70, "reasoning": "Fine."}),
        fk.Reply({"decision": "safe", "reasoning": "Calm."}),
    )
    step, _ = build()
    assert (await step.review(candidate())).approved


async def test_refusal_rejects_with_cause_refusal_outside_the_error_streak(
    build: Any, fake: Any, pool: Any, redis: Any, keys: Any
) -> None:
    """stop_reason refusal → REJECT with reason code refusal, no retry, no error-streak step."""
    fake.script(fk.refusal("general_harms"))
    step, _ = build()
    verdict = await step.review(candidate())
    assert (verdict.approved, verdict.reason_code) == (False, "refusal")
    assert fake.count == 1
    row = await _row(pool, verdict.decision_id)
    assert row["reason_code"] == "refusal"
    assert "declined" in row["reasoning"]
    assert "general_harms" in row["reasoning"]
    assert await redis.get(keys.ai_error_streak()) is None


async def _until(condition: Callable[[], bool], moved: asyncio.Event) -> None:
    """Wait for a state the test drives to, re-checked whenever ``moved`` is set; the bound
    only keeps a broken run from hanging."""
    async with asyncio.timeout(30):
        while not condition():
            moved.clear()
            await moved.wait()


async def test_stalled_call_times_out_while_other_symbols_proceed(
    build: Any, fake: Any, pool: Any, redis: Any, keys: Any
) -> None:
    """A stalled call ends as REJECT at the run budget while another symbol's review completes.
    The budget runs on the injected clock, so it runs out when the test moves that clock and
    not when the machine is slow."""
    stall = asyncio.Event()  # never set before the verdict: the model does not answer
    fake.script(fk.confirm(match="KRW-ETH", hold=stall))
    step, deps = build(timeout_s=30, attempt_timeout_s=120)
    slow = asyncio.create_task(step.review(candidate("KRW-ETH")))
    try:
        await _until(lambda: fake.in_flight == 1, fake.moved)  # ETH is at the model, stalled
        quick = await step.review(candidate("KRW-BTC"))
        assert quick.approved
        assert not slow.done()
        deps.clock.advance(29)  # 1 s of the 30 s budget left
        await asyncio.sleep(0.05)  # a loop turn in which a wrongly due timeout would fire
        assert not slow.done()
        deps.clock.advance(1)  # the run budget is spent
        verdict = await slow
    finally:
        stall.set()
    assert not verdict.approved
    assert verdict.reason_code == "timeout"
    row = await _row(pool, verdict.decision_id)
    assert row["confidence"] is None
    assert "Timed Out" in row["reasoning"]
    assert await redis.get(keys.ai_error_streak()) == "1"  # timeouts feed the error streak


async def test_concurrent_reviews_are_bounded(build: Any, fake: Any) -> None:
    """Reviews of different symbols overlap at the model, but never more than ai.max_concurrency."""
    answer = asyncio.Event()
    fake.script(*[fk.confirm(hold=answer, match=s) for s in SYMBOLS[:4]])
    step, _ = build(max_concurrency=2)
    # Count the reviews queued for a slot on the step's own semaphore (its value untouched),
    # so the test knows when every review is either at the model or waiting for a slot.
    slots, waiting = step._slots, 0
    acquire = slots.acquire

    async def counted_acquire() -> bool:
        nonlocal waiting
        waiting += 1
        fake.moved.set()
        try:
            return await acquire()
        finally:
            waiting -= 1

    slots.acquire = counted_acquire
    reviews = [asyncio.create_task(step.review(candidate(s))) for s in SYMBOLS[:4]]
    try:
        await _until(lambda: fake.in_flight + waiting == 4, fake.moved)
        assert fake.in_flight == 2
    finally:
        answer.set()
    verdicts = await asyncio.gather(*reviews)
    assert all(v.approved for v in verdicts)
    assert fake.max_in_flight == 2


async def test_five_errors_in_a_row_block_globally_for_30_minutes(
    build: Any, fake: Any, redis: Any, keys: Any
) -> None:
    """Five failed runs in a row (529) set a 1,800 s global block; the next run sends nothing."""
    fake.script(*[fk.overloaded() for _ in range(5)])
    step, _ = build(max_attempts=1)
    for sym in SYMBOLS[:5]:
        verdict = await step.review(candidate(sym))
        assert verdict.reason_code == "overloaded"
    assert await redis.get(keys.ai_global_block()) == "error_streak"
    assert 1790 <= await redis.ttl(keys.ai_global_block()) <= 1800
    verdict = await step.review(candidate(SYMBOLS[5]))
    assert verdict.reason_code == "global_block"
    assert fake.count == 5


@pytest.mark.parametrize("reply", [fk.low_credit, fk.spend_limit])
async def test_low_credit_blocks_globally_for_an_hour(
    build: Any, fake: Any, pool: Any, redis: Any, keys: Any, reply: Any
) -> None:
    """A 400 credit-balance error, or the 429 spend cap (error.details.error_code), sets a
    3,600 s global block without a retry and without touching the error streak."""
    fake.script(reply())
    step, _ = build()
    verdict = await step.review(candidate())
    assert verdict.reason_code == "low_credit"
    assert fake.count == 1
    assert await redis.get(keys.ai_global_block()) == "low_credit"
    assert 3590 <= await redis.ttl(keys.ai_global_block()) <= 3600
    assert await redis.get(keys.ai_error_streak()) is None
    again = await step.review(candidate("KRW-ETH"))
    assert again.reason_code == "global_block"
    assert fake.count == 1
    row = await _row(pool, again.decision_id)
    assert row["model_used"] is None
    assert row["request"] is None


@pytest.mark.parametrize(
    ("limits", "code"),
    [({"max_calls_per_hour": 2}, "hourly_budget"), ({"max_calls_per_day": 2}, "daily_budget")],
)
async def test_budgets_block_without_any_request(
    build: Any, fake: Any, limits: dict[str, int], code: str
) -> None:
    """Once the hourly or daily budget is used up, runs are blocked and nothing reaches the fake."""
    step, _ = build(guardrails=limits)
    assert (await step.review(candidate("KRW-BTC"))).approved
    assert fake.count == 2
    verdict = await step.review(candidate("KRW-ETH"))
    assert verdict.reason_code == code
    assert "budget exhausted (2/2)" in verdict.reasoning
    assert fake.count == 2


async def test_reject_cooldowns_grow_5_10_15_minutes(
    build: Any, fake: Any, redis: Any, keys: Any
) -> None:
    """Consecutive rejects of one symbol set 5, 10 then 15 minute cooldowns that block its runs."""
    fake.script(fk.reject(), fk.reject(), fk.reject())
    step, _ = build()
    seen = []
    for _ in range(3):
        assert (await step.review(candidate())).reason_code == "analyst_reject"
        seen.append((await redis.get(keys.ai_symbol_cooldown("KRW-BTC")),
                     await redis.ttl(keys.ai_symbol_cooldown("KRW-BTC"))))  # fmt: skip
        before = fake.count
        assert (await step.review(candidate())).reason_code == "symbol_cooldown"
        assert fake.count == before
        await redis.delete(keys.ai_symbol_cooldown("KRW-BTC"))  # as if it expired
    assert [v for v, _ in seen] == ["5", "10", "15"]
    assert [ttl // 60 for _, ttl in seen] == [4, 9, 14] or [t for _, t in seen] == [300, 600, 900]


async def test_redis_down_rejects_without_calling_the_model(
    build: Any, fake: Any, pool: Any
) -> None:
    """With Redis unreachable the entry is rejected ("guardrails unavailable"), no model call."""
    dead = create_redis("redis://127.0.0.1:1/0")
    try:
        step, _ = build(redis_client=dead)
        verdict = await step.review(candidate())
    finally:
        await dead.aclose()
    assert not verdict.approved
    assert verdict.reasoning == "guardrails unavailable"
    assert fake.count == 0
    row = await _row(pool, verdict.decision_id)
    assert row["reason_code"] == "guardrails_unavailable"


async def test_rate_limit_is_retried_within_the_budget(build: Any, fake: Any) -> None:
    """A 429 with a short retry-after is retried by our own policy (SDK retries are off)."""
    fake.script(fk.rate_limited(retry_after="0.05"))
    step, _ = build(max_attempts=2)
    verdict = await step.review(candidate())
    assert verdict.approved
    assert fake.count == 3


async def test_the_retry_wait_is_spent_on_the_injected_clock(build: Any, fake: Any) -> None:
    """retry-after: 5 is waited on the runner's clock (real time in the daemon): the simulated
    clock moves by exactly those 5 s and the test does not wait them."""
    fake.script(fk.rate_limited(retry_after="5"))
    step, deps = build(max_attempts=2, timeout_s=30)
    before = deps.clock.monotonic()
    verdict = await step.review(candidate())
    assert verdict.approved
    assert fake.count == 3  # the 429, then the Analyst and the Guardian
    assert deps.clock.monotonic() - before == 5.0


async def test_a_retry_that_would_end_past_the_budget_is_not_made(
    build: Any, fake: Any, pool: Any
) -> None:
    """A retry-after of 30 s with the whole 30 s budget left: waiting would spend the budget
    (0 + 30 >= 30), so the 429 is the verdict, after one request and no wait."""
    fake.script(fk.rate_limited(retry_after="30"))
    step, deps = build(max_attempts=3, timeout_s=30)
    before = deps.clock.monotonic()
    verdict = await step.review(candidate())
    assert (verdict.approved, verdict.reason_code) == (False, "rate_limited")
    assert fake.count == 1
    assert deps.clock.monotonic() == before


async def test_thin_context_is_skipped_by_the_prefilter(build: Any, fake: Any, pool: Any) -> None:
    """A symbol without enough hourly candles is skipped before the guardrails and the model."""
    step, _ = build()
    verdict = await step.review(candidate("KRW-NEW"))
    assert verdict.reason_code == "prefilter"
    assert "insufficient (0 < 12)" in verdict.reasoning
    assert fake.count == 0
    assert (await _row(pool, verdict.decision_id))["reason_code"] == "prefilter"


async def test_without_api_key_the_ai_is_off(build: Any, fake: Any) -> None:
    """No ANTHROPIC_API_KEY means AiOff (mode auto), and an explicit llm mode says so once."""
    step, _ = build(env={})
    assert isinstance(step, AiOff)
    with structlog.testing.capture_logs() as logs:
        step2, _ = build(env={}, mode="llm")
    assert isinstance(step2, AiOff)
    assert [e["event"] for e in logs].count("ai_off") == 1


async def test_replay_reproduces_recorded_decisions_without_requests(build: Any, fake: Any) -> None:
    """Replay answers a recorded run's candidates with the same verdicts and zero model requests."""
    fake.script(fk.reject(match="KRW-ETH"), fk.confirm(55, match="KRW-XRP"))
    live, _ = build()
    cands = [candidate(s) for s in SYMBOLS[:3]] + [candidate("KRW-NEW")]
    recorded = [await live.review(c) for c in cands]
    assert [v.reason_code for v in recorded] == [
        "approved", "analyst_reject", "low_confidence", "prefilter"
    ]  # fmt: skip
    used = fake.count
    replay: AiStep
    replay, _ = build(mode="replay")
    assert isinstance(replay, ReplayStep)
    replayed = [await replay.review(c) for c in cands]
    assert [(v.approved, v.reason_code, v.reasoning, v.decision_id) for v in replayed] == [
        (v.approved, v.reason_code, v.reasoning, v.decision_id) for v in recorded
    ]
    missing = await replay.review(candidate("KRW-SOL", candle_ts=CANDLE_TS - timedelta(hours=1)))
    assert missing.reason_code == "not_recorded"
    assert not missing.approved
    assert fake.count == used


async def test_an_approval_that_could_not_be_recorded_does_not_buy(
    build: Any, fake: Any, pool: Any
) -> None:
    """CONFIRM + SAFE, but the agent_decisions insert fails: the verdict is not an approval."""
    await pool.execute(
        "ALTER TABLE agent_decisions ADD CONSTRAINT refuse_all CHECK (false) NOT VALID"
    )
    step, deps = build()
    with structlog.testing.capture_logs() as logs:
        verdict = await step.review(candidate())
    assert (verdict.approved, verdict.reason_code, verdict.decision_id) == (
        False, "record_failed", None
    )  # fmt: skip
    assert fake.count == 2  # the model did approve
    assert "ai_record_failed" in [e["event"] for e in logs]
    reg = deps.metrics.registry
    assert (
        reg.get_sample_value(
            "coinpilot_ai_decisions_total", {"outcome": "rejected", "reason": "record_failed"}
        )
        == 1
    )


async def test_replay_finds_decisions_under_another_order_size(build: Any, fake: Any) -> None:
    """The order size depends on the portfolio and risk config: it is not in the hash."""
    live, _ = build()
    recorded = await live.review(candidate())
    replay, _ = build(mode="replay")
    resized = dataclasses.replace(candidate(), order_krw=123_456.0)
    replayed = await replay.review(resized)
    assert (replayed.reason_code, replayed.decision_id) == ("approved", recorded.decision_id)
    assert "123456" not in fake.requests[1].user_text
    assert "order_krw" not in fake.requests[1].user_text
