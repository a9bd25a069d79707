"""systemd notify protocol end to end: watchdog pings stop when a loop stalls; READY/STOPPING."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest
import redis.asyncio as aioredis
import structlog

from coinpilot.app import Deps, _watchdog, services_healthy
from coinpilot.clock import SystemClock
from coinpilot.config import Settings
from coinpilot.observability import Health, Metrics
from coinpilot.sdnotify import SdNotifier
from coinpilot.services.base import PeriodicService
from tests.integration.ops_support import free_port

ROOT = Path(__file__).resolve().parents[2]


class NotifyListener:
    """What systemd does with NOTIFY_SOCKET: receive datagrams and keep them."""

    def __init__(self, abstract: bool) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        if abstract:
            name = f"coinpilot-test-{uuid.uuid4().hex}"
            self.sock.bind("\0" + name)
            self.address = "@" + name
        else:
            self._dir = tempfile.TemporaryDirectory(prefix="cp-notify-")
            self.address = os.path.join(self._dir.name, "notify.sock")
            self.sock.bind(self.address)
        self.sock.setblocking(False)
        self.messages: list[str] = []

    def drain(self) -> list[str]:
        new = []
        while True:
            try:
                new.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                break
        self.messages += new
        return new

    def close(self) -> None:
        self.sock.close()
        if self._dir is not None:  # the socket's file and its directory
            self._dir.cleanup()


@pytest.fixture(params=[False, True], ids=["path", "abstract"])
def listener(request: pytest.FixtureRequest) -> Iterator[NotifyListener]:
    lst = NotifyListener(abstract=request.param)
    yield lst
    lst.close()


class StallableService(PeriodicService):
    """A fast loop whose cycle can be made to hang, as a wedged bot loop would."""

    name = "bot"

    def __init__(self, health: Health, metrics: Metrics) -> None:
        super().__init__(
            clock=SystemClock(), health=health, metrics=metrics, interval_s=0.05, offset_s=0
        )
        self.stalled = asyncio.Event()
        self.release = asyncio.Event()

    @property
    def max_silence_s(self) -> float:
        return 0.3

    async def run_once(self) -> None:
        if self.stalled.is_set():
            await self.release.wait()


@pytest.fixture
async def deps(
    pool: asyncpg.Pool, redis: aioredis.Redis, make_settings: Callable[..., Settings]
) -> AsyncIterator[Deps]:
    async with aiohttp.ClientSession() as http:
        yield Deps(settings=make_settings(), pool=pool, redis=redis, http=http)


async def _until(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition never became true"
        await asyncio.sleep(0.02)


async def test_watchdog_pings_stop_while_a_loop_is_stalled(
    deps: Deps, listener: NotifyListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    """WATCHDOG=1 flows while the loop cycles, stops while it hangs, resumes once it recovers."""
    monkeypatch.setenv("WATCHDOG_USEC", "100000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    svc = StallableService(deps.health, deps.metrics)
    deps.services = [svc]
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(svc.run(stop)),
        asyncio.create_task(_watchdog(deps, SdNotifier(listener.address), stop)),
    ]
    pings: list[str] = []

    def withheld() -> int:
        return sum(1 for e in logs if e["event"] == "watchdog_withheld")

    try:
        with structlog.testing.capture_logs() as logs:
            # Counted in watchdog rounds, not seconds: each round either pings or logs that
            # it withheld the ping, so the test does not depend on how fast the host is.
            await _until(lambda: pings.extend(listener.drain()) or "WATCHDOG=1" in pings)
            svc.stalled.set()
            await _until(lambda: withheld() >= 1)
            listener.drain()  # anything sent before the first withheld round
            await _until(lambda: withheld() >= 4)
            assert "WATCHDOG=1" not in listener.drain()  # three whole rounds, no ping
            svc.stalled.clear()
            svc.release.set()
            await _until(lambda: services_healthy(deps))
            pings.clear()
            await _until(lambda: pings.extend(listener.drain()) or "WATCHDOG=1" in pings)
    finally:
        stop.set()
        svc.release.set()
        await asyncio.gather(*tasks)


async def test_watchdog_is_silent_for_another_pid(
    deps: Deps, listener: NotifyListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When WATCHDOG_PID names another process the watchdog task ends without pinging."""
    monkeypatch.setenv("WATCHDOG_USEC", "100000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    await asyncio.wait_for(_watchdog(deps, SdNotifier(listener.address), asyncio.Event()), 5)
    assert listener.drain() == []


async def test_watchdog_is_off_without_watchdog_usec(
    deps: Deps, listener: NotifyListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without WATCHDOG_USEC (no WatchdogSec=) nothing is sent."""
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    await asyncio.wait_for(_watchdog(deps, SdNotifier(listener.address), asyncio.Event()), 5)
    assert listener.drain() == []


def test_notifier_is_a_no_op_without_notify_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside systemd (NOTIFY_SOCKET unset) notify returns False and raises nothing."""
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert SdNotifier().notify("READY=1") is False


def _wait_for(
    listener: NotifyListener, state: str, proc: subprocess.Popen[bytes], s: float
) -> None:
    deadline = time.monotonic() + s
    while state not in listener.messages:
        if proc.poll() is not None:
            raise AssertionError(f"daemon exited with {proc.returncode} before {state}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {state} within {s} s; got {listener.messages}")
        listener.drain()
        time.sleep(0.05)


def _wait_for_keys(
    url: str,
    prefix: str,
    pattern: str,
    proc: subprocess.Popen[bytes],
    s: float,
    listener: NotifyListener,
) -> list[str]:
    """Poll Redis until some key matching prefix+pattern exists; delete the prefix's keys."""

    async def scan() -> list[str]:
        client = aioredis.Redis.from_url(url, decode_responses=True)
        try:
            found = [k async for k in client.scan_iter(match=prefix + pattern)]
            if found:
                async for key in client.scan_iter(match=prefix + "*"):
                    await client.delete(key)
            return found
        finally:
            await client.aclose()

    deadline = time.monotonic() + s
    while True:
        found = asyncio.run(scan())
        if found:
            return found
        if proc.poll() is not None:
            raise AssertionError(f"daemon exited with {proc.returncode} before {pattern}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {prefix}{pattern} within {s} s")
        listener.drain()  # as systemd does: the daemon's pings never queue up unread
        time.sleep(0.2)


def test_daemon_ready_then_stopping_and_exit_0_on_sigterm(
    db_dsn: str, redis_url_base: str, tmp_path: Path
) -> None:
    """A real `coinpilot run`: READY=1, pings, /health 200; SIGTERM → STOPPING=1 and exit 0.

    Its Redis keys (the start-up regime run) all live under the test's own prefix.
    """
    listener = NotifyListener(abstract=False)
    port = free_port()
    prefix = f"t{uuid.uuid4().hex[:10]}:"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("COINPILOT_", "WATCHDOG_"))},
        "COINPILOT_DATABASE_URL": db_dsn,
        "COINPILOT_REDIS_URL": redis_url_base,
        "COINPILOT_REDIS_KEY_PREFIX": prefix,
        "COINPILOT_HTTP_PORT": str(port),
        # Nothing answers here: the collector fails fast instead of reaching the network.
        "COINPILOT_UPBIT_URL": f"http://127.0.0.1:{free_port()}",
        "STATE_DIRECTORY": str(tmp_path / "state"),
        "NOTIFY_SOCKET": listener.address,
        "WATCHDOG_USEC": "1000000",
        "ANTHROPIC_API_KEY": "",
        "OPENAI_API_KEY": "",
    }
    out_path, err_path = tmp_path / "stdout.log", tmp_path / "stderr.log"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "coinpilot", "run"], cwd=ROOT, env=env, stdout=out, stderr=err
        )
        try:
            _wait_for(listener, "READY=1", proc, 90)
            with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
                conn.sendall(b"GET /health HTTP/1.0\r\n\r\n")
                head = conn.recv(64).decode()
            assert head.startswith("HTTP/1.0 200") or head.startswith("HTTP/1.1 200"), head
            _wait_for(listener, "WATCHDOG=1", proc, 10)
            regimes = _wait_for_keys(redis_url_base, prefix, "market:regime:*", proc, 60, listener)
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            listener.drain()
            listener.close()
    text = out_path.read_text(errors="replace")
    assert code == 0, text[-3000:] + err_path.read_text(errors="replace")[-3000:]
    assert "STOPPING=1" in listener.messages
    assert listener.messages.index("READY=1") < listener.messages.index("STOPPING=1")
    assert listener.messages.count("READY=1") == 1
    # stdout is what journald stores: every line one JSON object with level and event.
    records = [json.loads(line) for line in text.splitlines()]
    assert all({"level", "event", "timestamp"} <= set(r) for r in records)
    events = [r["event"] for r in records]
    assert "daemon_ready" in events
    assert "daemon_stopped" in events
    assert regimes  # the start-up regime run wrote under the prefix, not market:regime:*
