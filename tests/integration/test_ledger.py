"""The paper ledger on real PostgreSQL: exact invariant, idempotency, all-or-nothing fills."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from coinpilot.adapters import ledger
from coinpilot.config import Settings
from coinpilot.domain.risk import RiskVerdict

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
D = Decimal


def order(symbol: str = "KRW-BTC", ts: datetime = T0, close: str = "90000000",
          amount: str = "500000") -> ledger.BuyOrder:  # fmt: skip
    return ledger.BuyOrder(symbol, ts, D(close), D(amount), "BULL", {"why": "test"})


async def snapshot(pool: asyncpg.Pool) -> dict[str, Any]:
    return {
        "account": dict(
            await pool.fetchrow("SELECT cash, realized_pnl, fees_paid FROM account_state")
        ),
        "positions": [dict(r) for r in await pool.fetch("SELECT * FROM positions")],
        "trades": await pool.fetchval("SELECT count(*) FROM trading_history"),
        "outbox": await pool.fetchval("SELECT count(*) FROM outbox"),
    }  # fmt: skip


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


async def test_buy_then_sell_keeps_the_invariant_exactly(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    """After each fill: cash + cost basis == initial + realized − fees, to the last digit."""
    app = settings.app
    await ledger.load_state(pool, app, T0, {})
    fill = await ledger.buy(pool, order(), app, T0)
    assert fill is not None
    check = await ledger.verify(pool)
    assert check.ok, check
    account = await pool.fetchrow("SELECT * FROM account_state")
    assert account["cash"] == D(10_000_000) - fill.notional - fill.fee
    later = T0 + timedelta(minutes=30)
    sold = await ledger.sell(pool, "KRW-BTC", later, D("91000000"), "TAKE_PROFIT", D("91000000"),
                             app, later, {})  # fmt: skip
    assert sold is not None
    check = await ledger.verify(pool)
    assert check.ok, check
    row = await pool.fetchrow("SELECT * FROM trading_history WHERE side = 'SELL'")
    assert row["realized_pnl"] == sold.fill.notional - fill.notional
    assert sold.net_pnl == row["realized_pnl"] - fill.fee - sold.fill.fee
    assert await pool.fetchval("SELECT count(*) FROM positions") == 0
    day = await pool.fetchrow("SELECT * FROM daily_risk_state")
    assert (day["buy_count"], day["sell_count"], day["trade_count"]) == (1, 1, 2)
    kinds = [r["kind"] for r in await pool.fetch("SELECT kind FROM outbox ORDER BY id")]
    assert kinds == ["trade", "trade"]
    # The SELL's notice leads with PnL after both fees and shows what makes it up.
    note = await pool.fetchval("SELECT payload FROM outbox WHERE payload->>'side' = 'SELL'")
    assert D(note["pnl_krw"]) == sold.net_pnl
    assert D(note["gross_pnl_krw"]) == row["realized_pnl"]
    assert D(note["round_trip_fees_krw"]) == fill.fee + sold.fill.fee


async def test_the_same_candle_never_executes_twice(pool: asyncpg.Pool, settings: Settings) -> None:
    """A repeated BUY or SELL decision for one closed candle is a no-op."""
    app = settings.app
    await ledger.load_state(pool, app, T0, {})
    assert await ledger.buy(pool, order(), app, T0) is not None
    before = await snapshot(pool)
    await pool.execute("DELETE FROM positions")  # even with the position gone, no second buy
    assert await ledger.buy(pool, order(), app, T0) is None
    assert (await snapshot(pool))["trades"] == before["trades"]


async def test_one_open_position_per_symbol_is_refused_and_a_constraint(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    """A second BUY of a held symbol is refused (audited); the table refuses one too."""
    app = settings.app
    await ledger.load_state(pool, app, T0, {})
    await ledger.buy(pool, order(), app, T0)
    before = await snapshot(pool)
    second = await ledger.buy(pool, order(ts=T0 + timedelta(minutes=1)), app, T0)
    assert isinstance(second, ledger.Refused)
    assert second.verdict.reason_code == "duplicate_position"
    after = await snapshot(pool)
    assert {**after, "outbox": before["outbox"]} == before  # only the refusal's notice is new
    with pytest.raises(asyncpg.UniqueViolationError):
        await pool.execute(
            """INSERT INTO positions (symbol, quantity, avg_price, cost_basis, regime,
                   high_water_mark, opened_at) VALUES ('KRW-BTC', 1, 1, 1, 'BULL', 1, $1)""",
            T0,
        )


@pytest.mark.parametrize("table", ["positions", "trading_history", "daily_risk_state", "outbox"])
async def test_a_failure_at_any_statement_rolls_back_the_whole_fill(
    pool: asyncpg.Pool, settings: Settings, table: str
) -> None:
    """A fault injected in any table the fill writes leaves every table as it was."""
    app = settings.app
    await ledger.load_state(pool, app, T0, {})
    await pool.execute(f"""
        CREATE FUNCTION fail_now() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN RAISE EXCEPTION 'injected fault'; END $$;
        CREATE TRIGGER fail_now BEFORE INSERT OR UPDATE ON {table}
        FOR EACH ROW EXECUTE FUNCTION fail_now();""")  # fmt: skip
    before = await snapshot(pool)
    with pytest.raises(asyncpg.RaiseError):
        await ledger.buy(pool, order(), app, T0)
    assert await snapshot(pool) == before
    assert (await ledger.verify(pool)).ok


async def test_three_losses_start_a_cooldown_that_is_audited_and_announced(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    """The third losing round trip sets cooldown_until, writes risk_audit and a risk notice."""
    app = settings.app
    await ledger.load_state(pool, app, T0, {})
    for i in range(3):
        ts = T0 + timedelta(minutes=10 * i)
        await ledger.buy(pool, order(ts=ts), app, ts)
        out = ts + timedelta(minutes=5)
        result = await ledger.sell(
            pool, "KRW-BTC", out, D("89000000"), "STOP_LOSS", None, app, out, {}
        )
        assert result is not None
        assert result.net_pnl < 0
    account = await pool.fetchrow("SELECT consecutive_losses, cooldown_until FROM account_state")
    assert account["consecutive_losses"] == 0
    assert account["cooldown_until"] == T0 + timedelta(minutes=25, hours=2)
    audit = await pool.fetch("SELECT violation_type FROM risk_audit")
    assert [r["violation_type"] for r in audit] == ["cooldown"]
    assert await pool.fetchval("SELECT count(*) FROM outbox WHERE kind = 'risk'") == 1
    assert (await ledger.verify(pool)).ok


async def test_hwm_only_rises(pool: asyncpg.Pool, settings: Settings) -> None:
    """raise_hwm stores a higher mark and ignores a lower one."""
    app = settings.app
    await ledger.load_state(pool, app, T0, {})
    fill = await ledger.buy(pool, order(), app, T0)
    assert fill is not None
    assert await ledger.raise_hwm(pool, "KRW-BTC", fill.price + 1, T0)
    assert not await ledger.raise_hwm(pool, "KRW-BTC", fill.price, T0)
    assert await pool.fetchval("SELECT high_water_mark FROM positions") == fill.price + 1


async def test_verify_reports_a_tampered_ledger(pool: asyncpg.Pool, settings: Settings) -> None:
    """One won of cash appearing from nowhere is a violation with that difference."""
    app = settings.app
    await ledger.load_state(pool, app, T0, {})
    await ledger.buy(pool, order(), app, T0)
    await pool.execute("UPDATE account_state SET cash = cash + 1")
    check = await ledger.verify(pool)
    assert not check.ok
    assert check.difference == 1


async def test_refusals_are_audited_every_time_and_announced_once_a_day(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    """Each refusal is audited; the outbox gets the first per symbol, reason and KST day."""
    app = settings.app
    await ledger.load_state(pool, app, T0, {})
    full = RiskVerdict(False, "max_concurrent_positions", "max concurrent positions (3) reached")
    halt = RiskVerdict(False, "daily_loss_limit", "daily loss limit reached", halt=True)
    next_kst_day = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)  # 00:00 on 3 March in Seoul
    for when, sym, verdict in [
        (T0, "KRW-BTC", full), (T0 + timedelta(minutes=1), "KRW-BTC", full),
        (T0 + timedelta(minutes=1), "KRW-ETH", full), (next_kst_day, "KRW-BTC", full),
        (T0 + timedelta(minutes=2), "KRW-BTC", halt), (T0 + timedelta(minutes=3), "KRW-ETH", halt),
    ]:  # fmt: skip
        await ledger.record_rejection(pool, sym, verdict, when, app, {})
    audited = await pool.fetch("SELECT violation_type, symbol FROM risk_audit ORDER BY id")
    assert len(audited) == 5  # the second halt of the day finds the day already halted
    sent = await pool.fetch("SELECT payload FROM outbox WHERE kind = 'risk' ORDER BY id")
    assert [(p["payload"]["type"], p["payload"]["symbol"]) for p in sent] == [
        ("max_concurrent_positions", "KRW-BTC"), ("max_concurrent_positions", "KRW-ETH"),
        ("max_concurrent_positions", "KRW-BTC"), ("daily_loss_limit", "KRW-BTC"),
    ]  # fmt: skip
    day = await pool.fetchrow("SELECT * FROM daily_risk_state WHERE trade_date = '2026-03-02'")
    assert day["is_trading_halted"]


# --- limits re-checked under the account lock ----------------------------------------------


@pytest.mark.parametrize(
    ("risk_overrides", "cash", "code"),
    [
        ({"max_concurrent_positions": 1}, None, "max_concurrent_positions"),
        ({"max_daily_trades": 1}, None, "max_daily_trades"),
        # 10 M × 8 % = 800 k of room: one 500 k order fits, two do not.
        ({"max_total_exposure": 0.08}, None, "max_total_exposure"),
        # Two orders of exactly 200 units at 2001 KRW (close 2000 + 0.05 % slippage): 400 200
        # notional + 200.1 fee each. 800 700 of cash leaves 400 299.9 after the first: enough
        # for the notional (the exposure cap at 100 % lets it through) but not for the fee.
        ({"max_total_exposure": 1.0}, "800700", "insufficient_cash"),
    ],
)
async def test_two_fills_racing_for_the_last_room_one_wins_one_is_refused_and_audited(
    pool: asyncpg.Pool,
    make_settings: Callable[..., Settings],
    risk_overrides: dict[str, Any],
    cash: str | None,
    code: str,
) -> None:
    """Both transactions start together; the account row lock serialises the re-checks."""
    from coinpilot.domain.fills import Fill

    risk = {"initial_balance_krw": cash or "10000000", **risk_overrides}
    app = make_settings(risk=risk).app
    await ledger.load_state(pool, app, T0, {})
    if cash is None:
        first, second = order("KRW-BTC"), order("KRW-ETH", close="4000000")
    else:
        first, second = (order(s, close="2000", amount="400200") for s in ("KRW-BTC", "KRW-ETH"))
    results = await asyncio.gather(
        ledger.buy(pool, first, app, T0), ledger.buy(pool, second, app, T0)
    )
    fills = [r for r in results if isinstance(r, Fill)]
    assert len(fills) == 1, results
    assert await pool.fetchval("SELECT count(*) FROM positions") == 1
    assert await pool.fetchval("SELECT count(*) FROM trading_history") == 1
    audit = await pool.fetch("SELECT violation_type, symbol FROM risk_audit")
    assert [r["violation_type"] for r in audit] == [code]
    loser = ({"KRW-BTC", "KRW-ETH"} - {r["symbol"] for r in await pool.fetch(
        "SELECT symbol FROM positions")}).pop()  # fmt: skip
    assert audit[0]["symbol"] == loser
    refused = [r for r in results if not isinstance(r, Fill)]
    assert refused[0] is not None
    assert refused[0].verdict.reason_code == code
    day = await pool.fetchrow("SELECT buy_count, trade_count FROM daily_risk_state")
    assert (day["buy_count"], day["trade_count"]) == (1, 1)
    assert (await ledger.verify(pool)).ok


async def test_a_buy_just_after_kst_midnight_opens_the_new_day_at_the_equity_before_it(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    """The new day's opening equity is 10 M (the pre-trade equity), not the cash left after."""
    app = settings.app
    before = datetime(2026, 3, 2, 14, 59, 30, tzinfo=UTC)  # 23:59:30 on 2 March in Seoul
    after = datetime(2026, 3, 2, 15, 0, 5, tzinfo=UTC)  # 00:00:05 on 3 March in Seoul
    await ledger.load_state(pool, app, before, {})
    fill = await ledger.buy(pool, order(ts=before.replace(second=0)), app, after)
    assert fill is not None
    days = {
        str(r["trade_date"]): r
        for r in await pool.fetch("SELECT * FROM daily_risk_state ORDER BY trade_date")
    }
    assert sorted(days) == ["2026-03-02", "2026-03-03"]
    assert days["2026-03-03"]["opening_equity"] == D(10_000_000)
    assert days["2026-03-03"]["buy_count"] == 1
    assert days["2026-03-02"]["buy_count"] == 0
    # The new day's PnL at the fill price is minus the fee and the slippage, not +0.5 M.
    state = await ledger.load_state(pool, app, after, {"KRW-BTC": 90_000_000.0})
    assert state.equity({"KRW-BTC": 90_000_000.0}) - state.day.opening_equity < 0


async def test_a_stop_loss_sell_keeps_the_positions_high_water_mark(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    """DECISIONS: the SELL row records the position's HWM, never the exit price."""
    app = settings.app
    await ledger.load_state(pool, app, T0, {})
    fill = await ledger.buy(pool, order(), app, T0)
    assert fill is not None
    assert await ledger.raise_hwm(pool, "KRW-BTC", D("91000000"), T0)
    out = T0 + timedelta(minutes=5)
    sold = await ledger.sell(pool, "KRW-BTC", out, D("87000000"), "STOP_LOSS", None, app, out, {})
    assert sold is not None
    row = await pool.fetchrow("SELECT * FROM trading_history WHERE side = 'SELL'")
    assert row["high_water_mark"] == D("91000000")
    assert row["price"] == D("87000000") * (1 - app.fills.slippage)


async def test_an_exit_after_a_same_candle_re_entry_is_not_taken_for_the_first_exit(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    """Exit on candle t, re-enter on t, exit again while t is still the newest candle."""
    app = settings.app
    await ledger.load_state(pool, app, T0, {})
    t = T0 + timedelta(minutes=10)
    assert await ledger.buy(pool, order(), app, T0) is not None
    assert await ledger.sell(pool, "KRW-BTC", t, D("91000000"), "TAKE_PROFIT", None, app, t, {})
    assert await ledger.buy(pool, order(ts=t), app, t) is not None
    later = t + timedelta(seconds=50)
    second = await ledger.sell(pool, "KRW-BTC", t, D("90500000"), "TIME_LIMIT", None, app,
                               later, {})  # fmt: skip
    assert second is not None
    assert await pool.fetchval("SELECT count(*) FROM positions") == 0
    assert await pool.fetchval("SELECT count(*) FROM trading_history WHERE side = 'SELL'") == 2
    # Re-running the same exit decision is still a no-op.
    assert await ledger.sell(pool, "KRW-BTC", t, D("90500000"), "TIME_LIMIT", None, app,
                             later, {}) is None  # fmt: skip
    assert (await ledger.verify(pool)).ok


# --- what the ledger writes down besides the money --------------------------------------

FULL = RiskVerdict(False, "max_concurrent_positions", "max concurrent positions (3) reached")
HALT = RiskVerdict(False, "daily_loss_limit", "daily loss limit reached (-1.2%)", halt=True)


async def risk_notices(pool: asyncpg.Pool) -> list[dict[str, str]]:
    rows = await pool.fetch("SELECT payload FROM outbox WHERE kind = 'risk' ORDER BY id")
    return [r["payload"] for r in rows]


async def test_a_halt_records_its_reason_and_when(pool: asyncpg.Pool, settings: Settings) -> None:
    app = settings.app
    await ledger.load_state(pool, app, T0, {})
    halted_at = T0 + timedelta(minutes=7)
    await ledger.record_rejection(pool, "KRW-BTC", HALT, halted_at, app, {})
    day = await pool.fetchrow("SELECT * FROM daily_risk_state WHERE trade_date = '2026-03-02'")
    assert (day["is_trading_halted"], day["halt_reason"], day["updated_at"]) == (
        True, "daily loss limit reached (-1.2%)", halted_at,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("first", "again", "announced"),
    [
        # 01:00 and 10:00 on 3 March in Seoul (16:00 on 2 March and 01:00 on 3 March UTC):
        # one KST day, so only the first is announced, although the UTC dates differ
        (datetime(2026, 3, 2, 16, 0, tzinfo=UTC), datetime(2026, 3, 3, 1, 0, tzinfo=UTC), 1),
        # 23:00 on 2 March and 01:00 on 3 March in Seoul, one UTC date: two KST days, both
        (datetime(2026, 3, 2, 14, 0, tzinfo=UTC), datetime(2026, 3, 2, 16, 0, tzinfo=UTC), 2),
    ],
)
async def test_a_refusal_is_announced_once_per_day_counted_from_midnight_in_seoul(
    pool: asyncpg.Pool, settings: Settings, first: datetime, again: datetime, announced: int
) -> None:
    app = settings.app
    await ledger.load_state(pool, app, first, {})
    await ledger.record_rejection(pool, "KRW-BTC", FULL, first, app, {})
    await ledger.record_rejection(pool, "KRW-BTC", FULL, again, app, {})
    assert await pool.fetchval("SELECT count(*) FROM risk_audit") == 2  # every one audited
    assert len(await risk_notices(pool)) == announced


# 90,000,000 × 1.0005 = 90,045,000; 500,000 / 90,045,000 → 0.00555277 coins (8 decimals,
# rounded down), notional 499,999.17465, fee 0.05 % = 249.999587325
BUY_PRICE, QTY = D("90045000"), D("0.00555277")
BUY_NOTIONAL, BUY_FEE = D("499999.17465"), D("249.999587325")
# the exit at 91,000,000 × 0.9995 = 90,954,500: notional 90,954,500 × 0.00555277 =
# 454,772.5 + 45,477.25 + 4,547.725 + 251.943965 (× 0.005, 0.0005, 0.00005, 0.00000277)
# = 505,049.418965, fee 252.5247094825
SELL_PRICE, SELL_NOTIONAL, SELL_FEE = D("90954500"), D("505049.418965"), D("252.5247094825")
GROSS = D("5050.244315")  # 505,049.418965 − 499,999.17465
NET = D("4547.7200181925")  # 5,050.244315 − 249.999587325 − 252.5247094825
ROUND_TRIP_FEES = D("502.5242968075")  # 249.999587325 + 252.5247094825
MONEY = ("price", "quantity", "notional_krw", "fee_krw", "pnl_krw", "gross_pnl_krw",
         "round_trip_fees_krw")  # fmt: skip


def decimals(payload: dict[str, str]) -> dict[str, object]:
    """Numbers compared as numbers: 90045000.0000 and 90045000 are the same price."""
    return {k: D(v) if k in MONEY else v for k, v in payload.items()}


async def test_each_fill_is_announced_with_what_it_filled(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    app = settings.app
    await ledger.load_state(pool, app, T0, {})
    order = ledger.BuyOrder("KRW-BTC", T0, D(90_000_000), D(500_000), "BULL", {})
    assert await ledger.buy(pool, order, app, T0) is not None
    out = T0 + timedelta(minutes=30)
    assert await ledger.sell(pool, "KRW-BTC", out, D(91_000_000), "TAKE_PROFIT", None, app,
                             out, {})  # fmt: skip
    rows = await pool.fetch("SELECT payload FROM outbox WHERE kind = 'trade' ORDER BY id")
    bought, sold = (decimals(r["payload"]) for r in rows)
    assert bought == {
        "symbol": "KRW-BTC", "side": "BUY", "price": BUY_PRICE, "quantity": QTY,
        "notional_krw": BUY_NOTIONAL, "fee_krw": BUY_FEE, "strategy": "AdaptiveMeanReversion",
        "executed_at": "2026-03-02T01:00:00+00:00", "regime": "BULL",
    }  # fmt: skip
    assert sold == {
        "symbol": "KRW-BTC", "side": "SELL", "price": SELL_PRICE, "quantity": QTY,
        "notional_krw": SELL_NOTIONAL, "fee_krw": SELL_FEE, "strategy": "AdaptiveMeanReversion",
        "executed_at": "2026-03-02T01:30:00+00:00", "exit_reason": "TAKE_PROFIT",
        "pnl_krw": NET, "gross_pnl_krw": GROSS, "round_trip_fees_krw": ROUND_TRIP_FEES,
    }  # fmt: skip


async def test_risk_notices_are_critical_for_a_cooldown_or_halt_and_warnings_otherwise(
    pool: asyncpg.Pool, make_settings: Callable[..., Settings]
) -> None:
    """The level picks the alert's colour: red for what stops trading, yellow for a refusal."""
    app = make_settings(risk={"cooldown_after_consecutive_losses": 1}).app  # 2 h cooldown
    await ledger.load_state(pool, app, T0, {})
    await ledger.record_rejection(pool, "KRW-ETH", FULL, T0, app, {})
    halted_at = T0 + timedelta(minutes=1)
    await ledger.record_rejection(pool, "KRW-XRP", HALT, halted_at, app, {})
    order = ledger.BuyOrder("KRW-BTC", T0, D(90_000_000), D(500_000), "BULL", {})
    await pool.execute("UPDATE daily_risk_state SET is_trading_halted = false")
    assert await ledger.buy(pool, order, app, T0) is not None
    out = T0 + timedelta(minutes=5)
    # one loss: 89,000,000 is below the 90,045,000 paid
    assert await ledger.sell(pool, "KRW-BTC", out, D(89_000_000), "STOP_LOSS", None, app,
                             out, {})  # fmt: skip
    assert await risk_notices(pool) == [
        {"type": "max_concurrent_positions", "symbol": "KRW-ETH", "level": "WARNING",
         "message": "max concurrent positions (3) reached", "at": "2026-03-02T01:00:00+00:00"},
        {"type": "daily_loss_limit", "symbol": "KRW-XRP", "level": "CRITICAL",
         "message": "daily loss limit reached (-1.2%)", "at": "2026-03-02T01:01:00+00:00"},
        {"type": "cooldown", "symbol": "KRW-BTC", "level": "CRITICAL",
         "message": "1 consecutive losses: no entries for 2 h",
         "at": "2026-03-02T01:05:00+00:00"},
    ]  # fmt: skip


async def test_a_sells_key_names_the_candle_and_the_entry_it_closes(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    app = settings.app
    await ledger.load_state(pool, app, T0, {})
    order = ledger.BuyOrder("KRW-BTC", T0, D(90_000_000), D(500_000), "BULL", {})
    assert await ledger.buy(pool, order, app, T0) is not None
    entry = await pool.fetchval("SELECT id FROM trading_history")
    out = T0 + timedelta(minutes=3)
    assert await ledger.sell(pool, "KRW-BTC", out, D(90_000_000), "TIME_LIMIT", None, app,
                             out, {})  # fmt: skip
    keys = [r["idempotency_key"] for r in await pool.fetch(
        "SELECT idempotency_key FROM trading_history ORDER BY executed_at")]  # fmt: skip
    assert keys == [
        "KRW-BTC|2026-03-02T01:00:00+00:00|BUY",
        f"KRW-BTC|2026-03-02T01:03:00+00:00|SELL|{entry}",
    ]


async def test_a_buy_records_its_trade_and_position_in_full(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    app = settings.app
    await ledger.load_state(pool, app, T0, {})
    decided = T0 + timedelta(seconds=64)  # the decision a minute after the candle opened
    order = ledger.BuyOrder("KRW-BTC", T0, D(90_000_000), D(500_000), "SIDEWAYS", {"rsi": 28})
    assert await ledger.buy(pool, order, app, decided) is not None
    trade = await pool.fetchrow("SELECT * FROM trading_history")
    wanted = {
        "idempotency_key": "KRW-BTC|2026-03-02T01:00:00+00:00|BUY", "symbol": "KRW-BTC",
        "side": "BUY", "price": BUY_PRICE, "quantity": QTY, "notional": BUY_NOTIONAL,
        "fee": BUY_FEE, "realized_pnl": None, "entry_price": None,
        "strategy_name": "AdaptiveMeanReversion", "regime": "SIDEWAYS",
        "high_water_mark": BUY_PRICE,  # a new position's mark starts at what it paid
        "exit_reason": None, "signal_info": {"rsi": 28}, "candle_ts": T0, "executed_at": decided,
    }  # fmt: skip
    assert {k: trade[k] for k in wanted} == wanted
    position = dict(await pool.fetchrow("SELECT * FROM positions"))
    assert {k: v for k, v in position.items() if k != "updated_at"} == {
        "symbol": "KRW-BTC", "quantity": QTY, "avg_price": BUY_PRICE,
        "cost_basis": BUY_NOTIONAL, "regime": "SIDEWAYS", "high_water_mark": BUY_PRICE,
        "opened_at": decided, "entry_trade_id": trade["id"],
    }  # fmt: skip
    account = await pool.fetchrow("SELECT * FROM account_state")
    # 10,000,000 − 499,999.17465 − 249.999587325
    assert (account["cash"], account["fees_paid"], account["updated_at"]) == (
        D("9499750.825762675"), BUY_FEE, decided,
    )  # fmt: skip


async def test_a_refused_buy_is_audited_with_its_regime(
    pool: asyncpg.Pool, make_settings: Callable[..., Settings]
) -> None:
    app = make_settings(risk={"max_concurrent_positions": 1}).app
    await ledger.load_state(pool, app, T0, {})
    assert await ledger.buy(pool, order("KRW-ETH", close="4000000"), app, T0) is not None
    refused = await ledger.buy(pool, order(), app, T0)
    assert isinstance(refused, ledger.Refused)
    audit = await pool.fetchrow("SELECT * FROM risk_audit")
    assert (audit["violation_type"], audit["symbol"], audit["details"], audit["ts"]) == (
        "max_concurrent_positions", "KRW-BTC", {"regime": "BULL"}, T0,
    )  # fmt: skip


async def test_a_fill_without_an_account_row_says_what_is_missing(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    with pytest.raises(LookupError, match=r"^account_state has no row; run migrations and "
                       r"start the daemon once$"):  # fmt: skip
        await ledger.buy(pool, order(), settings.app, T0)


async def test_a_fill_its_day_row_does_not_count_is_rolled_back_naming_the_day(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    """A trigger that silently skips every update of the day row: the BUY must not commit
    uncounted (the daily trade limit would never see it)."""
    app = settings.app
    await ledger.load_state(pool, app, T0, {})
    await pool.execute("""
        CREATE FUNCTION skip_update() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN RETURN NULL; END $$;
        CREATE TRIGGER skip_update BEFORE UPDATE ON daily_risk_state
        FOR EACH ROW EXECUTE FUNCTION skip_update();""")  # fmt: skip
    before = await snapshot(pool)
    with pytest.raises(LookupError, match=r"^daily_risk_state has no row for 2026-03-02$"):
        await ledger.buy(pool, order(), app, T0)
    assert await snapshot(pool) == before


@pytest.mark.parametrize("read_only", [False, True])
async def test_reading_the_state_does_not_wait_for_a_fill_in_progress(
    pool: asyncpg.Pool, settings: Settings, read_only: bool
) -> None:
    """Only a fill locks the account and day rows: the bot's state and `coinpilot status`
    read them while another transaction holds those locks (as a fill does until it
    commits)."""
    app = settings.app
    await ledger.load_state(pool, app, T0, {})
    async with pool.acquire() as holder:
        locked = holder.transaction()
        await locked.start()
        await holder.execute("SELECT 1 FROM account_state WHERE id = 1 FOR UPDATE")
        await holder.execute("UPDATE daily_risk_state SET trade_count = trade_count + 1")
        reading = asyncio.ensure_future(ledger.load_state(pool, app, T0, {}, read_only=read_only))
        blocked = False
        # Until the read finishes, or PostgreSQL shows a session waiting for a lock here.
        while not reading.done() and not blocked:
            blocked = bool(await pool.fetchval(
                """SELECT count(*) FROM pg_stat_activity
                   WHERE datname = current_database() AND wait_event_type = 'Lock'"""))  # fmt: skip
            await asyncio.sleep(0.01)
        await locked.rollback()
    state = await reading
    assert not blocked
    assert state.account.cash == D(10_000_000)


async def test_the_loaded_state_is_what_the_fills_stored(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    """A BTC round trip (figures above), an ETH position still open and a halt, read back."""
    app = settings.app
    await ledger.load_state(pool, app, T0, {})
    assert await ledger.buy(pool, order(), app, T0) is not None
    out = T0 + timedelta(minutes=30)
    assert await ledger.sell(pool, "KRW-BTC", out, D(91_000_000), "TAKE_PROFIT", None, app,
                             out, {})  # fmt: skip
    # ETH: 4,000,000 × 1.0005 = 4,002,000; 500,000 / 4,002,000 → 0.12493753 coins,
    # notional 499,999.99506, fee 249.99999753
    eth_at = T0 + timedelta(minutes=40)
    eth = ledger.BuyOrder("KRW-ETH", eth_at, D(4_000_000), D(500_000), "SIDEWAYS", {})
    assert await ledger.buy(pool, eth, app, eth_at) is not None
    await ledger.record_rejection(pool, "KRW-XRP", HALT, eth_at, app, {})
    entry = await pool.fetchval("SELECT id FROM trading_history WHERE symbol = 'KRW-ETH'")
    state = await ledger.load_state(pool, app, eth_at, {})
    # cash: 10,000,000 − 500,249.174237325 (BTC bought) + 504,796.8942555175 (sold, less
    # its fee) − 500,249.99505753 (ETH bought); fees 249.999587325 + 252.5247094825 +
    # 249.99999753
    assert state.account == ledger.Account(
        D(10_000_000), D("9504297.7249606625"), GROSS, D("752.5242943375"), 0, None
    )
    assert state.positions == {"KRW-ETH": ledger.Position(
        "KRW-ETH", D("0.12493753"), D(4_002_000), D("499999.99506"), "SIDEWAYS", D(4_002_000),
        eth_at, entry,
    )}  # fmt: skip
    assert state.day == ledger.Day(
        date(2026, 3, 2), D(10_000_000), GROSS, D("752.5242943375"), 3, 2, 1, True,
        "daily loss limit reached (-1.2%)",
    )  # fmt: skip


async def waits_for_a_lock(pool: asyncpg.Pool, task: asyncio.Future[Any]) -> bool:
    """True once PostgreSQL shows a session of this database waiting for a lock; False if
    ``task`` finishes first."""
    while not task.done():
        if await pool.fetchval(
            """SELECT count(*) FROM pg_stat_activity
               WHERE datname = current_database() AND wait_event_type = 'Lock'"""
        ):
            return True
        await asyncio.sleep(0.01)
    return False


async def test_a_buy_reads_the_limits_only_after_the_fill_before_it_commits(
    pool: asyncpg.Pool, make_settings: Callable[..., Settings]
) -> None:
    """Another fill holds the account row and takes the last position slot meanwhile: the
    BUY, queued on that lock, must see the slot taken (not what it was before) and refuse."""
    app = make_settings(risk={"max_concurrent_positions": 1}).app
    await ledger.load_state(pool, app, T0, {})
    async with pool.acquire() as other:
        fill = other.transaction()
        await fill.start()
        await other.execute("SELECT 1 FROM account_state WHERE id = 1 FOR UPDATE")
        buying = asyncio.ensure_future(ledger.buy(pool, order("KRW-ETH", close="4000000"),
                                                  app, T0))  # fmt: skip
        assert await waits_for_a_lock(pool, buying)
        await other.execute(
            """INSERT INTO positions (symbol, quantity, avg_price, cost_basis, regime,
                   high_water_mark, opened_at)
               VALUES ('KRW-BTC', 1, 1000, 1000, 'BULL', 1000, $1)""",
            T0,
        )  # fmt: skip
        await fill.commit()
    result = await buying
    assert isinstance(result, ledger.Refused)
    assert result.verdict.reason_code == "max_concurrent_positions"
    assert [r["symbol"] for r in await pool.fetch("SELECT symbol FROM positions")] == ["KRW-BTC"]


async def test_a_sell_reads_the_loss_streak_only_after_the_fill_before_it_commits(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    """A losing exit queued behind another fill that brought the streak to 2 makes it 3:
    the 2 h cooldown starts (shipped: after 3 consecutive losses)."""
    app = settings.app
    await ledger.load_state(pool, app, T0, {})
    assert await ledger.buy(pool, order(), app, T0) is not None
    out = T0 + timedelta(minutes=5)
    async with pool.acquire() as other:
        fill = other.transaction()
        await fill.start()
        await other.execute("SELECT 1 FROM account_state WHERE id = 1 FOR UPDATE")
        selling = asyncio.ensure_future(ledger.sell(
            pool, "KRW-BTC", out, D(89_000_000), "STOP_LOSS", None, app, out, {}))  # fmt: skip
        assert await waits_for_a_lock(pool, selling)
        await other.execute("UPDATE account_state SET consecutive_losses = 2")
        await fill.commit()
    sold = await selling
    assert sold is not None
    assert sold.cooldown_until == out + timedelta(hours=2)
    account = await pool.fetchrow("SELECT consecutive_losses, cooldown_until FROM account_state")
    assert (account["consecutive_losses"], account["cooldown_until"]) == (
        0, out + timedelta(hours=2),
    )  # fmt: skip
