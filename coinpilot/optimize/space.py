"""The search space: which config fields a search may change, and over what values.

A space file is YAML with one mapping, ``parameters``, from a dotted config path to a range::

    parameters:
      regimes.SIDEWAYS.entry.rsi_7_trigger: {low: 25, high: 45, step: 1}   # integers
      regimes.SIDEWAYS.exit.take_profit_pct: {low: 0.01, high: 0.08}       # floats
      regimes.BULL.exit.time_limit_hours: {low: 6, high: 96, log: true}
      regimes.SIDEWAYS.entry.ma_condition: {choices: [proximity, none]}

A range with integer ``low`` and ``high`` (and integer ``step``, if any) is an integer range;
``type: float`` makes it a float range anyway. Every path must name an existing field of the
base config, so a typo stops the search before the first trial. A trial's values are written
into the base config's YAML data and validated by the same model as ``check-config``
(``config.parse_app``); a combination the model refuses is pruned, never run.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from coinpilot.config import AppConfig, parse_app
from coinpilot.errors import ConfigError

DEFAULT_SPACE = Path(__file__).resolve().parent.parent.parent / "config" / "optimize-space.yaml"


@dataclass(frozen=True)
class Param:
    path: str
    kind: str  # "int" | "float" | "categorical"
    low: float = 0.0
    high: float = 0.0
    step: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        if self.kind == "categorical":
            return {"choices": list(self.choices)}
        out: dict[str, Any] = {"low": self.low, "high": self.high, "type": self.kind}
        if self.step is not None:
            out["step"] = self.step
        if self.log:
            out["log"] = True
        return out


def _lookup(data: Mapping[str, Any], path: str) -> Any:
    node: Any = data
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise ConfigError(f"search space: {path}: no such config field")
        node = node[part]
    return node


def _param(path: str, spec: Any) -> Param:
    if not isinstance(spec, Mapping):
        raise ConfigError(f"search space: {path}: expected a mapping like {{low: 1, high: 2}}")
    unknown = set(spec) - {"low", "high", "step", "log", "type", "choices"}
    if unknown:
        raise ConfigError(f"search space: {path}: unknown keys {', '.join(sorted(unknown))}")
    if "choices" in spec:
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"search space: {path}: choices must be a non-empty list")
        return Param(path, "categorical", choices=tuple(choices))
    try:
        low, high = spec["low"], spec["high"]
    except KeyError as exc:
        raise ConfigError(f"search space: {path}: needs low and high, or choices") from exc
    nums = [low, high] + ([spec["step"]] if spec.get("step") is not None else [])
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in nums):
        raise ConfigError(f"search space: {path}: low, high and step must be numbers")
    kind = spec.get("type") or ("int" if all(isinstance(v, int) for v in nums) else "float")
    if kind not in ("int", "float"):
        raise ConfigError(f"search space: {path}: type must be int or float")
    if low >= high:
        raise ConfigError(f"search space: {path}: low must be below high")
    log = bool(spec.get("log", False))
    if log and (low <= 0 or spec.get("step") is not None):
        raise ConfigError(f"search space: {path}: log ranges need low > 0 and no step")
    step = spec.get("step")
    return Param(path, kind, float(low), float(high), None if step is None else float(step), log)


def parse_space(data: Any, base: Mapping[str, Any]) -> list[Param]:
    """The parameters of a space document, each path checked against the base config data."""
    if not isinstance(data, Mapping) or not isinstance(data.get("parameters"), Mapping):
        raise ConfigError("search space: expected a top-level 'parameters' mapping")
    params = []
    for path, spec in data["parameters"].items():
        _lookup(base, str(path))
        params.append(_param(str(path), spec))
    if not params:
        raise ConfigError("search space: no parameters")
    return params


def load_space(path: Path, base: Mapping[str, Any]) -> tuple[dict[str, Any], list[Param]]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read search space {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return data, parse_space(data, base)


def suggest(trial: Any, params: list[Param]) -> dict[str, Any]:
    """Ask an Optuna trial for one value per parameter, keyed by config path."""
    out: dict[str, Any] = {}
    for p in params:
        if p.kind == "categorical":
            out[p.path] = trial.suggest_categorical(p.path, list(p.choices))
        elif p.kind == "int":
            step = int(p.step) if p.step is not None else 1
            out[p.path] = trial.suggest_int(p.path, int(p.low), int(p.high), step=step, log=p.log)
        else:
            out[p.path] = trial.suggest_float(p.path, p.low, p.high, step=p.step, log=p.log)
    return out


def patch(values: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted paths → the nested mapping a YAML patch of the config file holds."""
    out: dict[str, Any] = {}
    for path, value in values.items():
        node = out
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``overlay``'s leaves written over it (nested mappings merged)."""
    out = copy.deepcopy(dict(base))
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def candidate(base: Mapping[str, Any], values: Mapping[str, Any]) -> AppConfig:
    """The base config with the trial's values, validated as check-config does (ConfigError)."""
    return parse_app(merge(base, patch(values)))
