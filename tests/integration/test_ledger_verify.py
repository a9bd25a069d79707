"""verify() needs both history sums to agree with the account, each on its own."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
import pytest

from coinpilot.adapters import ledger
from coinpilot.config import Settings

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "tamper",
    [
        # one won of fees the history never charged, paid from cash: the balance still holds
        "UPDATE account_state SET fees_paid = fees_paid + 1, cash = cash - 1",
        # one won of realized PnL no trade made, put into cash: the balance still holds
        "UPDATE account_state SET realized_pnl = realized_pnl + 1, cash = cash + 1",
    ],
)
async def test_each_history_sum_is_checked_on_its_own(
    pool: asyncpg.Pool, make_settings: Callable[..., Settings], tamper: str
) -> None:
    app = make_settings().app
    await ledger.load_state(pool, app, T0, {})
    order = ledger.BuyOrder("KRW-BTC", T0, Decimal(90_000_000), Decimal(500_000), "BULL", {})
    await ledger.buy(pool, order, app, T0)
    assert (await ledger.verify(pool)).ok
    await pool.execute(tamper)
    check = await ledger.verify(pool)
    assert check.difference == 0  # cash + cost basis = initial + realized − fees still
    assert not check.history_ok
    assert not check.ok


async def test_an_empty_database_verifies(pool: asyncpg.Pool) -> None:
    """No account row yet (never started): nothing to contradict."""
    check = await ledger.verify(pool)
    assert (check.ok, check.history_ok, check.left, check.right) == (True, True, 0, 0)
