"""`coinpilot optimize`: walk-forward parameter search, reported out of sample.

History comes from candle CSV files (``--csv FILE[=SYMBOL] ...``) or the database
(``--symbols`` with ``--start``/``--end``). The search space is a YAML file (``--space``,
default config/optimize-space.yaml). Each fold's Optuna study lives in ``--storage``
(SQLite under the state directory by default); other machines join with
``coinpilot optimize-worker --study NAME --storage URL``. See coinpilot/optimize/.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from coinpilot.commands.backtest import _utc
from coinpilot.config import Settings

log = structlog.get_logger(__name__)
REGIMES = ("BULL", "SIDEWAYS", "BEAR")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_argument_group("history (one of)")
    src.add_argument("--csv", nargs="+", metavar="FILE[=SYMBOL]", help="1-minute candle CSVs")
    src.add_argument("--symbols", help="comma-separated markets read from the database")
    src.add_argument("--start", type=_utc, help="UTC start (database)")
    src.add_argument("--end", type=_utc, help="UTC end, exclusive (database)")
    parser.add_argument("--space", type=Path, metavar="FILE", help="search space YAML")
    parser.add_argument("--trials", type=int, default=100, help="trials per fold (100)")
    parser.add_argument("--folds", type=int, default=4, help="walk-forward folds (4)")
    parser.add_argument(
        "--fold-mode", choices=("rolling", "anchored"), default="rolling",
        help="rolling: train on the segment before each test; anchored: on all before it",
    )  # fmt: skip
    parser.add_argument(
        "--objective", choices=("return", "sharpe", "calmar"), default="sharpe",
        help="net return %%, Sharpe of daily returns, or Calmar (sharpe)",
    )  # fmt: skip
    parser.add_argument(
        "--min-trades", type=int, default=5,
        help="closed trades a train window needs before it is scored unpenalised (5)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="sampler seed (0)")
    parser.add_argument("--jobs", type=int, default=1, help="local worker processes (1)")
    parser.add_argument("--study", help="search name in the storage (default: optimize-<time>)")
    parser.add_argument(
        "--storage", help="Optuna storage URL (default: SQLite in the state directory)"
    )
    parser.add_argument(
        "--regime", choices=REGIMES,
        help="pin the regime instead of deriving it hourly (histories under ~9 days)",
    )  # fmt: skip
    parser.add_argument("--json", dest="json_out", type=Path, metavar="OUT", help="report JSON")
    parser.add_argument("--report", type=Path, metavar="OUT.html", help="report HTML")
    parser.add_argument("--patch", type=Path, metavar="OUT.yaml", help="chosen parameters")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _check(args: argparse.Namespace) -> str | None:
    if bool(args.csv) == bool(args.symbols):
        return "give either --csv FILE... or --symbols with --start/--end"
    if args.symbols and (args.start is None or args.end is None):
        return "--symbols needs --start and --end"
    if args.start and args.end and args.start >= args.end:
        return "--start must be before --end"
    if args.trials < 1 or args.folds < 1 or args.jobs < 1 or args.min_trades < 0:
        return "--trials, --folds and --jobs must be at least 1, --min-trades at least 0"
    return None


class Progress:
    """One line on stderr: fold, trials done and the best value so far."""

    def __init__(self, enabled: bool, folds: int) -> None:
        self.enabled, self.folds, self.last = enabled, folds, 0.0

    def __call__(self, fold: int, done: int, total: int, best: float | None) -> None:
        now = time.monotonic()
        if not self.enabled or (now - self.last < 0.25 and done < total):
            return
        self.last = now
        frac = done / total if total else 1.0
        bar = "#" * int(frac * 24)
        shown = "—" if best is None else f"{best:,.4f}"
        print(
            f"\roptimize fold {fold}/{self.folds} [{bar:<24}] {done}/{total} best {shown}   ",
            end="", file=sys.stderr, flush=True,
        )  # fmt: skip
        if done >= total and fold == self.folds:
            print(file=sys.stderr)


def _source(args: argparse.Namespace) -> dict[str, Any]:
    if args.csv:
        return {"csv": [str(s) for s in args.csv]}
    symbols = [s.strip() for s in args.symbols.split(",") if s.strip()]
    return {"symbols": symbols, "start": args.start.isoformat(), "end": args.end.isoformat()}


def build_spec(args: argparse.Namespace, settings: Settings, candles: Any) -> Any:
    from coinpilot.optimize import objective as obj
    from coinpilot.optimize.folds import make_folds
    from coinpilot.optimize.space import DEFAULT_SPACE, load_space
    from coinpilot.optimize.study import Spec, fingerprint

    base = settings.app.model_dump(mode="json")
    space_doc, _ = load_space(args.space or DEFAULT_SPACE, base)
    first = min(int(c.ts[0]) for c in candles.values())
    end = max(int(c.ts[-1]) for c in candles.values()) + obj.MINUTE
    warmup = obj.warmup_seconds(settings.app, args.regime)
    folds = make_folds(first, end, args.folds, args.fold_mode, warmup)
    name = args.study or "optimize-" + datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return Spec(
        name=name, source=_source(args), fingerprint=fingerprint(candles), base=base,
        space=space_doc, folds=[f.as_dict() for f in folds], fold_mode=args.fold_mode,
        objective=args.objective, min_trades=args.min_trades, trials=args.trials,
        seed=args.seed, fixed_regime=args.regime,
    )  # fmt: skip


def _load(args: argparse.Namespace, settings: Settings) -> Any:
    import asyncio

    from coinpilot.backtest import data
    from coinpilot.optimize.study import _load_db

    if args.csv:
        return data.load_csvs(args.csv)
    return asyncio.run(_load_db(_source(args), settings))


def run_search(args: argparse.Namespace, settings: Settings) -> tuple[Any, Any, Any]:
    """Set up (or resume) the search, work it with ``--jobs`` processes, build the report."""
    from coinpilot.optimize import report, study

    candles = _load(args, settings)
    spec = build_spec(args, settings, candles)
    url = study.storage_url(args.storage, settings.state_dir)
    storage = study.open_storage(url)
    study.quiet_optuna()
    study.create_studies(spec, storage)
    print(f"study {spec.name} in {_shown(url)}", file=sys.stderr)
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=study.worker_process, args=(spec.name, url, args.config, i))
        for i in range(1, args.jobs)
    ]
    for p in procs:
        p.start()
    progress = Progress(not args.quiet and sys.stderr.isatty(), len(spec.folds))
    try:
        study.work(spec, storage, candles, worker=0, on_trial=progress)
    finally:
        for p in procs:
            p.join()
    for i, p in enumerate(procs, start=1):
        if p.exitcode:
            log.error("optimize_worker_failed", worker=i, exitcode=p.exitcode)
            print(f"coinpilot optimize: worker {i} exited with {p.exitcode}", file=sys.stderr)
    # Workers elsewhere may still be finishing the last trials they started.
    while study.running_trials(spec, storage):
        time.sleep(1.0)
    doc, curves = report.build(spec, storage, candles)
    return spec, doc, curves


def _shown(url: str) -> str:
    """The storage URL without a password."""
    head, at, tail = url.rpartition("@")
    if not at:
        return url
    scheme, _, cred = head.partition("://")
    return f"{scheme}://{cred.split(':')[0]}@{tail}"


def main(args: argparse.Namespace, settings: Settings) -> int:
    from coinpilot.backtest import data
    from coinpilot.backtest.jsonout import dumps
    from coinpilot.optimize.report import patch_yaml

    problem = _check(args)
    if problem:
        print(f"coinpilot optimize: {problem}", file=sys.stderr)
        return 2
    try:
        _, doc, curves = run_search(args, settings)
    except (data.DataError, ValueError) as exc:
        log.error("optimize_bad_input", error=str(exc))
        print(f"coinpilot optimize: {exc}", file=sys.stderr)
        return 2
    _print(doc)
    if args.json_out:
        args.json_out.write_text(dumps(doc))
    if args.patch and "chosen" in doc:
        args.patch.write_text(patch_yaml(doc))
    if args.report:
        from coinpilot.optimize.report_html import render

        args.report.write_text(render(doc, curves))
    return 0


def _print(doc: dict[str, Any]) -> None:
    for f in doc["folds"]:
        ins, oos = f.get("in_sample"), f.get("out_of_sample")
        if not ins or not oos:
            print(f"fold {f['fold']}: no complete trial")
            continue
        pbo = f["overfitting"].get("pbo")
        print(
            f"fold {f['fold']}: in-sample {ins['raw']:.4f} ({ins['trades']} trades) -> "
            f"out-of-sample {oos['raw']:.4f} ({oos['trades']} trades, "
            f"{oos['return_pct']:.3f} %), PBO {'—' if pbo is None else f'{pbo:.2f}'}"
        )
    if "out_of_sample" in doc:
        s = doc["out_of_sample"]
        dsr = doc["chosen"]["overfitting"].get("deflated_sharpe", {})
        print(
            f"out-of-sample return {s['return_pct']:.3f} % vs buy-and-hold "
            f"{s['buy_and_hold_return_pct']:.3f} %; deflated Sharpe of the chosen config "
            f"{dsr.get('probability')}"
        )
