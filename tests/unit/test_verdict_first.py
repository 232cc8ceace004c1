"""Every message a person reads at a glance says its verdict first, and its notification text
(what a phone, a preview or a screen reader gets) carries it too; buttons follow one rule
(at most one primary per set, red only for what destroys or weakens protection, and then
asked for). A whole alert thread is kept as a golden file.

Set POLICY_BOT_UPDATE_GOLDEN=1 to rewrite the golden files after a deliberate change, then
review the diff like any other code change.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.alerts.ports import RenderedMessage
from bot.alerts.state import GroupChange, Silence
from bot.playground.slack_emulator import validate_blocks
from bot.promotion.readiness import NOT_READY, READY, TIMEOUT, Readiness
from bot.promotion.service import Applied
from handlers.render import backup as backup_render
from handlers.render import doctor as doctor_render
from handlers.render import promotion as promotion_render
from handlers.render import status as status_render
from handlers.render.alerts import AlertLinks, parent_message, thread_replies
from tests.alert_samples import alert, group_of
from tests.harness import blocks_text
from tests.unit import status_samples
from tests.unit.test_backup_render import _plan, _report
from tests.unit.test_doctor_render import report_of
from tests.unit.test_promotion_render import BLOCKED, PLAN, WRITE

GOLDEN = Path(__file__).parents[1] / "golden"
T0 = status_samples.NOW.replace(hour=8, minute=51)
LINKS = AlertLinks(policy_reporter_url="https://reporter.example.invalid/#/?policies={policy}")

Message = tuple[str, list[dict[str, Any]]]


def first_line(blocks: list[dict[str, Any]]) -> str:
    """The header, or the first section when there is none: what the eye lands on."""
    for block in blocks:
        if block["type"] == "header":
            return str(block["text"]["text"])
        if block["type"] == "section" and "text" in block:
            return str(block["text"]["text"]).splitlines()[0]
    raise AssertionError("no header or section")


def second_line(blocks: list[dict[str, Any]]) -> str:
    """The first line of the first section after the header."""
    sections = [b for b in blocks if b["type"] == "section" and "text" in b]
    return str(sections[0]["text"]["text"]).splitlines()[0]


def alert_parent(group: Any, now: Any) -> Message:
    m = parent_message(group, now=now, links=LINKS)
    return m.text, m.blocks


def messages() -> dict[str, tuple[Message, str, str]]:
    """name → (message, what its first line says, what its notification text says)."""
    snaps = status_samples.four_environments()
    api, web = alert("api"), alert("web", namespace="shop")
    silence = Silence("4a1c", "U0MARIA", "maria", "1h", T0, T0 + timedelta(hours=1))
    ended = [
        alert("api", status="resolved", ends_at=T0 + timedelta(hours=2)),
        alert("web", namespace="shop", status="resolved", ends_at=T0 + timedelta(hours=2)),
    ]
    applied = Applied(PLAN, "U0OWNER2", WRITE)
    not_ready = Readiness(NOT_READY, 3.0, message="bad pattern")
    return {
        "status overview": (
            status_render.overview_message(snaps, now=status_samples.NOW, share=None),
            "Policy status · 4 environments · 09:14 UTC",
            "dev fail 311 warn 40",
        ),
        "status environment": (
            status_render.environment_message(snaps[0], now=status_samples.NOW, share=None),
            "dev · 38 policies",
            "dev fail 311",
        ),
        "status policy": (
            status_render.policies_message((status_samples.require_labels(),), share=None),
            "require-labels",
            "next staging (Enforce) blocked",
        ),
        "promotion plan blocked": (
            promotion_render.plan_message(BLOCKED, second_person=True),
            "⛔",
            "blocked",
        ),
        "promotion plan ready": (
            promotion_render.plan_message(PLAN, second_person=False),
            "✅",
            "ready",
        ),
        "promotion applied": (
            promotion_render.applied_message(applied, Readiness(READY, 4.2), timeout_s=60),
            ":white_check_mark:",
            "Ready on",
        ),
        "promotion not ready": (
            promotion_render.applied_message(applied, not_ready, timeout_s=60),
            ":x:",
            "not Ready",
        ),
        "promotion timed out": (
            promotion_render.applied_message(
                applied, Readiness(TIMEOUT, 60.1, timeout_s=60), timeout_s=60
            ),
            ":hourglass:",
            "timed out",
        ),
        "backup summary": (
            backup_render.summary(_report(), by="<@U0ADMIN1>"),
            "⚠️ Backup b-20261128-020000 incomplete: staging failed",
            "incomplete: staging failed",
        ),
        "restore plan": (
            (
                backup_render.plan_title(_plan(True, ("created", "changed", "unchanged"))),
                backup_render.plan(_plan(True, ("created", "changed", "unchanged"))),
            ),
            "dry run: would create 1 · change 1",
            "dry run: would create 1 · change 1",
        ),
        "alert firing": (
            alert_parent(group_of([api, web]), T0 + timedelta(minutes=5)),
            "🔴 FIRING",
            "🔴 FIRING",
        ),
        "alert silenced": (
            alert_parent(group_of([api, web], silence=silence), T0 + timedelta(minutes=5)),
            "🔕 SILENCED until 09:51 UTC",
            "🔕 SILENCED",
        ),
        "alert ended, still failing": (
            alert_parent(
                group_of([api, web], ended, expired_failing=frozenset({api.fingerprint})),
                T0 + timedelta(hours=3),
            ),
            "⚠️ ENDED — still failing in the cluster",
            "ENDED — still failing",
        ),
        "alert resolved": (
            alert_parent(group_of([api, web], ended), T0 + timedelta(hours=3)),
            "✅ RESOLVED",
            "✅ RESOLVED",
        ),
    }


@pytest.mark.parametrize("name", list(messages()))
def test_first_line_carries_the_verdict_and_so_does_the_notification(name: str) -> None:
    (text, blocks), verdict, notified = messages()[name]
    assert not validate_blocks(blocks), validate_blocks(blocks)
    head = first_line(blocks)
    if verdict.startswith(":"):  # the outcome opens the first section under no header
        assert head.startswith(verdict), head
    else:
        assert verdict in head, head
    assert notified in text, text
    assert not text.startswith("/policy"), "a notification says more than the command typed"


def test_status_policy_view_opens_with_its_next_step() -> None:
    (_, blocks), _, _ = messages()["status policy"]
    assert second_line(blocks).startswith(":no_entry: *Next: staging (Enforce) — blocked:*")


def test_doctor_across_environments_opens_with_one_line_worst_first() -> None:
    from tests.unit.test_doctor_render import production

    healthy = replace(production(), environment="dev")
    text, blocks = doctor_render.reports_message(
        [report_of(replace(healthy, releases=())), report_of(production())]
    )
    line = second_line(blocks)
    assert line.startswith(":x: *production* 1 failing, 2 warnings")
    assert text.startswith("Kyverno health · 2 environments: ❌ production 1 failing")


def _buttons(blocks: Any) -> list[list[dict[str, Any]]]:
    found: list[list[dict[str, Any]]] = []
    if isinstance(blocks, dict):
        blocks = blocks.get("blocks", [])
    for block in blocks if isinstance(blocks, list) else []:
        if isinstance(block, dict) and block.get("type") == "actions":
            found.append([e for e in block["elements"] if e.get("type") == "button"])
        elif isinstance(block, dict) and "blocks" in block:
            found += _buttons(block["blocks"])
    return found


@pytest.mark.parametrize(
    "path", sorted(GOLDEN.rglob("*.json")), ids=lambda p: str(p.relative_to(GOLDEN))
)
def test_buttons_one_primary_per_set_and_red_only_when_asked(path: Path) -> None:
    for elements in _buttons(json.loads(path.read_text())):
        assert sum(1 for e in elements if e.get("style") == "primary") <= 1
        for element in elements:
            if element.get("style") == "danger":
                assert "confirm" in element, f"{element['action_id']} is red but asks nothing"


def test_a_whole_alert_thread() -> None:
    """Fired, more fired, silenced, partly resolved with one still failing, ended."""
    first = [alert("api"), alert("web", namespace="shop")]
    more = [alert("fraud"), alert("ledger")]
    silence = Silence(
        "4a1c", "U0MARIA", "maria", "1h", T0 + timedelta(minutes=29), T0 + timedelta(minutes=89)
    )
    end = T0 + timedelta(hours=1, minutes=11)
    ended = [
        alert(a.labels["resource_name"], namespace=a.labels["resource_namespace"],
              status="resolved", ends_at=end)
        for a in [*first, *more]
    ]  # fmt: skip
    still = frozenset({first[0].fingerprint})
    states = [
        parent_message(group_of(first), now=T0 + timedelta(minutes=2), links=LINKS),
        parent_message(group_of(first, more), now=T0 + timedelta(minutes=20), links=LINKS),
        parent_message(
            group_of(first, more, silence=silence), now=T0 + timedelta(minutes=30), links=LINKS
        ),
        parent_message(
            group_of(first, more, ended, silence=silence, expired_failing=still),
            now=end,
            links=LINKS,
        ),
    ]
    replies: list[RenderedMessage] = [
        *thread_replies(GroupChange(fired=tuple(more)), now=T0 + timedelta(minutes=20)),
        *thread_replies(GroupChange(silence=silence), now=T0 + timedelta(minutes=30)),
        *thread_replies(GroupChange(resolved=tuple(ended[1:]), still_failing=(ended[0],)), now=end),
    ]
    thread: list[dict[str, Any]] = [
        {"text": m.text, "blocks": m.blocks} for m in [states[-1], *replies]
    ]
    parent_states: list[dict[str, Any]] = [{"text": m.text, "blocks": m.blocks} for m in states]
    for message in [*thread, *parent_states]:
        assert not validate_blocks(message["blocks"]), validate_blocks(message["blocks"])
    for name, payload in (("thread", thread), ("thread_parent_states", parent_states)):
        path = GOLDEN / "alerts" / f"{name}.json"
        if os.environ.get("POLICY_BOT_UPDATE_GOLDEN") == "1":
            path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
        assert payload == json.loads(path.read_text())
    assert [first_line(s["blocks"]).split("  ")[0] for s in parent_states] == [
        "🔴 FIRING",
        "🔴 FIRING",
        "🔕 SILENCED until 10:20 UTC",
        "⚠️ ENDED — still failing in the cluster",
    ]
    assert [r["text"].split(" ")[0] for r in thread[1:]] == ["🔴", "🔕", "✅"]
    assert "⚠️ expired, still failing in the cluster: payments Deployment/api" in thread[-1]["text"]
    assert blocks_text(thread[0]["blocks"]).count("payments Deployment/api") == 1
