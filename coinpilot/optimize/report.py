"""What a finished search says, out of sample: per-fold results, overfitting, the chosen config.

For each fold the trial with the best train-window value (ties: the earliest) is the fold's
in-sample best; its parameters are then backtested once on the fold's test window. The test
windows follow each other, so their equity curves chain into one out-of-sample curve, shown
against buy-and-hold of the same symbols (equal weight) over the same time.

The chosen configuration is the last fold's in-sample best: what the search would have
deployed after the newest train window. Its test-window figures are the reported
out-of-sample result, and its parameters are written as the YAML patch. Overfitting figures
per fold: PBO by CSCV over the fold's trials' daily train returns, and the deflated Sharpe of
the fold's best given all of the fold's trials (see ``overfitting``).
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import yaml

from coinpilot.backtest.jsonout import iso
from coinpilot.backtest.summary import daily_closes
from coinpilot.config import parse_app
from coinpilot.domain.candles import Candles
from coinpilot.optimize import objective as obj
from coinpilot.optimize import overfitting
from coinpilot.optimize.space import Param, candidate, patch
from coinpilot.optimize.study import Spec, study_name

F64 = npt.NDArray[np.float64]


@dataclass
class Curves:
    """Full-resolution series for the HTML charts (the JSON keeps daily points)."""

    ts: npt.NDArray[np.int64] = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    oos: F64 = field(default_factory=lambda: np.empty(0))
    hold: F64 = field(default_factory=lambda: np.empty(0))
    bounds: list[int] = field(default_factory=list)


def _r(value: float | None, digits: int = 10) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def _finished(study: Any, trials: int) -> tuple[list[Any], int]:
    from optuna.trial import TrialState

    complete, invalid = [], 0
    for t in study.get_trials(deepcopy=False):
        if t.number >= trials:
            continue
        if t.state == TrialState.COMPLETE:
            complete.append(t)
        elif t.user_attrs.get("invalid"):
            invalid += 1
    return sorted(complete, key=lambda t: t.number), invalid


def _importance(study: Any) -> dict[str, float]:
    import optuna

    try:
        with warnings.catch_warnings():
            # PED-ANOVA warns when the top trials are all trials (equal importances then)
            warnings.simplefilter("ignore", UserWarning)
            raw = optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError, ZeroDivisionError):
        return {}
    return {k: _r(v, 6) or 0.0 for k, v in sorted(raw.items())}


def _overfit(complete: list[Any], best: Any) -> dict[str, Any]:
    daily = [t.user_attrs.get("daily", []) for t in complete]
    n_obs = min((len(d) for d in daily), default=0)
    out: dict[str, Any] = {"trials": len(complete), "days": n_obs}
    if len(complete) >= 2 and n_obs:
        matrix = np.array([d[:n_obs] for d in daily], dtype=np.float64).T
        splits = overfitting.choose_splits(n_obs)
        if splits is not None:
            p = overfitting.cscv_pbo(matrix, splits)
            out["pbo"] = p.pbo
            out["pbo_splits"] = p.splits
            out["pbo_logits"] = [_r(v, 6) for v in p.logits]
        srs = overfitting.sharpe_columns(matrix)
        d = overfitting.deflated_sharpe(np.asarray(best.user_attrs["daily"][:n_obs]), srs)
        out["deflated_sharpe"] = {
            "sharpe_daily": _r(d.sharpe, 6),
            "expected_max_sharpe": _r(d.sharpe0, 6),
            "skewness": _r(d.skewness, 6),
            "kurtosis": _r(d.kurtosis, 6),
            "probability": _r(d.probability, 6),
            "significant": d.significant,
        }
    return out


def _stability(params: list[Param], chosen: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in params:
        values = [c[p.path] for c in chosen if p.path in c]
        if not values:
            continue
        if p.kind == "categorical":
            top, count = Counter(map(str, values)).most_common(1)[0]
            out[p.path] = {"values": values, "mode": top, "mode_share": count / len(values)}
            continue
        arr = np.asarray(values, dtype=np.float64)
        std = float(arr.std(ddof=0))
        out[p.path] = {
            "values": values,
            "mean": _r(float(arr.mean()), 8),
            "std": _r(std, 8),
            # the spread as a share of the searched range: 0 = same value in every fold
            "spread_of_range": _r(std / (p.high - p.low), 6),
        }
    return out


def _hold_curve(candles: Mapping[str, Candles], ts: npt.NDArray[np.int64], start: int) -> F64:
    """Equal-weight buy-and-hold from the last close before ``start``, marked at each ts."""
    curves = []
    for c in candles.values():
        if not len(c):
            continue
        at0 = max(0, int(np.searchsorted(c.ts, start, side="left")) - 1)
        idx = np.clip(np.searchsorted(c.ts, ts - obj.MINUTE, side="right") - 1, 0, None)
        curves.append(c.close[idx] / c.close[at0])
    return np.mean(curves, axis=0) if curves else np.ones(len(ts))


def build(
    spec: Spec, storage: Any, candles: Mapping[str, Candles]
) -> tuple[dict[str, Any], Curves]:
    """The report document (plain JSON data) and the curves for the charts."""
    import optuna

    base = parse_app(spec.base)
    tz = base.tz
    params = spec.params()
    folds_out: list[dict[str, Any]] = []
    chosen_params: list[dict[str, Any]] = []
    importances: list[dict[str, float]] = []
    curves = Curves()
    pieces_ts, pieces_eq = [], []
    level = 1.0
    last: dict[str, Any] = {}
    for fold in spec.fold_list():
        study = optuna.load_study(study_name=study_name(spec.name, fold.index), storage=storage)
        complete, invalid = _finished(study, spec.trials)
        entry: dict[str, Any] = {
            "fold": fold.index,
            "train": [iso(fold.train_start), iso(fold.train_end)],
            "test": [iso(fold.test_start), iso(fold.test_end)],
            "window_ts": fold.as_dict(),
            "trials_complete": len(complete),
            "trials_invalid": invalid,
        }
        if not complete:
            folds_out.append(entry)
            continue
        best = max(complete, key=lambda t: (t.value, -t.number))
        values = {k: best.params[k] for k in sorted(best.params)}
        app = candidate(spec.base, values)
        result = obj.run_window(
            candles, app, fold.test_start, fold.test_end, fixed_regime=spec.fixed_regime
        )
        oos = obj.score(result, tz, spec.objective, spec.min_trades)
        entries = [t.entry_ts for t in result.trades]
        entry.update(
            best_trial=best.number,
            params=values,
            in_sample={k: _r(v) if isinstance(v, float) else v
                       for k, v in best.user_attrs["score"].items()},
            out_of_sample={k: _r(v) if isinstance(v, float) else v
                           for k, v in oos.as_dict().items()},
            oos_first_entry=iso(min(entries)) if entries else None,
            oos_first_entry_ts=min(entries) if entries else None,
            importance=_importance(study),
            overfitting=_overfit(complete, best),
        )  # fmt: skip
        importances.append(entry["importance"])
        chosen_params.append(values)
        curve = result.equity / float(result.initial_equity)
        pieces_ts.append(result.equity_ts)
        pieces_eq.append(curve * level)
        level *= float(curve[-1]) if len(curve) else 1.0
        curves.bounds.append(fold.test_start)
        last = {"fold": fold.index, "params": values, "out_of_sample": entry["out_of_sample"],
                "test": entry["test"], "window_ts": fold.as_dict(),
                "overfitting": entry["overfitting"]}  # fmt: skip
        folds_out.append(entry)

    doc: dict[str, Any] = {
        "study": spec.name,
        "objective": spec.objective,
        "min_trades": spec.min_trades,
        "trials_per_fold": spec.trials,
        "seed": spec.seed,
        "fold_mode": spec.fold_mode,
        "symbols": sorted(candles),
        "space": {p.path: p.as_dict() for p in params},
        "folds": folds_out,
    }
    if pieces_ts:
        curves.ts = np.concatenate(pieces_ts)
        curves.oos = np.concatenate(pieces_eq)
        curves.hold = _hold_curve(candles, curves.ts, spec.fold_list()[0].test_start)
        days = daily_closes(curves.ts, np.vstack([curves.oos, curves.hold]).T, tz)
        doc["out_of_sample"] = {
            "return_pct": _r((float(curves.oos[-1]) - 1.0) * 100.0),
            "buy_and_hold_return_pct": _r((float(curves.hold[-1]) - 1.0) * 100.0),
            "max_drawdown": _r(float(_drawdown(curves.oos))),
            "daily_equity": [_r(float(v), 8) for v in days[:, 0]],
            "daily_buy_and_hold": [_r(float(v), 8) for v in days[:, 1]],
        }
        doc["importance_mean"] = _mean_importance(importances)
        doc["stability"] = _stability(params, chosen_params)
        doc["chosen"] = {**last, "patch": patch(last["params"])}
    return doc, curves


def _drawdown(curve: F64) -> float:
    peaks = np.maximum.accumulate(curve)
    return float(((peaks - curve) / peaks).max()) if len(curve) else 0.0


def _mean_importance(per_fold: list[dict[str, float]]) -> dict[str, float]:
    keys = sorted({k for d in per_fold for k in d})
    if not per_fold:
        return {}
    mean = {k: sum(d.get(k, 0.0) for d in per_fold) / len(per_fold) for k in keys}
    return {k: _r(v, 6) or 0.0 for k, v in sorted(mean.items(), key=lambda kv: -kv[1])}


def patch_yaml(doc: Mapping[str, Any]) -> str:
    """The chosen parameters as a YAML patch of the config file (merge it over the file)."""
    chosen = doc["chosen"]
    oos = chosen["out_of_sample"]
    head = (
        f"# coinpilot optimize, study {doc['study']}: fold {chosen['fold']}'s in-sample best.\n"
        f"# Out of sample ({chosen['test'][0]} .. {chosen['test'][1]}): "
        f"objective ({doc['objective']}) {oos['raw']:.4f}, net return {oos['return_pct']:.4f} %, "
        f"{oos['trades']} trades.\n"
        "# Merge these keys over config/coinpilot.yaml, then run `coinpilot check-config`.\n"
    )
    return head + yaml.safe_dump(chosen["patch"], sort_keys=True)
