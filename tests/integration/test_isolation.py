"""The suite's own servers: never the Redis database a production daemon uses by default."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import pytest


def test_default_test_redis_is_not_db_0(redis_url_base: str) -> None:
    """DB 0 is what the README gives production; the suite defaults to a database of its own."""
    if os.environ.get("COINPILOT_TEST_REDIS_URL"):
        pytest.skip("COINPILOT_TEST_REDIS_URL chooses the server explicitly")
    parts = urlsplit(redis_url_base)
    if parts.scheme == "unix":  # the embedded server: private to this test session
        return
    assert parts.path.strip("/") not in ("", "0"), redis_url_base
