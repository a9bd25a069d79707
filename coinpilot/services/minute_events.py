"""In-process "minute stored" events: the collector tells the bot which minutes are final.

``publish(symbol, minute)`` is called after the database commit and means: every closed
candle of ``symbol`` up to and including the minute starting at ``minute`` is stored (a
minute without trades has no row and is final all the same). It is a watermark, so a
later event covers every earlier minute and a subscriber may coalesce them. Publishing
never blocks and never fails: a subscriber's queue is unbounded, and a daemon without
subscribers simply drops the events.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

MinuteStored = tuple[str, datetime]


class MinuteEvents:
    def __init__(self) -> None:
        self._queues: list[asyncio.Queue[MinuteStored]] = []

    def subscribe(self) -> asyncio.Queue[MinuteStored]:
        queue: asyncio.Queue[MinuteStored] = asyncio.Queue()
        self._queues.append(queue)
        return queue

    def publish(self, symbol: str, minute: datetime) -> None:
        for queue in self._queues:
            queue.put_nowait((symbol, minute))


def minute_events(deps: Any) -> MinuteEvents:
    """The daemon's one hub, created by whichever service asks first."""
    hub = deps.extras.get("minute_events")
    if hub is None:
        hub = deps.extras["minute_events"] = MinuteEvents()
    return hub  # type: ignore[no-any-return]
