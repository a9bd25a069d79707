"""Pure guardrail rules: block order, cooldown steps, how a run settles."""

from __future__ import annotations

from coinpilot.config import GuardrailConfig
from coinpilot.domain.guardrail_rules import Settle, check_block, cooldown_minutes, settle_kind

CFG = GuardrailConfig()


def test_block_order_is_global_symbol_hour_day() -> None:
    """The global block wins over a cooldown, which wins over the budgets."""
    assert check_block(10, 20, 99, 999, CFG).code == "global_block"
    assert check_block(0, 20, 99, 999, CFG).code == "symbol_cooldown"
    assert check_block(0, -2, 20, 999, CFG).message == "Hourly AI budget exhausted (20/20)"
    assert check_block(0, -2, 19, 120, CFG).code == "daily_budget"
    assert check_block(-2, -2, 19, 119, CFG) is None


def test_cooldown_steps() -> None:
    """1st, 2nd and 3rd-or-later rejects give 5, 10 and 15 minutes."""
    assert [cooldown_minutes(n, CFG) for n in (0, 1, 2, 3, 7)] == [5, 5, 10, 15, 15]


def test_settle_kinds_by_reason_code() -> None:
    """Timeouts and API failures are errors; low credit is its own kind; opinions are rejects."""
    assert settle_kind(True, "approved") is Settle.APPROVED
    assert settle_kind(False, "timeout") is Settle.ERROR
    assert settle_kind(False, "overloaded") is Settle.ERROR
    assert settle_kind(False, "low_credit") is Settle.LOW_CREDIT
    assert settle_kind(False, "analyst_reject") is Settle.REJECTED
    assert settle_kind(False, "refusal") is Settle.REJECTED
