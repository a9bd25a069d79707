"""Pure guardrail rules: block order, cooldown steps, how a run settles."""

from __future__ import annotations

import pytest

from coinpilot.config import GuardrailConfig
from coinpilot.domain.guardrail_rules import (
    Block,
    Settle,
    check_block,
    cooldown_minutes,
    settle_kind,
)

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


def test_each_block_with_its_operator_message() -> None:
    """The block code and message land in the decision row an operator reads, so both are
    exact; a TTL of 1 s still blocks, a TTL of 0 no longer does."""
    assert check_block(1, 0, 0, 0, CFG) == Block("global_block", "Global AI block active (1s left)")
    assert check_block(0, 1, 0, 0, CFG) == Block(
        "symbol_cooldown", "Symbol AI cooldown active (1s left)"
    )
    # default budgets: 20 calls an hour, 120 a day; the 20th used call exhausts the hour
    assert check_block(0, 0, 20, 0, CFG) == Block(
        "hourly_budget", "Hourly AI budget exhausted (20/20)"
    )
    assert check_block(0, 0, 19, 120, CFG) == Block(
        "daily_budget", "Daily AI budget exhausted (120/120)"
    )
    assert check_block(0, 0, 19, 119, CFG) is None


def test_budgets_come_from_the_config() -> None:
    """A tighter configuration blocks at its own limits, with them in the message."""
    tight = GuardrailConfig(max_calls_per_hour=3, max_calls_per_day=7)
    assert check_block(0, 0, 2, 6, tight) is None
    hourly = Block("hourly_budget", "Hourly AI budget exhausted (3/3)")
    daily = Block("daily_budget", "Daily AI budget exhausted (7/7)")
    assert check_block(0, 0, 3, 0, tight) == hourly
    assert check_block(0, 0, 2, 7, tight) == daily


def test_cooldown_steps_come_from_the_config() -> None:
    """Steps (2, 4, 8): no reject yet counts as the first, the third and later take the last."""
    cfg = GuardrailConfig(reject_cooldown_minutes=(2, 4, 8))
    assert [cooldown_minutes(n, cfg) for n in (-1, 0, 1, 2, 3, 4)] == [2, 2, 2, 4, 8, 8]


# Every way the model can fail to give an opinion (the SDK failures and our schema checks).
ERRORS = ["timeout", "rate_limited", "overloaded", "server_error", "connection_error",
          "api_error", "schema_violation", "truncated", "bad_response"]  # fmt: skip


@pytest.mark.parametrize("code", ERRORS)
def test_every_error_code_feeds_the_error_streak(code: str) -> None:
    assert settle_kind(False, code) is Settle.ERROR
    assert settle_kind(True, code) is Settle.APPROVED  # an approval is never an error


def test_config_and_credit_codes_are_not_errors() -> None:
    """A refused request stops the step instead of counting; low credit blocks globally."""
    assert settle_kind(False, "config_error") is Settle.REJECTED
    assert settle_kind(True, "low_credit") is Settle.APPROVED
