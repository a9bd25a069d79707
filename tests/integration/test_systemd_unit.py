"""The shipped systemd unit: hardening score, syntax and the directives the daemon relies on."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "coinpilot.service"
ENV_EXAMPLE = ROOT / "systemd" / "coinpilot.env.example"
MAX_EXPOSURE = 2.0

needs_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze not installed (Debian: apt-get install systemd)",
)


def _directives(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        found.setdefault(key, []).append(value)
    return found


def test_unit_declares_notify_watchdog_restart_and_state() -> None:
    """The unit is Type=notify with a watchdog, restarts on failure and keeps state in /var/lib."""
    d = _directives(UNIT.read_text())
    assert d["Type"] == ["notify"]
    assert re.fullmatch(r"\d+s", d["WatchdogSec"][0])
    assert d["Restart"] == ["on-failure"]
    assert d["StateDirectory"] == ["coinpilot"]
    assert d["User"] == ["coinpilot"]
    assert any(v.lstrip("-") == "/etc/coinpilot/coinpilot.env" for v in d["EnvironmentFile"])
    assert d["CapabilityBoundingSet"] == [""]
    assert d["SyslogIdentifier"] == ["coinpilot"]


def test_env_example_names_only_variables_the_config_reads() -> None:
    """Every variable in the env example is one the configuration loader actually reads."""
    from coinpilot.config import ENV_NAMES, NOTIFY_KINDS

    known = set(ENV_NAMES.values())
    prefix = "COINPILOT_DISCORD_WEBHOOK_URL_"
    known |= {prefix + k.upper().replace("-", "_") for k in NOTIFY_KINDS}
    names = re.findall(r"^#?([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), re.MULTILINE)
    assert names, "the example documents no variables"
    assert set(names) <= known, set(names) - known


@needs_analyze
def test_security_exposure_within_threshold() -> None:
    """`systemd-analyze security --offline=true` rates the unit at most 2.0 (OK)."""
    out = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(UNIT)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", out.stdout + out.stderr)
    assert match, out.stdout + out.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE, out.stdout


@needs_analyze
def test_unit_verifies(tmp_path: Path) -> None:
    """`systemd-analyze verify` accepts the unit once ExecStart points at an existing binary."""
    # verify insists the executable exists; use this checkout's entry point for /opt's.
    entry = Path(sys.executable).parent / "coinpilot"
    if not entry.exists():
        pytest.skip(f"no coinpilot entry point next to {sys.executable}")
    text = UNIT.read_text().replace("/opt/coinpilot/venv/bin/coinpilot", str(entry))
    unit = tmp_path / "coinpilot.service"
    unit.write_text(text)
    out = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "coinpilot.service" not in out.stderr, out.stderr
