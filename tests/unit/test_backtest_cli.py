"""`coinpilot backtest` on CSV files: outputs written, bad input refused with a clear message."""

from __future__ import annotations

import argparse
import base64
import importlib.util
import json
import re
import struct
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from coinpilot.commands import backtest
from coinpilot.config import load_config

UPBIT = "upbit_KRW-BTC_1m_2018-01-25_2018-02-01.csv"
needs_report = pytest.mark.skipif(
    importlib.util.find_spec("matplotlib") is None,
    reason="HTML reports need the 'report' extra (pip install 'coinpilot[report]')",
)


def _data_rows(path: Path) -> int:
    """Candles in a CSV file: its lines less the header."""
    with path.open() as f:
        return sum(1 for _ in f) - 1


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    backtest.add_arguments(parser)
    return parser.parse_args(list(argv))


@needs_report
def test_csv_run_writes_json_and_html(data_dir: Path, tmp_path: Path) -> None:
    """A CSV run prints the summary and writes a JSON document and an HTML report."""
    out, page = tmp_path / "bt.json", tmp_path / "bt.html"
    args = _args("--csv", str(data_dir / UPBIT), "--json", str(out), "--report", str(page))
    assert backtest.main(args, load_config(environ={})) == 0
    doc = json.loads(out.read_text())
    assert doc["meta"]["symbols"] == "KRW-BTC"
    assert doc["candle_steps"] == _data_rows(data_dir / UPBIT)
    # A week of data is under the 200 closed hours a regime needs: everything waits.
    assert doc["summary"]["funnel"]["regime_unknown"] > 9000
    assert page.read_text().startswith("<!DOCTYPE html>")


def test_bad_csv_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A malformed file exits 2 naming the file and line, with no traceback."""
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "symbol,ts_utc,open,high,low,close,volume,value_krw\n"
        "KRW-BTC,2024-01-01T00:00:00Z,1,2,1,x,1,\n"
    )
    assert backtest.main(_args("--csv", str(bad)), load_config(environ={})) == 2
    err = capsys.readouterr().err
    assert "bad.csv" in err
    assert "line 2" in err


def test_sources_are_exclusive(capsys: pytest.CaptureFixture[str]) -> None:
    """Giving both --csv and --symbols (or neither) is a usage error."""
    settings = load_config(environ={})
    assert backtest.main(_args("--csv", "a.csv", "--symbols", "KRW-BTC"), settings) == 2
    assert backtest.main(_args(), settings) == 2
    assert backtest.main(_args("--symbols", "KRW-BTC"), settings) == 2
    assert "--from" in capsys.readouterr().err


BINANCE = "binance_BTCUSDT_1m_2024-02-01_2024-02-29.csv"


def _png_size(b64: str) -> tuple[int, int]:
    raw = base64.b64decode(b64)
    assert raw.startswith(b"\x89PNG")
    return struct.unpack(">II", raw[16:24])


def test_a_week_of_history_says_the_regime_needs_more(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 7-day file runs but says, in days, that the regime needs 8.3 days first."""
    assert (
        backtest.main(_args("--csv", str(data_dir / UPBIT), "--quiet"), load_config(environ={}))
        == 0
    )
    err = capsys.readouterr().err
    found = re.search(r"KRW-BTC: (\d+) hourly candles \((\d+\.\d) days\) of history", err)
    assert found, err
    assert int(found[1]) < 200
    assert float(found[2]) < 8.3
    assert "needs 200 closed hourly candles (8.3 days)" in err
    assert "no trade can be entered" in err


def test_start_and_end_run_only_that_window(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--start/--end: the earlier days are history only, every decision is inside the window."""
    out = tmp_path / "w.json"
    args = _args(
        "--csv", f"{data_dir / BINANCE}=KRW-BTC", "--start", "2024-02-12", "--end",
        "2024-02-20T12:00", "--json", str(out), "--quiet",
    )  # fmt: skip
    assert backtest.main(args, load_config(environ={})) == 0
    doc = json.loads(out.read_text())
    start = datetime(2024, 2, 12, tzinfo=UTC)
    end = datetime(2024, 2, 20, 12, tzinfo=UTC)
    assert start <= datetime.fromisoformat(doc["meta"]["from"]) < start + timedelta(minutes=2)
    # The last cycle runs a few seconds after --end, on the last candle before it.
    last_cycle = end + timedelta(minutes=1)
    assert end <= datetime.fromisoformat(doc["meta"]["to"]) < last_cycle
    assert doc["trades"], "the window should hold trades"
    for t in doc["trades"]:
        assert start <= datetime.fromisoformat(t["entry_time"]) < last_cycle
    # History before --start already fills the regime's 200 hours: no note.
    assert "regime" not in capsys.readouterr().err


def test_a_window_without_candles_is_refused(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _args("--csv", f"{data_dir / BINANCE}=KRW-BTC", "--start", "2025-01-01", "--quiet")
    assert backtest.main(args, load_config(environ={})) == 2
    assert "no candles inside the run window" in capsys.readouterr().err
    assert backtest.main(_args("--csv", "x.csv", "--start", "2024-02-02", "--end", "2024-02-01"),
                         load_config(environ={})) == 2  # fmt: skip
    assert "--start must be before --end" in capsys.readouterr().err


@needs_report
def test_report_reads_as_an_analyst_needs_and_compares_two_runs(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Formatted summary beside buy and hold, monthly, grouped and round-trip tables, large
    charts; --compare puts the other run's figures beside this one's."""
    csv = f"{data_dir / BINANCE}=KRW-BTC"
    first, page = tmp_path / "a.json", tmp_path / "b.html"
    settings = load_config(environ={})
    assert backtest.main(_args("--csv", csv, "--end", "2024-02-20", "--json", str(first),
                               "--quiet"), settings) == 0  # fmt: skip
    other = json.loads(first.read_text())
    capsys.readouterr()
    second = tmp_path / "b.json"
    args = _args("--csv", csv, "--report", str(page), "--json", str(second), "--compare",
                 str(first), "--quiet")  # fmt: skip
    assert backtest.main(args, settings) == 0
    out = capsys.readouterr().out
    doc = json.loads(second.read_text())
    # JSON: values exact, display formatted.
    closed = [t for t in doc["trades"] if t["exit_time"]]
    net = sum(Decimal(t["pnl"]) for t in closed)
    fees = sum(Decimal(t["entry_fee"]) + Decimal(t["exit_fee"]) for t in closed)
    assert Decimal(doc["summary"]["total_pnl"]) == net
    assert doc["display"]["Net PnL"] == (
        f"{net:+,.0f} KRW (gross {net + fees:+,.0f}, fees {fees:,.0f})"
    )
    assert re.fullmatch(r"[+-]\d+\.\d\dm?%", doc["display"]["Buy and hold"])
    assert f"Net PnL: {doc['display']['Net PnL']}" in out
    # Side by side: this run's and the other's net PnL in one row.
    row = next(line for line in out.splitlines() if line.strip().startswith("Net PnL (KRW)"))
    this_net, other_net = (
        Decimal(doc["summary"]["total_pnl"]),
        Decimal(other["summary"]["total_pnl"]),
    )
    assert row.split()[-3:] == [
        f"{this_net:,.0f}",
        f"{other_net:,.0f}",
        f"{this_net - other_net:+,.0f}",
    ]
    html = page.read_text()
    for heading in ("Buy and hold", "Monthly returns", "regime at entry", "exit reason",
                    "Compared with the other run", "2024-02"):  # fmt: skip
        assert heading in html
    assert f"Round trips ({len(closed)} closed" in html
    images = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html)
    assert len(images) == 3  # equity vs buy and hold, drawdown, one price chart
    assert all(_png_size(i)[0] >= 1200 for i in images)
    assert "Decimal(" not in html
    assert not re.search(r"\d\.\d{9,}", html)  # no raw 13-24 decimal digits anywhere


def test_compare_with_an_unreadable_file_is_refused(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    args = _args("--csv", str(data_dir / UPBIT), "--compare", str(bad), "--quiet")
    assert backtest.main(args, load_config(environ={})) == 2
    assert "no summary" in capsys.readouterr().err
