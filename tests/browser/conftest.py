"""Headless Chromium for the browser tests: found on PATH, or installed when CI asks for it."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

NAMES = ("chromium", "chromium-browser")


def _find() -> str | None:
    for name in NAMES:
        if found := shutil.which(name):
            return found
    return None


def _install() -> None:
    """Debian's chromium package; idempotent, and only where CI or the operator asked."""
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    started = time.monotonic()
    subprocess.run([*sudo, "apt-get", "update"], check=True, capture_output=True)
    subprocess.run(
        [*sudo, "apt-get", "install", "-y", "--no-install-recommends", "chromium"],
        check=True,
        capture_output=True,
    )
    print(f"installed chromium in {time.monotonic() - started:.0f} s")


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of a chromium binary, or a skip that says how to get one."""
    found = _find()
    if found:
        return found
    if os.environ.get("CI") == "true" or os.environ.get("COINPILOT_INSTALL_CHROMIUM") == "1":
        _install()
        found = _find()
        if found:
            return found
        pytest.fail("chromium was installed but is not on PATH")
    pytest.skip(
        "headless chromium not found: `apt-get install --no-install-recommends chromium`, "
        "or set COINPILOT_INSTALL_CHROMIUM=1 (CI=true does the same) to install it here"
    )
