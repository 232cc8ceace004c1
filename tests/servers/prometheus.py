"""The tests' Prometheus binaries: found, or the test skipped (failed with
POLICY_BOT_REQUIRE_PROMETHEUS=1, in CI). The server itself is ``bot/playground/prometheus.py``."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from bot.playground.prometheus import find_binary
from tests.servers import child
from tests.servers.child import skip_or_fail

REQUIRE_ENV = "POLICY_BOT_REQUIRE_PROMETHEUS"


def require_binary() -> Path:
    """The Prometheus binary, or a skip (a failure with POLICY_BOT_REQUIRE_PROMETHEUS=1)."""
    return child.require_binary(find_binary, REQUIRE_ENV)


def require_promtool() -> Path:
    """`promtool` from the same package as the server (beside it), or a skip / failure."""
    binary = require_binary()
    for candidate in (binary.parent / "promtool", shutil.which("promtool")):
        if candidate and os.access(candidate, os.X_OK):
            return Path(candidate)
    skip_or_fail(f"no promtool next to {binary} or on PATH", REQUIRE_ENV)
