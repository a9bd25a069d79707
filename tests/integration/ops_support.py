"""Helpers for the operations tests: a real app (Deps + HTTP server) on the test servers."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

from prometheus_client import Counter, Gauge, Histogram

from coinpilot.adapters.cache import Keys
from coinpilot.app import Deps, open_deps
from coinpilot.config import Settings
from coinpilot.httpserver import start_http
from coinpilot.observability import Metrics


@dataclass
class RunningApp:
    deps: Deps
    base_url: str


@contextlib.asynccontextmanager
async def running_app(settings: Settings, keys: Keys) -> AsyncIterator[RunningApp]:
    """The daemon's dependencies and HTTP server as `serve` builds them, on a free port."""
    async with contextlib.AsyncExitStack() as stack:
        deps = await open_deps(stack, settings, keys=keys)
        runner, port = await start_http(deps, "127.0.0.1", 0)
        stack.push_async_callback(runner.cleanup)
        yield RunningApp(deps, f"http://127.0.0.1:{port}")


def touch_every_metric(metrics: Metrics) -> None:
    """Give every labelled family one child so the exposition shows all of them."""
    for attr in vars(metrics).values():
        if not isinstance(attr, Counter | Gauge | Histogram):
            continue
        names = attr._labelnames
        metric = attr.labels(**{n: f"sample_{n}" for n in names}) if names else attr
        if isinstance(metric, Counter):
            metric.inc()
        elif isinstance(metric, Gauge):
            metric.set(1)
        else:
            metric.observe(0.3)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
