"""`coinpilot optimize-worker`: join a running search and work its trials.

The search's settings (history, base config, space, folds, objective, trial count) are
read from the storage, so this machine needs only the same history: the same CSV paths, or
a database holding the same candles. The worker stops when every fold has its trials.
"""

from __future__ import annotations

import argparse
import os
import sys

from coinpilot.config import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--study", required=True, help="the search name `optimize` printed")
    parser.add_argument(
        "--storage", help="Optuna storage URL (default: SQLite in the state directory)"
    )
    parser.add_argument(
        "--wait", type=float, default=0.0, metavar="SECONDS",
        help="wait this long for the search to be created (start workers first)",
    )  # fmt: skip


def main(args: argparse.Namespace, settings: Settings) -> int:
    from coinpilot.backtest import data
    from coinpilot.optimize import study

    storage = study.open_storage(study.storage_url(args.storage, settings.state_dir))
    study.quiet_optuna()
    spec = study.load_spec(args.study, storage, wait_s=args.wait)
    try:
        candles = study.load_history(spec, settings)
    except data.DataError as exc:
        print(f"coinpilot optimize-worker: {exc}", file=sys.stderr)
        return 2
    # A worker number of its own keeps its sampler's random draws apart from the others'.
    ran = study.work(spec, storage, candles, worker=1000 + os.getpid())
    print(f"ran {ran} trials of {spec.name}", file=sys.stderr)
    return 0
