"""APScheduler inside the daemon: regime hourly, volatility daily, the report at 22:00 KST.

Every job has an explicit time zone, ``max_instances=1`` (a slow run is never doubled),
``coalesce=True`` (missed runs collapse into one) and the misfire grace from
``schedules`` (a run late by more than that is skipped, not run stale). The regime job also
runs at start-up, and the volatility job too when some symbol has no published state.
Each run is recorded in job_runs and in coinpilot_job_runs_total / _duration_seconds;
a failed run is logged, notified ('system') and survived.

To /health the scheduler is one service whose heartbeat proves its loop is alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from coinpilot.clock import Clock
from coinpilot.observability import Health, Metrics
from coinpilot.services.jobs import JobContext, PartialFailure
from coinpilot.services.jobs.regime import run_regime_job
from coinpilot.services.jobs.report import run_report_job
from coinpilot.services.jobs.volatility import missing_state, run_volatility_job
from coinpilot.services.outbox_sender import notify_system

if TYPE_CHECKING:
    from coinpilot.app import Deps

log = structlog.get_logger(__name__)

JobFn = Callable[[JobContext, datetime], Awaitable[str]]
JOBS: dict[str, JobFn] = {
    "regime": run_regime_job,
    "volatility": run_volatility_job,
    "report": run_report_job,
}


async def _save_run(
    ctx: JobContext,
    name: str,
    started: datetime,
    finished: datetime | None,
    status: str,
    detail: str | None,
) -> None:
    try:
        await ctx.pool.execute(
            "INSERT INTO job_runs (job, started_at, finished_at, status, detail) "
            "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (job) DO UPDATE SET "
            "started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at, "
            "status = EXCLUDED.status, detail = EXCLUDED.detail",
            name,
            started,
            finished,
            status,
            detail[:2000] if detail else None,
        )
    except Exception as exc:  # bookkeeping must never hide the job's own outcome
        ctx.metrics.dependency_error("postgres", type(exc).__name__)
        log.warning("job_run_not_recorded", job=name, error=type(exc).__name__)


async def run_recorded(ctx: JobContext, name: str, fn: JobFn, clock: Clock) -> str:
    """Run one job, record it, and return its status: ok | partial | failed."""
    started = clock.now()
    t0 = time.perf_counter()
    await _save_run(ctx, name, started, None, "running", None)
    try:
        detail, status = await fn(ctx, started), "ok"
    except asyncio.CancelledError:
        await _save_run(ctx, name, started, clock.now(), "cancelled", "stopped during shutdown")
        raise
    except PartialFailure as exc:
        detail, status = str(exc), "partial"
    except Exception as exc:  # a failed run is recorded and survived; the next one retries
        detail, status = f"{type(exc).__name__}: {exc}", "failed"
        log.exception("job_failed", job=name)
    elapsed = time.perf_counter() - t0
    ctx.metrics.job_runs.labels(job=name, outcome=status).inc()
    ctx.metrics.job_duration.labels(job=name).observe(elapsed)
    await _save_run(ctx, name, started, clock.now(), status, detail)
    log.info(
        "job_finished", job=name, status=status, duration_s=round(elapsed, 3), detail=detail[:300]
    )
    if status != "ok":
        with contextlib.suppress(Exception):
            await notify_system(
                ctx.pool,
                "job-error",
                f"Job {name} {status}: {detail}"[:1500],
                level="ERROR",
                job=name,
            )
    return status


def _hhmm(value: str) -> tuple[int, int]:
    hh, mm = value.split(":")
    return int(hh), int(mm)


class JobScheduler:
    name = "scheduler"
    heartbeat_s = 30.0

    def __init__(
        self,
        ctx: JobContext,
        *,
        clock: Clock,
        health: Health,
        metrics: Metrics,
        jobs: dict[str, JobFn] | None = None,
    ) -> None:
        self.ctx = ctx
        self.clock = clock
        self.metrics = metrics
        self.jobs = dict(jobs or JOBS)
        self.state = health.service(self.name)
        self.scheduler: AsyncIOScheduler | None = None
        self.inflight: set[asyncio.Task[Any]] = set()
        self.last_status: dict[str, str] = {}
        # When the bot decides on stored minutes it runs the start-up jobs itself, after the
        # catch-up backfill, and asks for each hour's regime before the minutes that need it.
        self.defer_startup_jobs = False
        self.regime_ran_at: datetime | None = None
        self._regime_lock = asyncio.Lock()

    @property
    def max_silence_s(self) -> float:
        return max(6 * self.heartbeat_s, 180.0)

    def triggers(self) -> dict[str, tuple[CronTrigger, int]]:
        """Each job's trigger and misfire grace (seconds)."""
        sch = self.ctx.settings.app.schedules
        vh, vm = _hhmm(sch.volatility_time_utc)
        rh, rm = _hhmm(sch.report_time_local)
        return {
            "regime": (
                CronTrigger(minute=sch.regime_minute, timezone=UTC),
                sch.regime_misfire_grace_s,
            ),
            "volatility": (
                CronTrigger(hour=vh, minute=vm, timezone=UTC),
                sch.volatility_misfire_grace_s,
            ),
            "report": (
                CronTrigger(hour=rh, minute=rm, timezone=self.ctx.settings.app.tz),
                sch.report_misfire_grace_s,
            ),
        }

    def regime_due(self, at: datetime) -> datetime:
        """The newest scheduled regime run at or before ``at``."""
        minute = self.ctx.settings.app.schedules.regime_minute
        due = at.astimezone(UTC).replace(minute=minute, second=0, microsecond=0)
        return due if due <= at else due - timedelta(hours=1)

    async def ensure_regime(self, at: datetime) -> None:
        """Run the regime job unless it already ran at or after its last schedule before ``at``.

        Both the hourly trigger and the bot call this, so a minute decided just after the
        schedule sees the new regime no matter which of the two gets there first, and the
        job runs once per hour either way.
        """
        due = self.regime_due(at)
        if self.regime_ran_at is not None and self.regime_ran_at >= due:
            return
        async with self._regime_lock:
            if self.regime_ran_at is None or self.regime_ran_at < due:
                await self.fire("regime")

    async def startup_jobs(self) -> None:
        """Regime and (when some symbol has no published state) volatility, on complete data."""
        async with self._regime_lock:
            await self.fire("regime")
        if "volatility" not in self.jobs:
            return
        trigger, grace = self.triggers()["volatility"]
        if await missing_state(self.ctx) or await self.missed_while_down(
            "volatility", trigger, grace
        ):
            await self.fire("volatility")

    async def _scheduled(self, name: str) -> str | None:
        if name == "regime":
            await self.ensure_regime(self.clock.now())
            return self.last_status.get(name)
        return await self.fire(name)

    async def fire(self, name: str) -> str:
        if name == "regime":
            self.regime_ran_at = self.clock.now()
        task = asyncio.current_task()
        if task is not None:
            self.inflight.add(task)
        try:
            status = await run_recorded(self.ctx, name, self.jobs[name], self.clock)
        finally:
            self.inflight.discard(task)  # type: ignore[arg-type]
        self.last_status[name] = status
        failing = [f"{job} {st}" for job, st in sorted(self.last_status.items()) if st != "ok"]
        # /health reports "degraded" (still 200) while a job's latest run did not succeed.
        self.state.degraded_reason = ("last run " + ", ".join(failing)) if failing else None
        return status

    async def _drain(self) -> None:
        """Start nothing new, let running jobs finish within the drain budget, then stop."""
        if self.scheduler is None or not self.scheduler.running:
            return
        self.scheduler.pause()
        if self.inflight:
            budget = self.ctx.settings.app.bot.drain_budget_s
            await asyncio.wait(set(self.inflight), timeout=budget)
        self.scheduler.shutdown(wait=False)

    async def missed_while_down(self, name: str, trigger: CronTrigger, grace_s: int) -> bool:
        """True when a fire time within the last ``grace_s`` passed with no run recorded.

        APScheduler keeps jobs in memory, so a restart at 22:00:30 would otherwise skip the
        day's report; within the misfire grace the daemon catches up once at start.
        """
        now = datetime.now(UTC)
        due = trigger.get_next_fire_time(None, now - timedelta(seconds=grace_s))
        if due is None or due > now:
            return False
        try:
            last = await self.ctx.pool.fetchval(
                "SELECT started_at FROM job_runs WHERE job = $1", name
            )
        except Exception as exc:  # without the record, catching up is the safer guess
            log.warning("job_runs_unreadable", job=name, error=type(exc).__name__)
            return True
        return last is None or last < due

    async def build(self) -> AsyncIOScheduler:
        scheduler = AsyncIOScheduler(timezone=UTC)
        run_now: set[str] = set()
        if not self.defer_startup_jobs:
            run_now.add("regime")
            if await missing_state(self.ctx):
                run_now.add("volatility")
        for name, (trigger, grace) in self.triggers().items():
            deferred = self.defer_startup_jobs and name in ("regime", "volatility")
            if (
                name not in run_now
                and not deferred
                and await self.missed_while_down(name, trigger, grace)
            ):
                log.info("job_catch_up", job=name, reason="missed while the daemon was down")
                run_now.add(name)
            if name not in self.jobs:
                continue
            extra: dict[str, Any] = {}
            if name in run_now:
                extra["next_run_time"] = datetime.now(UTC)
            scheduler.add_job(
                self._scheduled,
                trigger,
                args=[name],
                id=name,
                name=name,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=grace,
                replace_existing=True,
                **extra,
            )
        return scheduler

    async def run(self, stop: asyncio.Event) -> None:
        self.state.running = True
        try:
            self.scheduler = await self.build()
            self.scheduler.start()
            log.info(
                "scheduler_started",
                jobs=[
                    {"id": j.id, "next": j.next_run_time.isoformat() if j.next_run_time else None}
                    for j in self.scheduler.get_jobs()
                ],
            )
            while not stop.is_set():
                self.state.last_cycle = self.state.last_success = self.clock.now()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.heartbeat_s)
        finally:
            await self._drain()
            self.state.running = False


def job_context(deps: Deps) -> JobContext:
    return JobContext(
        settings=deps.settings,
        pool=deps.pool,
        redis=deps.redis,
        keys=deps.keys,
        metrics=deps.metrics,
        http=deps.http,
        extras=deps.extras,
    )


def scheduler_factory(deps: Deps) -> list[Any]:
    scheduler = JobScheduler(
        job_context(deps), clock=deps.clock, health=deps.health, metrics=deps.metrics
    )
    deps.extras["scheduler"] = scheduler  # the bot runs the start-up jobs through it
    return [scheduler]


def outbox_sender_factory(deps: Deps) -> list[Any]:
    from coinpilot.services.outbox_sender import OutboxSender

    return [
        OutboxSender(
            settings=deps.settings,
            pool=deps.pool,
            http=deps.http,
            clock=deps.clock,
            health=deps.health,
            metrics=deps.metrics,
        )
    ]
