"""Run one coroutine per market and collect the results, leaving nothing behind on failure.

``asyncio.gather`` re-raises the first failure but leaves the siblings running: they go on
using a pool or a session that the caller is about to close, and an error they raise then
is never retrieved. Here the first failure cancels the siblings and waits for them before
it propagates. (A TaskGroup would do the same but wraps the error in an ExceptionGroup,
which the callers' ``except DependencyDown`` would no longer catch.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import TypeVar

T = TypeVar("T")


async def gather_or_cancel(jobs: Iterable[Awaitable[T]]) -> list[T]:
    """The results in order, or the first failure once every sibling has finished."""
    tasks = [asyncio.ensure_future(job) for job in jobs]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
