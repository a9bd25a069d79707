"""`coinpilot optimize` end to end on small synthetic histories."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

from coinpilot.backtest.data import load_csv
from coinpilot.cli import main as cli
from coinpilot.config import load_config
from coinpilot.optimize import objective as obj
from coinpilot.optimize.space import merge
from tests.integration.optimize_data import (
    EDGE,
    ROOT,
    noise_closes,
    planted_closes,
    shipped,
    simple_entry_config,
    space_file,
    write_csv,
)

TP = "regimes.SIDEWAYS.exit.take_profit_pct"


def _optimize(tmp: Path, *args: str, name: str = "s", db: str = "o.db") -> dict[str, Any]:
    out = tmp / f"{name}-{db}.json"
    code = cli([
        "optimize", *args, "--regime", "SIDEWAYS", "--study", name,
        "--storage", f"sqlite:///{tmp / db}", "--json", str(out), "--quiet",
    ])  # fmt: skip
    assert code == 0
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("planted")
    return {
        "csv": write_csv(tmp / "planted.csv", planted_closes(4.2)),
        "config": simple_entry_config(tmp / "planted.yaml"),
        "space": space_file(tmp / "space.yaml", {TP: {"low": 0.01, "high": 0.08}}),
        "tmp": tmp,
    }


def _planted_args(p: dict[str, Path], *extra: str) -> list[str]:
    return [
        "--config", str(p["config"]), "--csv", str(p["csv"]), "--space", str(p["space"]),
        "--objective", "return", "--min-trades", "3", "--folds", "3", "--trials", "16",
        "--seed", "7", *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def planted_report(planted: dict[str, Path]) -> dict[str, Any]:
    return _optimize(planted["tmp"], *_planted_args(planted), name="p", db="a.db")


def test_planted_edge_is_found_in_every_fold_and_holds_out_of_sample(
    planted_report: dict[str, Any],
) -> None:
    """Take-profits in [2 %, 3.8 %) beat every other (see optimize_data): every fold's
    train-window best must be one of them and, the edge being real, make money on its test
    window too."""
    folds = planted_report["folds"]
    assert len(folds) == 3
    for f in folds:
        assert EDGE[0] <= f["params"][TP] < EDGE[1]
        assert f["out_of_sample"]["trades"] >= 3
        assert f["out_of_sample"]["return_pct"] > 0
    assert planted_report["out_of_sample"]["return_pct"] > 0
    chosen = planted_report["chosen"]["patch"]["regimes"]["SIDEWAYS"]["exit"]["take_profit_pct"]
    assert EDGE[0] <= chosen < EDGE[1]


def test_test_window_trades_start_after_the_train_window_ends(
    planted_report: dict[str, Any],
) -> None:
    for f in planted_report["folds"]:
        w = f["window_ts"]
        assert w["train_start"] < w["train_end"] <= w["test_start"] < w["test_end"]
        # the first test decision is on the window's first candle, closed at test_start + 60
        assert f["oos_first_entry_ts"] >= w["test_start"] + 60
        assert f["oos_first_entry_ts"] > w["train_end"]
    ends = [f["window_ts"]["test_end"] for f in planted_report["folds"]]
    starts = [f["window_ts"]["test_start"] for f in planted_report["folds"]]
    assert all(b >= a for a, b in zip(ends, starts[1:], strict=False))


def test_same_seed_same_data_gives_the_same_trials_and_report(
    planted: dict[str, Path], planted_report: dict[str, Any]
) -> None:
    again = _optimize(planted["tmp"], *_planted_args(planted), name="p", db="b.db")
    assert again == planted_report
    for fold in (1, 2, 3):
        a, b = (
            optuna.load_study(
                study_name=f"p.fold{fold}", storage=f"sqlite:///{planted['tmp'] / db}"
            )
            for db in ("a.db", "b.db")
        )
        assert [(t.params, t.value) for t in a.trials] == [(t.params, t.value) for t in b.trials]
        assert len(a.trials) == 16


def test_patch_passes_check_config_and_reproduces_the_out_of_sample_figure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The shipped config and the shipped space: merge the patch over config/coinpilot.yaml,
    check it, and backtest the chosen fold's test window with it."""
    csv = write_csv(tmp_path / "n.csv", noise_closes(3.0, seed=5))
    patch_path = tmp_path / "patch.yaml"
    doc = _optimize(tmp_path, "--csv", str(csv), "--folds", "2", "--trials", "6",
                    "--min-trades", "1", "--patch", str(patch_path))  # fmt: skip
    merged = tmp_path / "merged.yaml"
    merged.write_text(yaml.safe_dump(merge(shipped(), yaml.safe_load(patch_path.read_text()))))
    capsys.readouterr()
    assert cli(["check-config", "--config", str(merged)]) == 0
    assert "config ok" in capsys.readouterr().out
    chosen = doc["chosen"]
    app = load_config(merged, environ={}).app
    c = load_csv(str(csv))
    w = chosen["window_ts"]
    result = obj.run_window({c.symbol: c}, app, w["test_start"], w["test_end"],
                            fixed_regime="SIDEWAYS")  # fmt: skip
    got = obj.score(result, app.tz, doc["objective"], doc["min_trades"])
    assert got.trades == chosen["out_of_sample"]["trades"]
    assert got.raw == pytest.approx(chosen["out_of_sample"]["raw"], abs=1e-9)
    assert got.return_pct == pytest.approx(chosen["out_of_sample"]["return_pct"], abs=1e-9)


def test_bad_space_stops_before_any_trial(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = write_csv(tmp_path / "n.csv", noise_closes(1.0, seed=1))
    space = space_file(
        tmp_path / "bad.yaml", {"regimes.SIDEWAYS.exit.take_profit": {"low": 0.01, "high": 0.1}}
    )
    code = cli(["optimize", "--csv", str(csv), "--space", str(space), "--regime", "SIDEWAYS",
                "--storage", f"sqlite:///{tmp_path / 'x.db'}", "--quiet"])  # fmt: skip
    assert code == 2
    assert "regimes.SIDEWAYS.exit.take_profit: no such config field" in capsys.readouterr().err


def test_too_short_a_history_is_refused_with_the_numbers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without a pinned regime the hourly regime needs about 8.4 days before the first fold."""
    csv = write_csv(tmp_path / "n.csv", noise_closes(3.0, seed=1))
    code = cli(["optimize", "--csv", str(csv), "--folds", "2", "--quiet",
                "--storage", f"sqlite:///{tmp_path / 'x.db'}"])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert "2 folds need at least 3 hours of candles after the 202.0 h warm-up" in err


def test_invalid_combinations_are_pruned_not_run(tmp_path: Path) -> None:
    """bb_recovery_sustain_candles must stay below bb_touch_lookback: half the grid breaks it.
    (Anchored folds and the Calmar objective, which no other test runs end to end.)"""
    csv = write_csv(tmp_path / "n.csv", noise_closes(2.5, seed=2))
    space = space_file(tmp_path / "s.yaml", {
        "regimes.SIDEWAYS.entry.bb_touch_lookback": {"low": 2, "high": 6},
        "regimes.SIDEWAYS.entry.bb_recovery_sustain_candles": {"low": 2, "high": 6},
    })  # fmt: skip
    doc = _optimize(tmp_path, "--csv", str(csv), "--space", str(space), "--folds", "2",
                    "--fold-mode", "anchored", "--objective", "calmar",
                    "--trials", "12", "--min-trades", "0")  # fmt: skip
    assert doc["objective"] == "calmar"
    one, two = doc["folds"]
    assert one["window_ts"]["train_start"] == two["window_ts"]["train_start"]  # anchored
    assert two["window_ts"]["train_end"] == one["window_ts"]["test_end"]
    for fold in (one, two):
        assert fold["trials_invalid"] > 0
        assert fold["trials_complete"] + fold["trials_invalid"] == 12
        s = fold["params"]
        assert (
            s["regimes.SIDEWAYS.entry.bb_recovery_sustain_candles"]
            < s["regimes.SIDEWAYS.entry.bb_touch_lookback"]
        )


def test_two_workers_share_one_postgresql_study(
    tmp_path: Path, pg_admin_dsn: str, planted: dict[str, Path]
) -> None:
    """`optimize --jobs 2` (itself and one local worker process) and an `optimize-worker`
    started beside it split N trials per fold: every trial number below N exists once, the
    processes all ran trials, no parameter set was tried twice."""
    import asyncio

    from tests.conftest import fresh_database

    async def run() -> tuple[str, list[Any]]:
        async with fresh_database(pg_admin_dsn, "cp_opt") as dsn:
            env = {**os.environ, "PYTHONPATH": str(ROOT)}
            base = [sys.executable, "-m", "coinpilot"]
            worker = await asyncio.create_subprocess_exec(
                *base, "optimize-worker", "--config", str(planted["config"]), "--study", "pg",
                "--storage", dsn, "--wait", "60", env=env,
            )  # fmt: skip
            main = await asyncio.create_subprocess_exec(
                *base, "optimize", *_planted_args(planted, "--trials", "16"), "--folds", "2",
                "--jobs", "2", "--regime", "SIDEWAYS", "--study", "pg", "--storage", dsn,
                "--quiet", env=env,
            )  # fmt: skip
            assert await asyncio.wait_for(main.wait(), 120) == 0
            assert await asyncio.wait_for(worker.wait(), 60) == 0
            url = dsn.replace("postgresql://", "postgresql+psycopg://", 1)
            storage = optuna.storages.RDBStorage(url)
            try:
                studies = [
                    optuna.load_study(study_name=f"pg.fold{k}", storage=storage) for k in (1, 2)
                ]
                return dsn, [s.get_trials() for s in studies]
            finally:
                storage.engine.dispose()  # its pooled connections, before the database goes

    _, per_fold = asyncio.run(run())
    workers: set[str] = set()
    for trials in per_fold:
        proper = [t for t in trials if not t.user_attrs.get("surplus")]
        assert sorted(t.number for t in proper) == list(range(16))
        assert all(t.state == optuna.trial.TrialState.COMPLETE for t in proper)
        assert all(t.number >= 16 for t in trials if t.user_attrs.get("surplus"))
        params = [tuple(sorted(t.params.items())) for t in proper]
        assert len(set(params)) == len(params)
        workers |= {t.user_attrs["worker"] for t in proper}
    assert len(workers) >= 2  # three processes; under load one may find the work done


def test_on_pure_noise_the_overfitting_estimates_say_so(tmp_path: Path) -> None:
    """Driftless random walks without fees: nothing to find. The deflated Sharpe of each
    search's best stays below 0.95 (not significant), and PBO does not look like an edge.
    PBO's expectation on noise is 0.5 and one history can give anything from about 0.2 to
    1.0, so it is asserted on the mean of the first four seeds' histories, not per history."""
    import numpy as np

    from coinpilot.domain.candles import Candles
    from coinpilot.optimize import report
    from coinpilot.optimize.folds import make_folds
    from coinpilot.optimize.study import Spec, create_studies, fingerprint, quiet_optuna, work

    app = load_config(simple_entry_config(tmp_path / "n.yaml", fee_rate="0", slippage="0"),
                      environ={}).app  # fmt: skip
    space = {"parameters": {
        "regimes.SIDEWAYS.entry.rsi_7_trigger": {"low": 15, "high": 40},
        TP: {"low": 0.002, "high": 0.05},
        "regimes.SIDEWAYS.exit.stop_loss_pct": {"low": 0.002, "high": 0.05},
    }}  # fmt: skip
    quiet_optuna()
    pbos = []
    for seed in range(4):
        closes = noise_closes(24.0, seed)
        ts = 1_704_067_200 + 60 * np.arange(len(closes), dtype=np.int64)
        prev = np.concatenate([[closes[0]], closes[:-1]])
        c = Candles("KRW-SYN", ts, prev, np.maximum(prev, closes), np.minimum(prev, closes),
                    closes, np.ones(len(closes)))  # fmt: skip
        candles = {c.symbol: c}
        folds = make_folds(int(ts[0]), int(ts[-1]) + 60, 1, "rolling", 200 * 60)
        spec = Spec(
            name="noise", source={"csv": []}, fingerprint=fingerprint(candles),
            base=app.model_dump(mode="json"), space=space, folds=[f.as_dict() for f in folds],
            fold_mode="rolling", objective="sharpe", min_trades=3, trials=16, seed=seed,
            fixed_regime="SIDEWAYS",
        )  # fmt: skip
        storage = optuna.storages.InMemoryStorage()
        create_studies(spec, storage)
        work(spec, storage, candles)
        doc, _ = report.build(spec, storage, candles)
        over = doc["folds"][0]["overfitting"]
        assert over["days"] >= 12
        assert over["deflated_sharpe"]["probability"] < 0.95
        assert not over["deflated_sharpe"]["significant"]
        pbos.append(over["pbo"])
    assert sum(pbos) / len(pbos) >= 0.4, pbos


async def test_database_history_gives_the_csv_search(
    planted: dict[str, Path],
    planted_report: dict[str, Any],
    pool: Any,
    db_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The planted candles stored in market_data and searched with --symbols/--start/--end
    give the very report the CSV search gave (same seed, same trials, same figures)."""
    import asyncio

    from coinpilot.adapters.csvdata import read_csv
    from coinpilot.adapters.marketdata import upsert_candles

    await upsert_candles(pool, read_csv(planted["csv"]))
    monkeypatch.setenv("COINPILOT_DATABASE_URL", db_dsn)
    monkeypatch.delenv("COINPILOT_REDIS_URL", raising=False)  # reading candles needs no Redis
    args = _planted_args(planted)
    at = args.index("--csv")
    args[at : at + 2] = ["--symbols", "KRW-SYN", "--start", "2024-01-01", "--end", "2024-01-08"]
    doc = await asyncio.to_thread(_optimize, planted["tmp"], *args, name="p", db="db.db")
    assert doc == planted_report
