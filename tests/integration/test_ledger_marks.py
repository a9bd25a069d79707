"""Equity, exposure and the daily loss limit with open positions marked at moving prices.

Every figure is worked out by hand from the fill rules (close × 1.0005 for a BUY, quantity
rounded down to 8 decimals, fee 0.05 %) and written next to the assertion.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import asyncpg
import pytest

from coinpilot.adapters import ledger
from coinpilot.config import Settings
from coinpilot.domain import risk
from coinpilot.domain.sizing import order_amount

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)  # 10:00 in Seoul
NEXT_DAY = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)  # 00:00 on 3 March in Seoul
D = Decimal

# BTC: 90,000,000 × 1.0005 = 90,045,000; 500,000 / 90,045,000 → 0.00555277 coins,
# notional 499,999.17465, fee 249.999587325, debit 500,249.174237325
BTC_QTY = D("0.00555277")
# ETH: 4,000,000 × 1.0005 = 4,002,000; 500,000 / 4,002,000 = 0.1249375312… → 0.12493753,
# notional 499,999.99506, fee 249.99999753, debit 500,249.99505753
ETH_QTY = D("0.12493753")
# 10,000,000 − 500,249.174237325 − 500,249.99505753
CASH_AFTER_BOTH = D("8999500.830705145")


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(risk={"max_daily_loss": 0.01})  # 1 %: 100,000 KRW of 10,000,000


async def buy(pool: asyncpg.Pool, settings: Settings, symbol: str, close: str) -> None:
    order = ledger.BuyOrder(symbol, T0, D(close), D(500_000), "BULL", {})
    assert await ledger.buy(pool, order, settings.app, T0) is not None


async def test_equity_and_exposure_mark_each_position_at_its_own_price(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    app = settings.app
    await ledger.load_state(pool, app, T0, {})
    await buy(pool, settings, "KRW-BTC", "90000000")
    await buy(pool, settings, "KRW-ETH", "4000000")
    state = await ledger.load_state(pool, app, T0, {})
    assert state.account.cash == CASH_AFTER_BOTH
    # No marks: each position at its fill price, i.e. its cost basis
    # 499,999.17465 + 499,999.99506 = 999,999.16971
    assert state.exposure({}) == D("999999.16971")
    assert state.equity({}) == D("9999500.000415145")  # cash + 999,999.16971
    # BTC falls to 80,000,000, ETH rises to 5,000,000:
    # 0.00555277 × 80,000,000 = 444,221.6; 0.12493753 × 5,000,000 = 624,687.65
    marks = {"KRW-BTC": 80_000_000.0, "KRW-ETH": 5_000_000.0}
    assert state.exposure(marks) == D("1068909.25")
    assert state.equity(marks) == D("10068410.080705145")
    # Only BTC marked: ETH stays at its fill price 4,002,000 → 499,999.99506
    # 444,221.6 + 499,999.99506 = 944,221.59506
    assert state.exposure({"KRW-BTC": 80_000_000.0}) == D("944221.59506")
    # A mark for a symbol not held changes nothing
    assert state.exposure({"KRW-XRP": 1.0}) == D("999999.16971")
    # The risk snapshot carries the marked equity and the open symbols
    snap = state.risk_state(marks)
    assert snap.equity == D("10068410.080705145")
    assert snap.open_symbols == frozenset({"KRW-BTC", "KRW-ETH"})
    assert snap.opening_equity == D(10_000_000)
    # Sizing on the marked state: equity × 0.20 − exposure
    # = 2,013,682.016141029 − 1,068,909.25 = 944,772.766141029 room, more than the
    # 503,420.50403525725 position cap (equity × 0.05), so the position cap binds
    amount = order_amount(
        equity=state.equity(marks), cash=state.account.cash, exposure=state.exposure(marks),
        regime_ratio=1.0, vol_factor=1.0, limits=app.risk,
    )  # fmt: skip
    assert amount == D("503420.50403525725")


async def test_daily_loss_limit_counts_the_open_positions_at_their_marks(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    """Limit 1 % of 10,000,000 = 100,000: a BTC mark decides the halt, not the cash."""
    app = settings.app
    await ledger.load_state(pool, app, T0, {})
    await buy(pool, settings, "KRW-BTC", "90000000")
    state = await ledger.load_state(pool, app, T0, {})
    cash = D("9499750.825762675")  # 10,000,000 − 500,249.174237325
    assert state.account.cash == cash
    cases = [
        # 0.00555277 × 72,000,000 = 399,799.44 → equity 9,899,550.265762675,
        # loss 100,449.734237325 ≥ 100,000: breached
        (72_000_000.0, D("9899550.265762675"), True),
        # 0.00555277 × 72,100,000 = 400,354.717 → equity 9,900,105.542762675,
        # loss 99,894.457237325 < 100,000: not breached
        (72_100_000.0, D("9900105.542762675"), False),
        # unmarked: at its fill price the loss is only the fee 249.999587325
        (None, D("9999750.000412675"), False),
    ]
    for mark, equity, breached in cases:
        marks = {} if mark is None else {"KRW-BTC": mark}
        snap = state.risk_state(marks)
        assert snap.equity == equity
        assert risk.daily_loss_breached(snap, app.risk) is breached
        verdict = risk.check_entry(snap, "KRW-ETH", app.risk, T0)
        assert (verdict.reason_code == "daily_loss_limit") is breached


async def test_a_new_day_opens_at_the_marked_equity(pool: asyncpg.Pool, settings: Settings) -> None:
    """The first state of a trading day records cash + positions at the marks as opening."""
    app = settings.app
    await ledger.load_state(pool, app, T0, {})
    await buy(pool, settings, "KRW-BTC", "90000000")
    await buy(pool, settings, "KRW-ETH", "4000000")
    marks = {"KRW-BTC": 80_000_000.0, "KRW-ETH": 5_000_000.0}
    state = await ledger.load_state(pool, app, NEXT_DAY, marks)
    assert state.day.trade_date.isoformat() == "2026-03-03"
    assert state.day.opening_equity == D("10068410.080705145")
    assert (state.day.buy_count, state.day.trade_count) == (0, 0)
    # Later the same day the opening stays what it was, whatever the marks do
    later = await ledger.load_state(pool, app, NEXT_DAY + timedelta(hours=1), {})
    assert later.day.opening_equity == D("10068410.080705145")


async def test_a_read_only_look_shows_the_day_as_it_would_open_and_writes_nothing(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    """`coinpilot status` reads the ledger without creating the account or the day row."""
    app = settings.app
    empty = await ledger.load_state(pool, app, T0, {}, read_only=True)
    assert empty.account == ledger.Account(D(10_000_000), D(10_000_000), D(0), D(0), 0, None)
    assert empty.positions == {}
    assert empty.day == ledger.Day(date(2026, 3, 2), D(10_000_000), D(0), D(0), 0, 0, 0,
                                   False, None)  # fmt: skip
    assert await pool.fetchval("SELECT count(*) FROM account_state") == 0
    assert await pool.fetchval("SELECT count(*) FROM daily_risk_state") == 0
    await ledger.load_state(pool, app, T0, {})
    await buy(pool, settings, "KRW-BTC", "90000000")
    await buy(pool, settings, "KRW-ETH", "4000000")
    marks = {"KRW-BTC": 80_000_000.0, "KRW-ETH": 5_000_000.0}
    ahead = await ledger.load_state(pool, app, NEXT_DAY, marks, read_only=True)
    # opening as worked out above; nothing counted yet on the new day
    assert ahead.day == ledger.Day(date(2026, 3, 3), D("10068410.080705145"), D(0), D(0),
                                   0, 0, 0, False, None)  # fmt: skip
    assert ahead.account.cash == CASH_AFTER_BOTH
    assert set(ahead.positions) == {"KRW-BTC", "KRW-ETH"}
    assert await pool.fetchval("SELECT count(*) FROM daily_risk_state") == 1  # only 2 March
    today = await ledger.load_state(pool, app, T0, marks, read_only=True)
    assert today.day.opening_equity == D(10_000_000)  # the stored row, not the marks
    assert today.day.buy_count == 2
    assert today.account.cash == CASH_AFTER_BOTH
    assert set(today.positions) == {"KRW-BTC", "KRW-ETH"}


@pytest.fixture
def exact(make_settings: Callable[..., Settings]) -> Settings:
    """No slippage and no fee: 1,000 KRW a coin buys exactly amount / 1,000 coins."""
    return make_settings(fills={"slippage": "0", "fee_rate": "0"})


@pytest.mark.parametrize(("amount", "fills"), [(200_000, True), (200_001, False)])
async def test_a_buy_weighs_the_exposure_cap_at_the_marks_it_is_given(
    pool: asyncpg.Pool, exact: Settings, amount: int, fills: bool
) -> None:
    """1,000 coins of KRW-A bought at 1,000 and marked at 2,000: exposure 2,000,000, equity
    9,000,000 cash + 2,000,000 = 11,000,000, cap 20 % = 2,200,000: room for 200,000 more.
    At the fill price the room would be 20 % × 10,000,000 − 1,000,000 = 1,000,000."""
    app = exact.app
    await ledger.load_state(pool, app, T0, {})
    first = ledger.BuyOrder("KRW-A", T0, D(1000), D(1_000_000), "BULL", {})
    assert isinstance(await ledger.buy(pool, first, app, T0), ledger.Fill)
    then = T0 + timedelta(minutes=1)
    second = ledger.BuyOrder("KRW-B", then, D(1000), D(amount), "BULL", {})
    result = await ledger.buy(pool, second, app, then, {"KRW-A": 2000.0})
    assert isinstance(result, ledger.Fill) is fills
    if not fills:
        assert isinstance(result, ledger.Refused)
        assert result.verdict.reason_code == "max_total_exposure"


async def test_a_day_opened_by_an_exit_marks_the_other_positions_at_the_given_marks(
    pool: asyncpg.Pool, exact: Settings
) -> None:
    """Bought 100 coins of KRW-A and 200 of KRW-B at 1,000 (cash 9,700,000). The first fill of
    3 March sells KRW-A at 1,100 with KRW-B marked at 1,500: the day opens before the exit
    at 9,700,000 + 100 × 1,100 + 200 × 1,500 = 10,110,000."""
    app = exact.app
    await ledger.load_state(pool, app, T0, {})
    for symbol, amount in (("KRW-A", 100_000), ("KRW-B", 200_000)):
        order = ledger.BuyOrder(symbol, T0, D(1000), D(amount), "BULL", {})
        assert isinstance(await ledger.buy(pool, order, app, T0), ledger.Fill)
    next_day = datetime(2026, 3, 2, 15, 1, tzinfo=UTC)  # 00:01 on 3 March in Seoul
    assert await ledger.sell(pool, "KRW-A", next_day, D(1100), "TAKE_PROFIT", None, app,
                             next_day, {}, {"KRW-B": 1500.0})  # fmt: skip
    opening = await pool.fetchval(
        "SELECT opening_equity FROM daily_risk_state WHERE trade_date = '2026-03-03'"
    )
    assert opening == D(10_110_000)


async def test_a_day_opened_by_a_buy_marks_the_positions_held_at_the_given_marks(
    pool: asyncpg.Pool, exact: Settings
) -> None:
    """100 coins of KRW-A bought at 1,000 (cash 9,900,000). The first fill of 3 March buys
    KRW-B with KRW-A marked at 1,500: the day opens before the buy at 9,900,000 + 100 ×
    1,500 = 10,050,000 (at KRW-A's fill price it would be 10,000,000)."""
    app = exact.app
    await ledger.load_state(pool, app, T0, {})
    first = ledger.BuyOrder("KRW-A", T0, D(1000), D(100_000), "BULL", {})
    assert isinstance(await ledger.buy(pool, first, app, T0), ledger.Fill)
    next_day = datetime(2026, 3, 2, 15, 1, tzinfo=UTC)  # 00:01 on 3 March in Seoul
    second = ledger.BuyOrder("KRW-B", next_day, D(1000), D(100_000), "BULL", {})
    result = await ledger.buy(pool, second, app, next_day, {"KRW-A": 1500.0})
    assert isinstance(result, ledger.Fill)
    opening = await pool.fetchval(
        "SELECT opening_equity FROM daily_risk_state WHERE trade_date = '2026-03-03'"
    )
    assert opening == D(10_050_000)
