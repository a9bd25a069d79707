"""Configuration validation: every kind of bad value names its field and what is allowed."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from coinpilot.config import DEFAULT_CONFIG_PATH, Settings, load_config, redacted
from coinpilot.errors import ConfigError

Edit = Callable[[dict[str, Any]], None]


def _shipped() -> dict[str, Any]:
    return yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())


def _set(path: str, value: Any) -> Edit:
    def edit(data: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        node = data
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value

    return edit


def _drop(path: str) -> Edit:
    def edit(data: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        node = data
        for part in parents:
            node = node[part]
        del node[leaf]

    return edit


def _load(tmp_path: Path, edit: Edit | None = None, env: dict[str, str] | None = None) -> Settings:
    data = copy.deepcopy(_shipped())
    if edit is not None:
        edit(data)
    path = tmp_path / "coinpilot.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_config(path, environ=env or {})


def test_shipped_config_loads_with_c1_values(tmp_path: Path) -> None:
    """The shipped YAML is valid and carries SPEC's C1 entry thresholds."""
    settings = _load(tmp_path)
    bull = settings.app.regimes["BULL"]
    assert bull.entry.rsi_14_max == 50
    assert settings.app.regimes["BEAR"].exit.stop_loss_pct == 0.05
    assert settings.app.timezone == "Asia/Seoul"
    assert settings.ai_mode == "off"  # no ANTHROPIC_API_KEY in this environment


BAD = [
    pytest.param(
        _drop("regimes.BULL.exit.stop_loss_pct"),
        ["regimes.BULL.exit.stop_loss_pct", "required"],
        id="missing-key",
    ),
    pytest.param(
        _set("regimes.BULL.entry.rsi_14_max", "abc"),
        ["regimes.BULL.entry.rsi_14_max", "number", "'abc'"],
        id="wrong-type",
    ),
    pytest.param(
        _set("regimes.SIDEWAYS.entry.rsi_14_max", 150),
        ["regimes.SIDEWAYS.entry.rsi_14_max", "less than or equal to 100"],
        id="rsi-out-of-range",
    ),
    pytest.param(
        _set("regimes.BEAR.exit.stop_loss_pct", 0),
        ["regimes.BEAR.exit.stop_loss_pct", "greater than 0"],
        id="stop-loss-not-positive",
    ),
    pytest.param(_set("http.port", 70000), ["http.port", "65535"], id="port-out-of-range"),
    pytest.param(
        _set("regimes.BULL.entry.rsi_14_maxx", 50),
        ["regimes.BULL.entry.rsi_14_maxx", "unknown key"],
        id="unknown-nested-key",
    ),
    pytest.param(_set("colour", "blue"), ["colour", "unknown key"], id="unknown-top-key"),
    pytest.param(
        _set("regimes.CRAB", _shipped()["regimes"]["SIDEWAYS"]),
        ["regimes", "unknown regimes: CRAB"],
        id="unknown-regime",
    ),
    pytest.param(
        _set("regimes.SIDEWAYS.entry.bb_recovery_sustain_candles", 30),
        ["regimes.SIDEWAYS.entry", "bb_recovery_sustain_candles must be below bb_touch_lookback"],
        id="cross-field-bb-sustain",
    ),
    pytest.param(
        _set("regime_detection.ma_fast_period", 200),
        ["regime_detection", "ma_fast_period must be below ma_slow_period"],
        id="cross-field-ma-fast-slow",
    ),
    pytest.param(
        _set("bot.min_candles", 500),
        ["bot", "min_candles must not exceed candle_window"],
        id="cross-field-min-candles",
    ),
    pytest.param(_set("symbols", ["krw-btc"]), ["symbols", "upper-case KRW"], id="bad-symbol"),
    pytest.param(_set("timezone", "Mars/Base"), ["timezone", "unknown time zone"], id="bad-tz"),
    pytest.param(
        _set("schedules.report_time_local", "25:00"),
        ["schedules.report_time_local", "HH:MM"],
        id="bad-time",
    ),
    pytest.param(
        _set("regimes", {"BULL": _shipped()["regimes"]["BULL"]}),
        ["regimes", "missing regimes: BEAR, SIDEWAYS"],
        id="missing-regimes",
    ),
]


@pytest.mark.parametrize(("edit", "expected"), BAD)
def test_bad_config_names_field(tmp_path: Path, edit: Edit, expected: list[str]) -> None:
    """Each invalid value raises ConfigError whose message names the path and the rule."""
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, edit)
    message = str(info.value)
    for part in expected:
        assert part in message, message


def test_environment_overrides_http_bind(tmp_path: Path) -> None:
    """COINPILOT_HTTP_HOST/PORT override the YAML's HTTP bind."""
    settings = _load(
        tmp_path, env={"COINPILOT_HTTP_HOST": "0.0.0.0", "COINPILOT_HTTP_PORT": "9100"}
    )
    assert (settings.app.http.host, settings.app.http.port) == ("0.0.0.0", 9100)


def test_bad_environment_value_names_the_variable(tmp_path: Path) -> None:
    """A non-numeric COINPILOT_HTTP_PORT is reported by its variable name."""
    with pytest.raises(ConfigError, match="COINPILOT_HTTP_PORT"):
        _load(tmp_path, env={"COINPILOT_HTTP_PORT": "eighty"})


def test_missing_file_and_bad_yaml_are_config_errors(tmp_path: Path) -> None:
    """An unreadable file or broken YAML is a ConfigError, not a traceback."""
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "nope.yaml", environ={})
    broken = tmp_path / "broken.yaml"
    broken.write_text("symbols: [KRW-BTC\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken, environ={})


def test_secrets_never_appear_in_repr_or_redacted(tmp_path: Path) -> None:
    """API keys, webhook and database URLs are masked everywhere settings are shown."""
    env = {
        "ANTHROPIC_API_KEY": "sk-ant-very-secret",
        "COINPILOT_DATABASE_URL": "postgresql://u:hunter2@db/coinpilot",
        "COINPILOT_DISCORD_WEBHOOK_URL": "https://discord.test/api/webhooks/1/tok",
        "COINPILOT_DISCORD_WEBHOOK_URL_TRADE": "https://discord.test/api/webhooks/2/tok2",
    }
    settings = _load(tmp_path, env=env)
    shown = repr(settings) + yaml.safe_dump(redacted(settings))
    for secret in ("sk-ant-very-secret", "hunter2", "/1/tok", "/2/tok2"):
        assert secret not in shown
    assert redacted(settings)["environment"]["anthropic_api_key"] == "********"
    assert settings.ai_mode == "llm"
