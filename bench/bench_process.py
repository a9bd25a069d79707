"""Whole-process figures: what a user waits for and what the machine pays.

Each command runs as its own process under ``/usr/bin/time``, which forks a small image
before exec, so its peak RSS is the command's own. CPU seconds are user + system of the
whole process (imports, reading the files, the run, printing). The one-year input is the
real BTCUSDT February 2024 minutes repeated back to back to 525,600 rows, written once
into a temporary directory; nothing is copied into the project.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.bench_marketdata import _admin_dsn, _drop_db, _fresh_db

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("COINPILOT_DATA_DIR", ROOT.parent / "shared" / "data"))
MONTH = "binance_BTCUSDT_1m_2024-02-01_2024-02-29.csv"
IMPORT = (
    "upbit_KRW-BTC_1m_2018-01-25_2018-02-01.csv",
    "binance_BTCUSDT_1m_2024-02-01_2024-02-29.csv",
    "binance_ETHUSDT_1m_2025-12-18_2025-12-29.csv",
    "binance_AVAXUSDT_1m_2025-02-01_2025-02-28.csv",
)
YEAR_MINUTES = 525_600
TIME = "/usr/bin/time"
RUNS = 3


def _year_file(tmp: Path) -> Path:
    """BTCUSDT February 2024 repeated to one year of minutes, timestamps continued."""
    from datetime import UTC, datetime

    src = (DATA / MONTH).read_text().splitlines()
    header, rows = src[0], [line.split(",") for line in src[1:]]
    first = datetime.strptime(rows[0][1], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    last = datetime.strptime(rows[-1][1], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    span = int((last - first).total_seconds()) + 60
    out = [header]
    t0 = int(first.timestamp())
    offsets = [
        int(datetime.strptime(r[1], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()) - t0
        for r in rows
    ]
    k = 0
    while len(out) <= YEAR_MINUTES:
        for r, off in zip(rows, offsets, strict=True):
            ts = datetime.fromtimestamp(t0 + k * span + off, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            out.append(",".join([r[0], ts, *r[2:]]))
            if len(out) > YEAR_MINUTES:
                break
        k += 1
    path = tmp / "BTCUSDT_1m_one_year.csv"
    path.write_text("\n".join(out) + "\n")
    return path


def measure(argv: list[str], env: dict[str, str] | None = None) -> dict[str, float]:
    """Wall s, CPU s and peak RSS MB of one run of ``argv`` (which must succeed)."""
    fmt = "CPSTAT %e %U %S %M"
    proc = subprocess.run(
        [TIME, "-f", fmt, *argv],
        capture_output=True, text=True, cwd=ROOT, env=env, check=False, timeout=900,
    )  # fmt: skip
    found = re.findall(r"CPSTAT ([\d.]+) ([\d.]+) ([\d.]+) (\d+)", proc.stderr)
    if proc.returncode != 0 or not found:
        raise RuntimeError(f"{argv[:3]} failed: {proc.stderr.strip()[-300:]}")
    wall, user, system, kb = found[-1]
    return {"wall": float(wall), "cpu": float(user) + float(system), "rss": int(kb) / 1024}


def best(argv: list[str], env: dict[str, str] | None = None, runs: int = RUNS) -> dict[str, float]:
    """Fewest CPU seconds over a few runs (other work on the machine only adds to a run)."""
    got = [measure(argv, env) for _ in range(runs)]
    return min(got, key=lambda g: g["cpu"])


def _row(figure: str, value: float, unit: str, target: str, note: str = "") -> dict[str, object]:
    return {"figure": figure, "value": value, "unit": unit, "target": target, "note": note}


def _cli() -> list[str]:
    return [str(Path(sys.executable).with_name("coinpilot"))]


def _backtest(csv: Path, symbol: str) -> list[str]:
    return [*_cli(), "backtest", "--csv", f"{csv}={symbol}", "--quiet"]


def help_rows() -> list[dict[str, object]]:
    got = best([*_cli(), "--help"])
    return [
        _row("coinpilot --help", round(got["wall"], 2), "s (wall)", "<= 0.3",
             f"{got['cpu']:.2f} CPU s, {got['rss']:.0f} MB"),
    ]  # fmt: skip


def backtest_rows(tmp: Path) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for label, path, cpu_goal, rss_goal in (
        ("1 month", DATA / MONTH, 1.0, 150),
        ("1 year", _year_file(tmp), 2.0, 250),
    ):
        got = best(_backtest(path, "KRW-BTC"))
        note = f"{got['wall']:.2f} s wall"
        out.append(_row(f"coinpilot backtest, 1 symbol, {label}: CPU", round(got["cpu"], 2),
                        "CPU s", f"<= {cpu_goal}", note))  # fmt: skip
        out.append(_row(f"coinpilot backtest, 1 symbol, {label}: peak RSS", round(got["rss"], 1),
                        "MB", f"<= {rss_goal}"))  # fmt: skip
    return out


def import_rows() -> list[dict[str, object]]:
    """import-csv of the four shared 1-minute files into a fresh migrated database."""
    files = [str(DATA / f) for f in IMPORT]
    rows = sum(len((DATA / f).read_text().splitlines()) - 1 for f in IMPORT)
    stack: list[Any] = []
    admin = _admin_dsn(stack)
    results = []
    try:
        for _ in range(RUNS):
            name, dsn = asyncio.run(_fresh_db(admin))
            env = {**os.environ, "COINPILOT_DATABASE_URL": dsn}
            try:
                results.append(measure([*_cli(), "import-csv", *files], env))
            finally:
                asyncio.run(_drop_db(admin, name))
    finally:
        for server in stack:
            server.stop()
    got = min(results, key=lambda g: g["wall"])
    return [
        _row("coinpilot import-csv, 4 files end to end", round(rows / got["wall"]), "rows/s",
             ">= 50,000", f"{rows:,} rows in {got['wall']:.2f} s wall, {got['cpu']:.2f} CPU s, "
             f"{got['rss']:.0f} MB; fresh database each run"),
    ]  # fmt: skip


def run() -> list[dict[str, object]]:
    if not Path(TIME).is_file():
        return [_row("whole-process figures", 0, "skipped", "", f"{TIME} not installed")]
    out = help_rows()
    if not DATA.is_dir():
        return [*out, _row("backtest / import-csv", 0, "skipped", "", f"no data at {DATA}")]
    with tempfile.TemporaryDirectory(prefix="cp-bench-proc-") as tmp:
        out.extend(backtest_rows(Path(tmp)))
    out.extend(import_rows())
    out.append(freqtrade_row())
    return out


def freqtrade_row() -> dict[str, object]:
    exe = shutil.which("freqtrade")
    if exe is None:
        return _row("freqtrade backtest, same year, side by side", 0, "skipped", "",
                    "freqtrade is not installed on this machine")  # fmt: skip
    started = time.perf_counter()
    version = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False)
    return _row("freqtrade backtest, same year, side by side", 0, "skipped", "",
                f"freqtrade {version.stdout.strip()} found ({time.perf_counter() - started:.1f} s "
                "to start); no equivalent strategy is shipped to compare")  # fmt: skip


if __name__ == "__main__":
    for fig in run():
        print(fig)
