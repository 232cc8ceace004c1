"""The golden-file helper itself: it catches a difference, checks Block Kit, rewrites on request."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests import goldens

SECTION = {"type": "section", "text": {"type": "mrkdwn", "text": "*require-labels* · Enforce"}}
MESSAGE = ("require-labels is in Enforce", [SECTION])
MODAL = {
    "type": "modal",
    "callback_id": "demo",
    "title": {"type": "plain_text", "text": "Demo"},
    "blocks": [SECTION],
}


@pytest.fixture
def golden_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(goldens, "GOLDEN_DIR", tmp_path)
    monkeypatch.delenv(goldens.UPDATE, raising=False)
    return tmp_path


def store(golden_dir: Path, name: str, value: Any) -> None:
    (golden_dir / "demo").mkdir(exist_ok=True)
    (golden_dir / "demo" / f"{name}.json").write_text(json.dumps(value))


def test_an_equal_rendering_passes(golden_dir: Path) -> None:
    store(golden_dir, "message", {"text": MESSAGE[0], "blocks": MESSAGE[1]})
    goldens.check("demo", "message", MESSAGE)


def test_a_difference_names_its_path_shows_a_diff_and_how_to_update(golden_dir: Path) -> None:
    changed = {"type": "section", "text": {"type": "mrkdwn", "text": "*require-labels* · Audit"}}
    store(golden_dir, "message", {"text": MESSAGE[0], "blocks": MESSAGE[1]})
    with pytest.raises(AssertionError) as failure:
        goldens.check("demo", "message", (MESSAGE[0], [changed]))
    text = str(failure.value)
    assert "first difference: $.blocks[0].text.text" in text
    assert '-        "text": "*require-labels* · Enforce"' in text
    assert '+        "text": "*require-labels* · Audit"' in text
    assert "POLICY_BOT_UPDATE_GOLDEN=1" in text


def test_a_missing_or_extra_block_is_a_difference(golden_dir: Path) -> None:
    store(golden_dir, "message", {"text": MESSAGE[0], "blocks": MESSAGE[1]})
    with pytest.raises(AssertionError, match=r"\$\.blocks: 1 items expected, 2 rendered"):
        goldens.check("demo", "message", (MESSAGE[0], [SECTION, SECTION]))


def test_block_kit_problems_fail_before_the_comparison(golden_dir: Path) -> None:
    too_long = {"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}
    store(golden_dir, "long", {"text": "t", "blocks": [too_long]})
    with pytest.raises(AssertionError, match="Block Kit"):
        goldens.check("demo", "long", ("t", [too_long]))
    view = {**MODAL, "title": {"type": "plain_text", "text": "A title far beyond 24 chars"}}
    store(golden_dir, "view", view)
    with pytest.raises(AssertionError, match="Block Kit"):
        goldens.check("demo", "view", view)


def test_shapes_of_a_rendering(golden_dir: Path) -> None:
    store(golden_dir, "list", [SECTION])
    store(golden_dir, "only", {"blocks": [SECTION]})
    store(golden_dir, "modal", MODAL)
    goldens.check("demo", "list", [SECTION])
    goldens.check("demo", "only", [SECTION], lone_blocks=goldens.blocks_only)
    goldens.check("demo", "modal", MODAL)
    with pytest.raises(TypeError):
        goldens.check("demo", "list", "not a message")


def test_update_rewrites_and_a_missing_file_says_how_to_write_it(
    golden_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(AssertionError, match="missing; run with POLICY_BOT_UPDATE_GOLDEN=1"):
        goldens.check("demo", "new", MESSAGE)
    monkeypatch.setenv(goldens.UPDATE, "1")
    goldens.golden_for("demo")("new", MESSAGE)
    written = (golden_dir / "demo" / "new.json").read_text()
    assert written.endswith("}\n") and json.loads(written)["text"] == MESSAGE[0]
    monkeypatch.delenv(goldens.UPDATE)
    goldens.check("demo", "new", MESSAGE)
