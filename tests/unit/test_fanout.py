"""gather_or_cancel: a failure stops the other markets' work before it propagates."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

from coinpilot.services.fanout import gather_or_cancel


async def test_results_come_back_in_order() -> None:
    async def after(delay: float, value: int) -> int:
        await asyncio.sleep(delay)
        return value

    assert await gather_or_cancel([after(0.02, 1), after(0, 2), after(0.01, 3)]) == [1, 2, 3]


async def test_a_failure_cancels_and_awaits_the_siblings() -> None:
    """The sibling's own error on the way out is retrieved here, not left for the loop."""
    unretrieved: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, ctx: unretrieved.append(ctx))
    sibling_done = asyncio.Event()

    async def fails() -> int:
        await asyncio.sleep(0)
        raise ValueError("market A failed")

    async def sibling() -> int:
        try:
            await asyncio.Event().wait()  # still fetching when A fails
        finally:
            sibling_done.set()
            # its cleanup trips over the closed pool, as it would after the caller's exit
            raise ConnectionError("pool closed")
        return 0

    with pytest.raises(ValueError, match="market A failed"):
        await gather_or_cancel([fails(), sibling()])
    assert sibling_done.is_set()  # finished before the failure reached the caller
    gc.collect()
    await asyncio.sleep(0)
    loop.set_exception_handler(None)
    assert unretrieved == []


async def test_cancelling_the_caller_cancels_every_job() -> None:
    started = asyncio.Event()
    cancelled: list[int] = []

    async def job(n: int) -> int:
        try:
            started.set()
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(n)
            raise
        return n

    runner = asyncio.ensure_future(gather_or_cancel([job(1), job(2)]))
    await started.wait()
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
    assert sorted(cancelled) == [1, 2]
