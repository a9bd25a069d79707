"""Two exits racing: the loss streak is read and written under the account row lock.

Each SELL reads consecutive_losses and writes the new streak back. Without the lock two
losing exits committing at the same time both read 1 and both write 2, and the third loss
in a row never starts its cooldown. A trigger holds each exit's trade insert for a moment
so the second exit reaches the account row while the first is still open.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg

from coinpilot.adapters import ledger
from coinpilot.config import Settings
from coinpilot.domain.risk import RiskVerdict

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
D = Decimal


async def test_two_losing_exits_at_once_both_count_toward_the_cooldown(
    pool: asyncpg.Pool, make_settings: Callable[..., Settings]
) -> None:
    app = make_settings().app  # cooldown after 3 consecutive losses, 2 h
    await ledger.load_state(pool, app, T0, {})
    for sym in ("KRW-A", "KRW-B", "KRW-C"):
        order = ledger.BuyOrder(sym, T0, D(1000), D(100_000), "BULL", {})
        assert isinstance(await ledger.buy(pool, order, app, T0), ledger.Fill)
    out = T0 + timedelta(minutes=1)
    assert await ledger.sell(pool, "KRW-A", out, D(900), "STOP_LOSS", None, app, out, {})
    assert await pool.fetchval("SELECT consecutive_losses FROM account_state") == 1
    await pool.execute("""
        CREATE FUNCTION hold_sell() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN IF NEW.side = 'SELL' THEN PERFORM pg_sleep(0.3); END IF; RETURN NEW; END $$;
        CREATE TRIGGER hold_sell BEFORE INSERT ON trading_history
        FOR EACH ROW EXECUTE FUNCTION hold_sell();""")  # fmt: skip
    later = out + timedelta(minutes=1)
    results = await asyncio.gather(*(
        ledger.sell(pool, sym, later, D(900), "STOP_LOSS", None, app, later, {})
        for sym in ("KRW-B", "KRW-C")
    ))  # fmt: skip
    assert all(r is not None and r.net_pnl < 0 for r in results)
    account = await pool.fetchrow("SELECT consecutive_losses, cooldown_until FROM account_state")
    # the third loss starts the 2 h cooldown and restarts the streak
    assert (account["consecutive_losses"], account["cooldown_until"]) == (
        0, later + timedelta(hours=2),
    )  # fmt: skip
    assert [c for r in results if (c := r and r.cooldown_until)] == [later + timedelta(hours=2)]
    assert (await ledger.verify(pool)).ok
    audit = await pool.fetchrow("SELECT * FROM risk_audit WHERE violation_type = 'cooldown'")
    # the exit that got the lock second made the third loss and carries the cooldown
    symbol = next(s for s, r in zip(("KRW-B", "KRW-C"), results, strict=True)
                  if r is not None and r.cooldown_until is not None)  # fmt: skip
    third = await pool.fetchrow(
        "SELECT id, symbol FROM trading_history WHERE side = 'SELL' AND symbol = $1", symbol
    )
    assert (audit["symbol"], audit["related_order_id"]) == (third["symbol"], third["id"])
    assert audit["details"] == {"until": (later + timedelta(hours=2)).isoformat(), "losses": 3}
    assert audit["description"] == "3 consecutive losses: no entries for 2 h"


async def test_a_refusal_is_audited_with_its_details(
    pool: asyncpg.Pool, make_settings: Callable[..., Settings]
) -> None:
    app = make_settings().app
    await ledger.load_state(pool, app, T0, {})
    verdict = RiskVerdict(False, "max_concurrent_positions", "max concurrent positions (3) reached")
    await ledger.record_rejection(pool, "KRW-BTC", verdict, T0, app, {"regime": "BEAR"})
    row = await pool.fetchrow("SELECT * FROM risk_audit")
    assert (row["violation_type"], row["symbol"], row["description"]) == (
        "max_concurrent_positions", "KRW-BTC", "max concurrent positions (3) reached",
    )  # fmt: skip
    assert row["details"] == {"regime": "BEAR"}
    assert row["ts"] == T0


async def test_an_exit_records_what_it_closed_and_opens_a_new_day_at_the_marked_equity(
    pool: asyncpg.Pool, make_settings: Callable[..., Settings]
) -> None:
    """The first fill of a KST day is an exit: the day opens at cash + the position marked
    at the exit's close, before the exit; the SELL row and its notice say what it closed."""
    app = make_settings().app
    await ledger.load_state(pool, app, T0, {})
    # 1,000 × 1.0005 = 1,000.5; 100,000 / 1,000.5 → 99.95002498 coins,
    # notional 99,999.99999249, fee 49.999999996245: cash 9,899,950.000007513755
    order = ledger.BuyOrder("KRW-ETH", T0, D(1000), D(100_000), "SIDEWAYS", {})
    assert isinstance(await ledger.buy(pool, order, app, T0), ledger.Fill)
    next_day = datetime(2026, 3, 2, 15, 5, tzinfo=UTC)  # 00:05 on 3 March in Seoul
    candle = next_day - timedelta(minutes=1)
    sold = await ledger.sell(pool, "KRW-ETH", candle, D(1100), "TAKE_PROFIT", D(1120), app,
                             next_day, {"rsi": 71})  # fmt: skip
    assert sold is not None
    day = await pool.fetchrow("SELECT * FROM daily_risk_state WHERE trade_date = '2026-03-03'")
    # 9,899,950.000007513755 + 99.95002498 × 1,100 (= 109,945.027478)
    assert day["opening_equity"] == D("10009895.027485513755")
    assert (day["buy_count"], day["sell_count"], day["trade_count"]) == (0, 1, 1)
    row = await pool.fetchrow("SELECT * FROM trading_history WHERE side = 'SELL'")
    assert row["entry_price"] == D("1000.5")
    assert (row["regime"], row["exit_reason"], row["signal_info"]) == (
        "SIDEWAYS", "TAKE_PROFIT", {"rsi": 71},
    )  # fmt: skip
    assert row["high_water_mark"] == D(1120)
    notice = await pool.fetchval(
        "SELECT payload FROM outbox WHERE kind = 'trade' ORDER BY id DESC LIMIT 1"
    )
    assert (notice["symbol"], notice["side"], notice["exit_reason"]) == (
        "KRW-ETH", "SELL", "TAKE_PROFIT",
    )  # fmt: skip
