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
    env = {
        "COINPILOT_HTTP_HOST": "0.0.0.0",
        "COINPILOT_HTTP_PORT": "9100",
        "COINPILOT_DASHBOARD_TOKEN": "x" * 16,
    }
    settings = _load(tmp_path, env=env)
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


# --- values that load but would break the daemon --------------------------------------

NONSENSE = [
    pytest.param(_set("bot.interval_s", float("inf")), ["bot.interval_s", "finite"], id="inf"),
    pytest.param(_set("bot.interval_s", float("nan")), ["bot.interval_s", "finite"], id="nan"),
    pytest.param(
        _set("risk.initial_balance_krw", "Infinity"),
        ["risk.initial_balance_krw", "finite"],
        id="decimal-inf",
    ),
    pytest.param(
        _set("collector.backfill_days", 1e30), ["collector.backfill_days", "less than"], id="1e30"
    ),
    pytest.param(
        _set("collector.interval_s", 1e30), ["collector.interval_s", "less than"], id="interval"
    ),
    pytest.param(_set("bot.interval_s", 0.001), ["bot.interval_s", "greater than"], id="busy"),
    pytest.param(
        _set("notify.timeout_s", 1e9), ["notify.timeout_s", "less than"], id="notify-timeout"
    ),
    pytest.param(
        _set("regimes.BULL.exit.take_profit_pct", 0.0015),
        ["regimes.BULL.exit.take_profit_pct", "round-trip", "0.002"],
        id="tp-below-fees",
    ),
    pytest.param(
        _set("regimes.SIDEWAYS.entry.bb_period", 500),
        ["regimes.SIDEWAYS.entry.bb_period", "bot.candle_window"],
        id="period-beyond-window",
    ),
    pytest.param(
        _set("regimes.BEAR.entry.rsi_period", 200),
        ["regimes.BEAR.entry.rsi_period", "bot.candle_window"],
        id="rsi-needs-one-more",
    ),
    pytest.param(_set("ai.models", {"prod": "claude-x"}), ["ai.models", "dev"], id="no-dev"),
    pytest.param(_set("http", [1, 2]), ["http", "mapping"], id="http-list"),
    pytest.param(_set("bot", "fast"), ["bot", "mapping"], id="bot-string"),
]


@pytest.mark.parametrize(("edit", "expected"), NONSENSE)
def test_nonsense_is_refused_naming_the_field(
    tmp_path: Path, edit: Edit, expected: list[str]
) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, edit)
    message = str(info.value)
    for part in expected:
        assert part in message, message


def test_take_profit_just_above_the_round_trip_cost_loads(tmp_path: Path) -> None:
    """Fees 0.05 % and slippage 0.05 % a side cost 0.2 % a round trip: 0.21 % is allowed."""
    settings = _load(tmp_path, _set("regimes.BULL.exit.take_profit_pct", 0.0021))
    assert settings.app.regimes["BULL"].exit.take_profit_pct == 0.0021


def test_duplicate_keys_are_refused_with_their_line(tmp_path: Path) -> None:
    text = DEFAULT_CONFIG_PATH.read_text() + "\nbot:\n  interval_s: 5\n"
    path = tmp_path / "dup.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"line \d+: not valid YAML: duplicate key 'bot'"):
        load_config(path, environ={})


def test_duplicate_nested_keys_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text(
        DEFAULT_CONFIG_PATH.read_text().replace(
            "  interval_s: 60\n", "  interval_s: 60\n  interval_s: 1\n", 1
        )
    )
    with pytest.raises(ConfigError, match="duplicate key 'interval_s'"):
        load_config(path, environ={})


def test_non_utf8_and_deeply_nested_files_are_config_errors(tmp_path: Path) -> None:
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"symbols: [KRW-BTC]\ntimezone: \xe9t\xe9\n")
    with pytest.raises(ConfigError, match="UTF-8"):
        load_config(latin, environ={})
    deep = tmp_path / "deep.yaml"
    deep.write_text("symbols: " + "[" * 20000 + "]" * 20000 + "\n")
    with pytest.raises(ConfigError, match=r"deep\.yaml"):
        load_config(deep, environ={})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("COINPILOT_DATABASE_URL", "postgresql://[::1:5432/db"),
        ("COINPILOT_DATABASE_URL", "mysql://localhost/db"),
        ("COINPILOT_DATABASE_URL", "postgresql://host:notaport/db"),
        ("COINPILOT_REDIS_URL", "redis://host:99999/0"),
        ("COINPILOT_REDIS_URL", "http://host/0"),
        ("COINPILOT_REDIS_URL", "redis://host:6379/x"),
        ("COINPILOT_UPBIT_URL", "api.upbit.com"),
        ("ANTHROPIC_BASE_URL", "http://[zz]/"),
        ("OPENAI_BASE_URL", "ftp://x"),
        ("COINPILOT_DISCORD_WEBHOOK_URL", "discord.com/api/webhooks/1/x"),
        ("COINPILOT_DISCORD_WEBHOOK_URL_TRADE", "https://"),
        ("COINPILOT_HTTP_HOST", "exa mple"),
    ],
)
def test_malformed_urls_are_named_by_their_variable(tmp_path: Path, name: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, env={name: value})
    assert f"environment variable {name}" in str(info.value)


def test_bracketed_ipv6_host_is_accepted_as_the_address(tmp_path: Path) -> None:
    settings = _load(tmp_path, env={"COINPILOT_HTTP_HOST": "[::1]"})
    assert settings.app.http.host == "::1"


def test_a_public_bind_without_a_token_is_refused_at_load(tmp_path: Path) -> None:
    """The rule `run` enforces is part of loading, so check-config refuses it too."""
    with pytest.raises(ConfigError, match="COINPILOT_DASHBOARD_TOKEN"):
        _load(tmp_path, env={"COINPILOT_HTTP_HOST": "0.0.0.0"})
