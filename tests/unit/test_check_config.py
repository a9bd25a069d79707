"""`coinpilot check-config` refuses exactly what `coinpilot run` refuses, in one line.

The property test feeds thousands of mutated configs and environments through the CLI:
each either loads (exit 0, "config ok") or exits 2 with one line naming the field or the
environment variable. Anything else (a traceback, another exit code) fails it.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coinpilot import cli
from coinpilot.config import DEFAULT_CONFIG_PATH, ENV_NAMES

SHIPPED: dict[str, Any] = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
ENV_VARS = sorted(
    {*ENV_NAMES.values(), "COINPILOT_DISCORD_WEBHOOK_URL_TRADE"} - {"STATE_DIRECTORY"}
)


@contextlib.contextmanager
def environment(env: dict[str, str]) -> Iterator[None]:
    saved = {k: v for k, v in os.environ.items() if k in ENV_VARS or k == "COINPILOT_CONFIG"}
    for key in saved:
        del os.environ[key]
    os.environ.update(env)
    try:
        yield
    finally:
        for key in env:
            os.environ.pop(key, None)
        os.environ.update(saved)


def check_config(path: Path, env: dict[str, str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with environment(env), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(["check-config", "--config", str(path)])
    return code, out.getvalue(), err.getvalue()


def paths(node: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += paths(value, (*prefix, str(key)))
    return found


ALL_PATHS = paths(SHIPPED)
FIELD_NAMES = {part for path in ALL_PATHS for part in path}
NASTY = st.one_of(
    st.sampled_from(
        [float("inf"), float("-inf"), float("nan"), 1e30, -1e30, 0, -1, 1, 2**63, "", None]
    ),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.lists(st.integers(min_value=-5, max_value=500), max_size=4),
    st.dictionaries(
        st.sampled_from(["x", "dev", "prod", "BULL", "entry"]), st.integers(), max_size=3
    ),
    st.recursive(st.integers(), lambda inner: st.lists(inner, max_size=2), max_leaves=6),
)
ENV_VALUES = st.one_of(
    st.sampled_from(
        [
            "",
            "[::1]",
            "::1",
            "0.0.0.0",
            "80",
            "99999",
            "-1",
            "postgresql://[::1",
            "redis://:6379/",
            "redis://h:1/0",
            "unix:///tmp/x.sock",
            "postgresql://u:p@h:5432/db",
            "http://127.0.0.1:1",
            "https://",
            "x" * 20,
            "prod",
            "dev",
        ]
    ),
    st.text(
        alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\0"), max_size=20
    ),
)


@st.composite
def mutated(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, str]]:
    data = copy.deepcopy(SHIPPED)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        path = draw(st.sampled_from(ALL_PATHS))
        parent = data
        for part in path[:-1]:
            if not isinstance(parent, dict) or part not in parent:
                break
            parent = parent[part]
        else:
            if isinstance(parent, dict):
                action = draw(st.sampled_from(["set", "set", "set", "drop", "unknown"]))
                if action == "set":
                    parent[path[-1]] = draw(NASTY)
                elif action == "drop":
                    parent.pop(path[-1], None)
                else:
                    parent[path[-1] + "_x"] = 1
    env = draw(st.dictionaries(st.sampled_from(ENV_VARS), ENV_VALUES, max_size=3))
    return data, env


ONE_LINE = re.compile(r"^coinpilot: config error: [^\n]+\n$")


WHERE = re.compile(r"^coinpilot: config error: (environment variable (\w+)|(\S+?)):")


def named(message: str, path: Path) -> bool:
    """The line starts with what is wrong: a field path, an environment variable or the file."""
    m = WHERE.match(message)
    if m is None:
        return False
    if m.group(2):
        return m.group(2) in ENV_VARS
    where = m.group(3)
    return where == str(path) or bool(re.fullmatch(r"[\w-]+(\.[\w-]+)*", where))


@settings(
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=mutated())
def test_mutated_configs_load_or_exit_2_naming_the_field(
    tmp_path: Path, case: tuple[dict[str, Any], dict[str, str]]
) -> None:
    data, env = case
    path = tmp_path / "mutated.yaml"
    path.write_text(yaml.dump(data, Dumper=yaml.CSafeDumper, allow_unicode=True))
    code, out, err = check_config(path, env)
    assert code in (0, 2), (code, err)
    if code == 0:
        assert out.endswith("config ok\n")
        assert err == ""
    else:
        assert ONE_LINE.match(err), err
        assert named(err, path), err


@settings(
    max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.binary(max_size=300))
def test_arbitrary_bytes_load_or_exit_2(tmp_path: Path, text: bytes) -> None:
    path = tmp_path / "raw.yaml"
    path.write_bytes(DEFAULT_CONFIG_PATH.read_bytes()[:2000] + text)
    code, _, err = check_config(path, {})
    assert code in (0, 2), err
    if code == 2:
        assert ONE_LINE.match(err), err


def test_check_config_refuses_a_public_bind_without_a_token(tmp_path: Path) -> None:
    """What `run` refuses (0.0.0.0 without COINPILOT_DASHBOARD_TOKEN), check-config refuses."""
    code, out, err = check_config(DEFAULT_CONFIG_PATH, {"COINPILOT_HTTP_HOST": "0.0.0.0"})
    assert code == 2
    assert "config ok" not in out
    assert "COINPILOT_DASHBOARD_TOKEN" in err


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        ({"bot": {"interval_s": ".inf"}}, "bot.interval_s"),
        ({"collector": {"backfill_days": 1e30}}, "collector.backfill_days"),
    ],
)
def test_check_config_names_the_field_in_one_line(
    tmp_path: Path, edit: dict[str, Any], field: str
) -> None:
    data = copy.deepcopy(SHIPPED)
    for section, values in edit.items():
        data[section].update(values)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data).replace("'.inf'", ".inf"))
    code, _, err = check_config(path, {})
    assert code == 2
    assert ONE_LINE.match(err), err
    assert field in err
