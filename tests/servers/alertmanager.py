"""The tests' Alertmanager binary: found, or the test skipped (failed with
POLICY_BOT_REQUIRE_ALERTMANAGER=1, in CI). The server itself is ``bot/playground/alertmanager.py``."""

from __future__ import annotations

from pathlib import Path

from bot.playground.alertmanager import find_binary
from tests.servers import child

REQUIRE_ENV = "POLICY_BOT_REQUIRE_ALERTMANAGER"


def require_binary() -> Path:
    """The Alertmanager binary, or a skip (a failure with POLICY_BOT_REQUIRE_ALERTMANAGER=1)."""
    return child.require_binary(find_binary, REQUIRE_ENV)
