"""Each refusal's text, as the audit row and the Discord notice carry it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from coinpilot.config import RiskLimits
from coinpilot.domain import risk

NOW = datetime(2026, 3, 2, 5, 0, tzinfo=UTC)
BASE = {
    "equity": Decimal(10_000_000), "opening_equity": Decimal(10_000_000), "buy_count": 0,
    "halted": False, "cooldown_until": None, "open_symbols": frozenset(),
}  # fmt: skip


@pytest.mark.parametrize(
    ("over", "limits", "code", "text"),
    [
        ({"halted": True}, RiskLimits(), "trading_halted",
         "trading halted for today (daily loss limit)"),
        # 90 s left = 1.5 min
        ({"cooldown_until": NOW + timedelta(seconds=90)}, RiskLimits(), "cooldown",
         "cooldown after consecutive losses (1.5 min left)"),
        # 600 s = 10.0 min (a minute of 61 s would say 9.8)
        ({"cooldown_until": NOW + timedelta(minutes=10)}, RiskLimits(), "cooldown",
         "cooldown after consecutive losses (10.0 min left)"),
        ({"buy_count": 10}, RiskLimits(), "max_daily_trades", "max daily trades reached (10)"),
        ({"buy_count": 4}, RiskLimits(max_daily_trades=4), "max_daily_trades",
         "max daily trades reached (4)"),
        ({"equity": Decimal(9_500_000)}, RiskLimits(), "daily_loss_limit",
         "daily loss limit (-5.00%) reached, halting trading"),
        ({"equity": Decimal(9_875_000)}, RiskLimits(max_daily_loss=0.0125), "daily_loss_limit",
         "daily loss limit (-1.25%) reached, halting trading"),
        ({"open_symbols": frozenset({"A", "B", "C"})}, RiskLimits(), "max_concurrent_positions",
         "max concurrent positions (3) reached"),
        ({"open_symbols": frozenset({"KRW-BTC"})}, RiskLimits(), "duplicate_position",
         "KRW-BTC already held"),
    ],
)  # fmt: skip
def test_refusal_texts(over: dict[str, object], limits: RiskLimits, code: str, text: str) -> None:
    state = risk.RiskState(**{**BASE, **over})  # type: ignore[arg-type]
    verdict = risk.check_entry(state, "KRW-BTC", limits, NOW)
    assert (verdict.ok, verdict.reason_code, verdict.text) == (False, code, text)
    assert verdict.halt is (code == "daily_loss_limit")
