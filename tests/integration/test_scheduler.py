"""The in-daemon scheduler: triggers, start-up runs, job_runs bookkeeping, failures."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import aiohttp
import asyncpg
import pytest
import redis.asyncio as aioredis

from coinpilot.adapters.cache import Keys
from coinpilot.app import Deps, build_services
from coinpilot.clock import SystemClock
from coinpilot.config import Settings
from coinpilot.observability import Health, Metrics
from coinpilot.services.jobs import JobContext, PartialFailure
from coinpilot.services.scheduler import JobFn, JobScheduler, run_recorded


def context(
    settings: Settings, pool: asyncpg.Pool, redis: aioredis.Redis, keys: Keys
) -> JobContext:
    return JobContext(settings=settings, pool=pool, redis=redis, keys=keys, metrics=Metrics())


def far_from_now(hours: float = 12.0) -> dict[str, str]:
    """Schedules whose daily slots are hours away, so no start-up catch-up can trigger."""
    later = datetime.now(UTC) + timedelta(hours=hours)
    kst = later.astimezone(ZoneInfo("Asia/Seoul"))
    return {"volatility_time_utc": f"{later:%H:%M}", "report_time_local": f"{kst:%H:%M}"}


def recorder(calls: list[str], name: str, fired: asyncio.Event | None = None) -> JobFn:
    async def job(ctx: JobContext, now: datetime) -> str:
        calls.append(name)
        if fired is not None:
            fired.set()
        return f"{name} done"

    return job


async def test_triggers_have_explicit_zones_and_guards(
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    keys: Keys,
    make_settings: Callable[..., Settings],
) -> None:
    """Regime at :01 UTC, volatility 00:05 UTC, report 22:00 KST; one instance, coalesced."""
    ctx = context(make_settings(), pool, redis, keys)
    sched = JobScheduler(ctx, clock=SystemClock(), health=Health(), metrics=ctx.metrics)
    scheduler = await sched.build()
    base = datetime(2026, 3, 2, 10, 30, tzinfo=UTC)
    expected = {
        "regime": (datetime(2026, 3, 2, 11, 1, tzinfo=UTC), "UTC", 300),
        "volatility": (datetime(2026, 3, 3, 0, 5, tzinfo=UTC), "UTC", 3600),
        "report": (datetime(2026, 3, 2, 13, 0, tzinfo=UTC), "Asia/Seoul", 7200),
    }
    for name, (next_fire, zone, grace) in expected.items():
        job = scheduler.get_job(name)
        assert job.trigger.get_next_fire_time(None, base) == next_fire
        assert str(job.trigger.timezone) == zone
        assert (job.max_instances, job.coalesce, job.misfire_grace_time) == (1, True, grace)


async def test_start_runs_regime_and_missing_volatility_then_stops(
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    keys: Keys,
    make_settings: Callable[..., Settings],
) -> None:
    """At start the regime job and (state missing) the volatility job run and are recorded."""
    ctx = context(make_settings(symbols=["KRW-BTC"], schedules=far_from_now()), pool, redis, keys)
    calls: list[str] = []
    fired = {"regime": asyncio.Event(), "volatility": asyncio.Event()}
    jobs = {
        name: recorder(calls, name, fired.get(name)) for name in ("regime", "volatility", "report")
    }
    health = Health()
    sched = JobScheduler(ctx, clock=SystemClock(), health=health, metrics=ctx.metrics, jobs=jobs)
    stop = asyncio.Event()
    task = asyncio.create_task(sched.run(stop))
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in fired.values())), timeout=20)
    assert health.services["scheduler"].running
    assert health.services["scheduler"].last_success is not None
    stop.set()
    await asyncio.wait_for(task, timeout=10)
    assert sorted(calls) == ["regime", "volatility"]
    rows = await pool.fetch("SELECT job, status, detail FROM job_runs ORDER BY job")
    assert [tuple(r) for r in rows] == [
        ("regime", "ok", "regime done"),
        ("volatility", "ok", "volatility done"),
    ]
    assert not health.services["scheduler"].running
    assert ctx.metrics.job_runs.labels(job="regime", outcome="ok")._value.get() == 1


async def test_volatility_waits_for_its_slot_when_state_exists(
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    keys: Keys,
    make_settings: Callable[..., Settings],
) -> None:
    """With every symbol's verdict stored, volatility is not run at start."""
    ctx = context(make_settings(symbols=["KRW-BTC"], schedules=far_from_now()), pool, redis, keys)
    await pool.execute("INSERT INTO volatility_state VALUES ('KRW-BTC', 0.1, false, 'ok', now())")
    sched = JobScheduler(ctx, clock=SystemClock(), health=Health(), metrics=ctx.metrics)
    scheduler = await sched.build()
    scheduler.start(paused=True)
    try:
        soon = datetime.now(UTC) + timedelta(minutes=1)
        assert scheduler.get_job("regime").next_run_time < soon
        vol_next = scheduler.get_job("volatility").next_run_time
        assert f"{vol_next.astimezone(UTC):%H:%M}" == ctx.settings.app.schedules.volatility_time_utc
    finally:
        scheduler.shutdown(wait=False)


@pytest.mark.parametrize(
    ("error", "status"),
    [(RuntimeError("boom"), "failed"), (PartialFailure("KRW-BTC=BULL failed: X"), "partial")],
)
async def test_failed_run_is_recorded_notified_and_survived(
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    keys: Keys,
    make_settings: Callable[..., Settings],
    error: Exception,
    status: str,
) -> None:
    """A raising job is recorded with its status, counted, and announced as a system error."""
    ctx = context(make_settings(), pool, redis, keys)

    async def broken(ctx: JobContext, now: datetime) -> str:
        raise error

    assert await run_recorded(ctx, "regime", broken, SystemClock()) == status
    row = await pool.fetchrow("SELECT status, detail, finished_at FROM job_runs")
    assert row["status"] == status
    assert str(error) in row["detail"]
    assert row["finished_at"] is not None
    (note,) = await pool.fetch("SELECT kind, payload FROM outbox")
    assert (note["kind"], note["payload"]["level"], note["payload"]["job"]) == (
        "system",
        "ERROR",
        "regime",
    )
    assert ctx.metrics.job_runs.labels(job="regime", outcome=status)._value.get() == 1


async def test_daemon_builds_sender_and_scheduler(
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    keys: Keys,
    make_settings: Callable[..., Settings],
) -> None:
    """The daemon's service list includes the notification sender and the scheduler."""
    import coinpilot.wiring  # noqa: F401  (registers the factories)

    async with aiohttp.ClientSession() as http:
        deps = Deps(settings=make_settings(), pool=pool, redis=redis, http=http, keys=keys)
        names = [s.name for s in build_services(deps)]
    assert {"notify", "scheduler"} <= set(names)


async def test_cli_runs_one_job_and_records_it(
    db_dsn: str,
    pool: asyncpg.Pool,
    redis_url_base: str,
    redis: aioredis.Redis,
    keys: Keys,
    make_settings: Callable[..., Settings],
) -> None:
    """`coinpilot job regime` runs the job once, records it, writes under the key prefix."""
    settings = make_settings(symbols=["KRW-BTC"])
    env = {
        **os.environ,
        "COINPILOT_DATABASE_URL": db_dsn,
        "COINPILOT_REDIS_URL": redis_url_base,
        "COINPILOT_REDIS_KEY_PREFIX": keys.prefix,
        "PYTHONPATH": os.getcwd(),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "coinpilot",
        "job",
        "regime",
        "--config",
        settings.source,
        env=env,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0
    assert "regime: ok (KRW-BTC=UNKNOWN)" in out.decode()
    assert await pool.fetchval("SELECT status FROM job_runs WHERE job = 'regime'") == "ok"
    # Only this test's keys: a suite run next to a live daemon leaves its regimes alone.
    assert await redis.get(keys.regime("KRW-BTC")) == "UNKNOWN"


async def test_stop_waits_for_a_running_job_then_cancels_it(
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    keys: Keys,
    make_settings: Callable[..., Settings],
) -> None:
    """A job still running after the drain budget is cancelled and recorded as such."""
    ctx = context(
        make_settings(symbols=["KRW-BTC"], bot={"drain_budget_s": 0.2}, schedules=far_from_now()),
        pool,
        redis,
        keys,
    )
    started = asyncio.Event()

    async def endless(ctx: JobContext, now: datetime) -> str:
        started.set()
        await asyncio.Event().wait()
        return "never"

    jobs = {"regime": endless}
    sched = JobScheduler(ctx, clock=SystemClock(), health=Health(), metrics=ctx.metrics, jobs=jobs)
    stop = asyncio.Event()
    task = asyncio.create_task(sched.run(stop))
    await asyncio.wait_for(started.wait(), timeout=20)
    stop.set()
    await asyncio.wait_for(task, timeout=10)

    status = "running"
    for _ in range(500):  # the cancelled job records itself a few loop turns later
        status = await pool.fetchval("SELECT status FROM job_runs")
        if status != "running":
            break
        await asyncio.sleep(0.02)
    assert status == "cancelled"


@pytest.mark.parametrize(
    ("minutes_ago", "ran_since", "expected"),
    [(5, False, True), (5, True, False), (180, False, False)],
)
async def test_report_missed_while_down_is_caught_up_within_grace(
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    keys: Keys,
    make_settings: Callable[..., Settings],
    minutes_ago: int,
    ran_since: bool,
    expected: bool,
) -> None:
    """A report slot passed within its 2 h grace and not yet run is run once at start."""
    slot = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    local = slot.astimezone(ZoneInfo("Asia/Seoul"))
    ctx = context(
        make_settings(schedules={"report_time_local": f"{local:%H:%M}"}), pool, redis, keys
    )
    if ran_since:
        await pool.execute(
            "INSERT INTO job_runs (job, started_at, status) VALUES ('report', now(), 'ok')"
        )
    sched = JobScheduler(ctx, clock=SystemClock(), health=Health(), metrics=ctx.metrics)
    trigger, grace = sched.triggers()["report"]
    assert await sched.missed_while_down("report", trigger, grace) is expected


async def test_failing_job_marks_scheduler_degraded_until_it_succeeds(
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    keys: Keys,
    make_settings: Callable[..., Settings],
) -> None:
    """A failed run shows in /health as a degraded reason; the next good run clears it."""
    ctx = context(make_settings(), pool, redis, keys)
    outcomes = [RuntimeError("db gone"), None]

    async def flaky(ctx: JobContext, now: datetime) -> str:
        error = outcomes.pop(0)
        if error is not None:
            raise error
        return "fine"

    health = Health()
    sched = JobScheduler(
        ctx, clock=SystemClock(), health=health, metrics=ctx.metrics, jobs={"regime": flaky}
    )
    assert await sched.fire("regime") == "failed"
    assert health.services["scheduler"].degraded_reason == "last run regime failed"
    assert await sched.fire("regime") == "ok"
    assert health.services["scheduler"].degraded_reason is None
