"""The in-process "minute stored" publisher: fan-out, order, what was published, zones."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import pytest

from coinpilot.services.minute_events import MinuteEvents, MinuteStored

M0 = datetime(2026, 11, 29, 21, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


async def test_every_subscriber_gets_every_later_event_in_order() -> None:
    events = MinuteEvents()
    events.publish("KRW-BTC", M0)  # before anyone listens: kept in the record only
    first = events.subscribe()
    second = events.subscribe()
    events.publish("KRW-BTC", M0 + MIN)
    events.publish("KRW-ETH", M0 + MIN, corrected=True, source="websocket")
    expected = [
        MinuteStored("KRW-BTC", M0 + MIN, False, "rest"),
        MinuteStored("KRW-ETH", M0 + MIN, True, "websocket"),
    ]
    assert [await first.get(), await first.get()] == expected
    assert second.drain() == expected
    assert first.pending() == second.pending() == 0


async def test_a_waiting_consumer_wakes_on_publish_and_a_closed_one_gets_nothing() -> None:
    events = MinuteEvents()
    with events.subscribe() as sub:
        waiter = asyncio.create_task(anext(aiter(sub)))
        await asyncio.sleep(0)
        assert not waiter.done()
        events.publish("KRW-XRP", M0)
        assert (await waiter).symbol == "KRW-XRP"
    events.publish("KRW-XRP", M0 + MIN)
    assert sub.pending() == 0


def test_what_was_published_can_be_asked() -> None:
    events = MinuteEvents(keep=3)
    for k in range(5):
        events.publish("KRW-BTC", M0 + k * MIN)
    events.publish("KRW-BTC", M0 + MIN, corrected=True)  # a correction does not move latest
    assert events.latest("KRW-BTC") == M0 + 4 * MIN
    assert events.latest("KRW-ETH") is None
    assert events.latest_all() == {"KRW-BTC": M0 + 4 * MIN}
    assert [e.minute for e in events.recent("KRW-BTC")] == [M0 + 3 * MIN, M0 + 4 * MIN, M0 + MIN]
    assert events.published_total == 6
    assert len(list(events)) == 3


def test_minutes_are_utc_minute_starts() -> None:
    events = MinuteEvents()
    kst = timezone(timedelta(hours=9))
    event = events.publish("KRW-BTC", datetime(2026, 11, 30, 6, 1, tzinfo=kst))
    assert event.minute == M0 + MIN
    assert event.minute.tzinfo == UTC
    with pytest.raises(ValueError, match="without a zone"):
        events.publish("KRW-BTC", datetime(2026, 11, 29, 21, 0))
    with pytest.raises(ValueError, match="not a minute start"):
        events.publish("KRW-BTC", M0 + timedelta(seconds=5))
