"""Each command imports what it uses: the help lists commands without loading any, and a
backtest without --report never loads scipy, arch or matplotlib."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HEAVY = ("numpy", "polars", "asyncpg", "pydantic", "scipy", "arch", "matplotlib")


def _loaded_after(argv: list[str]) -> list[str]:
    """The heavy or command modules a fresh interpreter holds after ``coinpilot ARGV``."""
    code = (
        "import json, sys\n"
        "from coinpilot import cli\n"
        "try:\n"
        f"    cli.main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        f"heavy = {HEAVY!r}\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in heavy"
        " and '.' not in m or m.startswith('coinpilot.commands.'))))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return list(json.loads(proc.stdout.strip().splitlines()[-1]))


def test_help_loads_no_command_and_no_heavy_library() -> None:
    assert _loaded_after(["--help"]) == []


def test_a_backtest_loads_only_its_command_and_no_scipy_arch_or_matplotlib(
    data_dir: Path,
) -> None:
    csv = data_dir / "upbit_KRW-BTC_1m_2018-01-25_2018-02-01.csv"
    loaded = _loaded_after(["backtest", "--csv", str(csv), "--quiet"])
    assert [m for m in loaded if m.startswith("coinpilot.commands.")] == [
        "coinpilot.commands.backtest"
    ]
    assert not {"scipy", "arch", "matplotlib"} & set(loaded)
    assert "polars" in loaded  # the CSV reader
