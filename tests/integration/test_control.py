"""The control plane: pause/resume entries, force-exit, reset the paper account; from the
CLI and the dashboard, audited, announced, honoured by the bot within one cycle."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from pathlib import Path

import aiohttp
import asyncpg
import pytest
import redis.asyncio as aioredis

from coinpilot.adapters import ledger
from coinpilot.adapters.cache import Keys
from coinpilot.config import Settings
from coinpilot.services import control
from tests.integration.dashboard_data import start_dashboard
from tests.integration.replay_data import BASE, aligned_rows
from tests.replay import Replay

ROOT = Path(__file__).resolve().parents[2]
DAY = BASE + timedelta(days=9)
TOKEN = "a-dashboard-token-of-some-length"
NOW = datetime(2026, 3, 2, 12, 0, 30, tzinfo=UTC)


async def candle(pool: asyncpg.Pool, symbol: str, ts: datetime, close: int) -> None:
    await pool.execute(
        "INSERT INTO market_data (symbol, interval, ts, open_price, high_price, low_price,"
        " close_price, volume) VALUES ($1, '1m', $2, $3, $3, $3, $3, 1)",
        symbol,
        ts,
        close,
    )


async def open_btc(pool: asyncpg.Pool, settings: Settings) -> None:
    """A BUY of 400,000 KRW at a 90,000,000 close, and the later candles of KRW-BTC."""
    await ledger.ensure_account(pool, settings.app.risk.initial_balance_krw)
    await candle(pool, "KRW-BTC", NOW - timedelta(minutes=5), 90_000_000)
    await candle(pool, "KRW-BTC", NOW - timedelta(minutes=2), 96_000_000)
    await candle(pool, "KRW-BTC", NOW + timedelta(minutes=3), 99_000_000)  # not closed yet
    order = ledger.BuyOrder(
        "KRW-BTC", NOW - timedelta(minutes=5), Decimal(90_000_000), Decimal(400_000), "BULL", {}
    )
    assert await ledger.buy(pool, order, settings.app, NOW - timedelta(minutes=4)) is not None


def hand_computed_exit() -> tuple[Decimal, Decimal]:
    """Upbit fills by hand: buy at close x 1.0005, quantity cut to 8 dp, sell at the last
    closed close x 0.9995, 0.05 % fee on each side."""
    buy_price = Decimal(90_000_000) * Decimal("1.0005")  # 90,045,000
    qty = (Decimal(400_000) / buy_price).quantize(Decimal("0.00000001"), rounding=ROUND_DOWN)
    assert qty == Decimal("0.00444222")
    sell_price = Decimal(96_000_000) * Decimal("0.9995")  # 95,952,000
    buy_cost = buy_price * qty * Decimal("1.0005")
    sell_value = sell_price * qty * Decimal("0.9995")
    return sell_price, sell_value - buy_cost


async def test_force_exit_sells_at_the_last_closed_price(
    pool: asyncpg.Pool, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(symbols=["KRW-BTC"])
    await open_btc(pool, settings)
    sold = await control.force_exit(pool, settings.app, "KRW-BTC", by="cli:test", now=NOW)
    price, net = hand_computed_exit()
    assert sold.fill.price == price
    assert sold.net_pnl == net
    row = await pool.fetchrow("SELECT price, exit_reason FROM trading_history WHERE side='SELL'")
    assert (row["price"], row["exit_reason"]) == (price, "FORCE_EXIT")
    assert await ledger.positions(pool) == {}
    audit = await pool.fetchrow("SELECT * FROM risk_audit WHERE violation_type = 'force_exit'")
    assert audit["symbol"] == "KRW-BTC"
    assert "cli:test" in audit["description"]
    rows = await pool.fetch("SELECT kind, payload FROM outbox ORDER BY id")
    kinds = [r["kind"] for r in rows]
    assert kinds.count("risk") == 1  # the announcement, next to the trade notice
    assert "trade" in kinds
    notice = next(r["payload"] for r in rows if r["kind"] == "risk")
    assert notice["title"] == "Operator: force exit KRW-BTC"
    assert "cli:test" in notice["message"]
    assert (await ledger.verify(pool)).ok
    with pytest.raises(control.ControlError, match="no open position"):
        await control.force_exit(pool, settings.app, "KRW-BTC", by="cli:test", now=NOW)


async def test_reset_keeps_history_and_the_invariant(
    pool: asyncpg.Pool, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(symbols=["KRW-BTC"])
    await open_btc(pool, settings)
    with pytest.raises(control.ControlError, match="RESET"):
        await control.reset_account(pool, settings.app, by="t", confirmation="yes", now=NOW)
    assert await ledger.positions(pool)  # refused: nothing changed
    summary = await control.reset_account(pool, settings.app, by="t", confirmation="RESET", now=NOW)
    assert summary["positions_dropped"] == ["KRW-BTC"]
    account = await pool.fetchrow("SELECT * FROM account_state WHERE id = 1")
    initial = settings.app.risk.initial_balance_krw
    assert (account["cash"], account["realized_pnl"], account["fees_paid"]) == (initial, 0, 0)
    assert await pool.fetchval("SELECT count(*) FROM trading_history") == 1  # kept
    assert (await ledger.verify(pool)).ok
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM risk_audit WHERE violation_type = 'account_reset'"
        )
        == 1
    )


async def test_a_paused_bot_enters_nothing_and_resumes_within_one_cycle(
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    keys: Keys,
    data_dir: Path,
    make_settings: Callable[..., Settings],
) -> None:
    """The window in which the bot buys KRW-AVAX unpaused (test_bot): paused, no BUY and the
    status says why; resumed, the very next cycle decides entries again."""
    settings = make_settings(symbols=["KRW-AVAX"])
    rows = aligned_rows(data_dir, ["KRW-AVAX"])
    start = DAY + timedelta(hours=1, minutes=10)
    assert await control.set_entries_paused(pool, True, by="t", reason="test", now=start)
    assert not await control.set_entries_paused(pool, True, by="t", reason="again", now=start)
    async with Replay(settings, pool, redis, keys, rows, start) as rp:
        await rp.preload(start)
        await rp.run_until(start + timedelta(minutes=12))
        status = json.loads(await redis.get(keys.status("KRW-AVAX")) or "{}")
        assert await pool.fetchval("SELECT count(*) FROM trading_history") == 0
        assert status["reason_code"] == "entries_paused"
        assert await control.set_entries_paused(pool, False, by="t", reason=None, now=start)
        await rp.run_until(start + timedelta(minutes=13))
        status = json.loads(await redis.get(keys.status("KRW-AVAX")) or "{}")
    assert status["reason_code"] != "entries_paused"
    audits = await pool.fetch("SELECT violation_type FROM risk_audit ORDER BY id")
    assert [a["violation_type"] for a in audits] == ["entries_paused", "entries_resumed"]


async def test_a_held_position_is_still_managed_while_paused(
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    keys: Keys,
    data_dir: Path,
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(symbols=["KRW-AVAX"])
    rows = aligned_rows(data_dir, ["KRW-AVAX"])
    start = DAY + timedelta(hours=1, minutes=10)
    async with Replay(settings, pool, redis, keys, rows, start) as rp:
        await rp.preload(start)
        await rp.run_until(start + timedelta(minutes=12))  # buys KRW-AVAX
        assert await ledger.positions(pool)
        await control.set_entries_paused(pool, True, by="t", reason=None, now=start)
        outcomes = await rp.bot.run_once(start + timedelta(minutes=13))
    assert outcomes["KRW-AVAX"].reason_code != "entries_paused"  # the exit rules ran


def cli(
    args: list[str], db_dsn: str, redis_url: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COINPILOT_")}
    env.update(
        COINPILOT_DATABASE_URL=db_dsn,
        COINPILOT_REDIS_URL=redis_url,
        COINPILOT_REDIS_KEY_PREFIX="tcontrol:",
        PYTHONPATH=str(ROOT),
    )
    return subprocess.run(
        [sys.executable, "-m", "coinpilot", *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_cli_pause_resume_force_exit_and_reset(
    pool: asyncpg.Pool, db_dsn: str, redis_url_base: str, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(symbols=["KRW-BTC"])
    await ledger.ensure_account(pool, settings.app.risk.initial_balance_krw)
    first = cli(["pause", "--reason", "maintenance"], db_dsn, redis_url_base)
    assert (first.returncode, first.stdout) == (0, "entries paused\n"), first.stderr
    again = cli(["pause"], db_dsn, redis_url_base)
    assert (again.returncode, again.stdout) == (1, "entries were already paused\n")
    assert await control.entries_paused(pool)
    assert cli(["resume"], db_dsn, redis_url_base).returncode == 0
    assert not await control.entries_paused(pool)
    missing = cli(["force-exit", "KRW-BTC"], db_dsn, redis_url_base)
    assert missing.returncode == 1
    assert "no open position in KRW-BTC" in missing.stderr
    refused = cli(["reset-account"], db_dsn, redis_url_base, stdin="RESET\n")
    assert refused.returncode == 2  # not a terminal: needs --yes
    done = cli(["reset-account", "--yes"], db_dsn, redis_url_base)
    assert done.returncode == 0
    assert done.stdout.startswith("account reset to 10,000,000 KRW")


async def test_cli_force_exit_prints_the_fill(
    pool: asyncpg.Pool, db_dsn: str, redis_url_base: str, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(symbols=["KRW-BTC"])
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    await ledger.ensure_account(pool, settings.app.risk.initial_balance_krw)
    await candle(pool, "KRW-BTC", now - timedelta(minutes=3), 96_000_000)
    order = ledger.BuyOrder(
        "KRW-BTC", now - timedelta(minutes=5), Decimal(90_000_000), Decimal(400_000), "BULL", {}
    )
    assert await ledger.buy(pool, order, settings.app, now - timedelta(minutes=4))
    out = cli(["force-exit", "KRW-BTC"], db_dsn, redis_url_base)
    assert out.returncode == 0, out.stderr
    _, net = hand_computed_exit()
    assert out.stdout.startswith("KRW-BTC sold at 95,952,000: PnL +")
    assert f"{net.quantize(Decimal(1)):,f} KRW" in out.stdout.replace("+", "")


async def test_dashboard_controls_need_the_token_and_refuse_cross_site_posts(
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    keys: Keys,
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(symbols=["KRW-BTC"], env={"COINPILOT_DASHBOARD_TOKEN": TOKEN})
    await ledger.ensure_account(pool, settings.app.risk.initial_balance_krw)
    deps, runner, url = await start_dashboard(settings, pool, redis, keys, NOW)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(url + "/api/control/pause") as resp:
                assert resp.status == 401
            assert not await control.entries_paused(pool)
            for evil in (
                {**auth, "Origin": "https://evil.example"},
                {**auth, "Origin": "null", "Sec-Fetch-Site": "cross-site"},
            ):
                async with http.post(url + "/api/control/pause", headers=evil) as resp:
                    assert resp.status == 403
            assert not await control.entries_paused(pool)
            async with http.post(
                url + "/api/control/pause", headers=auth, json={"reason": "deploy"}
            ) as resp:
                assert resp.status == 200
                assert (await resp.json())["entries_paused"] is True
            assert await control.entries_paused(pool)
            async with http.get(url + "/system", headers=auth) as resp:
                page = await resp.text()
            assert "New entries are paused" in page
            assert "deploy" in page
            form = {**auth, "Accept": "text/html", "Origin": url}
            async with http.post(
                url + "/api/control/resume", headers=form, data={}, allow_redirects=False
            ) as resp:
                assert resp.status == 303
                assert resp.headers["Location"] == "/system"
            assert not await control.entries_paused(pool)
            async with http.post(
                url + "/api/control/reset", headers=auth, data={"confirm": "reset"}
            ) as resp:
                assert resp.status == 409
            async with http.post(
                url + "/api/control/force-exit", headers=auth, json={"symbol": "KRW-NOPE"}
            ) as resp:
                assert resp.status == 409
    finally:
        await runner.cleanup()
        await deps.http.close()
    audit = await pool.fetch("SELECT description FROM risk_audit ORDER BY id")
    assert [a["description"].split(" by ")[0] for a in audit] == [
        "New entries paused",
        "New entries resumed",
    ]


class PausingAi:
    """Approves, but the operator pauses entries while the model is thinking."""

    inline = True

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.asked = 0

    async def review(self, candidate: object) -> object:
        from coinpilot.domain.ai_types import AiVerdict

        self.asked += 1
        await control.set_entries_paused(self.pool, True, by="t", reason=None, now=NOW)
        return AiVerdict(approved=True, reason_code="approved", reasoning="fine")


async def test_an_approval_arriving_after_a_pause_buys_nothing(
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    keys: Keys,
    data_dir: Path,
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(symbols=["KRW-AVAX"])
    rows = aligned_rows(data_dir, ["KRW-AVAX"])
    start, ai = DAY + timedelta(hours=1, minutes=10), PausingAi(pool)
    async with Replay(settings, pool, redis, keys, rows, start, ai=ai) as rp:
        await rp.preload(start)
        await rp.run_until(start + timedelta(minutes=12))
        status = json.loads(await redis.get(keys.status("KRW-AVAX")) or "{}")
    assert ai.asked == 1  # a candidate reached the AI, then entries stayed paused
    assert await pool.fetchval("SELECT count(*) FROM trading_history") == 0
    assert status["reason_code"] == "entries_paused"


async def test_a_pause_reason_of_any_text_is_stored_bounded(
    pool: asyncpg.Pool, make_settings: Callable[..., Settings]
) -> None:
    await ledger.ensure_account(pool, make_settings().app.risk.initial_balance_krw)
    assert await control.set_entries_paused(
        pool, True, by="t", reason="\ud800" + "x" * 500, now=NOW
    )
    stored = (await control.state(pool)).reason
    assert stored is not None
    assert len(stored) == 200
    assert stored.startswith("?x")
