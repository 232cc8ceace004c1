"""Golden files for Block Kit renderers: `tests/golden/<feature>/<name>.json`.

A renderer's output (a `(text, blocks)` tuple, an object with `.text` and `.blocks`, a bare
list of blocks, or a modal view) is checked against Slack's Block Kit limits by the Slack
emulator, turned into JSON and compared with the stored file. With POLICY_BOT_UPDATE_GOLDEN=1
the file is rewritten instead; review that diff like any other code change.

    golden = golden_fixture("promotion")          # in a test module: a pytest fixture

    def test_plan(golden: Golden) -> None:
        golden("plan_ready", render.plan_message(PLAN, second_person=False))
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bot.playground.slack_emulator import validate_blocks, validate_view

GOLDEN_DIR = Path(__file__).parent / "golden"
UPDATE = "POLICY_BOT_UPDATE_GOLDEN"
VIEW_TYPES = ("modal", "home")
DIFF_LINES = 60

Golden = Callable[[str, Any], None]
LoneBlocks = Callable[[list[Any]], Any]


def as_list(blocks: list[Any]) -> Any:
    """Store a bare list of blocks as it is."""
    return blocks


def blocks_only(blocks: list[Any]) -> Any:
    """Store a bare list of blocks as `{"blocks": [...]}`."""
    return {"blocks": blocks}


def without_text(blocks: list[Any]) -> Any:
    """Store a bare list of blocks as a message without notification text."""
    return {"text": None, "blocks": blocks}


def payload(rendered: Any, *, lone_blocks: LoneBlocks = as_list) -> tuple[Any, list[str]]:
    """The JSON stored for `rendered`, and the Block Kit problems the emulator finds in it."""
    if isinstance(rendered, tuple):
        text, blocks = rendered
        return {"text": text, "blocks": blocks}, validate_blocks(blocks)
    if hasattr(rendered, "text") and hasattr(rendered, "blocks"):
        return {"text": rendered.text, "blocks": rendered.blocks}, validate_blocks(rendered.blocks)
    if isinstance(rendered, dict) and rendered.get("type") in VIEW_TYPES:
        return rendered, validate_view(rendered)
    if isinstance(rendered, list):
        return lone_blocks(rendered), validate_blocks(rendered)
    raise TypeError(f"not a rendered message, block list or view: {type(rendered).__name__}")


def first_difference(expected: Any, actual: Any, where: str = "$") -> str | None:
    """The first JSON path at which `actual` differs from `expected`, with both values."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key in list(expected) + [k for k in actual if k not in expected]:
            if key not in actual:
                return f"{where}.{key}: missing (expected {_short(expected[key])})"
            if key not in expected:
                return f"{where}.{key}: unexpected {_short(actual[key])}"
            found = first_difference(expected[key], actual[key], f"{where}.{key}")
            if found:
                return found
        return None
    if isinstance(expected, list) and isinstance(actual, list):
        for i, (old, new) in enumerate(zip(expected, actual, strict=False)):
            found = first_difference(old, new, f"{where}[{i}]")
            if found:
                return found
        if len(expected) != len(actual):
            return f"{where}: {len(expected)} items expected, {len(actual)} rendered"
        return None
    if expected != actual:
        return f"{where}: expected {_short(expected)}, rendered {_short(actual)}"
    return None


def _short(value: Any, limit: int = 200) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _dump(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


def compare(path: Path, actual: Any) -> None:
    """Assert that `actual` equals the JSON in `path`, or rewrite `path` when asked to."""
    __tracebackhide__ = True
    if os.environ.get(UPDATE) == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_dump(actual))
    if not path.exists():
        raise AssertionError(f"{path} is missing; run with {UPDATE}=1 to write it")
    expected = json.loads(path.read_text())
    if actual == expected:
        return
    diff = list(
        difflib.unified_diff(
            _dump(expected).splitlines(),
            _dump(actual).splitlines(),
            f"{path} (stored)",
            "rendered",
            lineterm="",
        )
    )
    if len(diff) > DIFF_LINES:
        diff = [*diff[:DIFF_LINES], f"… {len(diff) - DIFF_LINES} more diff lines"]
    raise AssertionError(
        f"rendered JSON differs from {path}\n"
        f"first difference: {first_difference(expected, actual)}\n"
        + "\n".join(diff)
        + f"\nIf the change is intended, look at the rendered message (paste it into Slack's "
        f"Block Kit Builder), then rerun with {UPDATE}=1 and review the diff of the file."
    )


def check(feature: str, name: str, rendered: Any, *, lone_blocks: LoneBlocks = as_list) -> None:
    """Validate `rendered` as Block Kit and compare it with `tests/golden/<feature>/<name>.json`."""
    __tracebackhide__ = True
    actual, problems = payload(rendered, lone_blocks=lone_blocks)
    if problems:
        raise AssertionError(f"{feature}/{name} breaks Slack's Block Kit limits: {problems}")
    compare(GOLDEN_DIR / feature / f"{name}.json", actual)


def golden_for(feature: str, *, lone_blocks: LoneBlocks = as_list) -> Golden:
    """`golden(name, rendered)` for one feature's directory under `tests/golden/`."""

    def golden(name: str, rendered: Any) -> None:
        __tracebackhide__ = True
        check(feature, name, rendered, lone_blocks=lone_blocks)

    return golden


def golden_fixture(feature: str, *, lone_blocks: LoneBlocks = as_list) -> Any:
    """The same as a pytest fixture: `golden = golden_fixture("backup")` in a test module."""

    @pytest.fixture
    def golden() -> Golden:
        return golden_for(feature, lone_blocks=lone_blocks)

    return golden
