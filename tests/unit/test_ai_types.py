"""With the AI second opinion off, the rules alone decide."""

from __future__ import annotations

from datetime import UTC, datetime

from coinpilot.domain.ai_types import AiOff, AiVerdict, EntryCandidate


async def test_ai_off_approves_every_candidate_and_says_why() -> None:
    """The verdict is recorded and shown: approved, reason code ai_off, a readable reason."""
    candidate = EntryCandidate(
        symbol="KRW-BTC",
        regime="BEAR",
        candle_ts=datetime(2026, 11, 1, 9, 0, tzinfo=UTC),
        price=95_000_000.0,
        indicators={"rsi14": 28.0},
        entry_config={},
        order_krw=50_000.0,
    )
    verdict = await AiOff().review(candidate)
    assert verdict == AiVerdict(True, "ai_off", "AI second opinion off", None)
    assert verdict.approved is True
