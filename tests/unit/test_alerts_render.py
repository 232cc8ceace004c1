"""Rendering of alert messages: golden JSON, Slack's Block Kit limits, escaping.

Set POLICY_BOT_UPDATE_GOLDEN=1 to rewrite the golden files after a deliberate change, then
review the diff like any other code change.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.alerts.state import GroupChange, Silence
from bot.alerts.webhook import Alert
from bot.playground.slack_emulator import validate_blocks
from handlers.render import kit
from handlers.render.alerts import (
    AlertLinks,
    AlertRenderer,
    alertmanager_url,
    full_list,
    parent_message,
    thread_replies,
    thread_reply,
)
from tests.alert_samples import alert, group_of, notification
from tests.goldens import Golden, golden_fixture

NOW = datetime(2026, 11, 28, 9, 14, tzinfo=UTC)
T0 = datetime(2026, 11, 28, 8, 51, tzinfo=UTC)
LINKS = AlertLinks(policy_reporter_url="https://reporter.example.invalid/#/?policies={policy}")
LATER = T0 + timedelta(minutes=39)
SILENCE = Silence(
    "4a1c", "U0MARIA", "maria", "1h", T0 + timedelta(minutes=29), T0 + timedelta(minutes=89)
)


golden = golden_fixture("alerts")


def sample_group(*names: str, **kwargs: Any) -> Any:
    return group_of(*[notification(n).alerts for n in names], **kwargs)


def test_parent_firing(golden: Golden) -> None:
    group = sample_group("webhook-firing.json")
    golden("parent_firing", parent_message(group, now=NOW.replace(hour=1, minute=33), links=LINKS))


def test_parent_partially_resolved_and_silenced(golden: Golden) -> None:
    group = sample_group(
        "webhook-firing.json",
        "webhook-partially-resolved.json",
        silence=Silence(
            "4a1c",
            "U0MARIA",
            "maria",
            "1h",
            datetime(2026, 11, 28, 1, 10, tzinfo=UTC),
            datetime(2026, 11, 28, 2, 10, tzinfo=UTC),
        ),
    )
    message = parent_message(group, now=datetime(2026, 11, 28, 1, 11, tzinfo=UTC), links=LINKS)
    golden("parent_partially_resolved", message)


def test_parent_resolved_shows_duration_and_who_silenced(golden: Golden) -> None:
    group = sample_group(
        "webhook-firing.json",
        "webhook-partially-resolved.json",
        "webhook-resolved.json",
        silence=Silence(
            "4a1c",
            "U0MARIA",
            "maria",
            "1h",
            datetime(2026, 11, 28, 1, 9, 50, tzinfo=UTC),
            datetime(2026, 11, 28, 2, 9, 50, tzinfo=UTC),
        ),
    )
    message = parent_message(group, now=datetime(2026, 11, 28, 3, 0, tzinfo=UTC), links=LINKS)
    golden("parent_resolved", message)
    assert message.text.startswith("✅ RESOLVED KyvernoPolicyViolation · require-labels")
    assert not any(
        e.get("action_id", "").startswith("alert_silence")
        for b in message.blocks
        if b["type"] == "actions"
        for e in b["elements"]
    )


def test_parent_resolved_with_alerts_still_failing(golden: Golden) -> None:
    api, web = alert("api"), alert("web", namespace="shop")
    ended = [
        alert("api", status="resolved", ends_at=T0 + timedelta(days=1)),
        alert("web", namespace="shop", status="resolved", ends_at=T0 + timedelta(days=1)),
    ]
    group = group_of([api, web], ended, expired_failing=frozenset({api.fingerprint}))
    golden("parent_expired", parent_message(group, now=NOW + timedelta(days=1), links=LINKS))


def test_large_group_lists_ten_then_counts_by_namespace(golden: Golden) -> None:
    alerts = [
        alert(f"app-{i:02d}", namespace=("payments", "team-a", "shop")[i % 3], kind="Deployment")
        for i in range(27)
    ]
    message = parent_message(group_of(alerts, truncated=3), now=NOW, links=AlertLinks())
    golden("parent_many", message)
    section = message.blocks[2]["text"]["text"]
    # The shared message once, ten resources, the count of the rest.
    assert section.count("\n") == 11
    assert section.startswith(
        "Each of these: _is missing label 'team'_\npayments Deployment/app-00\n"
    )
    assert section.endswith("… and 17 more (team-a 9 · shop 8), all in the thread")
    (listed,) = full_list(group_of(alerts))
    assert listed.text == "All 27 firing: 27 resources"
    text = "\n".join(b["text"]["text"] for b in listed.blocks)
    assert all(f"Deployment/app-{i:02d}" in text for i in range(27))
    assert not validate_blocks(listed.blocks)
    assert full_list(group_of(alerts[:10])) == []  # the parent shows them all


def test_hostile_labels_are_escaped_and_everything_fits_slack_limits() -> None:
    loud = "<!channel> *boom* " + "x" * 400
    alerts = [
        alert(
            f"{loud}-{i}",
            namespace="<@U0BOSS>",
            policy="p" * 300,
            message=loud * 20,
            severity="critical",
        )
        for i in range(12)
    ]
    message = parent_message(group_of(alerts, silence=SILENCE), now=NOW, links=LINKS)
    assert not validate_blocks(message.blocks)
    rendered = json.dumps(message.blocks)
    assert "<!channel>" not in rendered and "<@U0BOSS>" not in rendered
    assert "&lt;!channel&gt;" in rendered
    header = message.blocks[0]["text"]["text"]
    assert len(header) <= kit.MAX_HEADER_TEXT and header.endswith("…")
    for block in message.blocks:
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= kit.MAX_SECTION_TEXT


def test_buttons_carry_the_message_id_and_leave_room_for_more_actions() -> None:
    def request_exception(group: Any) -> list[dict[str, Any]]:
        return [
            kit.button(
                "Request exception", action_id="alert_request_exception", value=str(group.id)
            )
        ]

    renderer = AlertRenderer(links=LINKS, extra_actions=request_exception)
    message = renderer.parent(group_of([alert("api")], group_id=42), now=NOW)
    actions = next(b for b in message.blocks if b["type"] == "actions")
    ids = [e["action_id"] for e in actions["elements"]]
    assert ids == [
        "alert_silence:1h",
        "alert_silence:1d",
        "alert_request_exception",
    ]
    assert [e.get("value") for e in actions["elements"][:2]] == ["42:1h", "42:1d"]
    assert all("url" not in e for e in actions["elements"]), "buttons act; links are text"
    texts = [e["text"] for b in message.blocks if b["type"] == "context" for e in b["elements"]]
    assert any(
        "<https://reporter.example.invalid/#/?policies=require-labels|Policy Reporter>" in t
        for t in texts
    )
    assert not validate_blocks(message.blocks)


def test_alertmanager_link_filters_on_the_group() -> None:
    url = alertmanager_url("http://am:9093/", {"policy_name": 'a"b', "alertname": "X"})
    assert url == (
        "http://am:9093/#/alerts?filter=%7Balertname%3D%22X%22%2Cpolicy_name%3D%22a%5C%22b%22%7D"
    )
    assert alertmanager_url("http://am:9093", {}) == "http://am:9093/#/alerts"


def _ended(a: Alert) -> Alert:
    return a.model_copy(update={"status": "resolved", "ends_at": NOW})


def test_thread_reply_summarises_what_changed(golden: Golden) -> None:
    fired = tuple(alert(n, namespace="payments") for n in ("fraud", "ledger"))
    resolved = tuple(_ended(alert(n, namespace="shop")) for n in ("web", "cart", "api"))
    expired = (_ended(alert("ledger-old", namespace="payments")),)
    change = GroupChange(fired=fired, resolved=resolved, still_failing=expired, silence=SILENCE)
    message = thread_reply(change, now=NOW)
    golden("reply_mixed", message)
    assert message.text.splitlines()[:2] == [
        "🔴 +2 firing: payments Deployment/fraud, payments Deployment/ledger",
        "✅ 3 resolved: shop Deployment/api, shop Deployment/cart, shop Deployment/web",
    ]


def test_thread_replies_name_every_resource_of_a_long_list() -> None:
    fired = tuple(alert(f"app-{i:02d}") for i in range(45))
    first, rest = thread_replies(GroupChange(fired=fired), now=NOW)
    assert first.text.startswith("🔴 +45 firing: payments Deployment/app-00,")
    assert first.text.endswith("… and 25 more (all listed below)")
    assert rest.text == "+45 firing: 45 resources"
    listed = "\n".join(b["text"]["text"] for b in rest.blocks)
    assert all(f"Deployment/app-{i:02d}" in listed for i in range(45))
    assert not validate_blocks(first.blocks) and not validate_blocks(rest.blocks)


def test_a_thousand_resources_are_listed_over_as_many_replies_as_it_takes() -> None:
    fired = tuple(
        alert(f"app-{i:04d}", message="The label `team` is required. " * 6) for i in range(1000)
    )
    _, *pages = thread_replies(GroupChange(fired=fired), now=NOW)
    assert len(pages) > 1 and pages[0].blocks[0]["text"]["text"].endswith(f"of {len(pages)}):*")
    seen = "\n".join(b["text"]["text"] for page in pages for b in page.blocks)
    assert all(f"Deployment/app-{i:04d}" in seen for i in range(1000))
    assert all(not validate_blocks(page.blocks) for page in pages)


def test_silenced_parent_offers_unsilence(golden: Golden) -> None:
    group = group_of([alert("api"), alert("web", namespace="shop")], silence=SILENCE, group_id=42)
    message = parent_message(group, now=LATER, links=LINKS)
    golden("parent_silenced", message)
    assert message.text.startswith("🔕 SILENCED until 10:20 UTC")
    actions = next(b for b in message.blocks if b["type"] == "actions")
    ids = [e["action_id"] for e in actions["elements"]]
    assert ids == ["alert_unsilence"]
    assert actions["elements"][0]["value"] == "42"
    assert "style" not in actions["elements"][0], "no colour: unsilencing is no primary action"


def test_unsilenced_parent_shows_its_real_state_and_the_thread_says_who() -> None:
    lifted = SILENCE.lifted(user_id="U0LEE", user_name="lee", at=LATER)
    group = group_of([alert("api")], silence=lifted, group_id=42)
    message = parent_message(group, now=LATER, links=LINKS)
    assert message.text.startswith("🔴 FIRING")
    ids = [e["action_id"] for b in message.blocks if b["type"] == "actions" for e in b["elements"]]
    assert ids[:2] == ["alert_silence:1h", "alert_silence:1d"]
    assert "alert_unsilence" not in ids
    assert "🔕" not in json.dumps(message.blocks, ensure_ascii=False)
    [reply] = thread_replies(GroupChange(silence=lifted), now=LATER)
    assert reply.text == "🔔 Unsilenced by @lee"
    ended = group_of([alert("api")], [_ended(alert("api"))], silence=lifted, group_id=42)
    resolved = parent_message(ended, now=NOW + timedelta(hours=1), links=LINKS)
    assert "silenced by @maria for 1h at 09:20 UTC, unsilenced by @lee at 09:30 UTC" in str(
        resolved.blocks
    )


def test_a_lifted_silence_survives_the_store() -> None:
    from bot.alerts.tables import silence_from_json, silence_to_json

    lifted = SILENCE.lifted(user_id="U0LEE", user_name="lee", at=LATER)
    assert silence_from_json(silence_to_json(lifted)) == lifted
    assert silence_from_json(silence_to_json(SILENCE)) == SILENCE
    assert lifted.key != SILENCE.key, "lifting is news for the sender"
    assert SILENCE.active(LATER) and not lifted.active(LATER)
