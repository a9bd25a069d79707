"""Replay mode: answer from recorded decisions by input hash, never calling the model.

The candidate is prepared exactly as the live runner prepares it, so the same candles and
indicators give the same hash. A recorded decision is returned as it was (approvals,
rejections, blocks alike); a miss is a REJECT "not recorded". Nothing is written.
"""

from __future__ import annotations

import asyncpg
import structlog

from coinpilot.adapters import ai_records
from coinpilot.config import Settings
from coinpilot.domain.ai_types import AiVerdict, EntryCandidate
from coinpilot.observability import Metrics
from coinpilot.services.agent import prepare

log = structlog.get_logger(__name__)


class ReplayStep:
    # Answers come from the database at once, so the bot may act on them in the same cycle
    # (replays and audits then reproduce the original run's timing).
    inline = True

    def __init__(self, *, settings: Settings, pool: asyncpg.Pool, metrics: Metrics) -> None:
        self.settings, self.pool, self.metrics = settings, pool, metrics

    async def review(self, candidate: EntryCandidate) -> AiVerdict:
        try:
            prep = await prepare(self.pool, self.settings, candidate)
            row = await ai_records.find_by_hash(self.pool, prep.input_hash)
        except (asyncpg.PostgresError, OSError) as exc:
            log.error("ai_replay_failed", symbol=candidate.symbol, error=type(exc).__name__)
            return self._count(AiVerdict(False, "context_error", "AI context unavailable"))
        if row is not None:
            verdict = AiVerdict(
                approved=row["decision"] == "CONFIRM",
                reason_code=row["reason_code"] or "",
                reasoning=row["reasoning"] or "",
                decision_id=row["id"],
            )
            return self._count(verdict)
        if not prep.prefilter.run:
            return self._count(AiVerdict(False, "prefilter", prep.prefilter.reason))
        log.info("ai_replay_miss", symbol=candidate.symbol, input_hash=prep.input_hash)
        return self._count(AiVerdict(False, "not_recorded", "not recorded"))

    def _count(self, verdict: AiVerdict) -> AiVerdict:
        outcome = "approved" if verdict.approved else "rejected"
        self.metrics.ai_decisions.labels(outcome=outcome, reason=verdict.reason_code).inc()
        return verdict
