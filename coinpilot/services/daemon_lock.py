"""Keeps the one-daemon lock verified between bot cycles, and says so when it is lost.

Every couple of seconds the lock's own connection is checked (``db.DaemonLock.check``). A
lost lock (the database restarted, the backend was terminated) stops trading and shows in
/health and the log until it is taken back; when another daemon took it meanwhile, the
check raises ``FatalError`` and this process exits non-zero for systemd to restart.
"""

from __future__ import annotations

from typing import Any

from coinpilot.adapters.db import DaemonLock
from coinpilot.clock import Clock
from coinpilot.observability import Health, Metrics
from coinpilot.services.base import PeriodicService

CHECK_EVERY_S = 2.0


class LockWatch(PeriodicService):
    name = "daemon_lock"

    def __init__(self, lock: DaemonLock, *, clock: Clock, health: Health, metrics: Metrics) -> None:
        super().__init__(clock=clock, health=health, metrics=metrics, interval_s=CHECK_EVERY_S)
        self.lock = lock

    async def run_once(self) -> None:
        held = await self.lock.check()
        self.state.degraded_reason = None if held else self.lock.lost_reason


def lock_watch_factory(deps: Any) -> list[LockWatch]:
    if deps.lock is None:
        return []
    return [LockWatch(deps.lock, clock=deps.clock, health=deps.health, metrics=deps.metrics)]
