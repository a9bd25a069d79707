"""The shape every long-running service shares: cycle, record health, wait for the next tick.

A cycle's unexpected exception is logged, counted and survived (the next cycle retries);
only ``FatalError`` ends the service and with it the process, so systemd restarts us.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from coinpilot.clock import Clock
from coinpilot.errors import FatalError, TransientError
from coinpilot.observability import Health, Metrics

log = structlog.get_logger(__name__)


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
        except TransientError as exc:  # expected now and then: no traceback, next cycle retries
            self.state.last_error = f"{type(exc).__name__}: {exc}"[:300]
            log.warning("cycle_failed", service=self.name, error=self.state.last_error)
            return False
        except Exception as exc:  # one bad cycle must not end the service
            self.state.last_error = f"{type(exc).__name__}: {exc}"[:300]
            log.exception("cycle_failed", service=self.name)
            return False
        finally:
            self.metrics.loop_duration.labels(service=self.name).observe(
                time.perf_counter() - started
            )
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
