"""Log lines as journald and jq see them: one JSON object per line, levels mapped to priorities."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import aiohttp
import asyncpg
import pytest
import redis.asyncio as aioredis
import structlog

from coinpilot.adapters import marketdata as md
from coinpilot.adapters.cache import Keys
from coinpilot.adapters.csvdata import read_csv
from coinpilot.adapters.upbit import UpbitClient
from coinpilot.clock import SimulatedClock, SystemClock
from coinpilot.config import CollectorConfig, Settings
from coinpilot.observability import PRIORITIES, Health, Metrics, configure_logging
from coinpilot.services.bot import BotService
from coinpilot.services.collector import Collector
from coinpilot.services.jobs import JobContext
from coinpilot.services.scheduler import run_recorded
from tests.fakes.upbit import FakeUpbit, running_fake_upbit

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def json_logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], list[dict]]]:
    """Configure the daemon's JSON logging onto a buffer standing in for stdout."""
    buffer = io.StringIO()
    monkeypatch.setattr(sys, "stdout", buffer)
    configure_logging("DEBUG", "json")

    def lines() -> list[dict]:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    yield lines
    structlog.reset_defaults()


def test_each_level_is_one_json_line_with_its_priority(json_logs: Callable[[], list[dict]]) -> None:
    """debug/info/warning/error/critical render as JSON with level, event and syslog priority."""
    log = structlog.get_logger("test")
    for level in ("debug", "info", "warning", "error", "critical"):
        getattr(log, level)(f"sample_{level}", symbol="KRW-BTC")
    records = json_logs()
    assert [r["event"] for r in records] == [
        "sample_debug",
        "sample_info",
        "sample_warning",
        "sample_error",
        "sample_critical",
    ]
    assert [r["priority"] for r in records] == [7, 6, 4, 3, 2]
    assert all(PRIORITIES[r["level"]] == r["priority"] for r in records)
    assert all(r["symbol"] == "KRW-BTC" and r["timestamp"].endswith("Z") for r in records)


def test_exception_stays_on_one_line_at_error(json_logs: Callable[[], list[dict]]) -> None:
    """log.exception keeps the traceback inside one JSON line, at error priority."""
    log = structlog.get_logger("test")
    try:
        raise ValueError("bad candle")
    except ValueError:
        log.exception("cycle_failed", service="collector")
    (record,) = json_logs()
    assert record["level"] == "error"
    assert record["priority"] == 3
    assert "ValueError: bad candle" in record["exception"]


def test_secret_fields_are_masked(json_logs: Callable[[], list[dict]]) -> None:
    """Fields named like secrets never reach the log in clear."""
    log = structlog.get_logger("test")
    log.info("config_loaded", anthropic_api_key="sk-ant-xyz", webhook_url="https://h/x", n=1)
    (record,) = json_logs()
    assert record["anthropic_api_key"] == "********"
    assert record["webhook_url"] == "********"
    assert "sk-ant-xyz" not in json.dumps(record)


EMIT = """
import logging
import structlog
from coinpilot.observability import configure_logging
configure_logging("INFO", "auto")
log = structlog.get_logger("t")
log.info("bot_decision", symbol="KRW-ETH", decision="hold", reason="rsi_14_too_high")
log.warning("candles_stale", symbol="KRW-ETH", age_s=400)
log.error("notify_failed", kind="trade")
logging.getLogger("asyncpg.pool").error("pool closing\\nsecond line")
"""


def _emit(tmp_path: Path, journal: bool) -> list[str]:
    out = tmp_path / f"stdout-{journal}.log"
    with out.open("w") as fh:
        env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
        if journal:
            st = os.fstat(fh.fileno())
            env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
        subprocess.run(
            [sys.executable, "-c", EMIT],
            stdout=fh,
            stderr=fh,
            env=env,
            cwd=ROOT,
            check=True,
            timeout=60,
        )
    return out.read_text().splitlines()


def test_journal_stream_gets_priority_prefixes(tmp_path: Path) -> None:
    """With stdout on the journal each line starts with <N>; journald strips it, leaving JSON."""
    lines = _emit(tmp_path, journal=True)
    assert [line[:3] for line in lines] == ["<6>", "<4>", "<3>", "<3>", "<3>"]
    records = [json.loads(line[3:]) for line in lines[:3]]
    assert [r["level"] for r in records] == ["info", "warning", "error"]
    assert records[0]["symbol"] == "KRW-ETH"
    assert records[0]["reason"] == "rsi_14_too_high"
    # Library records on stderr keep their level too, on every line of a multi-line message.
    assert lines[3:] == ["<3>asyncpg.pool pool closing", "<3>second line"]


def test_plain_pipe_gets_bare_json(tmp_path: Path) -> None:
    """Piped elsewhere (no JOURNAL_STREAM), lines are bare JSON objects for jq."""
    lines = _emit(tmp_path, journal=False)
    records = [json.loads(line) for line in lines[:3]]
    assert [r["event"] for r in records] == ["bot_decision", "candles_stale", "notify_failed"]
    assert lines[3:] == ["asyncpg.pool pool closing", "second line"]


async def test_job_run_logs_one_line(
    json_logs: Callable[[], list[dict]],
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    keys: Keys,
    make_settings: Callable[..., Settings],
) -> None:
    """A scheduled job run writes exactly one job_finished line with job, status and duration."""
    ctx = JobContext(settings=make_settings(), pool=pool, redis=redis, keys=keys, metrics=Metrics())

    async def job(ctx: JobContext, now: datetime) -> str:
        return "3 symbols"

    json_logs()  # drop anything logged while the fixtures were set up
    assert await run_recorded(ctx, "demo", job, SystemClock()) == "ok"
    finished = [r for r in json_logs() if r["event"] == "job_finished"]
    assert len(finished) == 1
    assert finished[0]["job"] == "demo"
    assert finished[0]["status"] == "ok"
    assert finished[0]["priority"] == 6
    assert finished[0]["duration_s"] >= 0


async def test_collector_cycle_logs_one_line_and_one_warning_per_failed_symbol(
    json_logs: Callable[[], list[dict]], pool: asyncpg.Pool, data_dir: Path
) -> None:
    """A collector cycle with KRW-ETH failing: one collect_cycle line, one warning naming ETH."""
    rows = read_csv(data_dir / "upbit_KRW-BTC_1m_2018-01-25_2018-02-01.csv")[:120]
    clock = SimulatedClock(rows[-1].ts + timedelta(minutes=1, seconds=2))
    fake = FakeUpbit(clock=clock, limit_per_s=None)
    fake.add_rows(rows)
    fake.add_rows([r._replace(symbol="KRW-ETH") for r in rows])
    fake.fail("KRW-ETH", "500")
    metrics = Metrics()
    async with running_fake_upbit(fake) as (_, url), aiohttp.ClientSession() as http:
        client = UpbitClient(
            http,
            url,
            clock=clock,
            metrics=metrics,
            timeout_s=2.0,
            requests_per_second=None,
            max_retries=0,
            retry_base_s=0.0,
        )
        collector = Collector(
            client=client,
            pool=pool,
            symbols=["KRW-BTC", "KRW-ETH"],
            config=CollectorConfig(backfill_days=0.05, recent_candles=5),
            clock=clock,
            health=Health(),
            metrics=metrics,
        )
        json_logs()
        await collector.run_once()
    records = json_logs()
    cycles = [r for r in records if r["event"] == "collect_cycle"]
    assert len(cycles) == 1
    assert cycles[0]["symbols"] == 2
    assert cycles[0]["failed"] == ["KRW-ETH"]
    assert cycles[0]["stored"] > 0
    failed = [r for r in records if r["event"] == "collect_failed"]
    assert [(r["symbol"], r["level"], r["priority"]) for r in failed] == [("KRW-ETH", "warning", 4)]


async def test_bot_cycle_logs_one_decision_per_symbol_with_reason(
    json_logs: Callable[[], list[dict]],
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    keys: Keys,
    make_settings: Callable[..., Settings],
    data_dir: Path,
) -> None:
    """One bot cycle: exactly one bot_decision line per symbol, each with symbol and reason."""
    rows = read_csv(data_dir / "upbit_KRW-BTC_1m_2018-01-25_2018-02-01.csv")[:260]
    await md.upsert_candles(pool, rows)
    clock = SimulatedClock(rows[-1].ts + timedelta(minutes=1, seconds=6))
    metrics = Metrics()
    bot = BotService(
        settings=make_settings(), pool=pool, redis=redis, keys=keys, clock=clock,
        health=Health(), metrics=metrics, symbols=["KRW-BTC", "KRW-ETH"],
    )  # fmt: skip
    await bot.startup()
    json_logs()
    await bot.run_once()
    decisions = [r for r in json_logs() if r["event"] == "bot_decision"]
    assert sorted(r["symbol"] for r in decisions) == ["KRW-BTC", "KRW-ETH"]
    for record in decisions:
        assert record["reason_code"]
        assert record["reason"]
        assert record["priority"] == PRIORITIES[record["level"]]
    counted = sum(
        metrics.registry.get_sample_value(
            "coinpilot_entry_decisions_total", {"reason": r["reason_code"]}
        )
        or 0
        for r in {r["reason_code"]: r for r in decisions}.values()
    )
    assert counted == 2
