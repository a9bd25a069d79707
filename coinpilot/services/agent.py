"""The AI second opinion: pre-filter → guardrails → Analyst → Guardian → record → settle.

``AgentRunner.review`` is the bot's ``AiStep``. The bot awaits it in a background task, so
a slow model never delays exits or the next cycle; here each review is bounded by one
deadline (``ai.timeout_s``, 60 s for thinking models, see the README) that covers the wait
for a concurrency slot, every model request and every retry. Whatever happens, the run ends
as a verdict and one agent_decisions row; only CONFIRM + SAFE approves, and only once that
row is saved. A model the API will not serve as configured stops the step (see
``check_model``/``stop_ai``); entries then follow ``ai.on_unavailable``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

import anthropic
import asyncpg
import redis.asyncio as aioredis
import structlog

from coinpilot import prompts
from coinpilot.adapters import ai_records, marketdata
from coinpilot.adapters.cache import Keys
from coinpilot.adapters.guardrails import Guardrails
from coinpilot.adapters.llm import (
    JsonReply,
    LlmFailure,
    Usage,
    build_request,
    call_json,
    create_client,
    estimate_cost,
    model_status,
)
from coinpilot.adapters.outbox import enqueue
from coinpilot.clock import Clock
from coinpilot.config import Settings
from coinpilot.domain import agent_fsm as fsm
from coinpilot.domain.ai_context import AiContext, build_context
from coinpilot.domain.ai_prefilter import PrefilterResult, should_run_ai
from coinpilot.domain.ai_types import AiOff, AiStep, AiVerdict, EntryCandidate
from coinpilot.domain.guardrail_rules import CONFIG_CODES, Block, settle_kind
from coinpilot.errors import DependencyDown
from coinpilot.observability import Metrics

log = structlog.get_logger(__name__)

REASON_MAX = 1500


@dataclass(frozen=True)
class Prepared:
    """Everything about one candidate that is fixed before any model call."""

    candidate: EntryCandidate
    context: AiContext
    prefilter: PrefilterResult
    analyst_text: str
    guardian_text: str
    input_hash: str


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def input_hash(analyst_text: str, guardian_text: str) -> str:
    """Hash of what the model is shown; the model id is left out so replay spans modes."""
    doc = {"v": prompts.PROMPT_VERSION, "analyst": analyst_text, "guardian": guardian_text}
    return hashlib.sha256(_canonical(doc).encode()).hexdigest()


async def prepare(pool: asyncpg.Pool, settings: Settings, cand: EntryCandidate) -> Prepared:
    """Load the candidate's 36 h of minutes and build its context, messages and hash.

    Nothing that depends on the portfolio (the order size) is shown to the model, so the
    hash, and with it a replay, is the same under any risk configuration.
    """
    cfg = settings.app.ai
    ref = cand.candle_ts + timedelta(minutes=1)  # the candidate's minute has closed
    minutes = await marketdata.load_range(
        pool, cand.symbol, ref - timedelta(hours=cfg.context_lookback_hours), ref
    )
    gap = cand.indicators.get("ma_gap_pct", cand.extra.get("ma_gap_pct"))
    if gap is None:
        gap = await ai_records.latest_ma_gap(pool, cand.symbol)
    ctx = build_context(
        minutes,
        int(ref.timestamp()),
        cand.regime,
        hours=cfg.context_hours,
        bear_window=cfg.prefilter.bear_feature_window,
        ma_gap_pct=gap,
    )
    analyst = prompts.analyst_message(
        symbol=cand.symbol,
        regime=cand.regime,
        price=cand.price,
        ma_gap_pct=ctx.ma_gap_pct,
        patterns=ctx.patterns,
        bars=ctx.bars,
    )
    signal = {
        **dict(cand.indicators),
        "regime": cand.regime,
        "price": cand.price,
        "candle_ts": cand.candle_ts.isoformat(),
        "entry_config": dict(cand.entry_config),
        "ma_gap_pct": ctx.ma_gap_pct,
        "pattern_features": ctx.patterns,
        "bear_features": ctx.bear,
        "market_context": ctx.bars,
    }
    guardian = prompts.guardian_message(symbol=cand.symbol, signal=signal)
    pre = should_run_ai(ctx, cand.regime, cfg.prefilter)
    return Prepared(cand, ctx, pre, analyst, guardian, input_hash(analyst, guardian))


@dataclass
class Trace:
    """What the model was sent and answered, kept outside the timeout scope."""

    requests: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0
    usage: Usage = field(default_factory=Usage)
    model: str | None = None

    def reply(self, role: str, r: JsonReply) -> None:
        self.usage = self.usage + r.usage
        self.model = r.model
        self.outputs[role] = {
            "answer": r.data,
            "stop_reason": r.stop_reason,
            "request_id": r.request_id,
        }

    def failure(self, role: str, f: LlmFailure) -> None:
        self.usage = self.usage + f.usage
        self.outputs.setdefault(f"{role}_errors", []).append(
            {"code": f.code, "message": f.message, "status": f.status}
        )


@dataclass(frozen=True)
class Unavailable:
    """Why the AI step stopped: the configured model cannot be used as configured."""

    model: str
    config_key: str  # ai.models.dev | ai.models.prod
    reason: str

    def text(self, fallback: str) -> str:
        then = "entries rejected" if fallback == "reject" else "entries on the rules alone"
        return (
            f"AI step stopped: {self.config_key} = {self.model}: {self.reason}. "
            f"Set {self.config_key} to a current model and restart ({then} until then)."
        )


class AgentRunner:
    """The AiStep backed by Claude."""

    def __init__(
        self,
        *,
        settings: Settings,
        pool: asyncpg.Pool,
        redis: aioredis.Redis,
        keys: Keys,
        clock: Clock,
        metrics: Metrics,
        client: anthropic.AsyncAnthropic,
        dry_run: bool = False,
    ) -> None:
        self.settings, self.pool, self.clock, self.metrics = settings, pool, clock, metrics
        self.cfg = settings.app.ai
        self.client = client
        self.model = settings.model_id
        # A dry run (`coinpilot ai-review`) consumes no guardrails and records nothing.
        self.dry_run = dry_run
        self.guard = Guardrails(redis, keys, self.cfg.guardrails)
        self._slots = asyncio.Semaphore(self.cfg.max_concurrency)
        mode = settings.env.llm_mode
        self.config_key = f"ai.models.{mode if mode in self.cfg.models else 'dev'}"
        self.unavailable: Unavailable | None = None
        self._check: asyncio.Task[None] | None = None

    async def aclose(self) -> None:
        """Close the SDK's HTTP connections (call once at shutdown)."""
        if self._check is not None:
            self._check.cancel()
        await self.client.close()

    def start_model_check(self) -> None:
        """Ask the Models API about the configured model now; reviews wait for the answer."""
        if self._check is None:
            self._check = asyncio.get_running_loop().create_task(
                self.check_model(), name="ai-model-check"
            )

    async def check_model(self) -> None:
        """A retired or unknown id stops the AI step; a failed lookup only warns."""
        try:
            status = await model_status(self.client, self.model, self.cfg.model_check_timeout_s)
        except LlmFailure as f:
            if f.code in CONFIG_CODES:
                await self.stop_ai(f"the Models API refused the lookup ({f.message})")
            else:  # transient: the first request will tell
                log.warning("ai_model_check_failed", model=self.model, code=f.code)
            return
        except Exception as exc:  # never let the check take the bot down
            log.warning("ai_model_check_failed", model=self.model, error=type(exc).__name__)
            return
        if not status.usable:
            await self.stop_ai(f"the model is {status.lifecycle} (Models API)")
            return
        self.metrics.ai_misconfigured.set(0)
        if status.lifecycle == "deprecated":
            log.warning("ai_model_deprecated", model=self.model, config_key=self.config_key,
                        retires_at=status.retires_at)  # fmt: skip
        else:
            log.info("ai_model_ok", model=self.model, resolved=status.resolved)

    async def stop_ai(self, reason: str) -> None:
        """Stop calling the model: one log line, the gauge, one Discord message."""
        if self.unavailable is not None:
            return
        self.unavailable = Unavailable(self.model, self.config_key, reason)
        self.metrics.ai_misconfigured.set(1)
        text = self.unavailable.text(self.cfg.on_unavailable)
        log.error("ai_misconfigured", model=self.model, config_key=self.config_key,
                  fallback=self.cfg.on_unavailable, message=text)  # fmt: skip
        if self.dry_run:
            return
        payload = {"event": "ai_misconfigured", "level": "error", "message": text,
                   "model": self.model, "config_key": self.config_key}  # fmt: skip
        try:
            await enqueue(self.pool, "system", payload)
        except (asyncpg.PostgresError, OSError) as exc:
            log.error("ai_notify_failed", error=type(exc).__name__)
            self.metrics.dependency_error("postgres", "ai_notify")

    def _fallback(self, unavailable: Unavailable) -> AiVerdict:
        rules_only = self.cfg.on_unavailable == "rules_only"
        code = "rules_only" if rules_only else "unavailable"  # the bot logs ai_<code>
        self.metrics.ai_decisions.labels(outcome="approved" if rules_only else "rejected",
                                         reason=code).inc()  # fmt: skip
        return AiVerdict(rules_only, code, unavailable.text(self.cfg.on_unavailable))

    async def review(self, candidate: EntryCandidate) -> AiVerdict:
        try:
            self.start_model_check()
            assert self._check is not None
            await asyncio.shield(self._check)
            if self.unavailable is not None:
                return self._fallback(self.unavailable)
            return await self._review(candidate)
        except Exception as exc:  # a bug here must cost one entry, never the bot loop
            log.exception("ai_review_crashed", symbol=candidate.symbol, error=type(exc).__name__)
            self.metrics.ai_decisions.labels(outcome="rejected", reason="internal_error").inc()
            return AiVerdict(False, "internal_error", f"AI Analysis Error: {type(exc).__name__}")

    async def _review(self, candidate: EntryCandidate) -> AiVerdict:
        # The run budget is kept on the injected clock (real time in the daemon), so a replay
        # or a test moves it with the clock rather than with the machine's speed.
        deadline = self.clock.monotonic() + self.cfg.timeout_s
        started = time.perf_counter()
        try:
            prep = await prepare(self.pool, self.settings, candidate)
        except (asyncpg.PostgresError, OSError) as exc:
            log.error("ai_context_failed", symbol=candidate.symbol, error=type(exc).__name__)
            self.metrics.ai_decisions.labels(outcome="rejected", reason="context_error").inc()
            return AiVerdict(False, "context_error", "AI context unavailable")
        self.metrics.ai_context_candles.observe(prep.context.n_candles)
        if not prep.prefilter.run:
            self.metrics.ai_prefilter_skips.labels(reason=prep.prefilter.code).inc()
            return await self._finish(prep, "prefilter", prep.prefilter.reason, started)
        block = await self._check_guardrails(prep)
        if block is not None:
            return await self._finish(prep, block.code, block.message, started)
        trace = Trace()
        run = await self._run_model(prep, trace, deadline)
        if run.reason_code in CONFIG_CODES:  # no cooldown, no error streak: the step stops
            await self.stop_ai(f"a request was refused: {run.reasoning}"[:400])
        else:
            await self._settle(prep, run)
        return await self._finish(prep, run.reason_code, run.reasoning, started, run, trace)

    async def review_once(self, candidate: EntryCandidate) -> tuple[Prepared, dict[str, Any]]:
        """One Analyst → Guardian run for an operator: pre-filter shown but not obeyed, no
        guardrails, nothing recorded. Returns the candidate's preparation and the row the
        bot would have recorded (its cost at the configured price included)."""
        assert self.dry_run, "review_once is for dry runs"
        started = time.perf_counter()
        prep = await prepare(self.pool, self.settings, candidate)
        trace = Trace()
        run = await self._run_model(prep, trace, self.clock.monotonic() + self.cfg.timeout_s)
        if run.reason_code in CONFIG_CODES:
            await self.stop_ai(f"a request was refused: {run.reasoning}"[:400])
        latency = time.perf_counter() - started
        row = decision_row(
            prep, self.settings, run.reason_code, run.reasoning, run.approved, latency, run, trace
        )
        row["cost_usd"] = estimate_cost(trace.usage, self.cfg.prices.get(self.model))
        return prep, row

    async def _check_guardrails(self, prep: Prepared) -> Block | None:
        try:
            block = await self.guard.blocked(prep.candidate.symbol, self.clock.now())
        except DependencyDown as exc:
            log.warning("ai_guardrails_unavailable", symbol=prep.candidate.symbol, error=str(exc))
            self.metrics.ai_guardrail_blocks.labels(reason="guardrails_unavailable").inc()
            return Block("guardrails_unavailable", "guardrails unavailable")
        self.metrics.ai_global_block.set(1 if block and block.code == "global_block" else 0)
        if block is not None:
            self.metrics.ai_guardrail_blocks.labels(reason=block.code).inc()
        return block

    async def _run_model(self, prep: Prepared, trace: Trace, deadline: float) -> fsm.Run:
        run = fsm.step(fsm.Run(), fsm.Event(fsm.Ev.BEGIN))
        try:
            async with self.clock.timeout_at(deadline), self._slots:
                self.metrics.ai_requests.inc()
                run = await self._analyst(prep, trace, deadline, run)
                if run.state is fsm.State.GUARDIAN:
                    run = await self._guardian(prep, trace, deadline, run)
        except TimeoutError:
            run = fsm.step(run, fsm.Event(fsm.Ev.TIMEOUT))
        except DependencyDown:
            failure = fsm.Failure("guardrails_unavailable", "guardrails unavailable")
            run = fsm.step(run, fsm.Event(fsm.Ev.FAILED, failure=failure))
        return run

    async def _analyst(
        self, prep: Prepared, trace: Trace, deadline: float, run: fsm.Run
    ) -> fsm.Run:
        try:
            reply = await self._call("analyst", prep.analyst_text, trace, deadline)
            opinion = fsm.parse_analyst(reply.data)
        except LlmFailure as f:
            return fsm.step(run, _failure_event(f))
        except fsm.SchemaViolation as exc:
            return fsm.step(run, _schema_event(exc))
        terms = fsm.boundary_terms(opinion.reasoning)
        if terms:
            trace.outputs["boundary_terms"] = terms
            log.info("ai_boundary_terms", symbol=prep.candidate.symbol, terms=terms)
        return fsm.step(run, fsm.analyst_event(opinion, self.cfg.min_confidence))

    async def _guardian(
        self, prep: Prepared, trace: Trace, deadline: float, run: fsm.Run
    ) -> fsm.Run:
        try:
            reply = await self._call("guardian", prep.guardian_text, trace, deadline)
            opinion = fsm.parse_guardian(reply.data)
        except LlmFailure as f:
            return fsm.step(run, _failure_event(f))
        except fsm.SchemaViolation as exc:
            return fsm.step(run, _schema_event(exc))
        return fsm.step(run, fsm.guardian_event(opinion))

    async def _call(self, role: str, user: str, trace: Trace, deadline: float) -> JsonReply:
        """Our bounded retry policy: transient failures only, never past the deadline."""
        request = build_request(
            model=self.model,
            system=prompts.system(role),
            user=user,
            output_format=prompts.output_format(role),
            options=self.cfg.settings_for(self.model),
        )
        trace.requests[role] = request
        for attempt in range(self.cfg.max_attempts):
            if not self.dry_run:
                await self.guard.mark_call(self.clock.now())
            trace.attempts += 1
            remaining = deadline - self.clock.monotonic()
            try:
                reply = await call_json(
                    self.client, request, min(self.cfg.attempt_timeout_s, remaining)
                )
            except LlmFailure as f:
                trace.failure(role, f)
                log.warning("ai_call_failed", role=role, code=f.code, status=f.status)
                wait = f.retry_after_s if f.retry_after_s is not None else 0.5 * 2**attempt
                last = attempt + 1 >= self.cfg.max_attempts
                if not f.retryable or last or self.clock.monotonic() + wait >= deadline:
                    raise
                await self.clock.sleep(wait)
                continue
            trace.reply(role, reply)
            return reply
        raise AssertionError("unreachable: max_attempts >= 1")

    async def _settle(self, prep: Prepared, run: fsm.Run) -> None:
        if run.reason_code == "guardrails_unavailable":
            return
        try:
            blocked = await self.guard.settle(
                prep.candidate.symbol, settle_kind(run.approved, run.reason_code)
            )
        except DependencyDown as exc:
            log.warning("ai_guardrails_settle_failed", symbol=prep.candidate.symbol, error=str(exc))
            return
        if blocked:
            self.metrics.ai_global_block.set(1)
            log.warning("ai_global_block", reason=blocked, symbol=prep.candidate.symbol)

    async def _finish(
        self,
        prep: Prepared,
        code: str,
        reasoning: str,
        started: float,
        run: fsm.Run | None = None,
        trace: Trace | None = None,
    ) -> AiVerdict:
        approved = run is not None and run.approved
        latency = time.perf_counter() - started
        cost = estimate_cost(trace.usage, self.cfg.prices.get(self.model)) if trace else None
        row = decision_row(prep, self.settings, code, reasoning, approved, latency, run, trace)
        row["cost_usd"] = cost
        notify = notification(prep, row) if trace is not None else None
        decision_id = await self._record(row, notify)
        if approved and decision_id is None:
            # An approval nobody can audit or replay must not buy.
            approved, code = False, "record_failed"
            reasoning = f"approval not recorded, entry skipped: {reasoning}"[:REASON_MAX]
        self._observe(approved, code, latency, trace, cost)
        log.info(
            "ai_decision",
            symbol=prep.candidate.symbol,
            decision=row["decision"],
            reason_code=code,
            confidence=row["confidence"],
            latency_ms=row["latency_ms"],
            decision_id=decision_id,
        )
        return AiVerdict(approved, code, reasoning, decision_id)

    async def _record(self, row: dict[str, Any], notify: dict[str, Any] | None) -> int | None:
        try:
            return await ai_records.record_decision(self.pool, row, notify)
        except (asyncpg.PostgresError, OSError) as exc:
            log.error("ai_record_failed", symbol=row["symbol"], error=type(exc).__name__)
            self.metrics.dependency_error("postgres", "ai_record")
            return None

    def _observe(
        self, approved: bool, code: str, latency: float, trace: Trace | None, cost: Decimal | None
    ) -> None:
        outcome = "approved" if approved else "rejected"
        self.metrics.ai_decisions.labels(outcome=outcome, reason=code).inc()
        if trace is None:
            return
        self.metrics.ai_latency.observe(latency)
        self.metrics.ai_tokens.labels(direction="input").inc(trace.usage.total_input)
        self.metrics.ai_tokens.labels(direction="output").inc(trace.usage.output_tokens)
        if cost:
            self.metrics.ai_cost.inc(float(cost))


def _failure_event(f: LlmFailure) -> fsm.Event:
    if f.code == "timeout":
        return fsm.Event(fsm.Ev.TIMEOUT)
    return fsm.Event(fsm.Ev.FAILED, failure=fsm.Failure(f.code, f.message))


def _schema_event(exc: fsm.SchemaViolation) -> fsm.Event:
    return fsm.Event(fsm.Ev.FAILED, failure=fsm.Failure("schema_violation", str(exc)))


def decision_row(
    prep: Prepared,
    settings: Settings,
    code: str,
    reasoning: str,
    approved: bool,
    latency_s: float,
    run: fsm.Run | None,
    trace: Trace | None,
) -> dict[str, Any]:
    cand = prep.candidate
    raw: dict[str, Any] = {
        "prefilter": prep.prefilter.code,
        "context_candles": prep.context.n_candles,
    }
    if trace is not None:
        raw.update(trace.outputs, attempts=trace.attempts)
    return {
        "symbol": cand.symbol,
        "strategy_name": settings.app.strategy_name,
        "decision": "CONFIRM" if approved else "REJECT",
        "reason_code": code,
        "reasoning": reasoning,
        "confidence": run.confidence if run is not None else None,
        "model_used": settings.model_id if trace is not None else None,
        "price_at_decision": Decimal(str(cand.price)),
        "regime": cand.regime,
        "candle_ts": cand.candle_ts,
        "latency_ms": int(latency_s * 1000),
        "input_tokens": trace.usage.total_input if trace else None,
        "output_tokens": trace.usage.output_tokens if trace else None,
        "input_hash": prep.input_hash,
        "request": trace.requests if trace is not None else None,
        "raw_output": raw,
    }


def notification(prep: Prepared, row: dict[str, Any]) -> dict[str, Any]:
    ind = prep.candidate.indicators
    rsi = ind.get("rsi_14", ind.get("rsi"))
    return {
        "symbol": row["symbol"],
        "decision": row["decision"],
        "reason_code": row["reason_code"],
        "confidence": row["confidence"],
        "regime": row["regime"],
        "rsi": None if rsi is None else round(float(rsi), 1),
        "model_used": row["model_used"],
        "reason": (row["reasoning"] or "")[:REASON_MAX],
        "boundary_terms": (row["raw_output"] or {}).get("boundary_terms", []),
        "timestamp": row["candle_ts"].isoformat(),
    }


def build_ai_step(deps: Any) -> AiStep:
    """The AiStep for ``deps.settings.ai_mode``: AiOff, replay, or Claude (needs a key)."""
    from coinpilot.services.ai_replay import ReplayStep

    settings = deps.settings
    mode = settings.ai_mode
    if mode == "replay":
        return ReplayStep(settings=settings, pool=deps.pool, metrics=deps.metrics)
    key = settings.env.anthropic_api_key
    if mode == "off" or key is None:
        if mode == "llm":
            log.warning("ai_off", reason="ai.mode is llm but ANTHROPIC_API_KEY is not set")
        return AiOff()
    client = create_client(key.get_secret_value(), settings.env.anthropic_base_url)
    deps.extras["ai_client"] = client
    runner = AgentRunner(
        settings=settings,
        pool=deps.pool,
        redis=deps.redis,
        keys=deps.keys,
        clock=deps.clock,
        metrics=deps.metrics,
        client=client,
    )
    with contextlib.suppress(RuntimeError):  # no running loop: the first review starts it
        runner.start_model_check()
    return runner
