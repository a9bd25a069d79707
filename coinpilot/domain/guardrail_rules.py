"""Guardrail rules without Redis: what a finished run does to cooldowns, streaks and blocks.

Failures are classified by reason code (set from the SDK exception type and status), never
by searching the reasoning text.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from coinpilot.config import GuardrailConfig

# Reason codes that mean "the model could not give an opinion" and feed the error streak.
ERROR_CODES = frozenset(
    {
        "timeout",
        "rate_limited",
        "overloaded",
        "server_error",
        "connection_error",
        "api_error",
        "schema_violation",
        "truncated",
        "bad_response",
    }
)
CREDIT_CODES = frozenset({"low_credit"})
# The request is wrong for the configured model or key (HTTP 400/401/403/404): the AI step
# stops instead of feeding the error streak, so no 30-minute block repeats for ever.
CONFIG_CODES = frozenset({"config_error"})


class Settle(StrEnum):
    APPROVED = "approved"  # clear reject count and error streak
    REJECTED = "rejected"  # cooldown, clear error streak
    ERROR = "error"  # cooldown, error streak +1, block at threshold
    LOW_CREDIT = "low_credit"  # cooldown, global block, streak untouched


def settle_kind(approved: bool, reason_code: str) -> Settle:
    if approved:
        return Settle.APPROVED
    if reason_code in CREDIT_CODES:
        return Settle.LOW_CREDIT
    if reason_code in ERROR_CODES:
        return Settle.ERROR
    return Settle.REJECTED


def cooldown_minutes(reject_count: int, cfg: GuardrailConfig) -> int:
    """5 / 10 / 15 minutes (by default) for the 1st / 2nd / 3rd+ reject in the window."""
    steps = cfg.reject_cooldown_minutes
    return steps[min(max(reject_count, 1), len(steps)) - 1]


@dataclass(frozen=True)
class Block:
    code: str  # global_block | symbol_cooldown | hourly_budget | daily_budget
    message: str


def check_block(
    global_ttl: int,
    cooldown_ttl: int,
    used_hour: int,
    used_day: int,
    cfg: GuardrailConfig,
) -> Block | None:
    """The first applicable block, in the order global → symbol → hour → day."""
    if global_ttl > 0:
        return Block("global_block", f"Global AI block active ({global_ttl}s left)")
    if cooldown_ttl > 0:
        return Block("symbol_cooldown", f"Symbol AI cooldown active ({cooldown_ttl}s left)")
    if used_hour >= cfg.max_calls_per_hour:
        return Block(
            "hourly_budget", f"Hourly AI budget exhausted ({used_hour}/{cfg.max_calls_per_hour})"
        )
    if used_day >= cfg.max_calls_per_day:
        return Block(
            "daily_budget", f"Daily AI budget exhausted ({used_day}/{cfg.max_calls_per_day})"
        )
    return None
