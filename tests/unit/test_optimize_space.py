"""The search space file: parsed strictly, candidates validated as check-config does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

from coinpilot.config import load_config
from coinpilot.errors import ConfigError
from coinpilot.optimize.space import (
    DEFAULT_SPACE,
    candidate,
    load_space,
    parse_space,
    patch,
    suggest,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def base() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "config" / "coinpilot.yaml").read_text())


def test_shipped_space_names_real_fields_of_every_regime(base: dict[str, Any]) -> None:
    _, params = load_space(DEFAULT_SPACE, base)
    paths = {p.path for p in params}
    for regime in ("BULL", "SIDEWAYS", "BEAR"):
        assert f"regimes.{regime}.entry.rsi_7_trigger" in paths
        assert f"regimes.{regime}.exit.take_profit_pct" in paths
        assert f"regimes.{regime}.position_size_ratio" in paths


def test_kinds_are_inferred_from_the_bounds(base: dict[str, Any]) -> None:
    params = parse_space({"parameters": {
        "regimes.BULL.entry.rsi_14_max": {"low": 40, "high": 60},
        "regimes.BULL.exit.take_profit_pct": {"low": 0.01, "high": 0.1, "log": True},
        "regimes.BULL.exit.time_limit_hours": {"low": 6, "high": 96, "type": "float"},
        "regimes.BULL.entry.ma_condition": {"choices": ["crossover", "none"]},
    }}, base)  # fmt: skip
    assert [p.kind for p in params] == ["int", "float", "float", "categorical"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"regimes.BULL.entry.rsi_15_max": {"low": 1, "high": 2}}, "no such config field"),
        ({"regimes.BULL.entry.rsi_14_max": {"low": 5, "high": 2}}, "low must be below high"),
        ({"regimes.BULL.entry.rsi_14_max": {"low": 5}}, "needs low and high"),
        ({"regimes.BULL.entry.rsi_14_max": {"low": 0, "high": 2, "log": True}}, "log ranges"),
        ({"regimes.BULL.entry.rsi_14_max": {"lo": 0, "high": 2}}, "unknown keys lo"),
        ({"regimes.BULL.entry.ma_condition": {"choices": []}}, "non-empty list"),
    ],
)
def test_bad_space_entries_name_the_path(base: dict[str, Any], spec: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_space({"parameters": spec}, base)


def test_candidate_is_validated_by_the_config_model(base: dict[str, Any]) -> None:
    ok = candidate(base, {"regimes.SIDEWAYS.exit.take_profit_pct": 0.02})
    assert ok.regimes["SIDEWAYS"].exit.take_profit_pct == 0.02
    assert ok.regimes["BULL"] == load_config(environ={}).app.regimes["BULL"]
    # the model refuses sustain >= lookback: the combination is named, never run
    with pytest.raises(ConfigError, match=r"regimes\.SIDEWAYS\.entry"):
        candidate(base, {"regimes.SIDEWAYS.entry.bb_touch_lookback": 2,
                         "regimes.SIDEWAYS.entry.bb_recovery_sustain_candles": 2})  # fmt: skip


def test_patch_nests_dotted_paths() -> None:
    assert patch({"a.b.c": 1, "a.b.d": 2, "e": 3}) == {"a": {"b": {"c": 1, "d": 2}}, "e": 3}


def test_suggest_asks_optuna_once_per_parameter(base: dict[str, Any]) -> None:
    params = parse_space({"parameters": {
        "regimes.BULL.entry.rsi_14_max": {"low": 40, "high": 60, "step": 5},
        "regimes.BULL.entry.ma_condition": {"choices": ["crossover", "none"]},
    }}, base)  # fmt: skip
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    trial = study.ask()
    values = suggest(trial, params)
    assert values["regimes.BULL.entry.rsi_14_max"] in {40, 45, 50, 55, 60}
    assert values["regimes.BULL.entry.ma_condition"] in {"crossover", "none"}
    assert set(trial.params) == set(values)
