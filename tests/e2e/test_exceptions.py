"""PolicyExceptions by approval, end to end: signed Slack requests in, the Slack and JIRA
emulators and a real kube-apiserver (with Kyverno's CRDs) behind.

One control plane for the module, seeded with a ClusterPolicy, a namespaced Policy, a
ValidatingPolicy, a PolicyException nobody asked the bot for and a Kyverno admission
controller Deployment whose flags say where exceptions are accepted. Each test runs its own
bot, store and emulators; object names carry random request ids, so tests do not collide.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from bot.exceptions.model import State
from bot.playground import seed
from bot.playground.control_plane import ControlPlane
from bot.playground.jira_emulator import PAT, JiraEmulator
from bot.playground.slack_emulator import SlackEmulator
from bot.settings import Settings, parse_settings
from tests.emulators.fixtures import APP_TOKEN, BOT_TOKEN, SIGNING_SECRET
from tests.harness import RunningBot, SlowProxy, running_bot
from tests.kube.fixtures import ControlPlaneFactory
from tests.timeline import MovableClock, suite_start

pytestmark = pytest.mark.kube

REQUESTER = "U0ENGINEER"
APPROVER = "U0APPROVER1"
APPROVER2 = "U0APPROVER2"
OUTSIDER = "U0OUTSIDER"
CHANNEL = "C0PLATFORM"
APPROVALS = "C0APPROVALS"
EXCEPTIONS_NS = "kyverno-exceptions"
START = suite_start()
EXPIRES = START + timedelta(days=30)  # of a request for the default 30 days, approved at START
RID = re.compile(r"R-[0-9a-f]{8}")
WAIT = 20.0


def _admission_controller(namespace: str) -> dict[str, Any]:
    """The Kyverno admission controller as the chart deploys it (no controllers run here)."""
    deployment = seed.deployment("kyverno-admission-controller", "kyverno")
    deployment["metadata"]["labels"] = {
        "app.kubernetes.io/component": "admission-controller",
        "app.kubernetes.io/part-of": "kyverno",
    }
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["name"] = "kyverno"
    container["image"] = "reg.kyverno.io/kyverno/kyverno:v1.19.0"
    container["args"] = [
        "--loggingFormat=text",
        "--enablePolicyException=true",
        f"--exceptionNamespace={namespace}",
    ]
    return deployment


@pytest.fixture(scope="module")
def plane(kube_assets: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    factory = ControlPlaneFactory(kube_assets, tmp_path_factory.mktemp("exception-planes"))
    try:
        (dev,) = factory.start(1)
        with dev.api_client() as api:
            seed.apply_objects(
                api,
                [
                    *(
                        seed.namespace(n)
                        for n in (EXCEPTIONS_NS, "kyverno", "payments", "team-a", "other")
                    ),
                    seed.legacy_cluster_policy("require-labels", action="Enforce"),
                    seed.legacy_cluster_policy(
                        "disallow-latest-tag",
                        rules=[
                            seed.require_label_rule("require-image-tag"),
                            seed.require_label_rule("validate-image-tag"),
                        ],
                    ),
                    seed.namespaced_policy("team-policy", "team-a"),
                    seed.validating_policy("vpol-deny", actions=("Deny",)),
                    # One name, two kinds: the normal state of a cluster migrating to CEL.
                    seed.legacy_cluster_policy("twin-policy"),
                    seed.validating_policy("twin-policy"),
                    seed.cel_policy_exception("hand-made", EXCEPTIONS_NS, policies=["vpol-deny"]),
                    _admission_controller(EXCEPTIONS_NS),
                ],
            )
        yield dev
    finally:
        factory.stop_all()


@pytest_asyncio.fixture
async def jira() -> AsyncIterator[JiraEmulator]:
    async with JiraEmulator(mode="server", projects=("SEC",)) as emulator:
        yield emulator


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock(START)


def settings_for(
    emulator: SlackEmulator,
    plane: ControlPlane,
    store: Path,
    *,
    jira: JiraEmulator | None,
    exceptions: dict[str, Any] | None = None,
    roles: dict[str, Any] | None = None,
) -> Settings:
    document: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": 3000, "shutdown_timeout_s": 5},
        "store": {"url": f"sqlite:///{store}"},
        "slack": {
            "mode": "http",
            "channels": {"alerts": "C0ALERTS", "approvals": APPROVALS, "reports": "C0REPORTS"},
            "roles": roles or {"approvers": {"users": [APPROVER, APPROVER2]}},
        },
        "environments": [{"name": "dev", "kubeconfig": str(plane.kubeconfig), "timeout_s": 5}],
        "exceptions": {
            "namespace": EXCEPTIONS_NS,
            "default_days": 30,
            "max_days": 90,
            "remind_days_before": [7, 1],
            **(exceptions or {}),
        },
    }
    env = {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_APP_TOKEN": APP_TOKEN,
        "SLACK_API_URL": emulator.base_url,
    }
    if jira is not None:
        document["jira"] = {"url": jira.url, "project": "SEC", "timeout_s": 3}
        env["JIRA_TOKEN"] = PAT
    return parse_settings(document, env)


@dataclass
class World:
    bot: RunningBot
    slack: SlackEmulator
    jira: JiraEmulator
    plane: ControlPlane
    clock: MovableClock
    store: Path


def _people(emulator: SlackEmulator) -> None:
    emulator.add_channel(CHANNEL, "platform")
    emulator.add_channel(APPROVALS, "security-approvals")
    for user, name in (
        (REQUESTER, "sam"),
        (APPROVER, "lee"),
        (APPROVER2, "ana"),
        (OUTSIDER, "max"),
    ):
        emulator.add_user(user, name)


@pytest_asyncio.fixture
async def world(
    plane: ControlPlane,
    slack_emulator: SlackEmulator,
    jira: JiraEmulator,
    clock: MovableClock,
    tmp_path: Path,
) -> AsyncIterator[World]:
    _people(slack_emulator)
    store = tmp_path / "state.db"
    settings = settings_for(slack_emulator, plane, store, jira=jira)
    async with running_bot(settings, slack_emulator, clock=clock) as bot:
        yield World(bot, slack_emulator, jira, plane, clock, store)


@pytest.fixture
def w(world: World) -> World:
    return world


# -- plumbing ---------------------------------------------------------------------------------

GOOD = {
    "environment": "dev",
    "policy": "require-labels",
    "rules": "check-for-labels",
    "namespaces": "payments",
    "kinds": "Deployment",
    "names": "ledger-*",
    "justification": "Legacy ledger chart is being replaced in Q1; labels come with it.",
    "jira_key": "",
    "days": "30",
}


def modal_values(values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {block: {block: value} for block, value in values.items()}


async def open_form(w: World, user: str = REQUESTER, text: str = "exception") -> Any:
    before = len(w.slack.views)
    answer = await w.bot.slack.command("/policy", text, user=user, channel=CHANNEL)
    assert answer.status == 200 and answer.text == "", answer.text
    assert answer.elapsed < 3.0
    await w.slack.wait_until(lambda: len(w.slack.views) > before, timeout=WAIT)
    return w.slack.views[-1]


async def submit(w: World, view: Any, user: str = REQUESTER, **changes: str) -> Any:
    values = {**GOOD, **changes}
    (policy,) = [b["element"] for b in view.blocks if b.get("block_id") == "policy"]
    if policy["type"] == "static_select" and values["policy"] not in {
        o["value"] for o in policy["options"]
    }:
        values.pop("policy")
    answer = await w.bot.slack.view_submission(view.id, modal_values(values), user=user)
    assert answer.status == 200
    assert answer.elapsed < 3.0, f"the submission took {answer.elapsed:.2f} s to acknowledge"
    return answer


async def file_request(w: World, user: str = REQUESTER, **changes: str) -> tuple[str, str]:
    """Open the form, submit it, and return (request id, approval message ts)."""
    before = len(w.slack.parents(APPROVALS))
    view = await open_form(w, user)
    answer = await submit(w, view, user, **changes)
    assert answer.text == "", answer.text
    print(
        f"\nsubmission acknowledged in {answer.elapsed * 1000:.0f} ms (live policy check included)"
    )
    await w.slack.wait_until(lambda: len(w.slack.parents(APPROVALS)) > before, timeout=WAIT)
    message = w.slack.parents(APPROVALS)[-1]
    found = RID.search(message.text)
    assert found, message.text
    return found.group(0), message.ts


def message_text(message: Any) -> str:
    return "\n".join(_texts(message.blocks)) + "\n" + message.text


def _texts(blocks: list[dict[str, Any]]) -> Iterator[str]:
    for block in blocks:
        text = block.get("text")
        if isinstance(text, dict):
            yield text.get("text", "")
        for item in block.get("fields", []) + block.get("elements", []):
            if isinstance(item.get("text"), str):
                yield item["text"]
            elif isinstance(item.get("text"), dict):
                yield item["text"].get("text", "")


async def eventually(condition: Callable[[], Any], *, timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def eventually_async(
    condition: Callable[[], Awaitable[bool]], *, timeout: float = WAIT
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if await condition():
            return
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def click(w: World, action: str, user: str, ts: str, channel: str = APPROVALS) -> Any:
    answer = await w.bot.slack.block_action(action, user=user, channel=channel, message_ts=ts)
    assert answer.status == 200 and answer.elapsed < 3.0
    return answer


def ephemeral_texts(w: World, user: str) -> list[str]:
    return [e.text for e in w.slack.ephemeral(user=user)]


def dms(w: World, user: str) -> list[str]:
    return [m.text for m in w.slack.messages("D" + user[1:])]


def policy_exceptions(plane: ControlPlane, group: str = "kyverno.io") -> list[dict[str, Any]]:
    from kubernetes import client

    version = "v2" if group == "kyverno.io" else "v1"
    with plane.api_client() as api:
        listing = client.CustomObjectsApi(api).list_namespaced_custom_object(
            group, version, EXCEPTIONS_NS, "policyexceptions"
        )
    return list(listing["items"])  # type: ignore[index]


def ours(plane: ControlPlane, rid: str, group: str = "kyverno.io") -> list[dict[str, Any]]:
    return [
        o
        for o in policy_exceptions(plane, group)
        if o["metadata"].get("labels", {}).get("policy-bot.io/request-id") == rid
    ]


async def request_state(w: World, rid: str) -> State:
    from bot.exceptions.store import RequestStore

    found = await RequestStore(w.bot.services.database).get(rid)  # type: ignore[arg-type]
    assert found is not None
    return found.state


async def audit_actions(w: World) -> list[tuple[str, str, str, str | None]]:
    return [(e.actor, e.action, e.outcome, e.target) for e in await w.bot.services.audit.entries()]


# -- request → approve ---------------------------------------------------------------------------


async def test_request_approve_creates_one_ticket_and_one_accepted_exception(w: World) -> None:
    rid, ts = await file_request(w)
    pending = w.slack.message(APPROVALS, ts)
    assert pending is not None
    text = message_text(pending)
    assert f"Exception request {rid} · pending" in text
    assert "*require-labels* (ClusterPolicy) / check-for-labels · *dev*" in text
    assert "will be created in SEC" in text
    assert [e["action_id"] for e in pending.blocks[-1]["elements"]] == [
        "exception_approve",
        "exception_deny",
    ]
    assert pending.blocks[-1]["elements"][0]["value"] == rid
    await eventually(lambda: any(rid in t for t in dms(w, REQUESTER)))

    started = time.monotonic()
    clicked = await click(w, "exception_approve", APPROVER, ts)
    approved = await eventually(
        lambda: (m := w.slack.message(APPROVALS, ts)) and "Approved by" in message_text(m) and m
    )
    print(
        f"\napprove click acknowledged in {clicked.elapsed * 1000:.0f} ms; "
        f"ticket + PolicyException + message update after {time.monotonic() - started:.2f} s"
    )
    text = message_text(approved)
    assert "exception_approve" not in str(approved.blocks)
    assert "✅ Approved by <@U0APPROVER1>" in text and "SEC-1" in text
    assert (
        f"pe-require-labels-{rid[2:]}" in text and f"expires {EXPIRES:%Y-%m-%d %H:%M} UTC" in text
    )

    # exactly one ticket, found by its fingerprint label, commented on
    assert len(w.jira.creates()) == 1
    (issue,) = w.jira.with_label(f"policy-bot-{rid}")
    assert issue.key == "SEC-1" and issue.fields["duedate"] == EXPIRES.date().isoformat()
    assert "{noformat}\nLegacy ledger chart" in issue.fields["description"]
    await eventually(lambda: issue.comments)
    assert "Approved in Slack by U0APPROVER1" in issue.comments[0].body

    # exactly one PolicyException, stored by the real API server under its CRD schema
    (obj,) = ours(w.plane, rid)
    meta = obj["metadata"]
    assert meta["name"] == f"pe-require-labels-{rid[2:]}"
    assert meta["labels"] == {
        "app.kubernetes.io/managed-by": "policy-bot",
        "policy-bot.io/request-id": rid,
        "cleanup.kyverno.io/ttl": f"{EXPIRES:%Y-%m-%dT%H%M%SZ}",
    }
    assert meta["annotations"] == {
        "policy-bot.io/jira": "SEC-1",
        "policy-bot.io/requested-by": REQUESTER,
        "policy-bot.io/approved-by": APPROVER,
        "policy-bot.io/expires-at": f"{EXPIRES:%Y-%m-%dT%H:%M:%SZ}",
    }
    assert obj["spec"]["exceptions"] == [
        {
            "policyName": "require-labels",
            "ruleNames": ["check-for-labels", "autogen-check-for-labels"],
        }
    ]
    assert obj["spec"]["match"] == {
        "any": [
            {
                "resources": {
                    "kinds": ["Deployment"],
                    "namespaces": ["payments"],
                    "names": ["ledger-*"],
                }
            }
        ]
    }
    assert await request_state(w, rid) is State.ACTIVE
    await eventually(lambda: any("was approved by <@U0APPROVER1>" in t for t in dms(w, REQUESTER)))
    actions = await audit_actions(w)
    assert (REQUESTER, "exception.request", "ok", rid) in actions
    assert (APPROVER, "exception.approve", "ok", rid) in actions
    assert (await w.bot.services.audit.verify()).ok


async def test_cel_policy_gets_a_policies_kyverno_io_exception_with_expires_at(w: World) -> None:
    rid, ts = await file_request(
        w, policy="vpol-deny", rules="", namespaces="payments, team-*", names="api-?.v1"
    )
    await click(w, "exception_approve", APPROVER2, ts)
    await eventually(lambda: ours(w.plane, rid, "policies.kyverno.io"))
    (obj,) = ours(w.plane, rid, "policies.kyverno.io")
    assert obj["apiVersion"].startswith("policies.kyverno.io/")
    spec = obj["spec"]
    assert spec["policyRefs"] == [{"name": "vpol-deny", "kind": "ValidatingPolicy"}]
    assert spec["expiresAt"] == f"{EXPIRES:%Y-%m-%dT%H:%M:%SZ}"
    assert spec["properties"] == {
        "request-id": rid,
        "ticket": "SEC-1",
        "requested-by": REQUESTER,
        "approved-by": APPROVER2,
    }
    conditions = {c["name"]: c["expression"] for c in spec["matchConditions"]}
    assert conditions == {
        "policy-bot-kinds": "object != null && (object.kind == 'Deployment')",
        "policy-bot-namespaces": (
            "object != null && has(object.metadata.namespace) && "
            "(object.metadata.namespace == 'payments' || "
            "object.metadata.namespace.matches('^team-.*$'))"
        ),
        "policy-bot-names": ("object != null && (object.metadata.name.matches('^api-.\\\\.v1$'))"),
    }
    assert obj["metadata"]["labels"]["cleanup.kyverno.io/ttl"] == f"{EXPIRES:%Y-%m-%dT%H%M%SZ}"
    assert ours(w.plane, rid) == []  # nothing in the kyverno.io API


async def test_deny_asks_for_a_reason_and_tells_everyone(w: World) -> None:
    w.jira.add_issue("SEC-77", summary="existing ticket")
    rid, ts = await file_request(w, jira_key="sec-77")
    stale, _ = w.bot.slack.block_actions_payload(
        "exception_approve", user=APPROVER2, channel=APPROVALS, message_ts=ts
    )
    before = len(w.slack.views)
    await click(w, "exception_deny", APPROVER, ts)
    await w.slack.wait_until(lambda: len(w.slack.views) > before, timeout=WAIT)
    form = w.slack.views[-1]
    assert form.callback_id == "exception_deny_reason" and form.private_metadata == rid
    short = await w.bot.slack.view_submission(form.id, {"reason": {"reason": "no"}}, user=APPROVER)
    assert short.json() == {
        "response_action": "errors",
        "errors": {"reason": "Give the requester a reason (3 to 1000 characters)."},
    }
    reason = "Fix the chart instead, it is two lines. <!channel>"
    done = await w.bot.slack.view_submission(form.id, {"reason": {"reason": reason}}, user=APPROVER)
    assert done.text == ""
    denied = await eventually(
        lambda: (m := w.slack.message(APPROVALS, ts)) and "Denied by" in message_text(m) and m
    )
    text = message_text(denied)
    assert (
        "⛔ Denied by <@U0APPROVER1>: “Fix the chart instead, it is two lines. &lt;!channel&gt;”"
        in text
    )
    assert "exception_approve" not in str(denied.blocks)
    await eventually(lambda: any("was denied by <@U0APPROVER1>" in t for t in dms(w, REQUESTER)))
    issue = w.jira.issues["SEC-77"]
    await eventually(lambda: issue.comments)
    assert "was denied in Slack by U0APPROVER1" in issue.comments[0].body
    assert "{noformat}\nFix the chart instead" in issue.comments[0].body
    assert w.jira.creates() == [] and ours(w.plane, rid) == []
    assert await request_state(w, rid) is State.DENIED
    # A stale click on the old message (another approver had it open) changes nothing.
    await w.bot.slack.post_payload(stale)
    await eventually(lambda: ephemeral_texts(w, APPROVER2))
    assert ephemeral_texts(w, APPROVER2) == [f"Request {rid} was already denied by <@U0APPROVER1>."]
    assert w.jira.creates() == [] and ours(w.plane, rid) == []
    assert (APPROVER, "exception.deny", "ok", rid) in await audit_actions(w)


async def test_a_refusal_slack_rate_limits_still_reaches_the_person(w: World) -> None:
    """chat.postEphemeral is Tier 4, counted for the whole app: a refusal Slack answered 429
    used to be dropped (logged only), and the person who clicked was told nothing."""
    rid, ts = await file_request(w, user=APPROVER)
    w.slack.fail_next("chat.postEphemeral", "ratelimited", status=429, retry_after=1)
    await click(w, "exception_approve", APPROVER, ts)
    await eventually(lambda: ephemeral_texts(w, APPROVER), timeout=30)
    assert ephemeral_texts(w, APPROVER) == [
        "You requested this exception, so someone else must approve it."
    ]
    tries = w.slack.calls("chat.postEphemeral")
    assert [c.status for c in tries] == [429, 200] and tries[1].at - tries[0].at >= 1.0
    assert await request_state(w, rid) is State.PENDING


async def test_an_approver_by_user_group_is_not_refused_when_slack_rate_limits_the_lookup(
    plane: ControlPlane,
    slack_emulator: SlackEmulator,
    jira: JiraEmulator,
    clock: MovableClock,
    tmp_path: Path,
) -> None:
    """usergroups.users.list is Tier 2 (about 20 a minute for the whole app, replicas
    included): a process's first lookup of the approvers' group answered 429 used to count as
    an empty group, and a member of it was refused as no approver."""
    _people(slack_emulator)
    slack_emulator.add_usergroup("S0SECURITY", "security", [APPROVER2])
    store = tmp_path / "state.db"
    roles = {"approvers": {"users": [APPROVER], "usergroups": ["S0SECURITY"]}}
    settings = settings_for(slack_emulator, plane, store, jira=jira, roles=roles)
    async with running_bot(settings, slack_emulator, clock=clock) as bot:
        rid, ts = await file_request(World(bot, slack_emulator, jira, plane, clock, store))
    # A restarted process (or a replica) knows no member yet: the click asks Slack first.
    async with running_bot(settings, slack_emulator, clock=clock) as bot:
        w = World(bot, slack_emulator, jira, plane, clock, store)
        asked = len(slack_emulator.calls("usergroups.users.list"))
        slack_emulator.fail_next("usergroups.users.list", "ratelimited", status=429)
        await click(w, "exception_approve", APPROVER2, ts)

        async def approved() -> bool:
            return await request_state(w, rid) is State.ACTIVE

        await eventually_async(approved)
        assert not any("Only approvers" in t for t in ephemeral_texts(w, APPROVER2))
        lookups = slack_emulator.calls("usergroups.users.list")[asked:]
        assert [c.status for c in lookups][:2] == [429, 200]
        assert lookups[1].at - lookups[0].at >= 1.0  # after Retry-After


async def test_self_approval_and_non_approvers_are_refused_and_audited(w: World) -> None:
    rid, ts = await file_request(w, user=APPROVER)
    # One click after the other, each answered before the next, as people click: the
    # answers of clicks in flight together may arrive in either order.
    for action, user, answered in (
        ("exception_approve", APPROVER, 1),
        ("exception_approve", OUTSIDER, 1),
        ("exception_deny", OUTSIDER, 2),
        ("exception_deny", APPROVER, 2),
    ):
        await click(w, action, user, ts)
        await eventually(lambda u=user, n=answered: len(ephemeral_texts(w, u)) >= n)  # type: ignore[misc]
    assert ephemeral_texts(w, APPROVER) == [
        "You requested this exception, so someone else must approve it.",
        "You requested this exception, so someone else must decide on it.",
    ]
    only = "Only approvers (<@U0APPROVER1>, <@U0APPROVER2>) can"
    assert ephemeral_texts(w, OUTSIDER) == [
        f"{only} approve exceptions.",
        f"{only} deny exceptions.",
    ]
    assert await request_state(w, rid) is State.PENDING
    assert w.jira.creates() == [] and ours(w.plane, rid) == []
    message = w.slack.message(APPROVALS, ts)
    assert message is not None and message.edits == 0
    actions = await audit_actions(w)
    assert (APPROVER, "exception.approve", "refused", rid) in actions
    assert (OUTSIDER, "exception.approve", "refused", rid) in actions
    assert (OUTSIDER, "exception.deny", "refused", rid) in actions
    assert (APPROVER, "exception.deny", "refused", rid) in actions


async def test_two_approvers_at_once_and_a_double_click_make_one_of_everything(w: World) -> None:
    rid, ts = await file_request(w)
    w.jira.slow(0.5, path=r"/issue$", times=None)  # widen the race window
    await asyncio.gather(
        click(w, "exception_approve", APPROVER, ts),
        click(w, "exception_approve", APPROVER, ts),
        click(w, "exception_approve", APPROVER2, ts),
        click(w, "exception_approve", APPROVER2, ts),
    )
    await eventually(lambda: ours(w.plane, rid))
    await eventually(lambda: len(w.slack.ephemeral()) >= 3)
    await eventually(lambda: "Approved by" in message_text(w.slack.message(APPROVALS, ts)))
    await asyncio.sleep(1.0)  # anything still in flight would land now
    assert len(w.jira.creates()) == 1
    assert len(ours(w.plane, rid)) == 1
    message = w.slack.message(APPROVALS, ts)
    assert message is not None
    finals = [
        v for v in message.history if "Approved by" in v.text or "Approved by" in str(v.blocks)
    ]
    assert len(finals) == 1 and message.edits == 1
    refusals = [e.text for e in w.slack.ephemeral()]
    who = "<@U0APPROVER[12]>"
    assert len(refusals) == 3
    assert all(
        re.fullmatch(
            rf"Request {rid} (is being approved by {who} right now|"
            rf"was already approved by {who})\.",
            t,
        )
        for t in refusals
    ), refusals
    assert len([a for a in await audit_actions(w) if a[1:3] == ("exception.approve", "ok")]) == 1


async def test_jira_down_leaves_the_request_pending_and_a_retry_succeeds(w: World) -> None:
    rid, ts = await file_request(w)
    w.jira.fail(500, path=r"/rest/api/2/(search|issue)", times=None)
    await click(w, "exception_approve", APPROVER, ts)
    failed = await eventually(
        lambda: (
            (m := w.slack.message(APPROVALS, ts))
            and "Last approval attempt failed" in message_text(m)
            and m
        )
    )
    text = message_text(failed)
    assert "JIRA is not reachable right now (HTTP 500)" in text
    assert [e["action_id"] for e in failed.blocks[-1]["elements"]] == [
        "exception_approve",
        "exception_deny",
    ]
    await eventually(lambda: ephemeral_texts(w, APPROVER))
    assert ephemeral_texts(w, APPROVER) == [
        "JIRA is not reachable right now (HTTP 500). Nothing was changed; try again in a minute. "
        "The request is still pending: click Approve to try again."
    ]
    assert await request_state(w, rid) is State.PENDING
    assert ours(w.plane, rid) == [] and w.jira.issues == {}

    # JIRA times out after creating the issue: no exception, and the retry finds that issue.
    w.jira.clear()
    w.jira.fail(None, path=r"/issue$", method="POST", times=1, delay_s=5, after=True)
    await click(w, "exception_approve", APPROVER, ts)
    await eventually(lambda: len(ephemeral_texts(w, APPROVER)) >= 2, timeout=30)
    assert "JIRA is not reachable right now (timed out)" in ephemeral_texts(w, APPROVER)[1]
    assert ours(w.plane, rid) == [] and len(w.jira.issues) == 1
    assert await request_state(w, rid) is State.PENDING

    await click(w, "exception_approve", APPROVER, ts)
    await eventually(lambda: "Approved by" in message_text(w.slack.message(APPROVALS, ts)))
    # One POST /issue in all (the lost answer); the retry found that issue by its label.
    assert len(w.jira.calls("POST", r"/issue$")) == 1 and len(w.jira.issues) == 1
    assert len(w.jira.with_label(f"policy-bot-{rid}")) == 1
    assert len(ours(w.plane, rid)) == 1
    outcomes = [a[2] for a in await audit_actions(w) if a[1] == "exception.approve"]
    assert outcomes == ["error", "error", "ok"]


async def test_a_ticket_jira_has_not_listed_yet_is_not_filed_twice(w: World) -> None:
    """JIRA Cloud's search is eventually consistent: after a create whose answer was lost,
    the ticket exists but the label search does not find it yet. Approve again must wait for
    it, not file a second ticket."""
    rid, ts = await file_request(w)
    w.jira.search_lags = True
    w.jira.fail(None, path=r"/issue$", method="POST", times=1, delay_s=5, after=True)
    await click(w, "exception_approve", APPROVER, ts)
    await eventually(lambda: ephemeral_texts(w, APPROVER), timeout=30)
    assert "it may have made the change all the same" in ephemeral_texts(w, APPROVER)[0]
    assert len(w.jira.issues) == 1 and ours(w.plane, rid) == []

    await click(w, "exception_approve", APPROVER, ts)
    await eventually(lambda: len(ephemeral_texts(w, APPROVER)) >= 2, timeout=30)
    assert (
        "JIRA has not yet listed the ticket the bot may have filed"
        in (ephemeral_texts(w, APPROVER)[1])
    )
    assert len(w.jira.calls("POST", r"/issue$")) == 1 and ours(w.plane, rid) == []
    assert await request_state(w, rid) is State.PENDING

    w.jira.index()  # the search catches up
    await click(w, "exception_approve", APPROVER, ts)
    await eventually(lambda: "Approved by" in message_text(w.slack.message(APPROVALS, ts)))
    assert len(w.jira.calls("POST", r"/issue$")) == 1 and len(w.jira.issues) == 1
    assert len(ours(w.plane, rid)) == 1


async def test_a_restart_between_request_and_approval_loses_nothing(
    plane: ControlPlane,
    slack_emulator: SlackEmulator,
    jira: JiraEmulator,
    clock: MovableClock,
    tmp_path: Path,
) -> None:
    _people(slack_emulator)
    store = tmp_path / "state.db"
    settings = settings_for(slack_emulator, plane, store, jira=jira)
    async with running_bot(settings, slack_emulator, clock=clock) as first:
        w = World(first, slack_emulator, jira, plane, clock, store)
        rid, ts = await file_request(w)
    async with running_bot(settings, slack_emulator, clock=clock) as second:
        w = World(second, slack_emulator, jira, plane, clock, store)
        await click(w, "exception_approve", APPROVER, ts)
        await eventually(
            lambda: "Approved by" in message_text(slack_emulator.message(APPROVALS, ts))
        )
        assert len(ours(plane, rid)) == 1 and len(jira.creates()) == 1
        assert await request_state(w, rid) is State.ACTIVE
        assert (await second.services.audit.verify()).ok


async def test_reminder_renewal_and_expiry_sweep(w: World) -> None:
    rid, ts = await file_request(w, days="2")
    await click(w, "exception_approve", APPROVER, ts)
    # Active as people see it (the approval message says so): the PolicyException exists a
    # moment before the request is marked active, and reminders only consider active ones.
    await eventually(lambda: "Approved by" in message_text(w.slack.message(APPROVALS, ts)))
    assert ours(w.plane, rid)
    scheduler = w.bot.services.scheduler

    # 1 day 12 h left: the 7-day reminder, once.
    w.clock.advance(timedelta(hours=12))
    assert await scheduler.fire("exceptions.reminders")
    reminder = await eventually(
        lambda: [m for m in w.slack.messages("D" + REQUESTER[1:]) if "expires in 1 day" in m.text]
    )
    w.clock.advance(timedelta(minutes=10))
    assert await scheduler.fire("exceptions.reminders")
    # 20 h left: the 1-day reminder.
    w.clock.advance(timedelta(hours=15, minutes=50))
    assert await scheduler.fire("exceptions.reminders")
    await eventually(
        lambda: len([m for m in w.slack.messages("D" + REQUESTER[1:]) if "⏰" in m.text]) == 2
    )
    assert len([m for m in w.slack.messages("D" + REQUESTER[1:]) if "⏰" in m.text]) == 2

    # Renew opens the form prefilled; submitting it files a new request.
    before = len(w.slack.views)
    dm = "D" + REQUESTER[1:]
    await click(w, "exception_renew", REQUESTER, reminder[0].ts, channel=dm)
    await w.slack.wait_until(lambda: len(w.slack.views) > before, timeout=WAIT)
    form = w.slack.views[-1]
    initial = {
        b["block_id"]: b["element"].get("initial_value")
        or b["element"].get("initial_option", {}).get("value")
        for b in form.blocks
        if b.get("type") == "input"
    }
    assert initial == {
        "environment": "dev",
        "policy": "require-labels",
        "rules": "check-for-labels",
        "namespaces": "payments",
        "kinds": "Deployment",
        "names": "ledger-*",
        "justification": GOOD["justification"],
        "jira_key": "SEC-1",
        "days": "2",
    }
    assert f'"r":"{rid}"' in form.private_metadata
    parents = len(w.slack.parents(APPROVALS))
    answer = await w.bot.slack.view_submission(form.id, modal_values(GOOD | {"jira_key": "SEC-1"}))
    assert answer.text == ""
    await eventually(lambda: len(w.slack.parents(APPROVALS)) > parents)
    assert f"Renewal of {rid}." in message_text(w.slack.parents(APPROVALS)[-1])

    # Past the expiry: the sweep deletes the exception, closes the ticket, tells everyone.
    w.clock.advance(timedelta(hours=20, minutes=1))
    assert await scheduler.fire("exceptions.expiry")
    assert ours(w.plane, rid) == []
    assert await request_state(w, rid) is State.EXPIRED
    issue = w.jira.issues["SEC-1"]
    assert any("expired and was deleted" in c.body for c in issue.comments)
    assert issue.status == "Done" and issue.transitions_done == ["Done"]
    expired_at = START + timedelta(days=2, minutes=1)
    expired = f"⌛ Expired on {expired_at:%Y-%m-%d %H:%M} UTC: the PolicyException was deleted."
    # The edit, the thread note and the DM go out through the notice outbox, paced: they follow.
    await eventually(lambda: expired in message_text(w.slack.message(APPROVALS, ts)))
    replies = await eventually(lambda: w.slack.replies(APPROVALS, ts))
    assert len(replies) == 1 and f"{rid} expired" in replies[0].text
    await eventually(lambda: any("expired and was removed" in t for t in dms(w, REQUESTER)))
    notices = w.bot.services.notices
    await eventually_async(lambda: _nothing_pending(notices))
    owed = await notices.states()
    # A second sweep finds nothing more to do: not one more notice is owed to anybody.
    w.clock.advance(timedelta(minutes=10))
    assert await scheduler.fire("exceptions.expiry")
    assert await notices.states() == owed
    assert len(w.slack.replies(APPROVALS, ts)) == 1
    assert len([a for a in await audit_actions(w) if a[1] == "exception.expire"]) == 1


async def _nothing_pending(notices: Any) -> bool:
    return "pending" not in await notices.states()


async def test_quarterly_review_posts_and_acts_on_keep_and_revoke(w: World) -> None:
    first, first_ts = await file_request(w)
    second, second_ts = await file_request(w, policy="disallow-latest-tag", rules="", names="")
    await click(w, "exception_approve", APPROVER, first_ts)
    await click(w, "exception_approve", APPROVER2, second_ts)
    await eventually(lambda: ours(w.plane, first) and ours(w.plane, second))
    await eventually(
        lambda: len(w.jira.issues) == 2 and all(i.comments for i in w.jira.issues.values())
    )
    # The two approvals run at once, so either may have created SEC-1: find each request's
    # ticket by the fingerprint label the bot puts on it.
    (first_issue,) = w.jira.with_label(f"policy-bot-{first}")
    (second_issue,) = w.jira.with_label(f"policy-bot-{second}")
    first_issue.fields["status"] = {
        "name": "In Progress",
        "statusCategory": {"key": "indeterminate"},
    }
    w.clock.advance(timedelta(days=3))
    parents = len(w.slack.parents(APPROVALS))
    assert await w.bot.services.scheduler.fire("exceptions.review")
    # Posted through the outbox, which records where it landed before it counts as sent.
    await eventually(lambda: len(w.slack.parents(APPROVALS)) > parents)
    await eventually_async(lambda: _nothing_pending(w.bot.services.notices))
    review = w.slack.parents(APPROVALS)[parents]
    text = message_text(review)
    assert f"Quarterly exception review · 2 active · {START + timedelta(days=3):%Y-%m-%d}" in text
    assert "age 3 days" in text and "(In Progress)" in text and "(To Do)" in text

    stale, _ = w.bot.slack.block_actions_payload(
        "exception_keep",
        user=APPROVER,
        channel=APPROVALS,
        message_ts=review.ts,
        block_id=f"review:{first}",
        value=first,
    )

    async def decide(action: str, user: str, rid: str) -> None:
        await w.bot.slack.block_action(
            action,
            user=user,
            channel=APPROVALS,
            message_ts=review.ts,
            block_id=f"review:{rid}",
            value=rid,
        )

    await decide("exception_keep", OUTSIDER, first)
    await eventually(lambda: ephemeral_texts(w, OUTSIDER))
    assert ephemeral_texts(w, OUTSIDER) == [
        "Only approvers (<@U0APPROVER1>, <@U0APPROVER2>) can review exceptions."
    ]
    await decide("exception_keep", APPROVER2, first)
    await decide("exception_revoke", APPROVER, second)
    updated = await eventually(
        lambda: (
            (m := w.slack.message(APPROVALS, review.ts))
            and "Kept by" in message_text(m)
            and "Revoked by" in message_text(m)
            and m
        )
    )
    assert "exception_keep" not in str(updated.blocks)
    assert ours(w.plane, second) == [] and len(ours(w.plane, first)) == 1
    assert await request_state(w, second) is State.REVOKED
    assert await request_state(w, first) is State.ACTIVE
    revoked_issue = second_issue
    assert revoked_issue.status == "Done"
    assert any("was revoked by U0APPROVER1" in c.body for c in revoked_issue.comments)
    assert any("Kept at the quarterly review" in c.body for c in first_issue.comments)
    await w.bot.slack.post_payload(stale)  # a click on the report as it was before
    await eventually(lambda: ephemeral_texts(w, APPROVER))
    assert ephemeral_texts(w, APPROVER) == [f"Request {first} was already reviewed in this report."]
    actions = await audit_actions(w)
    assert (APPROVER2, "exception.keep", "ok", first) in actions
    assert (APPROVER, "exception.revoke", "ok", second) in actions
    assert (OUTSIDER, "exception.keep", "refused", first) in actions


async def test_register_lists_active_unmanaged_and_the_kyverno_namespace(w: World) -> None:
    rid, ts = await file_request(w)
    await click(w, "exception_approve", APPROVER, ts)
    # Approved as people see it: the approval message says so once the request is active
    # (the PolicyException exists a moment before the request is marked active).
    await eventually(lambda: "Approved by" in message_text(w.slack.message(APPROVALS, ts)))
    assert ours(w.plane, rid)
    before = len(w.slack.responses)
    answer = await w.bot.slack.command("/policy", "exceptions dev", user=REQUESTER, channel=CHANNEL)
    assert answer.status == 200 and "Reading" in answer.text
    register = await eventually(
        lambda: [
            r for r in w.slack.responses[before:] if "Exceptions ·" in str(r.payload.get("blocks"))
        ]
    )
    text = "\n".join(_texts(register[0].payload["blocks"]))
    assert "*dev* · 1 active · 1 unmanaged" in text
    assert (
        f"`pe-require-labels-{rid[2:]}` · `require-labels` / check-for-labels · payments · "
        "Deployment ledger-* · from <@U0ENGINEER>, approved by <@U0APPROVER1>"
    ) in text
    assert "expires in 30 days" in text
    assert (
        ":warning: `kyverno-exceptions/hand-made` (policies.kyverno.io) · vpol-deny · "
        "unmanaged: no ticket, no expiry"
    ) in text
    assert (
        "✅ Kyverno accepts PolicyExceptions from `kyverno-exceptions` (matches policy-bot's "
        "`kyverno-exceptions`)."
    ) in text
    before = len(w.slack.responses)
    await w.bot.slack.command("/policy", "exceptions qa", user=REQUESTER, channel=CHANNEL)
    await eventually(lambda: len(w.slack.responses) > before)
    assert "There is no environment called `qa`" in w.slack.responses[before].payload["text"]


async def test_register_warns_when_kyverno_reads_another_namespace(
    plane: ControlPlane, slack_emulator: SlackEmulator, jira: JiraEmulator, tmp_path: Path
) -> None:
    _people(slack_emulator)
    settings = settings_for(
        slack_emulator, plane, tmp_path / "s.db", jira=jira, exceptions={"namespace": "other"}
    )
    async with running_bot(settings, slack_emulator, clock=MovableClock(START)) as bot:
        await bot.slack.command("/policy", "exceptions", user=REQUESTER, channel=CHANNEL)
        await slack_emulator.wait_until(lambda: bool(slack_emulator.responses), timeout=WAIT)
        text = "\n".join(_texts(slack_emulator.responses[0].payload["blocks"]))
    assert (
        ":warning: Kyverno accepts PolicyExceptions only from `kyverno-exceptions`, but "
        "policy-bot writes them to `other`: they would be ignored."
    ) in text


async def test_without_jira_requests_are_filed_but_approval_says_why_not(
    plane: ControlPlane, slack_emulator: SlackEmulator, tmp_path: Path
) -> None:
    _people(slack_emulator)
    settings = settings_for(slack_emulator, plane, tmp_path / "s.db", jira=None)
    clock = MovableClock(START)
    async with running_bot(settings, slack_emulator, clock=clock) as bot:
        w = World(bot, slack_emulator, JiraEmulator(), plane, clock, tmp_path)
        rid, ts = await file_request(w)
        assert "JIRA is not configured, so this request cannot be approved yet" in message_text(
            slack_emulator.message(APPROVALS, ts)
        )
        await click(w, "exception_approve", APPROVER, ts)
        await eventually(lambda: ephemeral_texts(w, APPROVER))
        assert ephemeral_texts(w, APPROVER)[0].startswith(
            "JIRA is not configured (no `jira` section in the bot's config), so exceptions "
            "cannot be approved"
        )
        assert await request_state(w, rid) is State.PENDING and ours(plane, rid) == []


async def test_request_exception_button_on_an_alert_opens_the_prefilled_form(w: World) -> None:
    import sqlalchemy as sa

    from bot.alerts.intake import Intake
    from bot.alerts.outbox import Outbox
    from bot.alerts.routing import Router
    from bot.alerts.tables import alert_messages
    from bot.alerts.webhook import parse_notification
    from handlers.render.alerts import parent_message
    from handlers.render.exceptions import alert_buttons

    services = w.bot.services
    raw = (Path(__file__).parents[1] / "data" / "alertmanager" / "webhook-firing.json").read_bytes()
    intake = Intake(services.database, router=Router((), default_channel="C0ALERTS"), clock=w.clock)
    await intake.store(parse_notification(raw))
    await intake.apply_pending()
    async with services.database.connect() as conn:
        message_id = (await conn.execute(sa.select(alert_messages.c.id))).scalar_one()
    group = await Outbox(services.database, clock=w.clock).get(message_id)
    assert group is not None
    rendered = parent_message(group, now=w.clock.now(), extra_actions=alert_buttons(group))
    ts = await services.slack.post_message("C0ALERTS", rendered.text, rendered.blocks)
    before = len(w.slack.views)
    await click(w, "alert_request_exception", REQUESTER, ts, channel="C0ALERTS")
    await w.slack.wait_until(lambda: len(w.slack.views) > before, timeout=WAIT)
    form = w.slack.views[-1]
    initial = {
        b["block_id"]: b["element"].get("initial_value")
        or b["element"].get("initial_option", {}).get("value")
        for b in form.blocks
        if b.get("type") == "input"
    }
    labels = [a.labels for a in group.firing]
    assert initial["policy"] == "require-labels"
    assert initial["rules"] == ", ".join(dict.fromkeys(lb["rule_name"] for lb in labels))
    assert initial["namespaces"] == ", ".join(
        dict.fromkeys(lb["resource_namespace"] for lb in labels)
    )
    assert initial["kinds"] == ", ".join(dict.fromkeys(lb["resource_kind"] for lb in labels))
    assert initial["names"] == ", ".join(dict.fromkeys(lb["resource_name"] for lb in labels))
    # A forged value naming no alert is answered, not crashed on.
    await w.bot.slack.block_action(
        "alert_request_exception", user=REQUESTER, channel="C0ALERTS", message_ts=ts, value="999999"
    )
    await eventually(lambda: ephemeral_texts(w, REQUESTER))
    assert ephemeral_texts(w, REQUESTER) == [
        "This alert is no longer known to the bot; use `/policy exception`."
    ]


def forged(value: str) -> dict[str, Any]:
    """A select answer Slack would never send (not one of the options): a forged payload."""
    return {"selected_option": {"text": {"type": "plain_text", "text": value}, "value": value}}


BAD_INPUTS: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "environment",
        {"environment": None},
        "environment",
        "Choose the environment the exception is for.",
    ),
    (
        "environment",
        {"environment": forged("prod")},
        "environment",
        "“prod” is not a configured environment: choose one of dev.",
    ),
    (
        "policy",
        {"policy": forged("<!channel>")},
        "policy",
        "“<!channel>” is not a policy name: use lower-case letters, digits, '-' and '.', "
        "or NAMESPACE/NAME for a namespaced Policy.",
    ),
    (
        "policy",
        {"policy": forged("Team-A/x")},
        "policy",
        "“Team-A/x” is not a policy: the part before '/' must be a namespace.",
    ),
    (
        "policy",
        {"policy": forged("no-such-policy")},
        "policy",
        "There is no policy “no-such-policy” in dev.",
    ),
    (
        "rules",
        {"rules": "check-for-labels, nope"},
        "rules",
        "“require-labels” has no rule nope. Its rules: “check-for-labels”.",
    ),
    ("rules", {"rules": "rule!"}, "rules", "“rule!” is not a rule name"),
    (
        "rules",
        {"policy": "vpol-deny", "rules": "validations"},
        "rules",
        "ValidatingPolicy “vpol-deny” has no named rules; leave Rules empty",
    ),
    ("namespaces", {"namespaces": "Payments"}, "namespaces", "“Payments” is not a namespace name"),
    (
        "namespaces",
        {"namespaces": ",".join(f"ns-{i}" for i in range(21))},
        "namespaces",
        "At most 20 entries (you gave 21); use a wildcard.",
    ),
    ("kinds", {"kinds": ""}, "kinds", "Name at least one resource kind, e.g. Deployment or Pod."),
    ("kinds", {"kinds": "deployment"}, "kinds", "“deployment” is not a resource kind"),
    ("names", {"names": "ledger_*"}, "names", "“ledger_*” is not a resource name"),
    ("names", {"names": "a" * 254}, "names", "is not a resource name"),
    (
        "justification",
        {"justification": "too short"},
        "justification",
        "Explain why in at least 20 characters (you wrote 9)",
    ),
    (
        "justification",
        {"justification": "x" * 2001},
        "justification",
        "Keep it under 2000 characters (you wrote 2001)",
    ),
    (
        "jira_key",
        {"jira_key": "SEC 12"},
        "jira_key",
        "“SEC 12” is not a JIRA issue key (like SEC-1423).",
    ),
    ("jira_key", {"jira_key": 'SEC-1" OR project = X'}, "jira_key", "is not a JIRA issue key"),
    ("days", {"days": "0"}, "days", "Enter a whole number of days from 1 to 90."),
    ("days", {"days": "91"}, "days", "Enter a whole number of days from 1 to 90."),
    ("days", {"days": "abc"}, "days", "Enter a whole number of days from 1 to 90."),
    ("days", {"days": "1.5"}, "days", "Enter a whole number of days from 1 to 90."),
    ("days", {"days": "-3"}, "days", "Enter a whole number of days from 1 to 90."),
    ("days", {"days": ""}, "days", "Enter a whole number of days from 1 to 90."),
]


async def test_every_bad_modal_input_is_answered_inline_and_changes_nothing(w: World) -> None:
    view = await open_form(w)
    seen: list[tuple[str, str, str]] = []
    for field, change, block, expected in BAD_INPUTS:
        values: dict[str, Any] = {**GOOD, **change}
        if values.get("environment") is None:
            values.pop("environment")
        answer = await w.bot.slack.view_submission(view.id, modal_values(values))
        assert answer.status == 200 and answer.elapsed < 3.0
        body = answer.json()
        assert body["response_action"] == "errors", (field, change, body)
        assert expected in body["errors"][block], (field, change, body["errors"])
        assert w.slack.view(view.id).state == "open"
        shown = repr(change)[:70]
        seen.append((field, shown, body["errors"][block]))
    # Several mistakes at once are all shown.
    many = {**GOOD, "kinds": "", "days": "0", "justification": "short"}
    answer = await w.bot.slack.view_submission(view.id, modal_values(many))
    assert set(answer.json()["errors"]) == {"kinds", "days", "justification"}
    print("\nbad input → what the user saw")
    for field, shown, error in seen:
        print(f"{field:13} {shown:72} {error}")
    assert w.slack.parents(APPROVALS) == []

    # The form is answered first; each refusal is audited just after.
    async def refusals_audited() -> bool:
        entries = await audit_actions(w)
        invalid = [a for a in entries if a[1:3] == ("exception.request", "invalid")]
        assert len(invalid) <= len(BAD_INPUTS) + 1
        return len(invalid) == len(BAD_INPUTS) + 1

    await eventually_async(refusals_audited)

    # Mentions, links and markup in free text are accepted but cannot ping, link or format.
    injected = "Needed until Q1 <!channel> <https://evil.example|approve here> *now* {code}x{code}"
    rid, ts = await file_request(w, justification=injected)
    text = message_text(w.slack.message(APPROVALS, ts))
    assert "&lt;!channel&gt; &lt;https://evil.example|approve here&gt;" in text
    assert "<!channel>" not in text
    await click(w, "exception_approve", APPROVER, ts)
    await eventually(lambda: w.jira.issues)
    (issue,) = w.jira.issues.values()
    assert f"{{noformat}}\n{injected}\n{{noformat}}" in issue.fields["description"]
    search = w.jira.calls("GET", r"/search$")[0]
    assert (
        search.param("jql")
        == f'project = "SEC" AND labels = "policy-bot-{rid}" ORDER BY created ASC'
    )


async def test_a_slow_cluster_gets_a_typed_policy_and_an_answer_by_message(
    plane: ControlPlane,
    slack_emulator: SlackEmulator,
    jira: JiraEmulator,
    tmp_path: Path,
) -> None:
    from tests.harness import kubeconfig_via

    _people(slack_emulator)
    proxy = SlowProxy(int(plane.url.rsplit(":", 1)[1]))
    await proxy.start()
    try:
        slow_config = kubeconfig_via(plane.kubeconfig, proxy.port, tmp_path / "slow.kubeconfig")
        settings = settings_for(slack_emulator, plane, tmp_path / "s.db", jira=jira)
        env = settings.environments[0].model_copy(update={"kubeconfig": slow_config})
        settings = settings.model_copy(update={"environments": (env,)})
        clock = MovableClock(START)
        async with running_bot(settings, slack_emulator, clock=clock) as bot:
            w = World(bot, slack_emulator, jira, plane, clock, tmp_path)
            await bot.services.clusters["dev"].kinds()  # discovery, while the cluster is quick
            proxy.delay = 2.2  # more than the 2 s the submission's check may take
            view = await open_form(w)
            (policy,) = [b for b in view.blocks if b.get("block_id") == "policy"]
            assert policy["element"]["type"] == "plain_text_input"  # no list within 1.5 s
            answer = await w.bot.slack.view_submission(
                view.id, modal_values(GOOD | {"policy": "require-labels"})
            )
            assert answer.status == 200 and answer.text == "" and answer.elapsed < 3.0
            assert slack_emulator.view(view.id).state == "closed"
            await eventually(lambda: slack_emulator.parents(APPROVALS), timeout=30)
            await eventually(
                lambda: any("was sent to the approvers" in t for t in dms(w, REQUESTER))
            )
            # A mistake found after the modal closed is told by direct message; nothing is filed.
            view = await open_form(w)
            (policy,) = [b for b in view.blocks if b.get("block_id") == "policy"]
            typed = policy["element"]["type"] == "plain_text_input"
            unknown = {"value": "no-such-policy"} if typed else forged("no-such-policy")
            answer = await w.bot.slack.view_submission(
                view.id, modal_values(GOOD | {"policy": unknown})
            )
            assert answer.text == "" and answer.elapsed < 3.0
            await eventually(
                lambda: any("was not filed: There is no policy" in t for t in dms(w, REQUESTER)),
                timeout=30,
            )
            assert len(slack_emulator.parents(APPROVALS)) == 1
    finally:
        await proxy.stop()


async def test_a_given_ticket_that_does_not_exist_fails_the_request(w: World) -> None:
    rid, ts = await file_request(w, jira_key="SEC-404")
    await click(w, "exception_approve", APPROVER, ts)
    failed = await eventually(
        lambda: (
            (m := w.slack.message(APPROVALS, ts))
            and "Could not be approved" in message_text(m)
            and m
        )
    )
    assert "The JIRA issue SEC-404 given with the request does not exist" in message_text(failed)
    assert "exception_approve" not in str(failed.blocks)
    assert await request_state(w, rid) is State.FAILED
    assert ours(w.plane, rid) == [] and w.jira.creates() == []
    await eventually(lambda: any("could not be approved" in t for t in dms(w, REQUESTER)))
    await eventually(lambda: ephemeral_texts(w, APPROVER))
    assert ephemeral_texts(w, APPROVER)[0].endswith("The request is marked failed.")
    assert (APPROVER, "exception.approve", "failed", rid) in await audit_actions(w)


async def test_an_exception_left_by_an_earlier_attempt_is_adopted_a_foreign_one_is_not(
    w: World,
) -> None:
    """409 AlreadyExists on create: ours (request-id label) is kept, anyone else's fails."""
    ours_rid, ours_ts = await file_request(w)
    theirs_rid, theirs_ts = await file_request(w)
    earlier_expiry = (START + timedelta(days=22)).replace(hour=0, minute=0)
    earlier = seed.kyverno_policy_exception(
        f"pe-require-labels-{ours_rid[2:]}",
        EXCEPTIONS_NS,
        policy="require-labels",
        rules=["check-for-labels"],
        labels={"app.kubernetes.io/managed-by": "policy-bot", "policy-bot.io/request-id": ours_rid},
        annotations={"policy-bot.io/expires-at": f"{earlier_expiry:%Y-%m-%dT%H:%M:%SZ}"},
    )
    foreign = seed.kyverno_policy_exception(
        f"pe-require-labels-{theirs_rid[2:]}", EXCEPTIONS_NS, policy="other", rules=["x"]
    )
    with w.plane.api_client() as api:
        seed.apply_objects(api, [earlier, foreign])
    await click(w, "exception_approve", APPROVER, ours_ts)
    await click(w, "exception_approve", APPROVER, theirs_ts)
    await eventually(lambda: "Approved by" in message_text(w.slack.message(APPROVALS, ours_ts)))
    adopted = await eventually(
        lambda: (
            (m := w.slack.message(APPROVALS, ours_ts))
            and f"expires {earlier_expiry:%Y-%m-%d}" in message_text(m)
        )
    )
    assert adopted and len(ours(w.plane, ours_rid)) == 1
    failed = await eventually(
        lambda: (
            (m := w.slack.message(APPROVALS, theirs_ts))
            and "Could not be approved" in message_text(m)
            and m
        )
    )
    assert (
        f"A PolicyException kyverno-exceptions/pe-require-labels-{theirs_rid[2:]} already exists "
        "in dev and was not created for this request."
    ) in message_text(failed)
    assert await request_state(w, theirs_rid) is State.FAILED
    (kept,) = [
        o
        for o in policy_exceptions(w.plane)
        if o["metadata"]["name"] == f"pe-require-labels-{theirs_rid[2:]}"
    ]
    assert kept["spec"]["exceptions"][0]["policyName"] == "other"  # left untouched


async def test_a_name_two_kinds_share_is_asked_for_by_kind(w: World) -> None:
    view = await open_form(w)
    (policy,) = [b["element"] for b in view.blocks if b.get("block_id") == "policy"]
    if policy["type"] == "static_select":
        values = {o["value"] for o in policy["options"]}
        assert {"cpol/twin-policy", "vpol/twin-policy"} <= values and "twin-policy" not in values
    answer = await w.bot.slack.view_submission(
        view.id, modal_values({**GOOD, "policy": {"value": "twin-policy"}, "rules": ""})
    )
    assert answer.json()["errors"]["policy"] == (
        "“twin-policy” names a ClusterPolicy and a ValidatingPolicy in dev: type "
        "cpol/twin-policy or vpol/twin-policy to say which."
    )
    rid, ts = await file_request(w, policy="vpol/twin-policy", rules="")
    assert "twin-policy* (ValidatingPolicy)" in message_text(w.slack.message(APPROVALS, ts))
    await click(w, "exception_approve", APPROVER, ts)
    await eventually(lambda: ours(w.plane, rid, "policies.kyverno.io"))
    assert ours(w.plane, rid) == []  # a policies.kyverno.io exception, for the ValidatingPolicy


async def test_every_notice_reaches_the_requester_under_slacks_rate_limit(w: World) -> None:
    """Slack takes about one message a second per channel (a burst of three). Two requests
    filed and approved at once owe the requester four DMs within a second: the fourth used to
    meet a 429 and be lost; now all four arrive, paced."""
    first, first_ts = await file_request(w)
    second, second_ts = await file_request(w, names="billing-*")
    await asyncio.gather(
        click(w, "exception_approve", APPROVER, first_ts),
        click(w, "exception_approve", APPROVER2, second_ts),
    )

    def told() -> list[str]:
        return [
            t
            for t in dms(w, REQUESTER)
            if any(rid in t for rid in (first, second))
            and ("was approved" in t or "was sent to the approvers" in t)
        ]

    await eventually(lambda: len(told()) == 4, timeout=40)
    assert w.slack.ratelimited_count() == 0  # paced below the limit: nothing provoked
