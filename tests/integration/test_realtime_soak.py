"""The daemon in real time: every closed minute of 50 markets decided once, as the backtest.

Two `coinpilot run` processes, each with its own database and its own Upbit fake (REST and
the candle WebSocket) serving the same candles on the wall clock (the shared files shifted
by whole hours so that known entries of the backtest fall inside the run), decide minutes
as they close for about five minutes. The first process is never stopped, but its
WebSocket is dropped mid-run (the collector falls back to REST, reconnects and fills the
gap); the second is SIGKILLed at random points and restarted at once. The candles end with
the run's last minute, so both daemons finish with the same minutes stored; then:

* the first daemon decided each closed minute of each market exactly once (its decision
  log lines, against the stored candles) and its /metrics say the same, with
  ``coinpilot_minutes_missed_total`` 0;
* its trades and final cash are those of ``coinpilot backtest`` over the same stored
  candles, started at the daemon's first decided minute;
* the killed daemon's final ledger is the first one's, trade for trade.

History before the run is stored straight into the databases (as a previous run would
have left it); the last minutes before the start come from the fake through the start-up
catch-up. Markets without a planned entry get a few hours of history only (their regime
stays UNKNOWN: decided every minute, never entered).
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import random
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
import redis.asyncio as aioredis

from coinpilot.adapters.cache import Keys
from coinpilot.adapters.csvdata import read_csv, to_candles
from coinpilot.adapters.marketdata import CandleRow
from coinpilot.backtest.engine import run_backtest
from coinpilot.clock import SystemClock, floor_minute
from coinpilot.config import Settings
from tests import hygiene
from tests.conftest import ROOT, fresh_database
from tests.fakes.upbit import FakeUpbit, start_fake_upbit
from tests.integration.ops_support import free_port
from tests.integration.replay_data import FILES

pytestmark = pytest.mark.slow
MINUTE = timedelta(minutes=1)
MARKETS = 50
LIVE_MINUTES = 5  # minutes closing while both daemons run (plus those before the start)
KILLS = 3
SOURCES = ("KRW-AVAX", "KRW-BTC")


@pytest.fixture
async def second_db(pg_admin_dsn: str, pg_template: str) -> AsyncIterator[str]:
    async with fresh_database(pg_admin_dsn, "cp_t", pg_template) as dsn:
        yield dsn


@dataclass
class Market:
    name: str
    rows: list[CandleRow]  # what the fake serves (shifted onto the wall clock)
    history_from: datetime  # stored straight into the databases from here
    planned_entry: datetime | None = None


async def _entries(data_dir: Path, settings: Settings) -> dict[str, list[int]]:
    """When the backtest enters each source file, with 9 days of history before it."""
    out = {}
    for sym in SOURCES:
        rows = read_csv(data_dir / FILES[sym], sym)
        candles = to_candles(rows, sym)
        result = await run_backtest({sym: candles}, settings.app)
        first = int(candles.ts[0])
        out[sym] = [t.entry_ts - 66 for t in result.trades if t.entry_ts - first > 9 * 86400]
    return out  # the minute each entry decided (its tick is close + offset 6 s)


def _plan(
    data_dir: Path, entries: dict[str, list[int]], base: datetime, rng: random.Random
) -> list[Market]:
    """50 markets; those with a backtest entry whose minute of the hour falls in the run."""
    sources = {s: read_csv(data_dir / FILES[s], s) for s in SOURCES}
    targets = [base + k * MINUTE for k in range(1, LIVE_MINUTES)]
    planned: list[tuple[str, int, datetime]] = []
    for target in targets:
        for sym, ticks in entries.items():
            planned += [(sym, t, target) for t in ticks if (t // 60) % 60 == target.minute]
    rng.shuffle(planned)
    markets: list[Market] = []
    stop = base + LIVE_MINUTES * MINUTE  # the market "closes" after the run's last minute
    for i in range(MARKETS):
        name = f"KRW-T{i:02d}"
        if i < min(len(planned), 14):
            sym, entry, target = planned[i]
            shift = target - datetime.fromtimestamp(entry, UTC)  # whole hours
            history_from, planned_entry = target - timedelta(days=8.6), target
        else:
            sym = SOURCES[i % 2]
            first = sources[sym][0].ts
            hours = rng.randrange(24 * 10, int((sources[sym][-1].ts - first).total_seconds())
                                  // 3600 - 24)  # fmt: skip
            shift = base - (first + timedelta(hours=hours))
            shift -= timedelta(seconds=shift.total_seconds() % 3600)
            history_from, planned_entry = base - timedelta(hours=6), None
        rows = [r._replace(symbol=name, ts=r.ts + shift) for r in sources[sym]]
        rows = [r for r in rows if history_from - timedelta(days=1) <= r.ts < stop]
        markets.append(Market(name, rows, history_from, planned_entry))
    return markets


async def _store_history(dsn: str, markets: list[Market], until: datetime) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        rows = [r for m in markets for r in m.rows if m.history_from <= r.ts < until]
        await conn.copy_records_to_table(
            "market_data", records=rows, columns=list(CandleRow._fields)
        )
    finally:
        await conn.close()


@dataclass
class Daemon:
    name: str
    env: dict[str, str]
    log: Path
    port: int
    proc: asyncio.subprocess.Process | None = None
    starts: int = 0
    kills: list[float] = field(default_factory=list)

    async def start(self) -> None:
        self.starts += 1
        with self.log.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "coinpilot", "run", cwd=ROOT, env=self.env,
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.proc.wait(), timeout=60)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None


def _env(
    dsn: str, redis_url: str, prefix: str, upbit_url: str, port: int, state: Path
) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("COINPILOT_", "WATCHDOG_"))}
    return {
        **keep,
        "COINPILOT_DATABASE_URL": dsn,
        "COINPILOT_REDIS_URL": redis_url,
        "COINPILOT_REDIS_KEY_PREFIX": prefix,
        "COINPILOT_UPBIT_URL": upbit_url,
        "COINPILOT_HTTP_PORT": str(port),
        "STATE_DIRECTORY": str(state),
        "ANTHROPIC_API_KEY": "",
        "OPENAI_API_KEY": "",
        "PYTHONUNBUFFERED": "1",
    }


async def _decided_through(dsn: str) -> tuple[int, datetime | None]:
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow("SELECT count(*) AS n, min(minute) AS m FROM bot_decided_minutes")
    finally:
        await conn.close()
    return int(row["n"]), row["m"]


async def _ledger(dsn: str) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        trades = await conn.fetch(
            """SELECT symbol, side, price, quantity, fee, exit_reason, candle_ts, executed_at
               FROM trading_history ORDER BY executed_at, symbol, side"""
        )
        cash = await conn.fetchval("SELECT cash FROM account_state")
        positions = await conn.fetch(
            "SELECT symbol, quantity, avg_price FROM positions ORDER BY symbol"
        )
    finally:
        await conn.close()
    return {"trades": [dict(t) for t in trades], "cash": cash,
            "positions": [dict(p) for p in positions]}  # fmt: skip


def _decisions(log: Path) -> collections.Counter[tuple[str, str]]:
    seen: collections.Counter[tuple[str, str]] = collections.Counter()
    for line in log.read_text(errors="replace").splitlines():
        if '"bot_decision"' not in line:
            continue
        record = json.loads(line)
        if record.get("event") == "bot_decision" and record.get("minute"):
            seen[(record["symbol"], record["minute"])] += 1
    return seen


def _events(log: Path) -> list[str]:
    out = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            out.append(json.loads(line).get("event", ""))
    return out


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not exported")


async def _sleep_until(when: datetime) -> None:
    await asyncio.sleep(max(0.0, (when - datetime.now(UTC)).total_seconds()))


async def _drop_socket(fake: FakeUpbit, when: datetime) -> int:
    """Drop every WebSocket connection at ``when`` (as a lost TCP connection would)."""
    await _sleep_until(when)
    return fake.ws.drop_all()


async def _backtest(
    env: dict[str, str], settings: Settings, markets: list[Market], first: datetime,
    last: datetime, out: Path,
) -> dict[str, Any]:  # fmt: skip
    start = min(m.history_from for m in markets)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "coinpilot", "backtest",
        "--symbols", ",".join(m.name for m in markets), "--from", start.isoformat(),
        "--to", (last + MINUTE).isoformat(),
        "--start", (first + MINUTE + timedelta(seconds=settings.app.bot.offset_s)).isoformat(),
        "--json", str(out), "--quiet", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    text, _ = await proc.communicate()
    assert proc.returncode == 0, text.decode(errors="replace")[-3000:]
    doc: dict[str, Any] = json.loads(await asyncio.to_thread(out.read_text))
    return doc


def _as_backtest(ledger: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The live trades in the backtest's shape: one row per round trip (or open entry)."""
    out, open_ = [], {}
    for t in ledger["trades"]:
        if t["side"] == "BUY":
            open_[t["symbol"]] = len(out)
            out.append([t["symbol"], t["executed_at"], t["price"], t["quantity"], t["fee"],
                        None, None, Decimal(0), ""])  # fmt: skip
        else:
            row = out[open_.pop(t["symbol"])]
            row[5:9] = [t["executed_at"], t["price"], t["fee"], t["exit_reason"]]
    return [tuple(r) for r in out]


def _from_json(doc: dict[str, Any]) -> list[tuple[Any, ...]]:
    def ts(v: str | None) -> datetime | None:
        return None if v is None else datetime.fromisoformat(v).astimezone(UTC)

    return [(t["symbol"], ts(t["entry_time"]), Decimal(t["entry_price"]), Decimal(t["quantity"]),
             Decimal(t["entry_fee"]), ts(t["exit_time"]),
             None if t["exit_price"] is None else Decimal(t["exit_price"]),
             Decimal(t["exit_fee"]), t["exit_reason"] or "") for t in doc["trades"]]  # fmt: skip


@pytest.mark.timeout(720)
async def test_real_time_daemons_decide_every_minute_once_and_match_the_backtest(
    db_dsn: str,
    second_db: str,
    redis_url_base: str,
    redis: aioredis.Redis,
    keys: Keys,
    data_dir: Path,
    tmp_path: Path,
    make_settings: Callable[..., Settings],
) -> None:
    """50 markets, ~5 real minutes: undisturbed and SIGKILLed daemons, both as the backtest."""
    probe = make_settings()
    rng = random.Random(20261129)
    entries = await _entries(data_dir, probe)
    now = datetime.now(UTC)
    if now.second > 45:  # start early in a minute: the plan below counts whole minutes
        await _sleep_until(floor_minute(now) + MINUTE + timedelta(seconds=1))
    base = floor_minute(datetime.now(UTC))
    markets = _plan(data_dir, entries, base, rng)
    assert any(m.planned_entry for m in markets), "no backtest entry fits this run"
    settings = make_settings(symbols=[m.name for m in markets],
                             volatility={"threshold_pct": 100})  # fmt: skip
    stored_until = base - timedelta(minutes=20)  # the rest through the start-up catch-up
    fakes, runners = [], []
    daemons: list[Daemon] = []
    # Each daemon's Redis keys under a prefix of this test's (the fixture's is removed by
    # the fixture, the second one below).
    second_prefix = f"t{uuid.uuid4().hex[:10]}:"
    hygiene.PREFIXES.add(second_prefix)
    try:
        for name, dsn, prefix in (("calm", db_dsn, keys.prefix),
                                  ("killed", second_db, second_prefix)):  # fmt: skip
            fake = FakeUpbit(clock=SystemClock())
            for m in markets:
                fake.add_rows(m.rows)
            _, runner, url = await start_fake_upbit(fake)
            fakes.append(fake)
            runners.append(runner)
            await _store_history(dsn, markets, stored_until)
            port = free_port()
            env = _env(dsn, redis_url_base, prefix, url, port, tmp_path / name)
            env["COINPILOT_CONFIG"] = settings.source
            daemons.append(Daemon(name, env, tmp_path / f"{name}.log", port))
        calm, killed = daemons
        await asyncio.gather(calm.start(), killed.start())

        # SIGKILL the second daemon at random points, restarting it at once; the last kill
        # leaves it time to be back before the run's last minute closes. Drop the first
        # one's WebSocket once, at a random point in between.
        last_kill = base + (LIVE_MINUTES - 1) * MINUTE + timedelta(seconds=15)
        drop_at = base + timedelta(seconds=rng.uniform(90, 60 * (LIVE_MINUTES - 1)))
        dropper = asyncio.create_task(_drop_socket(fakes[0], drop_at))
        for _ in range(KILLS):
            at = datetime.now(UTC) + timedelta(seconds=rng.uniform(15, 60))
            if at > last_kill:
                break
            await _sleep_until(at)
            assert calm.alive(), calm.log.read_text()[-3000:]
            await killed.kill()
            killed.kills.append(at.timestamp())
            await killed.start()

        # The last minute closes at base + LIVE_MINUTES: no later candle exists anywhere.
        await _sleep_until(base + LIVE_MINUTES * MINUTE + timedelta(seconds=20))
        last = base + (LIVE_MINUTES - 1) * MINUTE
        for d, dsn in ((calm, db_dsn), (killed, second_db)):
            for _ in range(120):
                n, through = await _decided_through(dsn)
                if n == MARKETS and through is not None and through >= last:
                    break
                assert d.alive(), d.log.read_text()[-3000:]
                await asyncio.sleep(1)
            assert (n, through) == (MARKETS, last), f"{d.name} decided through {through}"
        assert await dropper, "the WebSocket was not connected when dropped"
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{calm.port}/metrics") as resp,
        ):
            metrics = await resp.text()
        assert await calm.stop() == 0
        assert await killed.stop() == 0
    finally:
        for d in daemons:
            if d.alive():
                await d.kill()
        for runner in runners:
            await runner.cleanup()
        async for key in redis.scan_iter(match=f"{second_prefix}*", count=500):
            await redis.delete(key)

    # The stream carried the minutes, was lost once and came back.
    events = collections.Counter(_events(calm.log))
    assert events["ws_disconnected"] >= 1
    assert events["ws_connected"] >= 2

    # Each closed minute of each market decided exactly once, from the log and the metrics.
    decided = _decisions(calm.log)
    assert set(decided.values()) == {1}, [k for k, v in decided.items() if v > 1][:10]
    first = min(datetime.fromisoformat(m) for _, m in decided)
    minutes = int((last - first) / MINUTE) + 1
    assert minutes >= LIVE_MINUTES + 1
    expected = {(m.name, (first + i * MINUTE).isoformat()) for m in markets
                for i in range(minutes)}  # fmt: skip
    assert set(decided) == expected
    conn = await asyncpg.connect(db_dsn)
    try:
        stored = await conn.fetchval(
            "SELECT count(*) FROM market_data WHERE ts >= $1 AND ts <= $2", first, last
        )
    finally:
        await conn.close()
    assert stored == len(expected)  # every decided minute is a stored closed minute
    assert _metric(metrics, "coinpilot_minutes_decided_total") == len(expected)
    assert _metric(metrics, "coinpilot_minutes_missed_total") == 0
    assert _metric(metrics, "coinpilot_decision_latency_seconds_count") == len(expected)

    # Trade for trade as `coinpilot backtest` over the same stored candles.
    reference = await _ledger(db_dsn)
    assert reference["trades"], "no trade in the run: the comparison would prove nothing"
    doc = await _backtest(calm.env, settings, markets, first, last, tmp_path / "bt.json")
    assert _as_backtest(reference) == _from_json(doc)
    assert reference["cash"] == Decimal(str(doc["final_cash"]))

    # The daemon killed KILLS times ends with the same ledger.
    assert killed.starts > 1
    assert await _ledger(second_db) == reference
