"""The BUY's own limit checks at their exact boundaries, with no slippage and no fee so
every amount is round: 1,000 KRW a coin, 10,000,000 KRW of cash."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import pytest

from coinpilot.adapters import ledger
from coinpilot.config import Settings

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
D = Decimal


def order(symbol: str, amount: int, minute: int = 0) -> ledger.BuyOrder:
    return ledger.BuyOrder(symbol, T0 + timedelta(minutes=minute), D(1000), D(amount), "BULL", {})


@pytest.fixture
def exact(make_settings: Callable[..., Settings]) -> Callable[..., Settings]:
    def build(**risk: object) -> Settings:
        return make_settings(fills={"slippage": "0", "fee_rate": "0"}, risk=risk)

    return build


async def test_exposure_cap_allows_exactly_the_cap_and_refuses_a_won_more(
    pool: asyncpg.Pool, exact: Callable[..., Settings]
) -> None:
    app = exact().app  # cap 20 % of 10,000,000 = 2,000,000
    await ledger.load_state(pool, app, T0, {})
    assert isinstance(await ledger.buy(pool, order("KRW-A", 2_000_000), app, T0), ledger.Fill)
    refused = await ledger.buy(pool, order("KRW-B", 5000, 1), app, T0)
    assert isinstance(refused, ledger.Refused)
    assert refused.verdict.ok is False
    assert refused.verdict.reason_code == "max_total_exposure"
    assert refused.verdict.text == "total exposure cap (20.0% of equity) reached"
    audit = await pool.fetchrow("SELECT * FROM risk_audit")
    assert (audit["violation_type"], audit["symbol"]) == ("max_total_exposure", "KRW-B")


async def test_cash_must_cover_notional_and_fee_to_the_won(
    pool: asyncpg.Pool, exact: Callable[..., Settings], make_settings: Callable[..., Settings]
) -> None:
    app = exact(max_total_exposure=1.0, max_position_size=1.0).app
    await ledger.load_state(pool, app, T0, {})
    all_in = await ledger.buy(pool, order("KRW-A", 10_000_000), app, T0)  # cash == notional
    assert isinstance(all_in, ledger.Fill)
    assert await pool.fetchval("SELECT cash FROM account_state") == 0
    # With the 0.05 % fee a 10,000,000 order needs 10,005,000: the cash refuses it.
    fees = make_settings(fills={"slippage": "0"}, risk={"max_total_exposure": 1.0}).app
    await pool.execute("DELETE FROM positions; UPDATE account_state SET cash = 10000000")
    refused = await ledger.buy(pool, order("KRW-B", 10_000_000, 1), fees, T0)
    assert isinstance(refused, ledger.Refused)
    assert refused.verdict.ok is False
    assert refused.verdict.reason_code == "insufficient_cash"
    assert refused.verdict.text == "cash 10000000 KRW cannot pay this order"


async def test_the_account_and_day_state_reach_the_entry_rules(
    pool: asyncpg.Pool, exact: Callable[..., Settings]
) -> None:
    app = exact().app
    await ledger.load_state(pool, app, T0, {})
    # a cooldown that ended an hour ago no longer blocks (and is compared with now)
    await pool.execute("UPDATE account_state SET cooldown_until = $1", T0 - timedelta(hours=1))
    assert isinstance(await ledger.buy(pool, order("KRW-A", 100_000), app, T0), ledger.Fill)
    # one still running does
    await pool.execute("UPDATE account_state SET cooldown_until = $1", T0 + timedelta(hours=1))
    refused = await ledger.buy(pool, order("KRW-B", 100_000, 1), app, T0)
    assert isinstance(refused, ledger.Refused)
    assert refused.verdict.reason_code == "cooldown"
    # a halted day refuses before anything else
    await pool.execute("UPDATE account_state SET cooldown_until = NULL")
    await pool.execute("UPDATE daily_risk_state SET is_trading_halted = true")
    refused = await ledger.buy(pool, order("KRW-C", 100_000, 2), app, T0)
    assert isinstance(refused, ledger.Refused)
    assert refused.verdict.reason_code == "trading_halted"


async def test_verify_counts_history_from_before_a_reset(
    pool: asyncpg.Pool, exact: Callable[..., Settings], make_settings: Callable[..., Settings]
) -> None:
    """After a reset the account's totals restart at 0; the history keeps its fees and PnL,
    carried in the *_before_reset columns, and verify adds them back."""
    app = make_settings().app
    await ledger.load_state(pool, app, T0, {})
    assert isinstance(await ledger.buy(pool, order("KRW-A", 100_000), app, T0), ledger.Fill)
    out = T0 + timedelta(minutes=5)
    assert await ledger.sell(pool, "KRW-A", out, D(1100), "TAKE_PROFIT", None, app, out, {})
    await pool.execute("""
        UPDATE account_state SET fees_before_reset = fees_paid,
            realized_pnl_before_reset = realized_pnl, fees_paid = 0, realized_pnl = 0,
            cash = initial_balance""")  # fmt: skip
    check = await ledger.verify(pool)
    assert (check.ok, check.history_ok) == (True, True)
    await pool.execute("UPDATE account_state SET fees_before_reset = fees_before_reset + 1")
    assert (await ledger.verify(pool)).history_ok is False
