"""The shape every long-running service shares: cycle, record health, wait for the next tick.

A cycle's unexpected exception is logged, counted and survived (the next cycle retries);
only ``FatalError`` ends the service and with it the process, so systemd restarts us.
A dependency that is down (PostgreSQL, Redis, an HTTP peer) fails every cycle the same way:
one warning line when it starts, then only the count in coinpilot_dependency_errors_total,
and one line when a cycle succeeds again, instead of a traceback every few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import asyncpg
import structlog
from redis.exceptions import RedisError

from coinpilot.clock import Clock
from coinpilot.errors import FatalError, TransientError
from coinpilot.observability import Health, Metrics

log = structlog.get_logger(__name__)

OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    TransientError, OSError, TimeoutError, asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError, asyncpg.exceptions.OperatorInterventionError,
    RedisError, aiohttp.ClientError,
)  # fmt: skip


def _dependency(exc: BaseException) -> str:
    module = type(exc).__module__
    for prefix, name in (("asyncpg", "database"), ("redis", "redis"), ("aiohttp", "http")):
        if module.startswith(prefix):
            return name
    return "network" if isinstance(exc, OSError | TimeoutError) else "transient"


class PeriodicService:
    name = "service"

    def __init__(
        self,
        *,
        clock: Clock,
        health: Health,
        metrics: Metrics,
        interval_s: float,
        offset_s: float = 0.0,
    ) -> None:
        self.clock = clock
        self.health = health
        self.metrics = metrics
        self.interval_s = interval_s
        self.offset_s = offset_s
        self.state = health.service(self.name)
        self._outage: str | None = None  # the error the current run of failures started with
        self._outage_cycles = 0

    @property
    def max_silence_s(self) -> float:
        """How long without a finished cycle before the service counts as hung."""
        return max(3 * self.interval_s, 180.0)

    async def run_once(self) -> Any:
        raise NotImplementedError

    async def startup(self) -> None:
        """Work done once before the first cycle (reconciliation, backfill)."""

    def seconds_to_next_tick(self) -> float:
        """Align cycles to the wall clock: `offset_s` after each multiple of `interval_s`."""
        now = self.clock.now().timestamp()
        nxt = (now - self.offset_s) // self.interval_s * self.interval_s + self.interval_s
        return max(0.0, nxt + self.offset_s - now)

    async def cycle(self, work: Callable[[], Awaitable[Any]] | None = None) -> bool:
        """One unit of work (by default ``run_once``), its failure logged and survived."""
        started = time.perf_counter()
        self.state.last_cycle = self.clock.now()
        try:
            await (work or self.run_once)()
        except FatalError:
            raise
        except OUTAGE_ERRORS as exc:  # expected now and then: no traceback, next cycle retries
            self.state.last_error = f"{type(exc).__name__}: {exc}"[:300]
            self.metrics.dependency_error(_dependency(exc), type(exc).__name__)
            self._outage_cycles += 1
            if self._outage != type(exc).__name__:
                self._outage = type(exc).__name__
                log.warning("cycle_failed", service=self.name, error=self.state.last_error,
                            repeats="counted in coinpilot_dependency_errors_total")  # fmt: skip
            return False
        except Exception as exc:  # one bad cycle must not end the service
            self.state.last_error = f"{type(exc).__name__}: {exc}"[:300]
            log.exception("cycle_failed", service=self.name)
            return False
        finally:
            self.metrics.loop_duration.labels(service=self.name).observe(
                time.perf_counter() - started
            )
        if self._outage is not None:
            log.info("cycle_recovered", service=self.name, failed_cycles=self._outage_cycles)
            self._outage, self._outage_cycles = None, 0
        self.state.last_success = self.clock.now()
        self.state.last_error = None
        self.metrics.loop_last_success.labels(service=self.name).set(
            self.state.last_success.timestamp()
        )
        return True

    async def run(self, stop: asyncio.Event) -> None:
        self.state.running = True
        try:
            if not stop.is_set():
                await self.startup()
            while not stop.is_set():
                await self.cycle()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.seconds_to_next_tick())
        finally:
            self.state.running = False
