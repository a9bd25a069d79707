"""Candle CSVs in the shared format: ``symbol,ts_utc,open,high,low,close,volume,value_krw``.

The reader is strict: the whole file is checked before anything is returned, and every bad
row is reported with its line number, so an import either loads a file completely or not
at all. Numbers stay exact (Decimal, the text as written).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

from coinpilot.adapters.marketdata import INTERVAL, CandleRow
from coinpilot.domain.candles import Candles

HEADER = ("symbol", "ts_utc", "open", "high", "low", "close", "volume", "value_krw")
MAX_REPORTED = 20
SYMBOL_MAX = 20  # market_data.symbol is varchar(20)


@dataclass(frozen=True)
class BadRow:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


class CsvFormatError(ValueError):
    """The file is not a valid candle CSV; ``problems`` lists the bad lines."""

    def __init__(self, path: Path, problems: Sequence[BadRow]) -> None:
        shown = "; ".join(str(p) for p in problems[:MAX_REPORTED])
        more = f" (and {len(problems) - MAX_REPORTED} more)" if len(problems) > MAX_REPORTED else ""
        super().__init__(f"{path}: {len(problems)} bad row(s): {shown}{more}")
        self.path = path
        self.problems = list(problems)


def _decimal(text: str, name: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation as exc:
        raise ValueError(f"{name} is not a number: {text!r}") from exc
    if not value.is_finite():
        raise ValueError(f"{name} is not finite")
    return value


def parse_row(fields: list[str], symbol: str | None) -> CandleRow:
    """One data row → CandleRow; ValueError with a human reason when it is impossible."""
    if len(fields) != len(HEADER):
        raise ValueError(f"expected {len(HEADER)} fields, got {len(fields)}")
    sym, ts_text, *nums = fields
    try:
        ts = datetime.strptime(ts_text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError as exc:
        raise ValueError(f"ts_utc is not yyyy-mm-ddThh:mm:ssZ: {ts_text!r}") from exc
    if ts.second:
        raise ValueError("ts_utc is not on the minute grid")
    o, h, lo, c, vol = (_decimal(t, n) for t, n in zip(nums[:5], HEADER[2:7], strict=True))
    value = _decimal(nums[5], "value_krw") if nums[5] else None
    if min(o, h, lo, c) <= 0:
        raise ValueError("price must be positive")
    if not (lo <= o <= h and lo <= c <= h):
        raise ValueError("open/close outside [low, high] or low > high")
    if vol < 0 or (value is not None and value < 0):
        raise ValueError("volume must not be negative")
    name = symbol or sym
    if not name or len(name) > SYMBOL_MAX:
        raise ValueError(f"symbol must be 1..{SYMBOL_MAX} characters: {name!r}")
    return CandleRow(name, INTERVAL, ts, o, h, lo, c, vol, value)


def read_csv(path: Path, symbol: str | None = None) -> list[CandleRow]:
    """Every row of ``path`` (``symbol`` overrides the file's), or CsvFormatError; never partial."""
    rows: list[CandleRow] = []
    problems: list[BadRow] = []
    seen: set[tuple[str, datetime]] = set()
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header) != HEADER:
            raise CsvFormatError(path, [BadRow(1, f"header must be {','.join(HEADER)}")])
        for line_no, fields in enumerate(reader, start=2):
            if not fields:
                continue
            try:
                row = parse_row(fields, symbol)
            except ValueError as exc:
                problems.append(BadRow(line_no, str(exc)))
                continue
            if (row.symbol, row.ts) in seen:
                problems.append(BadRow(line_no, f"duplicate candle {row.ts.isoformat()}"))
                continue
            seen.add((row.symbol, row.ts))
            rows.append(row)
    if problems:
        raise CsvFormatError(path, problems)
    rows.sort(key=lambda r: (r.symbol, r.ts))
    return rows


def to_candles(rows: Sequence[CandleRow], symbol: str) -> Candles:
    """The rows of one symbol as float columns, oldest first."""
    mine = sorted((r for r in rows if r.symbol == symbol), key=lambda r: r.ts)
    return Candles.from_rows(
        symbol,
        [
            (
                int(r.ts.timestamp()),
                float(r.open_price),
                float(r.high_price),
                float(r.low_price),
                float(r.close_price),
                float(r.volume),
            )
            for r in mine
        ],
    )


def load_candles(path: Path, symbol: str | None = None) -> Candles:
    """A single-symbol file straight into Candles (backtests, replays)."""
    rows = read_csv(path, symbol)
    name = symbol or (rows[0].symbol if rows else path.stem)
    return to_candles(rows, name)
