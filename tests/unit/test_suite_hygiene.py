"""The suite is strict by itself: a test that leaves a socket unclosed or drops a task with
its exception fails, and the failure names that test (not whichever test runs next)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

LEAKY = """
import asyncio
import socket


class Holder:
    pass


def test_leaves_a_socket_in_a_cycle():
    h = Holder()
    h.sock = socket.socket()
    h.me = h  # only the cycle collector can free it: after the test, not during


async def test_drops_a_failed_task():
    async def boom():
        raise ValueError("nobody looks at me")

    task = asyncio.get_running_loop().create_task(boom())
    await asyncio.sleep(0)
    del task


def test_clean_after_the_leaks():
    with socket.socket():
        pass
"""


def test_leaks_fail_the_test_that_made_them(tmp_path: Path) -> None:
    (tmp_path / "test_leaky.py").write_text(textwrap.dedent(LEAKY))
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider",
         "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(tmp_path), "-p", "tests.hygiene",
         "test_leaky.py"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    out = run.stdout + run.stderr
    assert run.returncode == 1, out
    lines = out.splitlines()
    errors = {line.split()[1] for line in lines if line.startswith("ERROR test_leaky.py::")}
    assert errors == {
        "test_leaky.py::test_leaves_a_socket_in_a_cycle",
        "test_leaky.py::test_drops_a_failed_task",
    }, out
    assert "ResourceWarning: unclosed <socket.socket" in out
    assert "asyncio reported during test_leaky.py::test_drops_a_failed_task" in out
    assert "Task exception was never retrieved" in out
    # Each leaky test passes its call and errs in its teardown; the clean one only passes.
    assert lines[-1].startswith("3 passed, 2 errors"), out
