"""Parameter search throughput: trials per second, and the wall time of a year-long search.

- trials/s per core: one process works a study whose every trial backtests one month of
  one symbol (BTC Feb 2024, preceded by the regime's warm-up) with the shipped search space,
  seeded TPE and SQLite storage, as `coinpilot optimize` does. Reported per wall second and
  per CPU second of the process (on a shared machine the first includes waiting for a core).
- 200-trial, 4-fold search over one year of one symbol (BTC Feb 2024 repeated) with
  ``--jobs 2``: the `coinpilot optimize` command end to end in a child process, history
  loading and the report included; the note gives the CSV loading time alone.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from coinpilot.backtest.data import load_csv, repeated
from coinpilot.config import load_config
from coinpilot.domain.candles import Candles
from coinpilot.optimize import objective as obj
from coinpilot.optimize.folds import Fold
from coinpilot.optimize.space import DEFAULT_SPACE, load_space
from coinpilot.optimize.study import (
    Spec,
    create_studies,
    fingerprint,
    open_storage,
    quiet_optuna,
    storage_url,
    work,
)

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("COINPILOT_DATA_DIR", ROOT.parent / "shared" / "data"))
BTC = "binance_BTCUSDT_1m_2024-02-01_2024-02-29.csv"
MONTH_S = 30 * 86400
YEAR_MINUTES = 525_600
TRIALS = 60


def _trial_rate(base: Candles, tmp: Path) -> dict[str, object]:
    app = load_config(environ={}).app
    warmup = obj.warmup_seconds(app, None)
    two = repeated(base, 2)
    candles = {base.symbol: two}
    start = int(two.ts[0]) + warmup
    start -= start % 60
    fold = Fold(1, start, start + MONTH_S, start + MONTH_S, start + MONTH_S)
    data = app.model_dump(mode="json")
    space, params = load_space(DEFAULT_SPACE, data)
    spec = Spec(
        name="bench", source={"csv": []}, fingerprint=fingerprint(candles), base=data,
        space=space, folds=[fold.as_dict()], fold_mode="rolling", objective="sharpe",
        min_trades=5, trials=TRIALS, seed=1,
    )  # fmt: skip
    storage = open_storage(storage_url(None, tmp))
    quiet_optuna()
    create_studies(spec, storage)
    started, cpu = time.perf_counter(), time.process_time()
    work(spec, storage, candles)
    wall, used = time.perf_counter() - started, time.process_time() - cpu
    return {
        "figure": f"optimize trials, 1 month x 1 symbol, {len(params)} parameters",
        "value": round(TRIALS / used, 1), "unit": "trials/CPU-s", "target": ">= 10",
        "note": f"{TRIALS} trials in {wall:.1f} s wall ({TRIALS / wall:.1f}/s), {used:.1f} CPU-s",
    }  # fmt: skip


def _write_year(base: Candles, path: Path) -> None:
    year = repeated(base, -(-YEAR_MINUTES // len(base))).slice(0, YEAR_MINUTES)
    stamps = np.datetime_as_string(year.ts.astype("datetime64[s]"), unit="s").tolist()
    cols = [a.tolist() for a in (year.open, year.high, year.low, year.close, year.volume)]
    with path.open("w") as f:
        f.write("symbol,ts_utc,open,high,low,close,volume,value_krw\n")
        for i, stamp in enumerate(stamps):
            o, h, lo, c, v = (col[i] for col in cols)
            f.write(f"KRW-BTC,{stamp}Z,{o!r},{h!r},{lo!r},{c!r},{v!r},\n")


def _year_search(base: Candles, tmp: Path) -> dict[str, object]:
    csv = tmp / "btc-year.csv"
    _write_year(base, csv)
    started = time.perf_counter()
    load_csv(str(csv))
    load_s = time.perf_counter() - started
    cmd = [
        sys.executable, "-m", "coinpilot", "optimize", "--csv", str(csv), "--trials", "200",
        "--folds", "4", "--jobs", "2", "--seed", "1", "--study", "bench-year",
        "--storage", f"sqlite:///{tmp / 'year.db'}", "--quiet",
    ]  # fmt: skip
    started = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"figure": "optimize 200 trials x 4 folds, 1 year, --jobs 2", "value": 0,
                "unit": "failed", "note": tail[0][:200]}  # fmt: skip
    return {
        "figure": "optimize 200 trials x 4 folds, 1 year, --jobs 2",
        "value": round(wall, 1), "unit": "s (wall)", "target": "<= 300",
        "note": f"CLI end to end, {cpu:.0f} CPU-s over both processes; loading the year's "
        f"CSV alone takes {load_s:.1f} s per process",
    }  # fmt: skip


def run() -> list[dict[str, object]]:
    if not (DATA / BTC).is_file():
        return [{"figure": "optimize", "value": 0, "unit": "skipped", "note": f"no {BTC}"}]
    base = load_csv(f"{DATA / BTC}=KRW-BTC")
    with tempfile.TemporaryDirectory(prefix="cp-bench-opt-") as d:
        out = [_trial_rate(base, Path(d))]
        print(out[0], file=sys.stderr, flush=True)
        out.append(_year_search(base, Path(d)))
    return out


if __name__ == "__main__":
    for fig in run():
        print(fig)
