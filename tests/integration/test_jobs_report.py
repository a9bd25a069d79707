"""The daily report from a seeded ledger, its summary, the outbox row and the CLI."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D

import asyncpg
import pytest
import redis.asyncio as aioredis

from coinpilot.adapters.cache import Keys
from coinpilot.config import Settings
from coinpilot.observability import Metrics
from coinpilot.services.jobs import JobContext
from coinpilot.services.jobs.report import render_report, run_report_job
from tests.fakes.openai import FakeOpenAI, start_fake_openai

REPORT_AT = datetime(2026, 3, 2, 13, 0, tzinfo=UTC)  # 22:00 KST
KST_MIDNIGHT = datetime(2026, 3, 1, 15, 0, tzinfo=UTC)


def at(hours: float) -> datetime:
    """A time `hours` after the KST day's start (negative: the previous KST day)."""
    return KST_MIDNIGHT + timedelta(hours=hours)


# (hours after KST midnight, symbol, side, fee, realized pnl)
LEDGER = [
    (-1.0, "KRW-BTC", "BUY", "50", None),  # previous KST day: only moves starting equity
    (-0.5, "KRW-BTC", "SELL", "50", "1000"),
    (1.0, "KRW-BTC", "BUY", "50", None),
    (2.0, "KRW-BTC", "SELL", "51", "2500"),
    (3.0, "KRW-ETH", "BUY", "50", None),
    (5.0, "KRW-ETH", "SELL", "48", "-4000"),
    (10.0, "KRW-SOL", "BUY", "50", None),
    (12.0, "KRW-SOL", "SELL", "49", "-500"),
    (22.5, "KRW-BTC", "BUY", "50", None),  # 22:30 KST: after the report
]
DECISIONS = [
    (-2.0, "CONFIRM", "1.0"),
    (1.0, "CONFIRM", "0.0150"),
    (11.0, "REJECT", "0.0200"),
    (11.5, "REJECT", None),
]


async def seed(pool: asyncpg.Pool) -> None:
    await pool.execute("INSERT INTO account_state (initial_balance, cash) VALUES (10000000, 1)")
    for i, (hours, symbol, side, fee, pnl) in enumerate(LEDGER):
        await pool.execute(
            "INSERT INTO trading_history (idempotency_key, symbol, side, price, quantity, "
            "notional, fee, realized_pnl, strategy_name, candle_ts, executed_at) "
            "VALUES ($1, $2, $3, 100000, 1, 100000, $4, $5, 'AdaptiveMeanReversion', $6, $6)",
            f"k{i}",
            symbol,
            side,
            D(fee),
            D(pnl) if pnl else None,
            at(hours),
        )
    for hours, decision, cost in DECISIONS:
        await pool.execute(
            "INSERT INTO agent_decisions (symbol, strategy_name, decision, cost_usd, created_at) "
            "VALUES ('KRW-BTC', 'AdaptiveMeanReversion', $1, $2, $3)",
            decision,
            D(cost) if cost else None,
            at(hours),
        )


def context(
    settings: Settings, pool: asyncpg.Pool, redis: aioredis.Redis, keys: Keys
) -> JobContext:
    return JobContext(settings=settings, pool=pool, redis=redis, keys=keys, metrics=Metrics())


@pytest.fixture
async def openai_fake() -> AsyncIterator[FakeOpenAI]:
    fake, runner = await start_fake_openai()
    yield fake
    await runner.cleanup()


async def test_report_numbers_equal_hand_computation(
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    keys: Keys,
    make_settings: Callable[..., Settings],
) -> None:
    """The queued 22:00 KST report carries the numbers worked out by hand from the ledger."""
    await seed(pool)
    await run_report_job(context(make_settings(), pool, redis, keys), REPORT_AT)
    (row,) = await pool.fetch("SELECT kind, payload FROM outbox")
    assert row["kind"] == "daily-report"
    got = row["payload"]
    n = got["numbers"]
    # in the window: realized 2500 - 4000 - 500; fees 50+51+50+48+50+49
    assert D(n["pnl_krw"]) == D(-2000) - D(298)
    assert (got["date"], n["trades"], n["sells"]) == ("2026-03-02", 6, 3)
    assert D(n["win_rate_pct"]) == D(1) / D(3) * 100
    # start 10,000,900; peak 10,003,299 after the BTC sell; trough 9,998,602 at the end
    assert D(n["max_drawdown_pct"]) == D(4697) / D(10003299) * 100
    assert (n["ai_approvals"], n["ai_rejections"], D(n["ai_cost_usd"])) == (1, 2, D("0.0350"))
    # net of the SELL's and its BUY's fee: 2,500 - 51 - 50 and -4,000 - 48 - 50
    assert "Best trade: KRW-BTC 2,399 KRW" in got["lines"]
    assert "Worst trade: KRW-ETH -4,098 KRW" in got["lines"]
    assert "PnL: -2,298 KRW (gross -2,000, fees 298)" in got["lines"]
    assert len(got["summary"]) == 3


async def test_summary_comes_from_openai_in_three_lines(
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    keys: Keys,
    openai_fake: FakeOpenAI,
    make_settings: Callable[..., Settings],
) -> None:
    """With a key the SDK is called with gpt-6-luna and the answer is cut to three lines."""
    await seed(pool)
    openai_fake.answer = "- first\n\n* second\nthird\nfourth"
    env = {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": openai_fake.base_url}
    rendered = await render_report(context(make_settings(env=env), pool, redis, keys), REPORT_AT)
    assert (rendered.summary, rendered.summary_source) == (["first", "second", "third"], "openai")
    (req,) = openai_fake.requests
    assert req["body"]["model"] == "gpt-6-luna"
    assert req["body"]["reasoning_effort"] == "low"
    assert "temperature" not in req["body"]  # a reasoning model refuses it
    assert req["headers"]["Authorization"] == "Bearer sk-test"
    assert "PnL: -2,298 KRW" in req["body"]["messages"][1]["content"]


@pytest.mark.parametrize(("status", "code"), [(429, "insufficient_quota"), (500, "server_error")])
async def test_openai_failure_falls_back_to_template(
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    keys: Keys,
    openai_fake: FakeOpenAI,
    make_settings: Callable[..., Settings],
    status: int,
    code: str,
) -> None:
    """Any API failure gives the deterministic three-line template, and is counted."""
    await seed(pool)
    openai_fake.fail_next(status, code, times=5)
    env = {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": openai_fake.base_url}
    ctx = context(make_settings(env=env), pool, redis, keys)
    rendered = await render_report(ctx, REPORT_AT)
    assert rendered.summary_source == "template"
    assert len(rendered.summary) == 3
    assert rendered.summary[0].startswith("2026-03-02: loss, net PnL -2,298 KRW")
    assert ctx.metrics.dependency_errors.labels(dependency="openai", kind=code)._value.get() == 1


async def test_cli_prints_the_same_report(
    pool: asyncpg.Pool,
    db_dsn: str,
    redis_url_base: str,
    redis: aioredis.Redis,
    keys: Keys,
    make_settings: Callable[..., Settings],
) -> None:
    """`coinpilot report --date` prints the report lines computed for that whole local day."""
    await seed(pool)
    settings = make_settings()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI")}
    env.update(
        COINPILOT_DATABASE_URL=db_dsn, COINPILOT_REDIS_URL=redis_url_base, PYTHONPATH=os.getcwd()
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "coinpilot",
        "report",
        "--date",
        "2026-03-02",
        "--config",
        settings.source,
        env=env,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0
    expected = await render_report(context(settings, pool, redis, keys), at(30), date(2026, 3, 2))
    text = out.decode()
    assert expected.text(settings.app.timezone) in text
    assert "Trades: 7 (4 buys, 3 sells)" in text  # the 22:30 buy is in the whole day
