"""Rendering of exceptions: golden JSON, Slack's Block Kit limits, escaping.

Set POLICY_BOT_UPDATE_GOLDEN=1 to rewrite the golden files after a deliberate change, then
review the diff like any other code change.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bot.errors import ClusterUnavailable
from bot.exceptions.acceptance import Acceptance
from bot.exceptions.model import (
    ExceptionRequest,
    RequestId,
    Review,
    ReviewItem,
    Scope,
    State,
)
from bot.exceptions.ports import Event
from bot.exceptions.register import ClusterException, EnvironmentRegister, Register
from bot.found_exceptions import FoundException
from handlers.render import exceptions as render
from tests.goldens import Golden, blocks_only, golden_fixture

NOW = datetime(2026, 11, 28, 9, 14, tzinfo=UTC)
JIRA = render.JiraView(project="SEC", url=lambda key: f"https://jira.example.invalid/browse/{key}")

PENDING = ExceptionRequest(
    id=RequestId("R-7f3a2c1d"),
    state=State.PENDING,
    environment="production",
    policy="require-labels",
    policy_kind="ClusterPolicy",
    scope=Scope(
        rules=("check-team",), namespaces=("payments",), kinds=("Deployment",), names=("ledger-*",)
    ),
    justification="Legacy ledger chart is being replaced in Q1; labels come with the new chart.",
    days=30,
    requester="U0SAM",
    created_at=NOW - timedelta(minutes=5),
    approval_channel="C0APPROVALS",
    approval_ts="1764321240.000100",
)
ACTIVE = replace(
    PENDING,
    state=State.ACTIVE,
    approver="U0LEE",
    decided_at=NOW,
    expires_at=NOW + timedelta(days=30),
    ticket="SEC-1423",
    exception_name="pe-require-labels-7f3a2c1d",
    exception_namespace="kyverno-exceptions",
    exception_group="kyverno.io",
)


golden = golden_fixture("exceptions", lone_blocks=blocks_only)


def test_request_pending(golden: Golden) -> None:
    golden("request_pending", render.request_message(PENDING, jira=JIRA))


def test_request_pending_after_a_failed_approval_keeps_its_buttons(golden: Golden) -> None:
    failed = replace(
        PENDING,
        error="JIRA is not reachable right now (HTTP 500). Nothing was changed; try again.",
    )
    message = render.request_message(failed, jira=JIRA)
    assert message.blocks[-1]["elements"][0]["action_id"] == "exception_approve"
    golden("request_pending_error", message)


def test_request_without_jira_says_it_cannot_be_approved(golden: Golden) -> None:
    golden("request_no_jira", render.request_message(PENDING, jira=None))


def test_request_approved(golden: Golden) -> None:
    message = render.request_message(ACTIVE, jira=JIRA)
    assert all(b["type"] != "actions" for b in message.blocks)
    golden("request_approved", message)


def test_request_denied_expired_revoked_failed(golden: Golden) -> None:
    denied = replace(
        PENDING, state=State.DENIED, approver="U0LEE", deny_reason="Fix the chart instead."
    )
    golden("request_denied", render.request_message(denied, jira=JIRA))
    expired = replace(
        ACTIVE, state=State.EXPIRED, ended_at=NOW + timedelta(days=30), ended_by="policy-bot"
    )
    golden("request_expired", render.request_message(expired, jira=JIRA))
    revoked = replace(ACTIVE, state=State.REVOKED, ended_at=NOW, ended_by="U0ANA")
    golden("request_revoked", render.request_message(revoked, jira=JIRA))
    failed = replace(
        PENDING,
        state=State.FAILED,
        approver="U0LEE",
        error="The JIRA issue SEC-9 given with the request does not exist.",
    )
    golden("request_failed", render.request_message(failed, jira=JIRA))


def test_free_text_cannot_ping_link_or_forge_markup() -> None:
    sneaky = replace(
        PENDING,
        justification="<!channel> see <https://evil.example|the doc> & *approve*",
        policy="team-a/x",
        scope=replace(PENDING.scope, names=("<@U0BOSS>",)),
    )
    message = render.request_message(sneaky, jira=JIRA)
    dumped = json.dumps(message.blocks)
    assert (
        "<!channel>" not in dumped and "<https://evil" not in dumped and "<@U0BOSS>" not in dumped
    )
    assert "&lt;!channel&gt; see &lt;https://evil.example|the doc&gt; &amp; *approve*" in dumped


def test_request_modal(golden: Golden) -> None:
    modal = render.request_modal(
        environments=["dev", "staging", "production"],
        policies=["disallow-latest-tag", "require-labels", "team-a/team-policy"],
        prefill=render.Prefill(policy="require-labels"),
        default_days=30,
        max_days=90,
        metadata=render.request_metadata(channel="C0PLATFORM"),
    )
    golden("request_modal", modal)


def test_request_modal_with_typed_policy_and_prefill(golden: Golden) -> None:
    modal = render.request_modal(
        environments=["dev"],
        policies=None,
        prefill=render.Prefill(
            environment="dev",
            policy="require-labels",
            rules="check-team",
            namespaces="payments",
            kinds="Deployment",
            names="api",
            justification="Still needed: the new chart ships in Q1.",
            jira_key="SEC-1423",
            days=120,
        ),
        default_days=30,
        max_days=90,
        metadata=render.request_metadata(channel=None, renewal_of=RequestId("R-7f3a2c1d")),
        note="Renewal of R-7f3a2c1d: a new request, decided like any other.",
    )
    assert modal["blocks"][3]["element"]["type"] == "plain_text_input"
    golden("request_modal_typed", modal)


def test_deny_modal(golden: Golden) -> None:
    golden("deny_modal", render.deny_modal(PENDING))


@pytest.mark.parametrize("event", list(Event))
def test_requester_notices(golden: Golden, event: Event) -> None:
    request = {
        Event.FILED: PENDING,
        Event.DENIED: replace(PENDING, state=State.DENIED, approver="U0LEE", deny_reason="Fix it."),
        Event.FAILED: replace(PENDING, state=State.FAILED, error="Name taken."),
        Event.EXPIRED: replace(ACTIVE, state=State.EXPIRED),
        Event.REVOKED: replace(ACTIVE, state=State.REVOKED, ended_by="U0ANA"),
        Event.KEPT: replace(ACTIVE, reviewed_by="U0ANA"),
    }.get(event, ACTIVE)
    notice = render.requester_notice(
        request, event, now=NOW + timedelta(days=23), jira=JIRA, approvals_channel="C0APPROVALS"
    )
    has_renew = any(b["type"] == "actions" for b in notice.blocks)
    assert has_renew == (event in (Event.EXPIRED, Event.REMINDER))
    golden(f"notice_{event.value}", notice)


def test_review(golden: Golden) -> None:
    items = (
        ReviewItem(request=ACTIVE, ticket_status="In Progress"),
        ReviewItem(
            request=replace(ACTIVE, id=RequestId("R-00000002"), ticket=None, jira_key="OPS-7"),
            ticket_status="Done",
            decision="kept",
            decided_by="U0ANA",
        ),
        ReviewItem(request=replace(ACTIVE, id=RequestId("R-00000003"), state=State.EXPIRED)),
    )
    review = Review(id=4, created_at=NOW + timedelta(days=34), items=items)
    golden("review", render.review_message(review, now=NOW + timedelta(days=34), jira=JIRA))
    empty = Review(id=5, created_at=NOW, items=())
    golden("review_empty", render.review_message(empty, now=NOW, jira=JIRA))


def test_register(golden: Golden) -> None:
    unmanaged = ClusterException(
        FoundException(
            "hand-made", "kyverno-exceptions", "policies.kyverno.io", ("vpol",), False, None, None
        ),
        None,
    )
    orphan = ClusterException(
        FoundException(
            "pe-old-1", "kyverno-exceptions", "kyverno.io", ("old",), True, NOW, "SEC-1"
        ),
        "R-0000dead",
    )
    register = Register(
        namespace="kyverno-exceptions",
        environments=(
            EnvironmentRegister(
                "production",
                active=(ACTIVE,),
                unmanaged=(unmanaged,),
                orphaned=(orphan,),
                acceptance=Acceptance(
                    known=True,
                    enabled=True,
                    namespace="kyverno-exceptions",
                    source="Deployment kyverno/kyverno-admission-controller",
                ),
            ),
            EnvironmentRegister(
                "staging",
                error=ClusterUnavailable("staging", "connection refused"),
            ),
            EnvironmentRegister(
                "dev",
                acceptance=Acceptance(known=False, reason="no Kyverno admission controller"),
            ),
        ),
    )
    golden("register", render.register_blocks(register, now=NOW, jira=JIRA))


@pytest.mark.parametrize(
    ("acceptance", "expected"),
    [
        (Acceptance(known=True, enabled=True, namespace="*"), "✅ Kyverno accepts"),
        (
            Acceptance(known=True, enabled=True, namespace="kyverno"),
            ":warning: Kyverno accepts PolicyExceptions only from `kyverno`, but policy-bot "
            "writes them to `kyverno-exceptions`: they would be ignored.",
        ),
        (Acceptance(known=True, enabled=False), ":warning: PolicyExceptions are disabled"),
        (Acceptance(known=False, reason="forbidden"), ":grey_question: Could not determine"),
    ],
)
def test_acceptance_line(acceptance: Acceptance, expected: str) -> None:
    assert expected in render.acceptance_line(acceptance, "kyverno-exceptions")


def test_alert_button_carries_the_message_id_only() -> None:
    class Group:
        id = 42

    (button,) = render.alert_buttons(Group())  # type: ignore[arg-type]
    assert button["action_id"] == "alert_request_exception" and button["value"] == "42"
