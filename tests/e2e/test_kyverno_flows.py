"""Status and exceptions through the bot's Slack interface, with a real Kyverno deciding.

The bot runs against the control plane Kyverno watches; each test scopes its policy to a
namespace of its own. What is asserted is what the API server answers to the creates a person
would make (refused with Kyverno's message, or admitted) and what Kyverno itself wrote (its
reports, the readiness it set, its cleanup controller's deletions), compared with what the bot
says in Slack.

The bot's clock is a `MovableClock` started at the real time, not at `suite_start()`: the
exceptions it writes carry their expiry to Kyverno (the `cleanup.kyverno.io/ttl` label,
`spec.expiresAt`), and Kyverno reads them against the real clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
import pytest_asyncio

from bot.clock import SYSTEM_CLOCK
from bot.exceptions.model import State
from bot.playground import seed
from bot.playground.jira_emulator import PAT, JiraEmulator
from bot.playground.kyverno import Kyverno
from bot.playground.slack_emulator import SlackEmulator
from tests.harness import RunningBot, blocks_text, bot_settings, running_bot
from tests.timeline import MovableClock

pytestmark = [pytest.mark.kube, pytest.mark.kyverno]

T = TypeVar("T")
ENV = "staging"
CHANNEL = "C0PLATFORM"
APPROVALS = "C0APPROVALS"
REQUESTER, APPROVER = "U0ENGINEER", "U0APPROVER1"
RULE = "check-for-labels"
AUTOGEN_RULE = f"autogen-{RULE}"
LABEL = "app.kubernetes.io/name"
VP_SOURCE = "KyvernoValidatingPolicy"
EXCEPTED = "excepted-ledger"
"""The Deployment each exception test creates; its exceptions cover `excepted-*`."""
RID = re.compile(r"R-[0-9a-f]{8}")
WAIT = 30.0
REPORTS_TIMEOUT = 150.0
"""Kyverno's reports controller aggregates admission and background results; ~10-60 s."""
HONOURED_TIMEOUT = 60.0
"""How long Kyverno may take to see a new or deleted PolicyException."""
TTL_AHEAD = timedelta(seconds=40)
"""How far ahead of the real time the exception of the cleanup test expires: long enough
for Kyverno to honour it first, short enough to watch the cleanup controller delete it."""
CLEANUP_TIMEOUT = 150.0
"""The cleanup controller starts watching a kind at its first reconciliation tick
(`--ttlReconciliationInterval`, a minute after start), then deletes at the TTL."""


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def vpol_name(kyverno: Kyverno) -> Iterator[str]:
    name = f"vpol-team-{secrets.token_hex(3)}"
    yield name
    kyverno.plane.kubectl(
        "delete", "validatingpolicies.policies.kyverno.io", name, "--ignore-not-found"
    )


@pytest_asyncio.fixture
async def jira() -> AsyncIterator[JiraEmulator]:
    async with JiraEmulator(mode="server", projects=("SEC",)) as emulator:
        yield emulator


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock(SYSTEM_CLOCK.now())


@dataclass
class World:
    bot: RunningBot
    slack: SlackEmulator
    jira: JiraEmulator
    kyverno: Kyverno
    clock: MovableClock


@pytest_asyncio.fixture
async def w(
    kyverno: Kyverno,
    slack_emulator: SlackEmulator,
    jira: JiraEmulator,
    clock: MovableClock,
    tmp_path: Path,
) -> AsyncIterator[World]:
    settings = bot_settings(
        slack_emulator,
        store_url=f"sqlite:///{tmp_path}/state.db",
        environments=[{"name": ENV, "kubeconfig": str(kyverno.plane.kubeconfig), "timeout_s": 10}],
        extra={
            "slack": {
                "mode": "http",
                "channels": {"alerts": "C0ALERTS", "approvals": APPROVALS, "reports": "C0REPORTS"},
                "roles": {"approvers": {"users": [APPROVER]}},
            },
            "exceptions": {
                "namespace": kyverno.exception_namespace,
                "default_days": 30,
                "max_days": 90,
            },
            "jira": {"url": jira.url, "project": "SEC", "timeout_s": 5},
        },
        secrets={"JIRA_TOKEN": PAT},
    )
    slack_emulator.add_channel(CHANNEL, "platform")
    slack_emulator.add_channel(APPROVALS, "security-approvals")
    for user, name in ((REQUESTER, "sam"), (APPROVER, "lee")):
        slack_emulator.add_user(user, name)
    async with running_bot(settings, slack_emulator, clock=clock) as bot:
        yield World(bot, slack_emulator, jira, kyverno, clock)


# -- Kyverno's side ---------------------------------------------------------------------------


def require_label_policy(name: str, namespace: str, action: str) -> dict[str, Any]:
    """kyverno/policies' require-labels on Pods (autogen covers Deployments), one namespace."""
    rule = seed.require_label_rule(RULE, label=LABEL, kinds=("Pod",), failure_action=action)
    rule["match"]["any"][0]["resources"]["namespaces"] = [namespace]
    policy = seed.legacy_cluster_policy(name, rules=[rule])
    del policy["spec"]["validationFailureAction"]  # per-rule failureAction, as the library has
    return policy


def team_label_policy(name: str, namespace: str, action: str) -> dict[str, Any]:
    """A ValidatingPolicy requiring the `team` label on Deployments, one namespace."""
    policy = seed.validating_policy(name, actions=(action,))
    policy["spec"]["matchConstraints"]["namespaceSelector"] = {
        "matchLabels": {"kubernetes.io/metadata.name": namespace}
    }
    return policy


def vpol_path(name: str) -> str:
    return f"/apis/policies.kyverno.io/v1/validatingpolicies/{name}"


def deployments(namespace: str) -> str:
    return f"/apis/apps/v1/namespaces/{namespace}/deployments"


def create_deployment(
    kyverno: Kyverno, namespace: str, name: str, labels: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    """POST a Deployment (unlabelled unless told): the API server's status and answer."""
    body = seed.deployment(name, namespace, labels=labels)
    return kyverno.request("POST", deployments(namespace), body)


async def wait_for(condition: Callable[[], T | None], *, what: str, timeout: float = WAIT) -> T:
    """Poll `condition` (run off the loop: it may call the API server) until it is truthy."""
    deadline = time.monotonic() + timeout
    while True:
        found = await asyncio.to_thread(condition)
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        await asyncio.sleep(0.25)


async def decided(
    kyverno: Kyverno, namespace: str, name: str, *, admitted: bool, timeout: float
) -> tuple[float, dict[str, Any]]:
    """Repeat the same create until the API server admits it (or refuses it); the seconds it
    took and the last answer. An admission while waiting for a refusal is undone, so every
    try is the same create of the same object."""
    started = time.monotonic()

    def attempt() -> dict[str, Any] | None:
        code, answer = create_deployment(kyverno, namespace, name)
        assert code in (201, 400), f"{code}: {answer.get('message', answer)}"
        if code == 201 and not admitted:
            kyverno.request("DELETE", f"{deployments(namespace)}/{name}")
        return answer if (code == 201) == admitted else None

    what = f"{namespace}/{name} to be {'admitted' if admitted else 'refused'}"
    answer = await wait_for(attempt, what=what, timeout=timeout)
    return time.monotonic() - started, answer


def wait_vpol_ready(kyverno: Kyverno, name: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        status = (kyverno.get(vpol_path(name)).get("status") or {}).get("conditionStatus") or {}
        if status.get("ready") is True:
            return
        assert time.monotonic() < deadline, f"ValidatingPolicy {name} not ready: {status}"
        time.sleep(0.25)


def reports_in(kyverno: Kyverno, namespace: str | None = None) -> list[dict[str, Any]]:
    where = f"namespaces/{namespace}/" if namespace else ""
    found = kyverno.get(f"/apis/wgpolicyk8s.io/v1alpha2/{where}policyreports")
    return list(found.get("items") or [])


def server_counts(kyverno: Kyverno, policy: str, source: str) -> tuple[Counter[str], Counter[str]]:
    """What Kyverno's reports on the server say of `policy`: results by outcome, and failures
    by namespace (the cluster-wide list, as the bot reads it)."""
    outcomes: Counter[str] = Counter()
    failing: Counter[str] = Counter()
    for report in reports_in(kyverno):
        for result in report.get("results") or ():
            if result.get("policy") == policy and result.get("source") == source:
                outcomes[result["result"]] += 1
                if result["result"] == "fail":
                    failing[report["metadata"]["namespace"]] += 1
    return outcomes, failing


def exception_objects(kyverno: Kyverno, group: str, rid: str) -> list[dict[str, Any]]:
    version = "v2" if group == "kyverno.io" else "v1"
    path = f"/apis/{group}/{version}/namespaces/{kyverno.exception_namespace}/policyexceptions"
    listing = kyverno.get(f"{path}?labelSelector=policy-bot.io%2Frequest-id%3D{rid}")
    return list(listing.get("items") or [])


def exception_path(kyverno: Kyverno, obj: dict[str, Any]) -> str:
    group, _, version = obj["apiVersion"].partition("/")
    name = obj["metadata"]["name"]
    return (
        f"/apis/{group}/{version}/namespaces/{kyverno.exception_namespace}/policyexceptions/{name}"
    )


@contextlib.contextmanager
def removed_afterwards(kyverno: Kyverno, group: str, rid: list[str]) -> Iterator[None]:
    """Delete what the bot created for the request ids in `rid`, whatever the test did."""
    try:
        yield
    finally:
        for request in rid:
            for obj in exception_objects(kyverno, group, request):
                kyverno.request("DELETE", exception_path(kyverno, obj))


# -- the bot's side ---------------------------------------------------------------------------


async def status_answer(w: World, args: str) -> str:
    """`/policy status ARGS` as a person types it; the text of the (ephemeral) answer."""
    before = len(w.slack.responses)
    interaction = await w.bot.slack.command(
        "/policy", f"status {args}", user=REQUESTER, channel=CHANNEL
    )
    assert interaction.response.status == 200, interaction.response.text

    def answered() -> str | None:
        for response in w.slack.responses[before:]:
            if response.payload.get("blocks"):
                return blocks_text(response.payload["blocks"])
        return None

    return await wait_for(answered, what=f"the answer to /policy status {args}", timeout=60)


async def request_exception(w: World, policy: str, **fields: str) -> tuple[str, str]:
    """Open the form with `/policy exception POLICY`, fill it in and submit it, as the
    requester; the request id and the ts of its message in the approvals channel."""
    before_views = len(w.slack.views)
    before = len(w.slack.parents(APPROVALS))
    answer = await w.bot.slack.command(
        "/policy", f"exception {policy}", user=REQUESTER, channel=CHANNEL
    )
    assert answer.status == 200 and answer.text == "", answer.text
    await w.slack.wait_until(lambda: len(w.slack.views) > before_views, timeout=WAIT)
    view = w.slack.views[-1]
    values = {
        "environment": ENV,
        "policy": policy,
        "rules": "",
        "namespaces": "",
        "kinds": "Deployment",
        "names": "",
        "justification": "The vendor chart lacks the label; the fix ships with its next release.",
        "jira_key": "",
        "days": "30",
        **fields,
    }
    (element,) = [b["element"] for b in view.blocks if b.get("block_id") == "policy"]
    if element["type"] == "static_select" and "initial_option" in element:
        assert element["initial_option"]["value"] == policy
    submitted = await w.bot.slack.view_submission(
        view.id, {block: {block: value} for block, value in values.items()}, user=REQUESTER
    )
    assert submitted.status == 200 and submitted.text == "", submitted.text
    await w.slack.wait_until(lambda: len(w.slack.parents(APPROVALS)) > before, timeout=WAIT)
    message = w.slack.parents(APPROVALS)[-1]
    found = RID.search(message.text)
    assert found, message.text
    return found.group(0), message.ts


async def approve(w: World, ts: str) -> str:
    """The approver clicks Approve; the text of the approval message once it says so."""
    click = await w.bot.slack.block_action(
        "exception_approve", user=APPROVER, channel=APPROVALS, message_ts=ts
    )
    assert click.status == 200

    def approved() -> str | None:
        message = w.slack.message(APPROVALS, ts)
        text = (blocks_text(message.blocks) + "\n" + message.text) if message else ""
        return text if "Approved by" in text else None

    return await wait_for(approved, what="the approval message to say Approved")


async def request_state(w: World, rid: str) -> State:
    from bot.exceptions.store import RequestStore

    found = await RequestStore(w.bot.services.database).get(rid)  # type: ignore[arg-type]
    assert found is not None
    return found.state


# -- 1. status ----------------------------------------------------------------------------------


async def test_status_counts_what_kyvernos_reports_say(
    w: World, kyverno: Kyverno, namespace: str, policy_name: str, vpol_name: str
) -> None:
    """Both policies in Audit: Kyverno admits every Deployment and reports each; the bot's
    fail counts per policy and namespace are those of the reports on the server, and the
    readiness it shows is what Kyverno set."""
    kyverno.apply(require_label_policy(policy_name, namespace, "Audit"))
    kyverno.apply(team_label_policy(vpol_name, namespace, "Audit"))
    kyverno.wait_policy_ready(policy_name)
    await asyncio.to_thread(wait_vpol_ready, kyverno, vpol_name)

    # Three fail both policies; one passes both. The ValidatingPolicy's webhook may come a
    # moment after its Ready, which Audit does not care about: the background scan reports.
    uids = {}
    for name, labels in (
        ("ledger", None),
        ("billing", None),
        ("search", None),
        ("web", {LABEL: "web", "team": "storefront"}),
    ):
        code, answer = await asyncio.to_thread(create_deployment, kyverno, namespace, name, labels)
        assert code == 201, answer.get("message")
        uids[answer["metadata"]["uid"]] = name
    started = time.monotonic()

    def all_reported() -> list[dict[str, Any]] | None:
        reports = reports_in(kyverno, namespace)
        covered = {
            (r["scope"]["uid"], res.get("policy"))
            for r in reports
            for res in r.get("results") or ()
        }
        wanted = {(uid, p) for uid in uids for p in (policy_name, vpol_name)}
        return reports if wanted <= covered else None

    await wait_for(all_reported, what="Kyverno's reports on all four", timeout=REPORTS_TIMEOUT)
    reported_after = time.monotonic() - started

    legacy, legacy_failing = await asyncio.to_thread(server_counts, kyverno, policy_name, "kyverno")
    cel, cel_failing = await asyncio.to_thread(server_counts, kyverno, vpol_name, VP_SOURCE)
    assert (legacy["fail"], legacy["pass"]) == (3, 1), legacy
    assert (cel["fail"], cel["pass"]) == (3, 1), cel
    assert legacy_failing == cel_failing == {namespace: 3}
    # What the seeded tests and the benchmark write for a ValidatingPolicy is what Kyverno wrote.
    for report in await asyncio.to_thread(reports_in, kyverno, namespace):
        for result in report["results"]:
            if result["policy"] == vpol_name:
                seeded = seed.report_result(
                    vpol_name, "", result["result"], source=seed.VALIDATING_POLICY_SOURCE
                )
                assert {**result, "timestamp": None} == {**seeded, "timestamp": None}

    stored = kyverno.policy(policy_name)
    assert {c["type"]: c["status"] for c in stored["status"]["conditions"]}["Ready"] == "True"

    text = await status_answer(w, ENV)
    rows = {line.split(" · ")[0]: line for line in text.splitlines() if line.startswith("`")}
    assert rows[f"`{policy_name}`"] == (
        f"`{policy_name}` · ClusterPolicy · Audit · ready · {legacy['fail']} fail"
    )
    assert rows[f"`{vpol_name}`"] == (
        f"`{vpol_name}` · ValidatingPolicy · Audit · ready · {cel['fail']} fail"
    )

    for name, counts, failing, kind in (
        (policy_name, legacy, legacy_failing, "ClusterPolicy"),
        (vpol_name, cel, cel_failing, "ValidatingPolicy"),
    ):
        text = await status_answer(w, name)
        assert (
            f"*{ENV}* · {kind} · Audit · ready · {counts['fail']} fail · {counts['warn']} warn"
        ) in text
        assert f"Failing in: {namespace} {failing[namespace]}" in text
    print(f"\nKyverno's reports on four new Deployments complete after {reported_after:.1f} s")


# -- 2. to 5. exceptions --------------------------------------------------------------------------


async def refused_first(kyverno: Kyverno, namespace: str, name: str, policy: str) -> str:
    """The create is refused by Kyverno for `policy` (waiting for its webhook to serve it)."""
    _, answer = await decided(kyverno, namespace, name, admitted=False, timeout=60)
    message = str(answer.get("message", ""))
    assert message.startswith("admission webhook"), message
    assert policy in message, message
    return message


async def excepted_and_admitted(
    w: World, policy: str, namespace: str, *, rules: str = "", days: str = "30"
) -> tuple[str, str, dict[str, Any], float]:
    """Request an exception for Deployments `excepted-*` in `namespace` through the modal,
    approve it; the request id, its message ts, the PolicyException the bot created, and
    how long after the approval Kyverno admitted the same create it refused."""
    rid, ts = await request_exception(
        w, policy, rules=rules, namespaces=namespace, names="excepted-*", days=days
    )
    text = await approve(w, ts)
    approved_at = time.monotonic()
    assert "✅ Approved by <@U0APPROVER1>" in text and "SEC-1" in text, text
    (issue,) = w.jira.with_label(f"policy-bot-{rid}")
    assert issue.key == "SEC-1"
    await decided(w.kyverno, namespace, EXCEPTED, admitted=True, timeout=HONOURED_TIMEOUT)
    honoured = time.monotonic() - approved_at
    groups = ("kyverno.io", "policies.kyverno.io")
    found = [o for g in groups for o in exception_objects(w.kyverno, g, rid)]
    assert len(found) == 1, found
    print(f"\nKyverno honoured the approved exception {honoured:.1f} s after the approval")
    return rid, ts, found[0], honoured


async def test_an_approved_exception_is_honoured_by_kyverno(
    w: World, kyverno: Kyverno, namespace: str, policy_name: str
) -> None:
    kyverno.apply(require_label_policy(policy_name, namespace, "Enforce"))
    kyverno.wait_policy_ready(policy_name)
    message = await refused_first(kyverno, namespace, EXCEPTED, policy_name)
    assert f"\n{policy_name}:\n" in message

    rids: list[str] = []
    with removed_afterwards(kyverno, "kyverno.io", rids):
        rid, _, obj, _ = await excepted_and_admitted(w, policy_name, namespace, rules=RULE)
        rids.append(rid)
        assert obj["apiVersion"] == "kyverno.io/v2" and obj["kind"] == "PolicyException"
        assert obj["metadata"]["namespace"] == kyverno.exception_namespace
        assert obj["spec"]["exceptions"] == [
            {"policyName": policy_name, "ruleNames": [RULE, AUTOGEN_RULE]}
        ]
        assert await request_state(w, rid) is State.ACTIVE
        # As narrow as requested: another name in the namespace is still refused.
        code, answer = await asyncio.to_thread(create_deployment, kyverno, namespace, "other")
        assert code == 400 and f"\n{policy_name}:\n" in answer["message"]


async def test_the_bots_expiry_sweep_makes_kyverno_refuse_again(
    w: World, kyverno: Kyverno, namespace: str, policy_name: str
) -> None:
    kyverno.apply(require_label_policy(policy_name, namespace, "Enforce"))
    kyverno.wait_policy_ready(policy_name)
    await refused_first(kyverno, namespace, EXCEPTED, policy_name)

    rids: list[str] = []
    with removed_afterwards(kyverno, "kyverno.io", rids):
        rid, ts, obj, _ = await excepted_and_admitted(
            w, policy_name, namespace, rules=RULE, days="2"
        )
        rids.append(rid)
        await asyncio.to_thread(kyverno.request, "DELETE", f"{deployments(namespace)}/{EXCEPTED}")

        # The bot's clock passes the expiry (the API server's clock does not move: the sweep
        # compares the bot's own expiry times only).
        w.clock.advance(timedelta(days=2, minutes=1))
        assert await w.bot.services.scheduler.fire("exceptions.expiry")
        code, _ = await asyncio.to_thread(kyverno.request, "GET", exception_path(kyverno, obj))
        assert code == 404, "the sweep deletes the PolicyException"
        assert await request_state(w, rid) is State.EXPIRED

        elapsed, answer = await decided(
            kyverno, namespace, EXCEPTED, admitted=False, timeout=HONOURED_TIMEOUT
        )
        assert f"\n{policy_name}:\n" in answer["message"]
        # The approval message's edit goes out through the notice outbox: it follows.
        await wait_for(
            lambda: (
                (m := w.slack.message(APPROVALS, ts)) and "⌛ Expired on" in blocks_text(m.blocks)
            ),
            what="the approval message to say it expired",
        )
        print(f"\nrefused again {elapsed:.1f} s after the sweep deleted the exception")


async def test_kyvernos_cleanup_controller_ends_the_exception_at_its_ttl(
    w: World, kyverno: Kyverno, namespace: str, policy_name: str
) -> None:
    """The bot writes the expiry as an absolute `cleanup.kyverno.io/ttl`; Kyverno's cleanup
    controller deletes the exception at that time (the bot's own sweep never runs here)."""
    kyverno.apply(require_label_policy(policy_name, namespace, "Enforce"))
    kyverno.wait_policy_ready(policy_name)
    await refused_first(kyverno, namespace, EXCEPTED, policy_name)

    rids: list[str] = []
    with removed_afterwards(kyverno, "kyverno.io", rids):
        # A one-day exception approved "a day ago, less TTL_AHEAD": it expires TTL_AHEAD from
        # now on the real clock, the one Kyverno reads.
        target = SYSTEM_CLOCK.now() + TTL_AHEAD - timedelta(days=1)
        w.clock.advance(target - w.clock.now())
        rid, _, obj, honoured = await excepted_and_admitted(
            w, policy_name, namespace, rules=RULE, days="1"
        )
        rids.append(rid)
        ttl = obj["metadata"]["labels"]["cleanup.kyverno.io/ttl"]
        expires = datetime.strptime(ttl, "%Y-%m-%dT%H%M%SZ").replace(tzinfo=UTC)
        assert abs(expires - (target + timedelta(days=1))) < timedelta(seconds=1)
        assert obj["metadata"]["annotations"]["policy-bot.io/expires-at"] == (
            f"{expires:%Y-%m-%dT%H:%M:%SZ}"
        )
        assert SYSTEM_CLOCK.now() < expires, f"Kyverno took {honoured:.1f} s to honour it"
        await asyncio.to_thread(kyverno.request, "DELETE", f"{deployments(namespace)}/{EXCEPTED}")

        path = exception_path(kyverno, obj)

        def gone() -> bool:
            return kyverno.request("GET", path)[0] == 404

        await wait_for(gone, what="the cleanup controller to delete it", timeout=CLEANUP_TIMEOUT)
        deleted_after = (SYSTEM_CLOCK.now() - expires).total_seconds()
        assert deleted_after >= 0, "deleted before its TTL"
        elapsed, answer = await decided(
            kyverno, namespace, EXCEPTED, admitted=False, timeout=HONOURED_TIMEOUT
        )
        assert f"\n{policy_name}:\n" in answer["message"]
        # Kyverno ended it, not the bot: the request is still active in the bot's record
        # until its own sweep, which then finds nothing left to delete.
        assert await request_state(w, rid) is State.ACTIVE
        w.clock.advance(timedelta(days=1, minutes=1))
        assert await w.bot.services.scheduler.fire("exceptions.expiry")
        assert await request_state(w, rid) is State.EXPIRED
        print(
            f"\ncleanup controller deleted the exception {deleted_after:.1f} s after its TTL; "
            f"refused again {elapsed:.1f} s later"
        )


async def test_a_validating_policy_exception_is_honoured_by_kyverno(
    w: World, kyverno: Kyverno, namespace: str, vpol_name: str
) -> None:
    kyverno.apply(team_label_policy(vpol_name, namespace, "Deny"))
    await asyncio.to_thread(wait_vpol_ready, kyverno, vpol_name)
    message = await refused_first(kyverno, namespace, EXCEPTED, vpol_name)
    assert f"Policy {vpol_name} failed: The label `team` is required." in message

    rids: list[str] = []
    with removed_afterwards(kyverno, "policies.kyverno.io", rids):
        rid, _, obj, _ = await excepted_and_admitted(w, vpol_name, namespace)
        rids.append(rid)
        assert obj["apiVersion"] == "policies.kyverno.io/v1" and obj["kind"] == "PolicyException"
        assert obj["metadata"]["namespace"] == kyverno.exception_namespace
        assert obj["spec"]["policyRefs"] == [{"name": vpol_name, "kind": "ValidatingPolicy"}]
        assert exception_objects(kyverno, "kyverno.io", rid) == []
        code, answer = await asyncio.to_thread(create_deployment, kyverno, namespace, "other")
        assert code == 400 and f"Policy {vpol_name} failed" in answer["message"]
