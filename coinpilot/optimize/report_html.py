"""The search report as one self-contained HTML page (charts need the `report` extra)."""

from __future__ import annotations

import html
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np

from coinpilot.backtest.report_html import CSS, _png, _pyplot, _thin
from coinpilot.optimize.report import Curves


def _img(png: str) -> str:
    return f"<img alt='chart' src='data:image/png;base64,{png}'>"


def _equity_chart(curves: Curves) -> str:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 3.6))
    x, y = _thin(curves.ts, curves.oos)
    ax.plot(x, y, linewidth=1.0, color="#1f77b4", label="out-of-sample (chained test windows)")
    x, y = _thin(curves.ts, curves.hold)
    ax.plot(x, y, linewidth=1.0, color="#888888", label="buy and hold")
    for b in curves.bounds:
        ax.axvline(datetime.fromtimestamp(b, UTC), color="#cccccc", linewidth=0.8)
    ax.set_title("Out-of-sample equity vs buy-and-hold (1.0 = start)")
    ax.legend(loc="best")
    ax.grid(alpha=0.3)
    out = _png(fig)
    plt.close(fig)
    return out


def _fold_chart(doc: Mapping[str, Any]) -> str:
    plt = _pyplot()
    folds = [f for f in doc["folds"] if "in_sample" in f]
    fig, ax = plt.subplots(figsize=(10, 3.2))
    xs = np.arange(len(folds))
    ax.bar(xs - 0.2, [f["in_sample"]["raw"] for f in folds], 0.4, label="in-sample best")
    ax.bar(xs + 0.2, [f["out_of_sample"]["raw"] for f in folds], 0.4, label="its out-of-sample")
    ax.set_xticks(xs, [f"fold {f['fold']}" for f in folds])
    ax.set_title(f"{doc['objective']} per fold: in-sample best and the same parameters after")
    ax.axhline(0, color="#444444", linewidth=0.8)
    ax.legend(loc="best")
    ax.grid(alpha=0.3, axis="y")
    out = _png(fig)
    plt.close(fig)
    return out


def _importance_chart(importance: Mapping[str, float]) -> str:
    plt = _pyplot()
    names = list(importance)[:20]
    fig, ax = plt.subplots(figsize=(10, 0.3 * len(names) + 1.2))
    ax.barh(names[::-1], [importance[n] for n in names][::-1], color="#2ca02c")
    ax.set_title("Parameter importance (mean over folds, PED-ANOVA)")
    ax.grid(alpha=0.3, axis="x")
    out = _png(fig)
    plt.close(fig)
    return out


def _logit_chart(doc: Mapping[str, Any]) -> str:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 3.0))
    for f in doc["folds"]:
        logits = f.get("overfitting", {}).get("pbo_logits")
        if logits:
            ax.hist(logits, bins=30, alpha=0.5, label=f"fold {f['fold']}")
    ax.axvline(0, color="#d62728", linewidth=1.0)
    ax.set_title("CSCV logits of the in-sample best's out-of-sample rank (≤ 0: overfit)")
    ax.legend(loc="best")
    out = _png(fig)
    plt.close(fig)
    return out


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.4f}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_cell(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_cell(v) for v in value)
    return "—" if value is None else str(value)


def _table(rows: list[list[Any]], head: list[str]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(c))}</td>" for c in r) + "</tr>" for r in rows
    )
    return f"<table><tr>{th}</tr>{body}</table>"


def render(doc: Mapping[str, Any], curves: Curves) -> str:
    fold_rows = []
    for f in doc["folds"]:
        ins, oos, ov = f.get("in_sample", {}), f.get("out_of_sample", {}), f.get("overfitting", {})
        dsr = ov.get("deflated_sharpe", {})
        fold_rows.append([
            f["fold"], " .. ".join(f["train"]), " .. ".join(f["test"]),
            f"{f['trials_complete']} ({f['trials_invalid']} invalid)",
            ins.get("raw"), ins.get("trades"), oos.get("raw"), oos.get("return_pct"),
            oos.get("trades"), ov.get("pbo"), dsr.get("probability"),
        ])  # fmt: skip
    folds = _table(fold_rows, [
        "fold", "train", "test", "trials", "IS best", "IS trades", "OOS", "OOS return %",
        "OOS trades", "PBO", "deflated Sharpe",
    ])  # fmt: skip
    parts = [f"<h1>CoinPilot parameter search: {html.escape(doc['study'])}</h1>"]
    summary = doc.get("out_of_sample")
    chosen = doc.get("chosen")
    if summary and chosen:
        ov = chosen["overfitting"]
        dsr = ov.get("deflated_sharpe", {})
        parts.append(_table([
            ["objective", f"{doc['objective']} (min {doc['min_trades']} trades)"],
            ["out-of-sample return (chained test windows)", f"{summary['return_pct']:.3f} %"],
            ["buy-and-hold over the same time", f"{summary['buy_and_hold_return_pct']:.3f} %"],
            ["out-of-sample max drawdown", f"{summary['max_drawdown']:.4f}"],
            ["chosen (last fold's in-sample best): out-of-sample", chosen["out_of_sample"]],
            ["PBO of the last fold's search (CSCV)", ov.get("pbo")],
            ["deflated Sharpe of the chosen config", dsr.get("probability")],
            ["significant (DSR ≥ 0.95)", dsr.get("significant")],
        ], ["figure", "value"]))  # fmt: skip
        parts.append(
            "<p>Read it out of sample: only the test-window figures were not used to choose. "
            "A PBO above 0.5 means the in-sample winner usually lands in the worse half "
            "out of sample; a deflated Sharpe below 0.95 means the best result is within "
            "what the number of trials explains by luck.</p>"
        )
        parts.append(_img(_equity_chart(curves)))
    parts.append("<h2>Folds</h2>" + folds)
    if any("in_sample" in f for f in doc["folds"]):
        parts.append(_img(_fold_chart(doc)))
    if doc.get("importance_mean"):
        parts.append(
            "<h2>Parameter importance</h2>" + _img(_importance_chart(doc["importance_mean"]))
        )
    if doc.get("stability"):
        rows = [[k, v["values"], v.get("std", v.get("mode")), v.get("spread_of_range",
                 v.get("mode_share"))] for k, v in doc["stability"].items()]  # fmt: skip
        parts.append("<h2>Stability of the chosen parameters across folds</h2>")
        parts.append(_table(rows, ["parameter", "per fold", "std / mode", "spread of range"]))
    if any(f.get("overfitting", {}).get("pbo_logits") for f in doc["folds"]):
        parts.append("<h2>Overfitting</h2>" + _img(_logit_chart(doc)))
    if chosen:
        parts.append("<h2>Chosen parameters</h2>")
        parts.append(_table([[k, v] for k, v in chosen["params"].items()], ["path", "value"]))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>CoinPilot optimize</title>
<style>{CSS}</style></head><body>
{"".join(parts)}
</body></html>
"""
