"""The search itself: one Optuna study per fold, in shared storage, worked by any process.

A search named NAME keeps fold k in the study ``NAME.foldk``. Each study carries the whole
search description (``Spec``: history, base config, space, folds, objective, trial count,
seed) as a user attribute, so ``coinpilot optimize-worker --study NAME --storage URL`` on
another machine learns everything from the storage and checks it loaded the same history.
Each process loads the history once and then works the folds in order.

Trial counting needs no queue: the storage numbers a study's trials 0, 1, 2… atomically, a
process stops a fold once trials numbered below ``trials`` exist, and a trial numbered at or
past it (two processes starting the last one together) is pruned unrun as ``surplus``.
A trial's value is the objective on its fold's train window only; test windows are run once
per fold by the report, for the train window's best trial.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import structlog

from coinpilot.config import Settings
from coinpilot.domain.candles import Candles
from coinpilot.errors import ConfigError
from coinpilot.optimize import objective as obj
from coinpilot.optimize.folds import Fold
from coinpilot.optimize.space import Param, candidate, parse_space, suggest

log = structlog.get_logger(__name__)
SPEC_ATTR = "coinpilot_spec"
# A running trial whose process stops beating this long is failed, so a worker that died
# mid-trial does not keep the search waiting for it.
HEARTBEAT_S = 15
OnTrial = Callable[[int, int, int, float | None], None]


@dataclass(frozen=True)
class Spec:
    """Everything a worker needs to run a search's trials exactly as the first process."""

    name: str
    source: dict[str, Any]  # {"csv": [...]} or {"symbols": [...], "start": iso, "end": iso}
    fingerprint: dict[str, list[int]]  # symbol -> [candles, first ts, last ts]
    base: dict[str, Any]  # the base config as YAML data
    space: dict[str, Any]
    folds: list[dict[str, int]]
    fold_mode: str
    objective: str
    min_trades: int
    trials: int
    seed: int
    fixed_regime: str | None = None

    def fold_list(self) -> list[Fold]:
        return [Fold(**f) for f in self.folds]

    def params(self) -> list[Param]:
        return parse_space(self.space, self.base)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Spec:
        return cls(**json.loads(text))


def fingerprint(candles: Mapping[str, Candles]) -> dict[str, list[int]]:
    return {
        s: [len(c), int(c.ts[0]), int(c.ts[-1])] if len(c) else [0, 0, 0]
        for s, c in sorted(candles.items())
    }


def study_name(name: str, fold: int) -> str:
    return f"{name}.fold{fold}"


def storage_url(given: str | None, state_dir: Path) -> str:
    """SQLite under the state directory by default; postgresql:// through psycopg 3."""
    if not given:
        state_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{(state_dir / 'optimize.db').resolve()}"
    for prefix in ("postgresql://", "postgres://"):
        if given.startswith(prefix):
            return "postgresql+psycopg://" + given[len(prefix) :]
    return given


def open_storage(url: str) -> Any:
    import optuna
    from sqlalchemy.exc import DBAPIError

    if url.startswith("sqlite"):
        # Several local processes write one file: wait for the lock instead of failing.
        kwargs: dict[str, Any] = {"connect_args": {"timeout": 60}}
    else:
        kwargs = {"pool_pre_ping": True}
    for attempt in range(5):
        try:
            with warnings.catch_warnings():
                # heartbeats are marked experimental in Optuna 5; the pin keeps them stable
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                storage = optuna.storages.RDBStorage(
                    url, engine_kwargs=kwargs, heartbeat_interval=HEARTBEAT_S,
                    grace_period=4 * HEARTBEAT_S,
                )  # fmt: skip
            break
        except DBAPIError:
            # Processes started together on an empty database race to create the schema;
            # the loser finds it made on the next try.
            if attempt == 4:
                raise
            time.sleep(0.5 * (attempt + 1))
    if url.startswith("sqlite"):
        _fast_sqlite(storage.engine)
    return storage


def _fast_sqlite(engine: Any) -> None:
    """WAL without an fsync per commit: a trial writes one row per parameter, and a synced
    commit each costs more than the backtest. A power cut may lose the last trials, which a
    resumed search runs again; it cannot corrupt the file."""
    from sqlalchemy import event

    def pragmas(conn: Any, _record: Any) -> None:
        cur = conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    event.listen(engine, "connect", pragmas)
    engine.dispose()  # connections opened while creating the tables lack the pragmas


def quiet_optuna() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


def create_studies(spec: Spec, storage: Any) -> None:
    """Create (or resume) the fold studies; a different search under the same name is an error."""
    import optuna

    # Fold 1 last: a worker waiting for the search starts once fold 1 has its spec.
    for fold in reversed(spec.fold_list()):
        study = optuna.create_study(
            study_name=study_name(spec.name, fold.index),
            storage=storage,
            direction="maximize",
            load_if_exists=True,
        )
        stored = study.user_attrs.get(SPEC_ATTR)
        if stored is None:
            study.set_user_attr(SPEC_ATTR, spec.to_json())
        elif Spec.from_json(stored) != spec:
            raise ConfigError(
                f"study {spec.name} already exists with other settings; choose another --study"
            )


def load_spec(name: str, storage: Any, wait_s: float = 0.0) -> Spec:
    """The search's spec; waits up to ``wait_s`` for it to be created."""
    import optuna

    deadline = time.monotonic() + wait_s
    while True:
        try:
            study = optuna.load_study(study_name=study_name(name, 1), storage=storage)
            stored = study.user_attrs.get(SPEC_ATTR)
        except KeyError:
            stored = None
        if stored is not None:
            return Spec.from_json(stored)
        if time.monotonic() >= deadline:
            raise ConfigError(f"no search named {name} in that storage")
        time.sleep(0.2)


def load_history(spec: Spec, settings: Settings) -> dict[str, Candles]:
    """The search's history, read once in this process and checked against the spec."""
    from coinpilot.backtest import data

    if "csv" in spec.source:
        candles = data.load_csvs(spec.source["csv"])
    else:
        candles = asyncio.run(_load_db(spec.source, settings))
    got = fingerprint(candles)
    if got != spec.fingerprint:
        raise data.DataError(
            f"this process loaded other history than the search {spec.name} was set up on "
            f"({got} != {spec.fingerprint})"
        )
    return candles


async def _load_db(source: Mapping[str, Any], settings: Settings) -> dict[str, Candles]:
    from datetime import datetime

    from coinpilot.backtest import data
    from coinpilot.commands.job import open_job_context

    async with contextlib.AsyncExitStack() as stack:
        if settings.env.database_url is not None:
            # Reading candles needs neither Redis nor migrations: every worker just connects.
            from coinpilot.adapters.db import create_pool

            dsn = settings.env.database_url.get_secret_value()
            pool = await create_pool(dsn, min_size=1, max_size=2)
            stack.push_async_callback(pool.close)
        else:
            pool = (await open_job_context(stack, settings)).pool
        start = datetime.fromisoformat(source["start"])
        end = datetime.fromisoformat(source["end"])
        return await data.load_db(pool, source["symbols"], start, end)


def sampler_seed(seed: int, fold: int, worker: int) -> int:
    """Distinct, reproducible seeds per fold and worker (worker 0 is the first process)."""
    digest = hashlib.sha256(f"{seed}:{fold}:{worker}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def trial_values(trial: Any) -> dict[str, Any]:
    return {k: trial.params[k] for k in sorted(trial.params)}


class FoldObjective:
    """The Optuna objective of one fold: validate the candidate, backtest the train window."""

    def __init__(
        self, spec: Spec, params: Sequence[Param], candles: Mapping[str, Candles], fold: Fold
    ) -> None:
        self.spec, self.params, self.candles, self.fold = spec, list(params), candles, fold
        self.worker = f"{os.uname().nodename}:{os.getpid()}"

    def __call__(self, trial: Any) -> float:
        import optuna

        trial.set_user_attr("worker", self.worker)
        if trial.number >= self.spec.trials:
            trial.set_user_attr("surplus", True)
            raise optuna.TrialPruned("the search already has its trials")
        values = suggest(trial, self.params)
        try:
            app = candidate(self.spec.base, values)
        except ConfigError as exc:
            trial.set_user_attr("invalid", str(exc))
            raise optuna.TrialPruned(str(exc)) from None
        result = obj.run_window(
            self.candles, app, self.fold.train_start, self.fold.train_end,
            fixed_regime=self.spec.fixed_regime,
        )  # fmt: skip
        s = obj.score(result, app.tz, self.spec.objective, self.spec.min_trades)
        trial.set_user_attr("score", s.as_dict())
        trial.set_user_attr("daily", [float(r) for r in obj.daily_returns(result, app.tz)])
        return s.value


def counted(study: Any, trials: int) -> int:
    """Trials of the search proper (numbered below ``trials``), finished or running."""
    return sum(1 for t in study.get_trials(deepcopy=False) if t.number < trials)


def best_value(study: Any) -> float | None:
    from optuna.trial import TrialState

    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return max((t.value for t in done), default=None)


def work(
    spec: Spec,
    storage: Any,
    candles: Mapping[str, Candles],
    worker: int = 0,
    on_trial: OnTrial | None = None,
) -> int:
    """Run trials of every fold until each has ``spec.trials``; returns how many ran here."""
    import optuna

    quiet_optuna()
    params = spec.params()
    ran = 0
    for fold in spec.fold_list():
        sampler = optuna.samplers.TPESampler(
            seed=sampler_seed(spec.seed, fold.index, worker), constant_liar=True
        )
        study = optuna.load_study(
            study_name=study_name(spec.name, fold.index), storage=storage, sampler=sampler
        )
        objective = FoldObjective(spec, params, candles, fold)
        while (done := counted(study, spec.trials)) < spec.trials:
            if on_trial is not None:
                on_trial(fold.index, done, spec.trials, best_value(study))
            study.optimize(objective, n_trials=1)
            ran += 1
        if on_trial is not None:
            on_trial(fold.index, spec.trials, spec.trials, best_value(study))
    return ran


def worker_process(name: str, url: str, config_path: str | None, worker: int) -> int:
    """Entry point of a local worker process (multiprocessing, spawn)."""
    from coinpilot.config import load_config

    settings = load_config(config_path)
    storage = open_storage(url)
    spec = load_spec(name, storage)
    candles = load_history(spec, settings)
    return work(spec, storage, candles, worker=worker)


def running_trials(spec: Spec, storage: Any) -> int:
    import optuna
    from optuna.trial import TrialState

    total = 0
    for fold in spec.fold_list():
        study = optuna.load_study(study_name=study_name(spec.name, fold.index), storage=storage)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        total += len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
    return total
