"""The bot loop beyond the happy path: Redis outages, a slow AI, a failing symbol, the CLI."""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import asyncpg
import numpy as np
import pytest
import redis.asyncio as aioredis

from coinpilot.adapters import ledger
from coinpilot.adapters.cache import Keys, create_redis
from coinpilot.adapters.csvdata import to_candles
from coinpilot.backtest.engine import run_backtest
from coinpilot.commands import status as status_cmd
from coinpilot.commands import verify_ledger
from coinpilot.config import Settings
from coinpilot.domain.ai_types import AiVerdict, EntryCandidate
from coinpilot.embedded import EmbeddedRedis
from coinpilot.httpserver import health_report
from coinpilot.services import bot as botmod
from coinpilot.services.bot import Outcome
from tests.integration.replay_data import BASE, aligned_rows
from tests.replay import Replay

pytestmark = pytest.mark.slow
DAY = BASE + timedelta(days=9)  # 9 days of history first: the hourly MA200 needs 200 hours
AVAX = ["KRW-AVAX"]


@pytest.fixture
async def private_redis() -> AsyncIterator[EmbeddedRedis]:
    """A Redis server of this test's own, so the test can stop and restart it."""
    path = Path(tempfile.mkdtemp(prefix="cp-r-"))  # short: unix socket paths are limited
    server = EmbeddedRedis(path)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(path, ignore_errors=True)


async def _backtest_entries(
    rows: dict[str, Any], settings: Settings, start: datetime, end: datetime
) -> list[tuple[str, int, Decimal, str]]:
    """(symbol, entry time, entry price, exit reason) the backtester trades in [start, end)."""
    candles = {}
    for sym, r in rows.items():
        c = to_candles(r, sym)
        # The last live cycle before ``end`` sees candles that closed a minute before it.
        candles[sym] = c.slice(0, int(np.searchsorted(c.ts, int(end.timestamp()) - 120, "right")))
    result = await run_backtest(candles, settings.app, start=start)
    return sorted((t.symbol, t.entry_ts, t.entry_price, t.exit_reason or "")
                  for t in result.trades)  # fmt: skip


async def _live_entries(pool: asyncpg.Pool) -> list[tuple[str, int, Decimal, str]]:
    buys = await pool.fetch("SELECT * FROM trading_history WHERE side = 'BUY' ORDER BY id")
    sells = {
        r["symbol"] + str(r["executed_at"]): r
        for r in await pool.fetch("SELECT * FROM trading_history WHERE side = 'SELL'")
    }
    out = []
    for b in buys:
        later = [s for s in sells.values() if s["symbol"] == b["symbol"]
                 and s["executed_at"] > b["executed_at"]]  # fmt: skip
        exit_ = min(later, key=lambda s: s["executed_at"]) if later else None
        out.append((b["symbol"], int(b["executed_at"].timestamp()), b["price"],
                    exit_["exit_reason"] if exit_ else ""))  # fmt: skip
    return sorted(out)


async def test_redis_outage_mid_replay_keeps_trading_and_reports_degraded(
    pool: asyncpg.Pool,
    keys: Keys,
    private_redis: EmbeddedRedis,
    data_dir: Path,
    make_settings: Callable[..., Settings],
) -> None:
    """Redis stopped for hours: the same trades happen, /health is degraded, then recovers."""
    settings = make_settings(symbols=AVAX)
    rows = aligned_rows(data_dir, AVAX)
    stop_at, restart_at, end = (DAY + timedelta(minutes=30), DAY + timedelta(hours=4),
                                DAY + timedelta(hours=5))  # fmt: skip
    redis = create_redis(f"unix://{private_redis.socket}")
    seen: dict[str, Any] = {}
    try:
        async with Replay(settings, pool, redis, keys, rows, DAY) as rp:
            await rp.preload(DAY)
            deps = SimpleNamespace(pool=pool, redis=redis, clock=rp.clock, health=rp.health,
                                   services=[rp.bot], settings=settings,
                                   metrics=rp.metrics)  # fmt: skip

            async def after(now: datetime, outcomes: dict[str, Outcome]) -> None:
                assert (await ledger.verify(pool)).ok, now
                assert all(o.action != "ERROR" for o in outcomes.values()), outcomes
                if stop_at <= now < restart_at and "down" not in seen:
                    seen["down"] = (await health_report(deps))[1]

            # The replay calls run_once itself; in the daemon, run() marks the loop running.
            rp.health.service("bot").running = True
            await rp.run_until(stop_at, after)
            assert rp.health.service("bot").degraded_reason is None
            private_redis.stop()
            await rp.run_until(restart_at, after)
            seen["during"] = rp.health.service("bot").degraded_reason
            private_redis.start()
            await rp.run_until(end, after)
            assert rp.health.service("bot").degraded_reason is None
            status = json.loads(await redis.get(keys.status("KRW-AVAX")) or "{}")
    finally:
        await redis.aclose()
    assert seen["down"]["status"] == "degraded"
    assert any("bot: redis unavailable" in p for p in seen["down"]["problems"])
    assert seen["during"]
    assert "redis" in seen["during"]
    assert status["timestamp"] >= restart_at.isoformat()  # published again after the return
    live = await _live_entries(pool)
    expected = await _backtest_entries(rows, settings, DAY, end)
    during = [t for t in live if stop_at.timestamp() <= t[1] < restart_at.timestamp()]
    assert during, live  # trades were made while Redis was down
    assert live == expected  # and they are the ones made with Redis up all along


class GatedAi:
    """An AI step that answers only when the test opens the gate (a slow model)."""

    inline = False

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.asked: list[EntryCandidate] = []

    async def review(self, candidate: EntryCandidate) -> AiVerdict:
        self.asked.append(candidate)
        await self.gate.wait()
        return AiVerdict(approved=True, reason_code="approved", reasoning="looks fine")


async def test_a_slow_ai_review_never_holds_up_the_cycle(
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    keys: Keys,
    data_dir: Path,
    make_settings: Callable[..., Settings],
) -> None:
    """The cycle returns while the review waits; the approval then buys on the rules' candle."""
    symbols = ["KRW-AVAX", "KRW-BTC"]
    settings = make_settings(symbols=symbols)
    rows = aligned_rows(data_dir, symbols)
    start, ai = DAY + timedelta(hours=1, minutes=10), GatedAi()
    async with Replay(settings, pool, redis, keys, rows, start, ai=ai) as rp:
        await rp.preload(start)
        assert rp.bot is not None
        while not ai.asked:
            outcomes = await asyncio.wait_for(rp.step(), timeout=60)
            assert rp.clock.now() < start + timedelta(minutes=15), "no candidate appeared"
        asked = ai.asked[0]
        assert outcomes[asked.symbol].reason_code == "ai_pending"
        assert len(outcomes) == len(symbols)  # every symbol got its decision this cycle
        assert await pool.fetchval("SELECT count(*) FROM trading_history") == 0
        task = rp.bot._inflight[asked.symbol]
        ai.gate.set()
        await asyncio.wait_for(task, timeout=30)
    row = await pool.fetchrow("SELECT * FROM trading_history WHERE side = 'BUY'")
    assert row is not None
    assert row["idempotency_key"] == ledger.idempotency_key(asked.symbol, asked.candle_ts, "BUY")
    expected = await _backtest_entries(rows, settings, start, start + timedelta(hours=1))
    assert (asked.symbol, row["price"]) == (expected[0][0], expected[0][2])  # AI-off fill
    assert (await ledger.verify(pool)).ok


async def test_one_failing_symbol_neither_stops_nor_rolls_back_the_others(
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    keys: Keys,
    data_dir: Path,
    make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """KRW-BTC's rule evaluation raises every cycle; KRW-AVAX still trades and publishes."""
    symbols = ["KRW-AVAX", "KRW-BTC"]
    settings = make_settings(symbols=symbols)
    rows = aligned_rows(data_dir, symbols)
    start = DAY + timedelta(hours=1, minutes=10)
    real = botmod.evaluate_entry

    def broken(snap: Any, *args: Any, **kwargs: Any) -> Any:
        if snap.symbol == "KRW-BTC":
            raise ValueError("corrupt indicator state")
        return real(snap, *args, **kwargs)

    monkeypatch.setattr(botmod, "evaluate_entry", broken)
    async with Replay(settings, pool, redis, keys, rows, start) as rp:
        await rp.preload(start)
        await rp.run_until(start + timedelta(minutes=12))
        errors = rp.metrics.symbol_errors.labels(symbol="KRW-BTC")._value.get()
    assert errors == 12
    statuses = {s: json.loads(await redis.get(keys.status(s)) or "{}") for s in symbols}
    assert statuses["KRW-BTC"]["action"] == "ERROR"
    assert "corrupt indicator state" in statuses["KRW-BTC"]["reason"]
    assert statuses["KRW-AVAX"]["reason_code"]
    assert statuses["KRW-AVAX"]["action"] != "ERROR"
    bought = await pool.fetch("SELECT symbol FROM trading_history WHERE side = 'BUY'")
    assert [r["symbol"] for r in bought] == ["KRW-AVAX"]


async def test_verify_ledger_and_status_commands(
    pool: asyncpg.Pool,
    db_dsn: str,
    redis_url_base: str,
    make_settings: Callable[..., Settings],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """verify-ledger exits 0 on a sound ledger and 1 with the difference; status lists it."""
    env = {"COINPILOT_DATABASE_URL": db_dsn, "COINPILOT_REDIS_URL": redis_url_base}
    settings = make_settings(env=env, symbols=["KRW-BTC"])
    app, now = settings.app, datetime.now(BASE.tzinfo)
    await ledger.ensure_account(pool, app.risk.initial_balance_krw)
    order = ledger.BuyOrder("KRW-BTC", now.replace(second=0, microsecond=0), Decimal(90_000_000),
                            Decimal(400_000), "BULL", {})  # fmt: skip
    assert await ledger.buy(pool, order, app, now) is not None
    args = argparse.Namespace(json=False)
    assert await asyncio.to_thread(verify_ledger.main, args, settings) == 0
    assert "ledger ok" in capsys.readouterr().out
    assert await asyncio.to_thread(status_cmd.main, args, settings) == 0
    table = capsys.readouterr().out
    assert "KRW-BTC" in table
    assert "equity" in table
    assert "buys 1" in table
    await pool.execute("UPDATE account_state SET cash = cash + 0.5")
    assert await asyncio.to_thread(verify_ledger.main, args, settings) == 1
    assert "difference 0.5" in capsys.readouterr().out


async def test_a_fill_on_a_tampered_ledger_raises_the_violation_gauge(
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    keys: Keys,
    data_dir: Path,
    make_settings: Callable[..., Settings],
) -> None:
    """The invariant is re-checked after each fill, so a hand-edited balance is flagged."""
    settings = make_settings(symbols=AVAX)
    rows = aligned_rows(data_dir, AVAX)
    start = DAY + timedelta(hours=1, minutes=10)
    async with Replay(settings, pool, redis, keys, rows, start) as rp:
        await rp.preload(start)
        assert rp.metrics.ledger_violation._value.get() == 0
        await pool.execute("UPDATE account_state SET cash = cash + 1")
        await rp.run_until(start + timedelta(minutes=5))
        assert rp.metrics.ledger_violation._value.get() == 0  # no fill yet, no check
        await rp.run_until(start + timedelta(minutes=10))
        assert await pool.fetchval("SELECT count(*) FROM trading_history") == 1
        assert rp.metrics.ledger_violation._value.get() == 1


async def test_high_volatility_halves_the_order_instead_of_blocking(
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    keys: Keys,
    data_dir: Path,
    make_settings: Callable[..., Settings],
) -> None:
    """With the volatility job's flag set, the entry is sized at half the position cap."""
    settings = make_settings(symbols=AVAX)
    rows = aligned_rows(data_dir, AVAX)
    start = DAY + timedelta(hours=1, minutes=10)
    flag = {"volatility_pct": 4.2, "is_high": True, "computed_at": start.isoformat()}
    await redis.set(keys.volatility("KRW-AVAX"), json.dumps(flag))
    async with Replay(settings, pool, redis, keys, rows, start) as rp:
        await rp.preload(start)
        await rp.run_until(start + timedelta(minutes=10))
    await _assert_first_buy_sized_at_half(pool, settings)


async def test_a_volatility_flag_missing_from_redis_is_read_from_the_database(
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    keys: Keys,
    data_dir: Path,
    make_settings: Callable[..., Settings],
) -> None:
    """The job's high-volatility verdict outlives a Redis flush: the order is still halved."""
    from coinpilot.domain.volatility import VolatilityEstimate
    from coinpilot.observability import Metrics
    from coinpilot.services.jobs import JobContext
    from coinpilot.services.jobs.volatility import update_symbol

    settings = make_settings(symbols=AVAX)
    app, rows = settings.app, aligned_rows(data_dir, AVAX)
    start = DAY + timedelta(hours=1, minutes=10)

    async def high(closes: Any, **_: Any) -> VolatilityEstimate:
        return VolatilityEstimate(volatility_pct=4.2, is_high=True, status="ok", returns=999)

    ctx = JobContext(settings=settings, pool=pool, redis=redis, keys=keys, metrics=Metrics())
    closes = np.full(app.volatility.min_candles, 100.0)
    assert await update_symbol(ctx, "KRW-AVAX", closes, start - timedelta(hours=1), high)
    assert await redis.delete(keys.volatility("KRW-AVAX")) == 1  # Redis restarted empty
    async with Replay(settings, pool, redis, keys, rows, start) as rp:
        await rp.preload(start)
        await redis.delete(keys.volatility("KRW-AVAX"))  # whatever start-up republished
        await rp.run_until(start + timedelta(minutes=10))
    await _assert_first_buy_sized_at_half(pool, settings)


async def _assert_first_buy_sized_at_half(pool: asyncpg.Pool, settings: Settings) -> None:
    """The first BUY's quantity is what half the position cap buys at its fill price."""
    from coinpilot.domain.fills import buy_fill
    from coinpilot.domain.sizing import order_amount

    app = settings.app
    row = await pool.fetchrow("SELECT * FROM trading_history WHERE side = 'BUY'")
    assert row is not None
    initial = app.risk.initial_balance_krw
    amount = order_amount(equity=initial, cash=initial, exposure=Decimal(0),
                          regime_ratio=app.regimes[row["regime"]].position_size_ratio,
                          vol_factor=0.5, limits=app.risk)  # fmt: skip
    expected = buy_fill(row["price"] / (1 + app.fills.slippage), amount, app.fills)
    assert expected is not None
    assert row["quantity"] == expected.quantity


def _bot(
    settings: Settings, pool: asyncpg.Pool, redis: aioredis.Redis, keys: Keys, now: datetime,
    ai: Any = None,
) -> botmod.BotService:  # fmt: skip
    from coinpilot.clock import SimulatedClock
    from coinpilot.observability import Health, Metrics

    return botmod.BotService(
        settings=settings, pool=pool, redis=redis, keys=keys, clock=SimulatedClock(now),
        health=Health(), metrics=Metrics(), ai=ai,
    )  # fmt: skip


async def test_two_ai_approvals_at_once_with_one_slot_buy_once_and_refuse_once(
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    keys: Keys,
    make_settings: Callable[..., Settings],
) -> None:
    """Both verdicts arrive together: the executor serialises them; the second is refused."""
    settings = make_settings(symbols=["KRW-BTC", "KRW-ETH"], risk={"max_concurrent_positions": 1})
    candle = datetime(2026, 3, 2, 1, 0, tzinfo=BASE.tzinfo)
    ai = GatedAi()
    bot = _bot(settings, pool, redis, keys, candle + timedelta(minutes=1, seconds=6), ai)
    await bot.startup()
    candidates = [
        EntryCandidate(symbol=s, regime="BULL", candle_ts=candle, price=price, indicators={},
                       entry_config={}, order_krw=400_000.0)
        for s, price in (("KRW-BTC", 90_000_000.0), ("KRW-ETH", 4_000_000.0))
    ]  # fmt: skip
    tasks = [asyncio.create_task(bot._review_later(c)) for c in candidates]
    await asyncio.sleep(0)
    ai.gate.set()
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)
    buys = await pool.fetch("SELECT symbol FROM trading_history WHERE side = 'BUY'")
    assert len(buys) == 1
    assert await pool.fetchval("SELECT count(*) FROM positions") == 1
    audit = await pool.fetch("SELECT violation_type, symbol FROM risk_audit")
    assert [(r["violation_type"], r["symbol"]) for r in audit] == [
        ("max_concurrent_positions", ({"KRW-BTC", "KRW-ETH"} - {buys[0]["symbol"]}).pop())
    ]
    assert (await ledger.verify(pool)).ok


async def test_a_held_symbol_removed_from_the_config_still_gets_its_stop_loss(
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    keys: Keys,
    make_settings: Callable[..., Settings],
) -> None:
    """KRW-ETH is held but no longer configured: start-up warns once, the stop loss fires."""
    from structlog.testing import capture_logs

    from coinpilot.adapters import marketdata as md

    settings = make_settings(symbols=["KRW-BTC"])
    app = settings.app
    opened = datetime(2026, 3, 2, 1, 0, tzinfo=BASE.tzinfo)
    await ledger.load_state(pool, app, opened, {})
    order = ledger.BuyOrder("KRW-ETH", opened, Decimal(4_000_000), Decimal(400_000), "BULL", {})
    assert isinstance(await ledger.buy(pool, order, app, opened), ledger.Fill)
    candle = opened + timedelta(minutes=30)  # closed at 3.6 M: −10 %, past every stop loss
    d = Decimal
    await md.upsert_candles(pool, [md.CandleRow("KRW-ETH", "1m", candle, d(3_700_000),
                                                d(3_700_000), d(3_600_000), d(3_600_000), d(5),
                                                None)])  # fmt: skip
    bot = _bot(settings, pool, redis, keys, candle + timedelta(minutes=1, seconds=6))
    with capture_logs() as logs:
        await bot.startup()
        outcomes = await bot.run_once()
        await bot.run_once()
    warned = [e for e in logs if e["event"] == "held_symbols_not_configured"]
    assert [e["symbols"] for e in warned] == [["KRW-ETH"]]
    assert outcomes["KRW-ETH"].action == "SELL"
    sell = await pool.fetchrow("SELECT * FROM trading_history WHERE side = 'SELL'")
    assert sell["exit_reason"] == "STOP_LOSS"
    assert sell["price"] == Decimal("3598200")  # 3.6 M × (1 − 0.05 % slippage)
    assert await pool.fetchval("SELECT count(*) FROM positions") == 0
    assert bot.watched_symbols() == ["KRW-BTC"]  # closed: no longer watched


async def test_an_emptied_redis_is_a_cache_miss_answered_from_the_database(
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    keys: Keys,
    data_dir: Path,
    make_settings: Callable[..., Settings],
) -> None:
    """Redis up but its keys gone (a restart without persistence): the same trades happen."""
    settings = make_settings(symbols=AVAX)
    rows = aligned_rows(data_dir, AVAX)
    flush_at, end = DAY + timedelta(minutes=30), DAY + timedelta(hours=4)
    flushed: list[int] = []

    async def after(now: datetime, outcomes: dict[str, Outcome]) -> None:
        if now >= flush_at:  # only this test's keys, after every cycle
            gone = [k async for k in redis.scan_iter(match=f"{keys.prefix}*", count=500)]
            if gone:
                flushed.append(await redis.delete(*gone))

    async with Replay(settings, pool, redis, keys, rows, DAY) as rp:
        await rp.preload(DAY)
        await rp.run_until(end, after)
    live = await _live_entries(pool)
    expected = await _backtest_entries(rows, settings, DAY, end)
    during = [t for t in live if flush_at.timestamp() <= t[1]]
    assert flushed
    assert during, live  # entries went on with the regime keys missing
    assert live == expected


async def _held_eth(pool: asyncpg.Pool, settings: Settings, opened: datetime,
                    close: int | None) -> None:  # fmt: skip
    """A KRW-ETH position bought at 4 M; a stored candle closing at ``close`` 30 min later."""
    from coinpilot.adapters import marketdata as md

    app = settings.app
    await ledger.load_state(pool, app, opened, {})
    order = ledger.BuyOrder("KRW-ETH", opened, Decimal(4_000_000), Decimal(400_000), "BULL", {})
    assert isinstance(await ledger.buy(pool, order, app, opened), ledger.Fill)
    if close is not None:
        d, ts = Decimal, opened + timedelta(minutes=30)
        await md.upsert_candles(pool, [md.CandleRow("KRW-ETH", "1m", ts, d(close), d(close),
                                                    d(close), d(close), d(5), None)])  # fmt: skip


async def test_a_symbol_stuck_on_a_row_lock_times_out_and_the_cycle_goes_on(
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    keys: Keys,
    make_settings: Callable[..., Settings],
) -> None:
    """bot.symbol_timeout_s bounds one symbol's work; the exit happens once the lock is gone."""
    settings = make_settings(symbols=["KRW-ETH"], bot={"symbol_timeout_s": 1})
    opened = datetime(2026, 3, 2, 1, 0, tzinfo=BASE.tzinfo)
    await _held_eth(pool, settings, opened, 3_600_000)
    bot = _bot(settings, pool, redis, keys, opened + timedelta(minutes=31, seconds=6))
    await bot.startup()
    async with pool.acquire() as other, other.transaction():
        await other.execute("SELECT * FROM account_state WHERE id = 1 FOR UPDATE")
        outcomes = await asyncio.wait_for(bot.run_once(), timeout=30)
    assert (outcomes["KRW-ETH"].action, outcomes["KRW-ETH"].reason_code) == ("ERROR", "timeout")
    assert await pool.fetchval("SELECT count(*) FROM trading_history WHERE side = 'SELL'") == 0
    outcomes = await bot.run_once()
    assert outcomes["KRW-ETH"].action == "SELL"


async def test_an_exit_due_without_any_candle_waits_instead_of_filling_at_the_avg_price(
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    keys: Keys,
    make_settings: Callable[..., Settings],
) -> None:
    """The BULL time limit (72 h) has passed but no candle is stored: no made-up price."""
    settings = make_settings(symbols=["KRW-ETH"])
    opened = datetime(2026, 3, 2, 1, 0, tzinfo=BASE.tzinfo)
    await _held_eth(pool, settings, opened, None)
    bot = _bot(settings, pool, redis, keys, opened + timedelta(hours=73))
    await bot.startup()
    outcomes = await bot.run_once()
    assert outcomes["KRW-ETH"].reason_code == "exit_no_price"
    assert "TIME_LIMIT" in outcomes["KRW-ETH"].reason
    assert await pool.fetchval("SELECT count(*) FROM trading_history WHERE side = 'SELL'") == 0
    assert await pool.fetchval("SELECT count(*) FROM positions") == 1


async def test_status_command_writes_nothing(
    pool: asyncpg.Pool,
    db_dsn: str,
    redis_url_base: str,
    make_settings: Callable[..., Settings],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`coinpilot status` on a day the bot has not started yet creates no risk row."""
    env = {"COINPILOT_DATABASE_URL": db_dsn, "COINPILOT_REDIS_URL": redis_url_base}
    settings = make_settings(env=env, symbols=["KRW-BTC"])
    await ledger.ensure_account(pool, settings.app.risk.initial_balance_krw)
    before = await pool.fetchval("SELECT count(*) FROM daily_risk_state")
    args = argparse.Namespace(json=False)
    assert await asyncio.to_thread(status_cmd.main, args, settings) == 0
    assert "equity" in capsys.readouterr().out
    assert await pool.fetchval("SELECT count(*) FROM daily_risk_state") == before == 0


class PastMidnightAi:
    """An inline AI step so slow that it answers just after the next KST midnight."""

    inline = True

    def __init__(self) -> None:
        self.clock: Any = None
        self.asked: list[EntryCandidate] = []

    async def review(self, candidate: EntryCandidate) -> AiVerdict:
        from zoneinfo import ZoneInfo

        self.asked.append(candidate)
        local = self.clock.now().astimezone(ZoneInfo("Asia/Seoul"))
        midnight = (local + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        self.clock.set(midnight + timedelta(seconds=5))
        return AiVerdict(approved=True, reason_code="approved", reasoning="slow but fine")


async def test_a_decision_answered_after_kst_midnight_counts_on_its_own_day(
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    keys: Keys,
    data_dir: Path,
    make_settings: Callable[..., Settings],
) -> None:
    """One clock reading per decision: the BUY decided on day D is D's; D+1 opens at equity."""
    settings = make_settings(symbols=AVAX)
    rows = aligned_rows(data_dir, AVAX)
    start, ai = DAY + timedelta(hours=1, minutes=10), PastMidnightAi()
    async with Replay(settings, pool, redis, keys, rows, start, ai=ai) as rp:
        ai.clock = rp.clock
        await rp.preload(start)
        assert rp.bot is not None
        while not ai.asked:
            assert rp.clock.now() < start + timedelta(minutes=15), "no candidate appeared"
            await asyncio.wait_for(rp.step(), timeout=60)
        decided = ai.asked[0].candle_ts + timedelta(minutes=1)
        await rp.bot.run_once()  # the first cycle of the new KST day
    buy = await pool.fetchrow("SELECT * FROM trading_history WHERE side = 'BUY'")
    assert buy is not None
    days = {r["trade_date"]: r for r in await pool.fetch("SELECT * FROM daily_risk_state")}
    day_d, day_next = sorted(days)
    assert days[day_d]["buy_count"] == 1
    assert days[day_next]["buy_count"] == 0
    assert buy["executed_at"] < decided + timedelta(minutes=1)
    # D+1 opens at the equity then: cash after the BUY plus the coin at its newest close.
    last_close = await pool.fetchval(
        "SELECT close_price FROM market_data WHERE symbol = 'KRW-AVAX' ORDER BY ts DESC LIMIT 1"
    )
    cash = Decimal(10_000_000) - buy["price"] * buy["quantity"] - buy["fee"]
    assert days[day_next]["opening_equity"] == cash + buy["quantity"] * last_close
