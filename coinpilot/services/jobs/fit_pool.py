"""Child processes for the GARCH fits, so the daemon itself never imports ``arch``.

``arch`` and the scipy and pandas it stands on cost the daemon ~110 MB for the rest of its
life once imported, for a job that runs once a day. The fits therefore run in a small
process pool that lives for one job run; each worker is replaced after
``MAX_FITS_PER_WORKER`` fits, and the pool is shut down when the job ends. Workers are
forked from a fork server, a separate fresh interpreter (never a copy of the daemon) that
imports the estimator and ``arch`` once, so a job run does not pay that import again and
the daemon's own memory never holds it. The event loop only awaits futures meanwhile, so
/health, the bot and the collector keep their pace."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from typing import Any

from coinpilot.domain.volatility import VolatilityEstimate, estimate_volatility

WORKERS = 1  # one fit at a time: the daemon's own work keeps the other core
MAX_FITS_PER_WORKER = 50
PRELOAD = ["coinpilot.domain.volatility", "arch"]

Fit = Callable[..., Awaitable[VolatilityEstimate]]


@contextlib.asynccontextmanager
async def fit_pool(workers: int = WORKERS) -> AsyncIterator[Fit]:
    """``await fit(closes, threshold_pct=…, min_returns=…)`` runs ``estimate_volatility``
    in a child process; the children are gone when the block ends."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    pool = ProcessPoolExecutor(
        max_workers=workers, mp_context=context, max_tasks_per_child=MAX_FITS_PER_WORKER
    )
    loop = asyncio.get_running_loop()

    async def fit(closes: Any, **kwargs: Any) -> VolatilityEstimate:
        return await loop.run_in_executor(pool, partial(estimate_volatility, closes, **kwargs))

    try:
        yield fit
    finally:
        # Joining the children can take a moment; the loop must not wait on it.
        await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)


def in_thread(estimator: Callable[..., VolatilityEstimate]) -> Fit:
    """An in-process estimator run in a worker thread (tests substitute their own fit)."""

    async def fit(closes: Any, **kwargs: Any) -> VolatilityEstimate:
        return await asyncio.to_thread(estimator, closes, **kwargs)

    return fit
