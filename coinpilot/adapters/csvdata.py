"""Candle CSVs in the shared format: ``symbol,ts_utc,open,high,low,close,volume,value_krw``.

The reader is strict: the whole file is checked before anything is returned, and every bad
row is reported with its line number, so an import either loads a file completely or not
at all. The file is read by polars one physical line per row (so line numbers are exact)
and every check is a column operation: eight fields, a ``yyyy-mm-ddThh:mm:ssZ`` time on
the minute grid, finite numbers, positive prices inside [low, high], no negative volume,
times strictly ascending per symbol, and one-minute spacing (the most common step between
candles must be 60 s, so an hourly file given as minutes is refused). The checks compare
float64 values; the numbers' text is kept as written, so an import stores exactly the
file's digits and ``read_csv`` gives exact ``Decimal`` rows to the code that needs them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from coinpilot.domain.candles import Candles

if TYPE_CHECKING:
    import polars as pl

    from coinpilot.adapters.marketdata import CandleRow

# polars' allocator keeps freed pages for seconds by default; a file read is one burst, so
# they go back at once and the backtest that follows does not stand on the reader's peak.
os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:0,muzzy_decay_ms:0")

HEADER = ("symbol", "ts_utc", "open", "high", "low", "close", "volume", "value_krw")
PRICES = ("open", "high", "low", "close")
NUMBERS = (*PRICES, "volume", "value_krw")
MAX_REPORTED = 20
SYMBOL_MAX = 20  # market_data.symbol is varchar(20)
STEP_S = 60
TS_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


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


def _lines(path: Path) -> pl.DataFrame:
    """Every physical line of ``path`` as (line, text); blank lines are null text."""
    import polars as pl

    # NUL never occurs in a text CSV, so each line lands whole in one column.
    frame = pl.read_csv(
        path,
        has_header=False,
        separator="\x00",
        quote_char=None,
        schema={"text": pl.String},
        encoding="utf8-lossy",
        truncate_ragged_lines=True,
    )
    return frame.with_row_index("line", offset=1)


def _check_header(path: Path) -> None:
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as fh:
        first = fh.readline()
    fields = tuple(f.strip() for f in first.split(","))
    if fields != HEADER:
        raise CsvFormatError(path, [BadRow(1, f"header must be {','.join(HEADER)}")])


def _split_lines(path: Path) -> pl.DataFrame:
    """The line-exact reading: every data line split into its ``*_text`` fields, ``commas``
    counted, ``line`` its number in the file (blank lines skipped, as csv readers do)."""
    import polars as pl

    text = pl.col("text")
    parts = text.str.split_exact(",", len(HEADER) - 1).struct.rename_fields(
        [f"{h}_text" for h in HEADER]
    )
    return (
        _lines(path)
        .slice(1)
        .filter(text.is_not_null())
        .with_columns(text.str.count_matches(",", literal=True).alias("commas"), parts)
        .unnest("text")
    )


def _read_fields(path: Path, exact: bool) -> pl.DataFrame | None:
    """The quick reading by polars' CSV parser: the numbers as text when ``exact``, else
    parsed straight to float64. Its ``line`` numbers hold only for a file without blank
    lines or quoted line breaks, so a file with any problem is read again line by line.
    None when the parser refuses the file."""
    import polars as pl

    schema: dict[str, type[pl.DataType]] = {"symbol_text": pl.String, "ts_utc_text": pl.String}
    for n in NUMBERS:
        schema[f"{n}_text" if exact else n] = pl.String if exact else pl.Float64
    try:
        frame = pl.read_csv(
            path, has_header=False, skip_rows=1, schema=schema, encoding="utf8-lossy"
        )
    except pl.exceptions.PolarsError:
        return None
    return frame.with_row_index("line", offset=2).with_columns(
        pl.lit(len(HEADER) - 1).alias("commas")
    )


def _parse(fields: pl.DataFrame, symbol: str | None) -> pl.DataFrame:
    """Convert the text fields; ``ok`` says whether the row passed every check on its own."""
    import polars as pl

    converted = [
        (pl.lit(symbol) if symbol else pl.col("symbol_text").str.strip_chars('"')).alias("symbol"),
        pl.col("ts_utc_text")
        .str.strptime(pl.Datetime("us", "UTC"), TS_FORMAT, strict=False)
        .alias("ts"),
    ]
    if "open" in fields.columns:  # parsed by the CSV reader, which refuses what is not a number
        frame = fields.with_columns(*converted, pl.lit(False).alias("value_unparsed")).drop(
            "symbol_text", "ts_utc_text"
        )
    else:
        text = [
            pl.col(f"{n}_text").str.strip_chars().replace("", None).alias(f"{n}_text")
            if n == "value_krw"
            else pl.col(f"{n}_text").str.strip_chars().alias(f"{n}_text")
            for n in NUMBERS
        ]
        frame = (
            fields.with_columns(*converted, *text)
            .with_columns(
                pl.col(f"{n}_text").cast(pl.Float64, strict=False).alias(n) for n in NUMBERS
            )
            .with_columns(
                (pl.col("value_krw_text").is_not_null() & pl.col("value_krw").is_null()).alias(
                    "value_unparsed"
                )
            )
        )
    checks = _row_checks()
    ok = ~pl.any_horizontal(bad.fill_null(True) for bad, _ in checks)
    return frame.with_columns(ok.alias("ok"))


def _row_checks() -> list[tuple[pl.Expr, pl.Expr]]:
    """(is bad, reason) per check, in the order a row's first problem is named."""
    import polars as pl

    o, h, lo, c = (pl.col(p) for p in PRICES)
    size = pl.col("symbol").str.len_chars()
    checks = [
        (
            pl.col("commas") != len(HEADER) - 1,
            pl.format("expected {} fields, got {}", pl.lit(len(HEADER)), pl.col("commas") + 1),
        ),
        (
            pl.col("ts").is_null(),
            pl.format("ts_utc is not yyyy-mm-ddThh:mm:ssZ: '{}'", pl.col("ts_utc_text")),
        ),
        (pl.col("ts").dt.second() != 0, pl.lit("ts_utc is not on the minute grid")),
    ]
    checks += [
        (
            pl.col(n).is_null() | ~pl.col(n).is_finite(),
            pl.format(f"{n} is not a finite number: '{{}}'", pl.col(f"{n}_text").fill_null("")),
        )
        for n in NUMBERS[:-1]
    ]
    value = pl.col("value_krw")
    checks += [
        (
            pl.col("value_unparsed") | (value.is_not_null() & ~value.is_finite()),
            pl.format("value_krw is not a finite number: '{}'", pl.col("value_krw_text")),
        ),
        (pl.min_horizontal(o, h, lo, c) <= 0, pl.lit("price must be positive")),
        (
            ~((lo <= o) & (o <= h) & (lo <= c) & (c <= h)),
            pl.lit("open/close outside [low, high] or low > high"),
        ),
        (
            (pl.col("volume") < 0) | (value.fill_null(0) < 0),
            pl.lit("volume must not be negative"),
        ),
        (
            pl.col("symbol").is_null() | (size < 1) | (size > SYMBOL_MAX),
            pl.format(
                "symbol must be 1..{} characters: '{}'", pl.lit(SYMBOL_MAX), pl.col("symbol")
            ),
        ),
    ]
    return checks


def _row_problems(bad_rows: pl.DataFrame) -> pl.DataFrame:
    """(line, reason) for rows that failed a check; only these few rows get messages."""
    import polars as pl

    checks = _row_checks()
    first, reason = checks[0]
    named: Any = pl.when(first.fill_null(True)).then(reason)
    for bad, reason in checks[1:]:
        named = named.when(bad.fill_null(True)).then(reason)
    return bad_rows.select("line", named.otherwise(pl.lit("bad row")).alias("problem"))


def _steps(good: pl.DataFrame) -> pl.DataFrame:
    """(line, symbol, ts, step): seconds since the previous row of the same symbol."""
    import polars as pl

    diff = pl.col("ts").diff()
    if good["symbol"].n_unique() > 1:
        diff = diff.over("symbol")
    return good.select("line", "symbol", "ts", diff.dt.total_seconds().alias("step"))


def _out_of_order(steps: pl.DataFrame) -> pl.DataFrame:
    """Rows whose time does not follow the previous row of their symbol (``step`` <= 0)."""
    import polars as pl

    return steps.filter(pl.col("step") <= 0)


def _order_problems(rows: pl.DataFrame) -> pl.DataFrame:
    """(line, reason) for the rows ``_out_of_order`` found."""
    import polars as pl

    iso = pl.col("ts").dt.strftime(TS_FORMAT)
    return rows.select(
        "line",
        pl.when(pl.col("step") == 0)
        .then(pl.format("duplicate candle {}", iso))
        .otherwise(pl.lit("ts_utc is before the row above it (times must ascend)"))
        .alias("problem"),
    )


def _interval_problem(steps: pl.DataFrame) -> BadRow | None:
    """The file's candle interval, from the most common step between a symbol's rows."""
    import polars as pl

    steps = steps.filter(pl.col("step") > 0)
    if steps.height == 0:
        return None
    modes = steps.group_by("symbol").agg(pl.col("step").mode().min().alias("mode"))
    wrong = modes.filter(pl.col("mode") != STEP_S)
    if wrong.height == 0:
        return None
    sym, mode = wrong.row(0)
    line = steps.filter((pl.col("symbol") == sym) & (pl.col("step") == mode))["line"].min()
    return BadRow(
        int(line),  # type: ignore[arg-type]
        f"candles of {sym} are {_span(int(mode))} apart: this is not a 1-minute file "
        "(only 1-minute candles are accepted)",
    )


def _span(seconds: int) -> str:
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    return f"{seconds // 60} min" if seconds % 60 == 0 else f"{seconds} s"


def read_frame(path: Path, symbol: str | None = None, exact: bool = True) -> pl.DataFrame:
    """Every row of ``path`` checked, as columns: ``symbol``, ``ts`` (UTC), float ``open`` …
    ``value_krw`` and, when ``exact``, the numbers' text as written (``open_text`` …),
    grouped by symbol in file order; or CsvFormatError listing every bad line. ``symbol``
    overrides the file's."""
    _check_header(path)
    fields = _read_fields(path, exact)
    if fields is not None:
        good = _all_good(_parse(fields, symbol), exact)
        if good is not None:
            return good
    del fields
    return _checked(path, _parse(_split_lines(path), symbol), exact)


def _kept(good: pl.DataFrame, exact: bool) -> pl.DataFrame:
    import polars as pl

    good = good.drop("ok", "commas", "value_unparsed", "symbol_text", strict=False)
    if not exact:
        good = good.drop(pl.selectors.ends_with("_text"))
    if good["symbol"].n_unique() > 1:
        good = good.sort("symbol", maintain_order=True)
    return good


def _all_good(parsed: pl.DataFrame, exact: bool) -> pl.DataFrame | None:
    """The quick reading's rows when nothing at all is wrong with them, else None."""
    if not parsed["ok"].all():
        return None
    steps = _steps(parsed)
    if _out_of_order(steps).height or _interval_problem(steps) is not None:
        return None
    return _kept(parsed, exact)


def _checked(path: Path, parsed: pl.DataFrame, exact: bool) -> pl.DataFrame:
    """The good rows of the line-exact reading, or CsvFormatError naming every bad line."""
    import polars as pl

    problems = _row_problems(parsed.filter(~pl.col("ok")))
    good = parsed.filter(pl.col("ok"))
    del parsed
    steps = _steps(good)
    problems = pl.concat([problems, _order_problems(_out_of_order(steps))]).sort("line")
    if problems.height:
        raise CsvFormatError(path, [BadRow(int(ln), str(p)) for ln, p in problems.iter_rows()])
    interval = _interval_problem(steps)
    if interval is not None:
        raise CsvFormatError(path, [interval])
    return _kept(good, exact)


def read_csv(path: Path, symbol: str | None = None) -> list[CandleRow]:
    """Every row of ``path`` (``symbol`` overrides the file's) as exact rows, or
    CsvFormatError; never partial. For the code that needs Decimals row by row."""
    return frame_rows(read_frame(path, symbol))


def frame_rows(frame: pl.DataFrame) -> list[CandleRow]:
    """The rows of a checked, exact frame as market_data rows with Decimal numbers."""
    from coinpilot.adapters.marketdata import INTERVAL, CandleRow

    columns = [frame[f"{n}_text"].to_list() for n in NUMBERS]
    return [
        CandleRow(
            sym,
            INTERVAL,
            ts,
            Decimal(o),
            Decimal(h),
            Decimal(lo),
            Decimal(c),
            Decimal(v),
            None if val is None else Decimal(val),
        )
        for sym, ts, o, h, lo, c, v, val in zip(
            frame["symbol"].to_list(), frame["ts"].to_list(), *columns, strict=True
        )
    ]


def frame_candles(frame: pl.DataFrame, symbol: str) -> Candles:
    """One symbol of a checked frame as float columns, oldest first."""
    import polars as pl

    mine = frame if frame["symbol"].n_unique() == 1 else frame.filter(pl.col("symbol") == symbol)
    ts = mine["ts"].dt.epoch("s").to_numpy().astype(np.int64)
    o, h, lo, c, v = (mine[n].to_numpy().astype(np.float64) for n in (*PRICES, "volume"))
    return Candles(symbol, ts, o, h, lo, c, v)


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
    frame = read_frame(path, symbol, exact=False)
    name = symbol or (str(frame["symbol"][0]) if frame.height else path.stem)
    return frame_candles(frame, name)
