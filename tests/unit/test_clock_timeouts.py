"""Timeouts on the injected clock: SimulatedClock's expire when the clock is moved to their
deadline (exactly there included) and never by themselves; SystemClock's are asyncio's."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from coinpilot.clock import SimulatedClock, SystemClock

START = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


async def _wait_forever(clock: SimulatedClock, when: float, entered: asyncio.Event) -> None:
    async with clock.timeout_at(when):
        entered.set()
        await asyncio.Event().wait()


async def test_expires_when_the_clock_reaches_the_deadline() -> None:
    clock = SimulatedClock(START)
    entered = asyncio.Event()
    task = asyncio.create_task(_wait_forever(clock, 10.0, entered))
    await entered.wait()
    clock.advance(9)  # 1 s short of the deadline
    await asyncio.sleep(0.05)  # a loop turn in which a wrongly due timeout would fire
    assert not task.done()
    clock.advance(1)  # exactly at the deadline: 0 + 9 + 1 = 10
    with pytest.raises(TimeoutError):
        await task


async def _sleep_then_wait(clock: SimulatedClock) -> None:
    async with clock.timeout_at(3.0):
        await clock.sleep(3)  # moves the clock to 3: the block's time is up
        await asyncio.Event().wait()


async def test_a_sleep_on_the_clock_counts_against_the_deadline() -> None:
    clock = SimulatedClock(START)
    with pytest.raises(TimeoutError):
        await _sleep_then_wait(clock)
    assert clock.monotonic() == 3.0


async def test_a_deadline_already_passed_expires_at_once() -> None:
    clock = SimulatedClock(START)
    clock.advance(5)
    with pytest.raises(TimeoutError):
        async with clock.timeout_at(5.0):
            await asyncio.Event().wait()


async def test_a_block_that_ended_in_time_is_left_alone() -> None:
    clock = SimulatedClock(START)
    async with clock.timeout_at(2.0):
        await asyncio.sleep(0)
    clock.advance(60)  # past the old deadline: nothing is left to expire
    await asyncio.sleep(0)
    assert clock.monotonic() == 60.0


async def test_the_system_clock_times_out_in_real_time() -> None:
    clock = SystemClock()
    with pytest.raises(TimeoutError):
        async with clock.timeout_at(clock.monotonic() + 0.01):
            await asyncio.Event().wait()
    async with clock.timeout_at(clock.monotonic() + 60):
        await asyncio.sleep(0)  # well within its deadline: no error
