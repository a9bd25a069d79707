"""The ledger on real PostgreSQL against a small independent model of the account.

Hypothesis drives random sequences of buys, sells, price moves, repeated decisions for an
already executed candle, daemon restarts (a new pool on the same database) and injected
faults (a trigger that fails one table's write). After every step cash, fees, realized PnL,
the loss streak and every open position equal the model to the last digit, the invariant
holds, cash is never negative and no candle executed twice.

The model does its own arithmetic from the rules in DECISIONS "Upbit-faithful fills":
BUY at close × (1 + slippage), SELL at close × (1 − slippage), quantity rounded down to
8 decimals, fee 0.05 % of price × quantity, nothing under 5,000 KRW after rounding.

COINPILOT_LEDGER_PROFILE picks the size: ``fast`` (make test), ``mutation`` (make
mutation, one short run per mutant) or ``big`` (hundreds of longer sequences).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, Decimal, localcontext
from typing import Any, ClassVar

import asyncpg
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from coinpilot.adapters import db as dbmod
from coinpilot.adapters import ledger
from coinpilot.config import AppConfig, load_config
from coinpilot.domain.fills import Fill
from tests import kept_db
from tests.conftest import fresh_database

D = Decimal
ZERO = Decimal(0)
T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
SYMBOLS = ("KRW-BTC", "KRW-ETH")  # two symbols: sells, re-buys and repeats collide
symbols_and_closes = st.sampled_from(SYMBOLS).flatmap(lambda s: st.tuples(st.just(s), BANDS[s]))
TABLES = ("positions", "trading_history", "account_state", "daily_risk_state", "outbox")
PROFILES = {"fast": (20, 20), "mutation": (6, 15), "big": (400, 50)}
PROFILE = os.environ.get("COINPILOT_LEDGER_PROFILE", "fast")
EXAMPLES, STEPS = PROFILES[PROFILE]

INITIAL = D(10_000_000)
FEE, SLIP, MIN_ORDER, STEP = D("0.0005"), D("0.0005"), D(5000), D("0.00000001")
LOSSES_FOR_COOLDOWN = 3

# Each symbol trades in its own realistic band: whole-won prices for BTC, one decimal for
# ETH (Upbit's KRW tick sizes). Far wider ranges (a 1,000x move between a buy at 0.99 KRW
# and its sell) push a fee past Python's 28-digit default context, where it is rounded in
# the last digit while PostgreSQL's numeric stays exact.
BANDS = {
    "KRW-BTC": st.integers(50_000_000, 150_000_000).map(D),
    "KRW-ETH": st.decimals(D(1000), D(5000), places=1),
}
# Mostly orders that fill (the simplest first draw is 6,000), sometimes the boundaries.
amounts = st.one_of(
    st.integers(6_000, 4_000_000).map(D), st.sampled_from([D(0), D(4999), D(5000), D(5001)])
)


@dataclass
class Held:
    quantity: Decimal
    price: Decimal
    fee: Decimal
    serial: int  # which entry: a SELL's key names the BUY it closes

    @property
    def cost(self) -> Decimal:
        return self.price * self.quantity


@dataclass
class Model:
    cash: Decimal = INITIAL
    realized: Decimal = ZERO  # Σ (sell notional − cost basis), gross of fees
    fees: Decimal = ZERO
    streak: int = 0
    held: dict[str, Held] = field(default_factory=dict)
    done: set[str] = field(default_factory=set)  # executed symbol|candle|side(|entry)
    entries: int = 0

    def sell_key(self, symbol: str, candle_key: str) -> str:
        pos = self.held.get(symbol)
        return f"{candle_key}|#{pos.serial}" if pos else candle_key

    def buy(self, key: str, symbol: str, close: Decimal, amount: Decimal) -> str:
        """'skip' (no order), 'dup' (candle done), 'held' or 'cash' (refused), 'filled'."""
        with localcontext(prec=80):  # exact, as PostgreSQL's numeric is
            return self._buy(key, symbol, close, amount)

    def _buy(self, key: str, symbol: str, close: Decimal, amount: Decimal) -> str:
        if amount < MIN_ORDER or close <= 0:
            return "skip"
        price = close * (1 + SLIP)
        qty = (amount / price).quantize(STEP, rounding=ROUND_DOWN)
        if qty <= 0 or price * qty < MIN_ORDER:
            return "skip"
        if key in self.done:
            return "dup"
        fee = price * qty * FEE
        if symbol in self.held:
            return "held"
        if self.cash < price * qty + fee:
            return "cash"
        self.cash -= price * qty + fee
        self.fees += fee
        self.entries += 1
        self.held[symbol] = Held(qty, price, fee, self.entries)
        self.done.add(key)
        return "filled"

    def sell(self, key: str, symbol: str, close: Decimal) -> bool:
        with localcontext(prec=80):
            return self._sell(key, symbol, close)

    def _sell(self, candle_key: str, symbol: str, close: Decimal) -> bool:
        pos = self.held.get(symbol)
        key = self.sell_key(symbol, candle_key)
        if pos is None or key in self.done:
            return False
        price = close * (1 - SLIP)
        notional = price * pos.quantity
        fee = notional * FEE
        self.cash += notional - fee
        self.realized += notional - pos.cost
        self.fees += fee
        net = notional - fee - pos.cost - pos.fee
        self.streak = 0 if net >= 0 else (self.streak + 1) % LOSSES_FOR_COOLDOWN
        del self.held[symbol]
        self.done.add(key)
        return True


def recorded(step: Callable[..., None]) -> Callable[..., None]:
    """Keep every failure: under the mutation profile Hypothesis does not shrink, and a
    failure it then cannot replay exactly must still fail the test."""

    @functools.wraps(step)
    def run(self: LedgerMachine, *args: Any, **kwargs: Any) -> None:
        try:
            step(self, *args, **kwargs)
        except Exception as exc:
            LedgerMachine.failures.append(f"{step.__name__}: {exc!r}")
            raise

    return run


class LedgerMachine(RuleBasedStateMachine):
    dsn: str = ""  # set by the test: one database, emptied before each sequence
    app: AppConfig
    failures: ClassVar[list[str]] = []

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.model = Model()
        self.minute = 0
        self.marks: dict[str, float] = {}
        self.pool: asyncpg.Pool = self.run(self._start())

    def run(self, coro):  # type: ignore[no-untyped-def]
        return self.loop.run_until_complete(coro)

    async def _start(self) -> asyncpg.Pool:
        pool = await dbmod.create_pool(self.dsn, min_size=1, max_size=2)
        await pool.execute(
            "TRUNCATE account_state, positions, trading_history, daily_risk_state, outbox,"
            " risk_audit RESTART IDENTITY CASCADE"
        )
        await ledger.load_state(pool, self.app, T0, {})
        return pool

    def teardown(self) -> None:
        self.run(self.pool.close())
        self.loop.close()

    def _now(self) -> tuple[datetime, datetime]:
        """A fresh closed candle and the decision time a few seconds after it."""
        self.minute += 1
        candle = T0 + timedelta(minutes=self.minute)
        return candle, candle + timedelta(seconds=66)

    async def _buy(self, symbol: str, candle: datetime, now: datetime, close: Decimal,
                   amount: Decimal) -> ledger.Fill | None:  # fmt: skip
        order = ledger.BuyOrder(symbol, candle, close, amount, "BULL", {"p": "prop"})
        return await ledger.buy(self.pool, order, self.app, now)

    async def _sell(self, symbol: str, candle: datetime, now: datetime,
                    close: Decimal) -> ledger.SellResult | None:  # fmt: skip
        return await ledger.sell(self.pool, symbol, candle, close, "TEST", None, self.app, now, {})

    def _expect_buy(self, symbol: str, candle: datetime, now: datetime, close: Decimal,
                    amount: Decimal) -> None:  # fmt: skip
        key = ledger.idempotency_key(symbol, candle, "BUY")
        outcome = self.model.buy(key, symbol, close, amount)
        result = self.run(self._buy(symbol, candle, now, close, amount))
        assert isinstance(result, Fill) is (outcome == "filled"), (outcome, result)
        if outcome in ("held", "cash"):  # refused by the limits, and audited
            assert isinstance(result, ledger.Refused), (outcome, result)

    @rule(quote=symbols_and_closes, amount=amounts)
    @recorded
    def buy(self, quote: tuple[str, Decimal], amount: Decimal) -> None:
        symbol, close = quote
        candle, now = self._now()
        self._expect_buy(symbol, candle, now, close, amount)

    @rule(quote=symbols_and_closes)
    @recorded
    def sell(self, quote: tuple[str, Decimal]) -> None:
        symbol, close = quote
        candle, now = self._now()
        sold = self.model.sell(ledger.idempotency_key(symbol, candle, "SELL"), symbol, close)
        result = self.run(self._sell(symbol, candle, now, close))
        assert (result is not None) is sold

    @precondition(lambda self: bool(self.model.held))
    @rule(data=st.data())
    @recorded
    def sell_held(self, data: st.DataObject) -> None:
        """An exit of a position actually held (random sells mostly find none)."""
        symbol = data.draw(st.sampled_from(sorted(self.model.held)))
        self.sell((symbol, data.draw(BANDS[symbol])))

    @precondition(lambda self: bool(self.model.done))
    @rule(data=st.data(), amount=amounts)
    @recorded
    def repeat_a_decision(self, data: st.DataObject, amount: Decimal) -> None:
        """The same candle's decision again (a restart mid-minute): never a second fill."""
        key = data.draw(st.sampled_from(sorted(self.model.done)))
        symbol, ts, side = key.split("|")[:3]
        close = data.draw(BANDS[symbol])
        candle = datetime.fromisoformat(ts)
        now = candle + timedelta(seconds=90)
        if side == "BUY":
            self._expect_buy(symbol, candle, now, close, amount)
        else:  # a no-op unless the symbol was bought again since: then it closes that one
            sold = self.model.sell(f"{symbol}|{ts}|SELL", symbol, close)
            assert (self.run(self._sell(symbol, candle, now, close)) is not None) is sold

    @rule(moves=st.dictionaries(st.sampled_from(SYMBOLS), st.floats(1000.0, 1.5e8, width=32)))
    @recorded
    def prices_move(self, moves: dict[str, float]) -> None:
        """Marked equity and exposure follow the marks; nothing stored changes."""
        self.marks.update(moves)
        _, now = self._now()
        state = self.run(ledger.load_state(self.pool, self.app, now, self.marks))
        exposure = sum(
            (h.quantity * (D(repr(self.marks[s])) if s in self.marks else h.price)
             for s, h in self.model.held.items()),
            D(0),
        )  # fmt: skip
        assert state.exposure(self.marks) == exposure
        assert state.equity(self.marks) == self.model.cash + exposure

    @rule()
    @recorded
    def restart(self) -> None:
        """The daemon stops and starts: a new pool finds exactly the stored state."""
        self.run(self.pool.close())
        self.pool = self.run(dbmod.create_pool(self.dsn, min_size=1, max_size=2))

    @rule(table=st.sampled_from(TABLES), quote=symbols_and_closes, amount=amounts,
          selling=st.booleans())  # fmt: skip
    @recorded
    def fault(self, table: str, quote: tuple[str, Decimal], amount: Decimal,
              selling: bool) -> None:  # fmt: skip
        """A write that fails half-way leaves every table as it was."""
        symbol, close = quote
        candle, now = self._now()
        self.run(self.pool.execute(f"""
            CREATE FUNCTION fail_now() RETURNS trigger LANGUAGE plpgsql AS
            $$ BEGIN RAISE EXCEPTION 'injected fault'; END $$;
            CREATE TRIGGER fail_now BEFORE INSERT OR UPDATE OR DELETE ON {table}
            FOR EACH ROW EXECUTE FUNCTION fail_now();"""))  # fmt: skip
        try:
            probe = Model(self.model.cash, held=dict(self.model.held), done=set(self.model.done))
            if selling:
                outcome = "filled" if probe.sell("k", symbol, close) else "skip"
                op = self._sell(symbol, candle, now, close)
            else:
                outcome = probe.buy("k", symbol, close, amount)
                op = self._buy(symbol, candle, now, close, amount)
            if outcome == "filled":
                with pytest.raises(asyncpg.RaiseError):
                    self.run(op)
            else:  # nothing to fill; a refusal's audit may fail and roll back: either way
                with contextlib.suppress(asyncpg.RaiseError):
                    self.run(op)
        finally:
            self.run(self.pool.execute("DROP TRIGGER fail_now ON " + table))
            self.run(self.pool.execute("DROP FUNCTION fail_now()"))

    @invariant()
    @recorded
    def matches_the_model(self) -> None:
        self.run(self._check())

    async def _check(self) -> None:
        m = self.model
        account = await self.pool.fetchrow("SELECT * FROM account_state WHERE id = 1")
        assert account["cash"] == m.cash
        assert account["cash"] >= 0
        assert account["realized_pnl"] == m.realized
        assert account["fees_paid"] == m.fees
        assert account["consecutive_losses"] == m.streak
        rows = await self.pool.fetch("SELECT * FROM positions")
        stored = {r["symbol"]: (r["quantity"], r["avg_price"], r["cost_basis"]) for r in rows}
        assert stored == {s: (h.quantity, h.price, h.cost) for s, h in m.held.items()}
        keys = [r["idempotency_key"] for r in await self.pool.fetch(
            "SELECT idempotency_key FROM trading_history")]  # fmt: skip
        assert len(keys) == len(set(keys))
        assert Counter(k.split("|#")[0] for k in m.done) == Counter(
            "|".join(k.split("|")[:3]) for k in keys
        )
        check = await ledger.verify(self.pool)
        assert check.ok, check
        assert check.left == m.cash + sum((h.cost for h in m.held.values()), D(0))
        assert check.right == INITIAL + m.realized - m.fees


def test_ledger_equals_an_independent_model(
    pg_admin_dsn: str, pg_template: str, kept_slot: kept_db.Slot | None
) -> None:
    async def run_in(dsn: str) -> None:
        LedgerMachine.dsn = dsn
        LedgerMachine.failures.clear()
        await asyncio.to_thread(
            run_state_machine_as_test,
            LedgerMachine,
            settings=settings(
                max_examples=EXAMPLES,
                stateful_step_count=STEPS,
                deadline=None,
                derandomize=PROFILE != "big",
                # Under mutation a failure only has to be seen, not shrunk to its shortest.
                phases=[Phase.explicit, Phase.generate] if PROFILE == "mutation" else list(Phase),
                database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
            ),
        )

    async def main() -> None:
        if kept_slot is not None:  # `make mutation`: the session's kept database
            await kept_slot.reset()
            await run_in(kept_slot.dsn)
            return
        async with fresh_database(pg_admin_dsn, "cp_prop", pg_template) as dsn:
            await run_in(dsn)

    shipped = load_config(environ={}).app
    # The risk limits have their own tests; here only the cash and the one position per
    # symbol may refuse a BUY (the loss streak is still counted, with a 0 h cooldown).
    loose = shipped.risk.model_copy(update={
        "max_concurrent_positions": 10, "max_daily_trades": 10**6, "max_daily_loss": 1.0,
        "max_total_exposure": 1.0, "cooldown_hours": 0.0,
    })  # fmt: skip
    LedgerMachine.app = shipped.model_copy(update={"risk": loose})
    asyncio.run(main())
    assert LedgerMachine.failures == []
