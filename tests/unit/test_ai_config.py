"""The ai section: current models by default, every configured model priced, per-model settings."""

from __future__ import annotations

import copy
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from coinpilot.config import DEFAULT_CONFIG_PATH, Settings, load_config
from coinpilot.errors import ConfigError


def _load(tmp_path: Path, ai: dict[str, Any], env: dict[str, str] | None = None) -> Settings:
    data = copy.deepcopy(yaml.safe_load(DEFAULT_CONFIG_PATH.read_text()))
    data["ai"].update(ai)
    path = tmp_path / "coinpilot.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_config(path, environ=env or {})


def test_defaults_are_the_current_sonnet_and_haiku(tmp_path: Path) -> None:
    """prod is Sonnet 5.5 and dev Haiku 5.5 (EXTERNAL_APIS §9.A.1), both priced and tuned."""
    settings = _load(tmp_path, {})
    assert dict(settings.app.ai.models) == {"dev": "claude-haiku-5-5", "prod": "claude-sonnet-5-5"}
    assert settings.model_id == "claude-haiku-5-5"
    prod = _load(tmp_path, {}, env={"LLM_MODE": "prod"})
    assert prod.model_id == "claude-sonnet-5-5"
    price = prod.app.ai.prices["claude-sonnet-5-5"]
    assert (price.input_per_mtok, price.output_per_mtok) == (Decimal("2.0"), Decimal("10.0"))
    assert (price.cache_write_per_mtok, price.cache_read_per_mtok) == (
        Decimal("2.5"), Decimal("0.10")
    )  # fmt: skip
    opts = prod.app.ai.settings_for("claude-sonnet-5-5")
    assert (opts.effort, opts.thinking, opts.max_tokens) == ("low", None, 2048)
    haiku = prod.app.ai.settings_for("claude-haiku-5-5")
    assert (haiku.effort, haiku.thinking) == ("low", "disabled")
    legacy = prod.app.ai.settings_for("claude-haiku-4-5")
    assert (legacy.effort, legacy.thinking) == (None, None)  # Haiku 4.5 takes no effort


def test_a_model_without_a_price_stops_start_up_naming_the_key(tmp_path: Path) -> None:
    """ai.models.prod set to an unpriced id: a config error naming ai.prices.<id>."""
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, {"models": {"dev": "claude-haiku-5-5", "prod": "claude-opus-5-5"}})
    assert "ai.prices.claude-opus-5-5: missing" in str(err.value)
    assert "ai.models.prod" in str(err.value)


def test_a_price_without_cache_rates_is_refused(tmp_path: Path) -> None:
    """The old two-field price is incomplete: the missing cache prices are named."""
    full = {"input_per_mtok": 2, "output_per_mtok": 10,
            "cache_write_per_mtok": 2.5, "cache_read_per_mtok": 0.1}  # fmt: skip
    prices = {"claude-haiku-5-5": {"input_per_mtok": 0.1, "output_per_mtok": 0.5},
              "claude-sonnet-5-5": full}  # fmt: skip
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, {"prices": prices})
    assert "ai.prices.claude-haiku-5-5.cache_write_per_mtok: Field required" in str(err.value)


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [("effort", "extreme", "ai.model_settings.claude-sonnet-5-5.effort"),
     ("thinking", "enabled", "ai.model_settings.claude-sonnet-5-5.thinking"),
     ("max_tokens", 10, "ai.model_settings.claude-sonnet-5-5.max_tokens")],
)  # fmt: skip
def test_bad_model_settings_name_their_field(
    tmp_path: Path, key: str, value: Any, named: str
) -> None:
    """An unknown effort level or thinking type, or a tiny max_tokens, names the field."""
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        _load(tmp_path, {"model_settings": {"claude-sonnet-5-5": {key: value}}})


def test_on_unavailable_takes_reject_or_rules_only(tmp_path: Path) -> None:
    """ai.on_unavailable defaults to reject; anything else than reject/rules_only is refused."""
    assert _load(tmp_path, {}).app.ai.on_unavailable == "reject"
    assert _load(tmp_path, {"on_unavailable": "rules_only"}).app.ai.on_unavailable == "rules_only"
    with pytest.raises(ConfigError, match=r"ai\.on_unavailable"):
        _load(tmp_path, {"on_unavailable": "approve"})
