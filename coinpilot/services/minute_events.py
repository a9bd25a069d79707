""" "Minute stored" events: the collector says which (symbol, minute) it has just committed.

The collector publishes after the database commit, once per minute it newly stored or whose
values it corrected (an identical re-delivery changes nothing and publishes nothing). Both
the WebSocket and the REST paths publish; the start-up catch-up does not publish minute by
minute (days of history would flood every subscriber) but sets ``caught_up`` when it ends.

A consumer subscribes *before* it reads the database, so nothing stored between its read
and its subscription can slip through; every subscription gets every event published after
it was opened, in publish order, on its own unbounded queue::

    events = deps.minute_events
    with events.subscribe() as sub:
        await events.caught_up.wait()
        ...                          # read what is stored
        async for event in sub:      # then react to each newly stored minute
            decide(event.symbol, event.minute)

``latest(symbol)`` and ``recent(symbol)`` answer what has been published so far.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType


@dataclass(frozen=True)
class MinuteStored:
    symbol: str
    minute: datetime  # the candle's start, aware UTC
    corrected: bool = False  # True: the minute was stored before and its values changed
    source: str = "rest"  # "websocket" or "rest"


class MinuteSubscription:
    """One consumer's queue of events; close it (or use ``with``) when done."""

    def __init__(self, owner: MinuteEvents) -> None:
        self._owner = owner
        self._queue: asyncio.Queue[MinuteStored] = asyncio.Queue()

    def _put(self, event: MinuteStored) -> None:
        self._queue.put_nowait(event)

    async def get(self) -> MinuteStored:
        """The next event, waiting for one to be published."""
        return await self._queue.get()

    def drain(self) -> list[MinuteStored]:
        """Every event waiting now, without waiting for more."""
        out = []
        while not self._queue.empty():
            out.append(self._queue.get_nowait())
        return out

    def pending(self) -> int:
        return self._queue.qsize()

    def close(self) -> None:
        self._owner._subscribers.discard(self)

    def __aiter__(self) -> MinuteSubscription:
        return self

    async def __anext__(self) -> MinuteStored:
        return await self.get()

    def __enter__(self) -> MinuteSubscription:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class MinuteEvents:
    """In-process publisher; one per daemon (``Deps.minute_events``)."""

    def __init__(self, keep: int = 1440) -> None:
        self._subscribers: set[MinuteSubscription] = set()
        self._latest: dict[str, datetime] = {}
        self._recent: dict[str, deque[MinuteStored]] = {}
        self._keep = keep
        self.published_total = 0
        # Set by the collector when its start-up catch-up has ended (stored or given up).
        self.caught_up = asyncio.Event()

    def publish(
        self,
        symbol: str,
        minute_start_utc: datetime,
        *,
        corrected: bool = False,
        source: str = "rest",
    ) -> MinuteStored:
        if minute_start_utc.tzinfo is None:
            raise ValueError(f"minute without a zone: {symbol} {minute_start_utc}")
        minute = minute_start_utc.astimezone(UTC)
        if minute.second or minute.microsecond:
            raise ValueError(f"not a minute start: {symbol} {minute}")
        event = MinuteStored(symbol, minute, corrected, source)
        newest = self._latest.get(symbol)
        if newest is None or minute > newest:
            self._latest[symbol] = minute
        self._recent.setdefault(symbol, deque(maxlen=self._keep)).append(event)
        self.published_total += 1
        for sub in self._subscribers:
            sub._put(event)
        return event

    def subscribe(self) -> MinuteSubscription:
        sub = MinuteSubscription(self)
        self._subscribers.add(sub)
        return sub

    def latest(self, symbol: str) -> datetime | None:
        """The newest minute published for ``symbol`` (None before the first)."""
        return self._latest.get(symbol)

    def latest_all(self) -> dict[str, datetime]:
        return dict(self._latest)

    def recent(self, symbol: str) -> list[MinuteStored]:
        """The last ``keep`` events of ``symbol``, in publish order."""
        return list(self._recent.get(symbol, ()))

    def __iter__(self) -> Iterator[MinuteStored]:
        """Every kept event of every symbol (tests and status pages)."""
        for events in self._recent.values():
            yield from events
