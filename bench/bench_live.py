"""Live daemon figures: minute close → decision latency and minutes missed, in real time.

For 5, 50 and 200 markets a real ``coinpilot run`` process decides minutes as they close
against the local Upbit fake serving the shared BTC candles shifted onto the wall clock
(one copy per market, each shifted by a different number of hours), with the last hours
of history stored beforehand. After ``COINPILOT_BENCH_LIVE_MINUTES`` (default 3) closed
minutes the decision log lines give each (market, minute)'s latency: the log line's time
minus the minute's close. Missed = minutes stored but not decided, counted from the stored
candles and the log, and the daemon's own coinpilot_minutes_missed_total.

The collector takes the closes from the fake's candle WebSocket (the default source), as
it would from Upbit's; a minute closes there when the market's next minute begins.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import redis.asyncio as aioredis
import yaml

from bench.bench_marketdata import _admin_dsn, _drop_db, _fresh_db
from coinpilot.adapters.csvdata import read_csv
from coinpilot.adapters.marketdata import CandleRow
from coinpilot.clock import SystemClock, floor_minute
from tests.fakes.upbit import FakeUpbit, start_fake_upbit

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("COINPILOT_DATA_DIR", ROOT.parent / "shared" / "data"))
BTC = "binance_BTCUSDT_1m_2024-02-01_2024-02-29.csv"
MINUTE = timedelta(minutes=1)
SIZES = (5, 50, 200)
HISTORY = timedelta(hours=4)


def _markets(n: int, base: datetime) -> list[list[CandleRow]]:
    rows = read_csv(DATA / BTC)
    out = []
    for i in range(n):
        name = f"KRW-B{i:03d}"
        start = rows[0].ts + timedelta(hours=12 + 2 * i)
        shift = base - HISTORY - start
        keep = [r for r in rows if start <= r.ts < start + HISTORY + timedelta(minutes=30)]
        out.append([r._replace(symbol=name, ts=r.ts + shift) for r in keep])
    return out


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _one(admin: str, redis_url: str, n: int, minutes: int) -> dict[str, Any]:
    base = floor_minute(datetime.now(UTC))
    markets = _markets(n, base)
    name, dsn = await _fresh_db(admin)
    tmp = Path(tempfile.mkdtemp(prefix="cp-bench-live-"))
    fake = FakeUpbit(clock=SystemClock())
    for rows in markets:
        fake.add_rows(rows)
    _, runner, url = await start_fake_upbit(fake)
    proc = None
    prefix = f"bench{uuid.uuid4().hex[:8]}:"
    try:
        conn = await asyncpg.connect(dsn)
        try:
            history = [r for rows in markets for r in rows if r.ts < base - 10 * MINUTE]
            await conn.copy_records_to_table(
                "market_data", records=history, columns=list(CandleRow._fields)
            )
        finally:
            await conn.close()
        config = yaml.safe_load((ROOT / "config" / "coinpilot.yaml").read_text())
        config["symbols"] = [rows[0].symbol for rows in markets]
        (tmp / "config.yaml").write_text(yaml.safe_dump(config))
        port = _free_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("COINPILOT_")},
            "COINPILOT_CONFIG": str(tmp / "config.yaml"),
            "COINPILOT_DATABASE_URL": dsn,
            "COINPILOT_REDIS_URL": redis_url,
            "COINPILOT_REDIS_KEY_PREFIX": prefix,
            "COINPILOT_UPBIT_URL": url,
            "COINPILOT_HTTP_PORT": str(port),
            "STATE_DIRECTORY": str(tmp / "state"),
            "ANTHROPIC_API_KEY": "",
            "OPENAI_API_KEY": "",
        }
        log = tmp / "daemon.log"
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "coinpilot", "run", cwd=ROOT, env=env, stdout=out,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        # Wait for the first decision, then `minutes` closes after it (+ the grace).
        began = None
        while began is None:
            await asyncio.sleep(1)
            if proc.returncode is not None:
                raise RuntimeError(log.read_text()[-2000:])
            began = _first_decision(log)
        first = floor_minute(began)  # the first minute to close while deciding
        last = first + (minutes - 1) * MINUTE
        done = last + MINUTE + timedelta(seconds=45)
        await asyncio.sleep(max(0.0, (done - datetime.now(UTC)).total_seconds()))
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{port}/metrics") as resp,
        ):
            metrics = await resp.text()
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 60)
        latencies, decided = _latencies(log, first, last)
        conn = await asyncpg.connect(dsn)
        try:
            stored = {
                (r["symbol"], r["ts"])
                for r in await conn.fetch(
                    "SELECT symbol, ts FROM market_data WHERE ts >= $1 AND ts <= $2", first, last
                )
            }
        finally:
            await conn.close()
        missed = len(stored - decided)
        reported = _metric(metrics, "coinpilot_minutes_missed_total")
        return {"latencies": latencies, "missed": missed + int(reported), "stored": len(stored)}
    finally:
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()
        await runner.cleanup()
        await _drop_db(admin, name)
        client = aioredis.Redis.from_url(redis_url)
        try:
            async for key in client.scan_iter(match=f"{prefix}*", count=500):
                await client.delete(key)
        finally:
            await client.aclose()


def _records(log: Path) -> list[dict[str, Any]]:
    out = []
    for line in log.read_text(errors="replace").splitlines():
        if '"bot_decision"' in line and '"minute"' in line:
            record = json.loads(line)
            if record.get("minute"):
                out.append(record)
    return out


def _stamp(record: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00"))


def _first_decision(log: Path) -> datetime | None:
    return min((_stamp(r) for r in _records(log)), default=None)


def _latencies(
    log: Path, first: datetime, last: datetime
) -> tuple[list[float], set[tuple[str, datetime]]]:
    """Latencies of the minutes ``first``..``last`` (closed while deciding); all decided."""
    latencies, decided = [], set()
    for r in _records(log):
        minute = datetime.fromisoformat(r["minute"])
        if first <= minute <= last:
            latencies.append((_stamp(r) - minute - MINUTE).total_seconds())
        decided.add((r["symbol"], minute))
    return latencies, decided


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def _pct(values: list[float], q: float) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


async def _main() -> list[dict[str, Any]]:
    stack: list[Any] = []
    admin = _admin_dsn(stack)
    redis_url = os.environ.get("COINPILOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    minutes = int(os.environ.get("COINPILOT_BENCH_LIVE_MINUTES", "3"))
    figures: list[dict[str, Any]] = []
    try:
        for n in SIZES:
            got = await _one(admin, redis_url, n, minutes)
            lat = got["latencies"]
            note = f"{len(lat)} decisions over {minutes} closes, WebSocket source"
            figures += [
                {"figure": f"live: close→decision p50, {n} markets",
                 "value": round(_pct(lat, 50), 3), "unit": "s", "note": note},
                {"figure": f"live: close→decision p99, {n} markets",
                 "value": round(_pct(lat, 99), 3), "unit": "s", "target": "≤ 2 s at 200",
                 "note": note},
                {"figure": f"live: minutes missed, {n} markets", "value": got["missed"],
                 "unit": "minutes", "target": "0", "note": f"of {got['stored']} stored"},
            ]  # fmt: skip
    finally:
        for server in stack:
            server.stop()
    return figures


def run() -> list[dict[str, Any]]:
    if not (DATA / BTC).exists():
        return []
    return asyncio.run(_main())
