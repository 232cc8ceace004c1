"""The tests' side of child processes: a missing binary skips the test, or fails it in CI.

Starting, waiting for and stopping the processes is the playground's
(``bot/playground/child.py``), which the tests share.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import pytest

from bot.playground.child import BinaryNotInstalled


def skip_or_fail(missing: str, require_env: str) -> NoReturn:
    """Skip the test for `missing`, or fail it when `require_env`=1 (CI)."""
    if os.environ.get(require_env) == "1":
        pytest.fail(f"{missing} ({require_env}=1)", pytrace=False)
    pytest.skip(missing)


def require_binary(find: Callable[[], Path], require_env: str) -> Path:
    """`find()`, or a skip (a failure with `require_env`=1)."""
    try:
        return find()
    except BinaryNotInstalled as missing:
        skip_or_fail(str(missing), require_env)


def built_by(script: Path, what: str, require_env: str) -> Path:
    """Run a build script that prints the built directory or binary last; skip (or fail with
    `require_env`=1) when it cannot run or fails."""
    try:
        built = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=False)
    except OSError as exc:
        skip_or_fail(f"cannot run {script}: {exc}", require_env)
    lines = built.stdout.strip().splitlines()
    if built.returncode != 0 or not lines:
        tail = "\n".join(built.stderr.strip().splitlines()[-15:])
        skip_or_fail(f"no {what}: {script} failed:\n{tail}", require_env)
    return Path(lines[-1])
