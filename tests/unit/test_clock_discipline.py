"""Every decision about time reads the one injected clock.

A code path that asks the machine for the time instead of the `Clock` it was given
disagrees with every other path as soon as the two differ: a test that pins the clock, or
in production a replica whose clock was moved for a test run or a long-lived process
compared with stored times. Two rules, checked on the source of `bot/` and `handlers/`:

- nobody but `bot/clock.py` calls `datetime.now`, `datetime.utcnow`, `datetime.today`,
  `date.today`, `time.time` or `time.time_ns` (`time.monotonic` measures durations and is
  fine);
- the real clock, `SYSTEM_CLOCK`, is named only by the composition roots (`bot/app/serve.py` and
  `bot/app/cli.py`), so no service can fall back to it when someone forgets to pass one.

ruff's banned-api (TID251) says the same in an editor; this test also covers the adapter
packages, which are exempt from TID251 for their SDK imports.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("bot", "handlers")
CLOCK_MODULE = "bot/clock.py"
COMPOSITION_ROOTS = frozenset({"bot/app/serve.py", "bot/app/cli.py", "bot/playground/world.py"})
OUTSIDE_WORLD = frozenset(
    {
        "bot/playground/jira_emulator.py",
        "bot/playground/slack_emulator.py",
        "bot/playground/slack_signed_client.py",
        "bot/playground/pki.py",
    }
)
"""The emulators stand for Slack and JIRA, whose clocks are the world's, not the bot's, and the
playground's control-plane certificates must be valid at the time kube-apiserver reads off the
machine: they may read the machine's time (ruff's per-file-ignores say the same)."""
FORBIDDEN = frozenset(
    {
        "datetime.datetime.now",
        "datetime.datetime.utcnow",
        "datetime.datetime.today",
        "datetime.date.today",
        "time.time",
        "time.time_ns",
    }
)


def _qualified_names(tree: ast.AST) -> dict[str, str]:
    """Local name -> the qualified name it was imported as."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                names[alias.asname or alias.name.split(".")[0]] = (
                    alias.name if alias.asname else alias.name.split(".")[0]
                )
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


def _dotted(node: ast.expr) -> list[str] | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return parts[::-1]


def violations(source: str, path: str) -> Iterator[str]:
    """Where `source` (the file `path`, relative to the repository) breaks the two rules."""
    tree = ast.parse(source, filename=path)
    imported = _qualified_names(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and path != CLOCK_MODULE and path not in OUTSIDE_WORLD:
            parts = _dotted(node.func)
            if parts and parts[0] in imported:
                qualified = ".".join([imported[parts[0]], *parts[1:]])
                if qualified in FORBIDDEN:
                    yield f"{path}:{node.lineno} calls {qualified}() instead of the injected Clock"
        if (
            isinstance(node, ast.Name | ast.alias)
            and (node.id if isinstance(node, ast.Name) else node.name) == "SYSTEM_CLOCK"
            and path not in COMPOSITION_ROOTS
            and path != CLOCK_MODULE
        ):
            line = getattr(node, "lineno", 0)
            yield f"{path}:{line} names SYSTEM_CLOCK outside the composition root"


def _sources() -> Iterator[tuple[str, str]]:
    for package in SOURCES:
        for file in sorted((ROOT / package).rglob("*.py")):
            yield file.relative_to(ROOT).as_posix(), file.read_text(encoding="utf-8")


def test_only_the_clock_module_reads_the_machine_clock() -> None:
    found = [v for path, text in _sources() for v in violations(text, path)]
    assert found == []


def test_the_check_sees_every_spelling() -> None:
    """The check itself can fail: each way of reaching the machine clock is caught."""
    sample = "\n".join(
        [
            "import datetime",
            "import datetime as dt",
            "import time",
            "from datetime import date, datetime as DT",
            "from time import time as now",
            "from bot.clock import SYSTEM_CLOCK",
            "a = datetime.datetime.now()",
            "b = dt.date.today()",
            "c = DT.utcnow()",
            "d = date.today()",
            "e = time.time_ns()",
            "f = now()",
            "g = time.monotonic()",
            "def h(clock=SYSTEM_CLOCK): ...",
        ]
    )
    found = list(violations(sample, "bot/feature.py"))
    assert sorted(int(v.split(" ", 1)[0].rsplit(":", 1)[1]) for v in found) == [
        6,
        7,
        8,
        9,
        10,
        11,
        12,
        14,
    ]
    assert list(violations(sample.replace("SYSTEM_CLOCK", "clock"), "bot/app/cli.py"))
    assert not list(
        violations("from bot.clock import SYSTEM_CLOCK\nx = SYSTEM_CLOCK", "bot/app/serve.py")
    )
