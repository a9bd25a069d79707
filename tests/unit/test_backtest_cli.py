"""`coinpilot backtest` on CSV files: outputs written, bad input refused with a clear message."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from coinpilot.commands import backtest
from coinpilot.config import load_config

UPBIT = "upbit_KRW-BTC_1m_2018-01-25_2018-02-01.csv"


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    backtest.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_csv_run_writes_json_and_html(data_dir: Path, tmp_path: Path) -> None:
    """A CSV run prints the summary and writes a JSON document and an HTML report."""
    out, page = tmp_path / "bt.json", tmp_path / "bt.html"
    args = _args("--csv", str(data_dir / UPBIT), "--json", str(out), "--report", str(page))
    assert backtest.main(args, load_config(environ={})) == 0
    doc = json.loads(out.read_text())
    assert doc["meta"]["symbols"] == "KRW-BTC"
    assert doc["candle_steps"] == 9999
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
