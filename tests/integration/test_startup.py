"""Start-up and shutdown as an operator meets them: one line naming the setting when the
daemon cannot start, SIGHUP stops it like SIGTERM, embedded servers orphaned by a crash are
found by their pid files and stopped, CLI results on stdout and logs on stderr."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from coinpilot import __version__
from coinpilot.embedded import EmbeddedPostgres, EmbeddedRedis
from tests.integration.ops_support import free_port

ROOT = Path(__file__).resolve().parents[2]


def base_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COINPILOT_", "WATCHDOG_"))}
    env.update(
        STATE_DIRECTORY=str(tmp_path / "state"),
        COINPILOT_UPBIT_URL=f"http://127.0.0.1:{free_port()}",
        ANTHROPIC_API_KEY="",
        OPENAI_API_KEY="",
        NOTIFY_SOCKET="",
        COINPILOT_REDIS_KEY_PREFIX=f"t{os.getpid()}{time.monotonic_ns() % 10**8}:",
    )
    env.update(extra)
    return env


# The daemon writes its log to stdout (what journald stores), one JSON object a line.


def run_cli(
    args: list[str], env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "coinpilot", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def error_lines(text: str) -> list[str]:
    return [
        line for line in text.splitlines() if '"level": "error"' in line or "error" in line[:40]
    ]


def test_port_in_use_is_one_line_naming_the_setting(
    db_dsn: str, redis_url_base: str, tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = base_env(
            tmp_path,
            COINPILOT_DATABASE_URL=db_dsn,
            COINPILOT_REDIS_URL=redis_url_base,
            COINPILOT_HTTP_PORT=str(port),
        )
        proc = run_cli(["run"], env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-2000:]
    assert "Traceback" not in out
    failed = [
        json.loads(line) for line in proc.stdout.splitlines() if "daemon_start_failed" in line
    ]
    assert len(failed) == 1, out[-2000:]
    assert "http.port" in failed[0]["error"]
    assert "COINPILOT_HTTP_PORT" in failed[0]["error"]
    assert str(port) in failed[0]["error"]


def test_unreachable_database_is_one_line_naming_the_variable(
    redis_url_base: str, tmp_path: Path
) -> None:
    env = base_env(
        tmp_path,
        COINPILOT_DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/nope",
        COINPILOT_REDIS_URL=redis_url_base,
        COINPILOT_HTTP_PORT=str(free_port()),
    )
    proc = run_cli(["run"], env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-2000:]
    assert "Traceback" not in out
    failed = [
        json.loads(line) for line in proc.stdout.splitlines() if "daemon_start_failed" in line
    ]
    assert len(failed) == 1, out[-2000:]
    assert "COINPILOT_DATABASE_URL" in failed[0]["error"]


def test_sighup_stops_the_daemon_like_sigterm(
    db_dsn: str, redis_url_base: str, tmp_path: Path
) -> None:
    """Closing the terminal (SIGHUP) drains and stops: exit 0, 'daemon_stopped' last."""
    port = free_port()
    env = base_env(
        tmp_path,
        COINPILOT_DATABASE_URL=db_dsn,
        COINPILOT_REDIS_URL=redis_url_base,
        COINPILOT_HTTP_PORT=str(port),
    )
    err_path = tmp_path / "stdout.log"
    with err_path.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "coinpilot", "run"], cwd=ROOT, env=env, stdout=out
        )
        try:
            deadline = time.monotonic() + 90
            while "daemon_ready" not in err_path.read_text(errors="replace"):
                assert proc.poll() is None, err_path.read_text()[-2000:]
                assert time.monotonic() < deadline, "no daemon_ready"
                time.sleep(0.1)
            proc.send_signal(signal.SIGHUP)
            code = proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    events = [json.loads(line)["event"] for line in err_path.read_text().splitlines()]
    assert code == 0
    assert events[-1] == "daemon_stopped"
    assert "daemon_stopping" in events


ORPHAN = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from coinpilot.embedded import EmbeddedPostgres, EmbeddedRedis
    kind, base = sys.argv[1], Path(sys.argv[2])
    server = EmbeddedPostgres(base) if kind == "pg" else EmbeddedRedis(base)
    server.start()
    print("started", flush=True)
    time.sleep(600)
    """
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return (
        Path(f"/proc/{pid}").exists()
        and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]
    )


def _orphan(kind: str, base: Path) -> None:
    """Start an embedded server in a process, then SIGKILL the process: the server lives on."""
    with subprocess.Popen(  # leaving the block closes the pipe and waits for the process
        [sys.executable, "-c", ORPHAN, kind, str(base)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    ) as proc:
        assert proc.stdout is not None
        while (line := proc.stdout.readline()) and line.strip() != b"started":
            pass
        assert line.strip() == b"started"
        proc.kill()


def test_redis_left_by_a_crash_is_adopted_and_stopped() -> None:
    base = Path(tempfile.mkdtemp(prefix="cp-orphan-"))  # short: Unix socket paths are limited
    _orphan("redis", base)
    pid = int((base / "redis.pid").read_text())
    assert _alive(pid)
    server = EmbeddedRedis(base)
    server.start()
    server.stop()
    assert not _alive(pid)


@pytest.mark.timeout(180)
def test_postgres_left_by_a_crash_is_reused_and_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    root = Path(tempfile.mkdtemp(prefix="cp-orphan-"))
    (root / "run").mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(root / "run"))
    base = root / "pg"
    _orphan("pg", base)
    pid = int((base / "postmaster.pid").read_text().split()[0])
    assert _alive(pid)
    server = EmbeddedPostgres(base)
    server.start()
    server.stop()
    assert not _alive(pid)


def test_cli_results_on_stdout_logs_on_stderr_quiet_unless_verbose(
    db_dsn: str, redis_url_base: str, tmp_path: Path
) -> None:
    """`coinpilot job regime | tail -1` is the result, not a log line; -v adds the log on
    stderr and leaves stdout as it was."""
    env = base_env(tmp_path, COINPILOT_DATABASE_URL=db_dsn, COINPILOT_REDIS_URL=redis_url_base)
    args = ["job", "regime", "--config", str(ROOT / "config" / "coinpilot.yaml")]
    quiet = run_cli(args, env)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout.startswith("regime: ok")
    assert len(quiet.stdout.splitlines()) == 1
    assert quiet.stderr == ""
    loud = run_cli(["-v", *args], env)
    assert loud.returncode == 0
    assert loud.stdout == quiet.stdout
    events = [json.loads(line)["event"] for line in loud.stderr.splitlines()]
    assert "job_finished" in events


def test_version_is_printed() -> None:
    proc = run_cli(["--version"], dict(os.environ))
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"coinpilot {__version__}"


def test_unusable_state_directory_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    """With no URLs the embedded servers live under the state directory; a file there is
    one line naming STATE_DIRECTORY, not a traceback."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    env = base_env(tmp_path, STATE_DIRECTORY=str(blocker), COINPILOT_HTTP_PORT=str(free_port()))
    proc = run_cli(["run"], env)
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stdout + proc.stderr
    failed = [
        json.loads(line) for line in proc.stdout.splitlines() if "daemon_start_failed" in line
    ]
    assert len(failed) == 1
    assert "STATE_DIRECTORY" in failed[0]["error"]
