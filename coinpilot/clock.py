"""Time as a dependency: services receive a Clock, domain functions receive ``now``."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """An aware UTC datetime."""
        ...

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...

    def timeout_at(self, when: float) -> contextlib.AbstractAsyncContextManager[object]:
        """Like ``asyncio.timeout_at``, with ``when`` on this clock's ``monotonic()``: the
        block is cancelled and TimeoutError raised once the clock reaches ``when``."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def timeout_at(self, when: float) -> contextlib.AbstractAsyncContextManager[object]:
        # The default event loop's time() is time.monotonic(): the same deadline.
        return asyncio.timeout(when - self.monotonic())


class SimulatedClock:
    """A clock that only moves when told to: replays and tests never sleep."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("SimulatedClock needs an aware datetime")
        self._now = start.astimezone(UTC)
        self._mono = 0.0
        self._timeouts: list[tuple[float, asyncio.Timeout]] = []

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def set(self, when: datetime) -> None:
        delta = (when.astimezone(UTC) - self._now).total_seconds()
        self._now = when.astimezone(UTC)
        self._mono += max(0.0, delta)
        self._expire()

    def advance(self, delta: timedelta | float) -> None:
        seconds = delta.total_seconds() if isinstance(delta, timedelta) else float(delta)
        self.set(self._now + timedelta(seconds=seconds))

    async def sleep(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))
        await asyncio.sleep(0)

    @contextlib.asynccontextmanager
    async def timeout_at(self, when: float) -> AsyncIterator[object]:
        """Expires when the clock is moved to ``when`` (or is already there), never by itself."""
        async with asyncio.timeout(None) as timeout:
            entry = (when, timeout)
            self._timeouts.append(entry)
            try:
                self._expire()
                yield timeout
            finally:
                self._timeouts.remove(entry)

    def _expire(self) -> None:
        due = [t for when, t in self._timeouts if when <= self._mono and not t.expired()]
        if due:  # timeouts are entered only inside the running loop
            now = asyncio.get_running_loop().time()
            for timeout in due:
                timeout.reschedule(now)


def floor_minute(ts: datetime) -> datetime:
    return ts.replace(second=0, microsecond=0)
