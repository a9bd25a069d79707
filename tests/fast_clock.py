"""A real-time clock that runs ``speed`` times faster, for tests of time-driven services.

Unlike SimulatedClock it moves by itself, so a WebSocket fake, the collector and the test
share one "now" that advances a minute every ``60 / speed`` real seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import datetime, timedelta


class FastClock:
    def __init__(self, start: datetime, speed: float) -> None:
        self.start = start
        self.speed = speed
        self._t0 = time.monotonic()

    def now(self) -> datetime:
        return self.start + timedelta(seconds=(time.monotonic() - self._t0) * self.speed)

    def monotonic(self) -> float:
        return (time.monotonic() - self._t0) * self.speed

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.speed)

    def timeout_at(self, when: float) -> contextlib.AbstractAsyncContextManager[object]:
        return asyncio.timeout((when - self.monotonic()) / self.speed)

    async def until(self, when: datetime) -> None:
        """Sleep until the clock reads ``when``."""
        await self.sleep((when - self.now()).total_seconds())
