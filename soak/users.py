"""Scripted people doing what people do, over and over, whatever is broken at the moment.

Each flow goes through the bot's real endpoints as Slack would call them (signed by
`SignedSlackClient`), against whichever replica is alive; a flow that meets a fault is counted
as not completed and the person simply goes on. What the bot owes them is checked at the end
(`soak.invariants`), not here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp

from bot.clock import SYSTEM_CLOCK
from bot.exceptions.model import State
from bot.exceptions.store import RequestStore
from bot.playground import sample
from bot.playground.slack_emulator import Message
from bot.playground.world import CHANNELS, PEOPLE
from soak.stage import ENVIRONMENT, PROMOTED, WEBHOOK_TOKEN, Replica, Stage
from soak.tally import Tally
from tests.alert_samples import alert, payload

REQUESTER = PEOPLE[0].id
APPROVER, SECOND_APPROVER = PEOPLE[1].id, PEOPLE[2].id
ADMIN = PEOPLE[3].id
GENERAL, APPROVALS = CHANNELS["general"], CHANNELS["approvals"]
WAIT_S = 30.0
RID = re.compile(r"R-[0-9a-f]{8}")


class FlowFailed(Exception):
    """A step did not happen (a fault was in the way): the person gives up on this round."""


@dataclass
class Script:
    """What the people meant, for the checker: each request's decision and each alert
    group's last state the bot acknowledged."""

    decisions: dict[str, str] = field(default_factory=dict)
    groups: dict[str, bool] = field(default_factory=dict)  # policy → firing
    resources: dict[str, list[str]] = field(default_factory=dict)
    backups_acknowledged: int = 0


def replica(stage: Stage) -> Replica:
    chosen = stage.any_replica()
    if chosen is None:
        raise FlowFailed("no replica alive")
    return chosen


async def request_ids(stage: Stage) -> set[str]:
    found = await RequestStore(stage.database).requests(list(State))
    return {str(r.id) for r in found}


def approval_message(stage: Stage, rid: str) -> str | None:
    for message in stage.slack.parents(APPROVALS):
        if rid in message.text:
            return message.ts
    return None


async def until(condition: Callable[[], object], what: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise FlowFailed(f"{what}: not within {timeout:g} s")
        await asyncio.sleep(0.25)


async def file_request(stage: Stage, n: int) -> str:
    """Open the form, fill it in, submit it; the new request's id from the store."""
    before = await request_ids(stage)
    views = len(stage.slack.views)
    opened = await replica(stage).client.command(
        "/policy", "exception", user=REQUESTER, channel=GENERAL
    )
    if opened.status != 200:
        raise FlowFailed(f"/policy exception answered {opened.status}")
    told = len(stage.slack.ephemeral(user=REQUESTER))
    try:
        await until(
            lambda: any(v.user == REQUESTER for v in stage.slack.views[views:]), "the form opened"
        )
    except FlowFailed as exc:
        said = [e.text for e in stage.slack.ephemeral(user=REQUESTER)[told:]]
        raise FlowFailed(f"{exc} (acknowledged {opened.text[:80]!r}, then said {said})") from None
    view = next(v for v in reversed(stage.slack.views) if v.user == REQUESTER)
    values = {
        "environment": ENVIRONMENT,
        "policy": sample.TEAM_LABEL_POLICY,
        "rules": sample.TEAM_LABEL_RULE,
        "namespaces": "team-payments",
        "kinds": "Deployment",
        "names": f"soak-{n}-*",
        "justification": f"Soak round {n}: a legacy chart that is being replaced.",
        "jira_key": "",
        "days": "30",
    }
    submitted = await replica(stage).client.view_submission(
        view.id, {k: {k: v} for k, v in values.items()}, user=REQUESTER
    )
    if submitted.status != 200 or submitted.text:
        raise FlowFailed(f"submission answered {submitted.status} {submitted.text[:200]}")
    found: set[str] = set()

    async def new_ids() -> set[str]:
        return await request_ids(stage) - before

    deadline = time.monotonic() + WAIT_S
    while not (found := await new_ids()):
        if time.monotonic() > deadline:
            raise FlowFailed("the submitted request was not stored")
        await asyncio.sleep(0.5)
    (rid,) = found
    return rid


async def decide(stage: Stage, rid: str, decision: str) -> None:
    """An approver clicks Approve, or the second approver Deny and gives a reason."""
    await until(lambda: approval_message(stage, rid), f"approval message of {rid}")
    ts = approval_message(stage, rid)
    if decision == "approve":
        clicked = await replica(stage).client.block_action(
            "exception_approve", user=APPROVER, channel=APPROVALS, message_ts=ts
        )
        if clicked.status != 200:
            raise FlowFailed(f"approve answered {clicked.status}")
        return
    views = len(stage.slack.views)
    clicked = await replica(stage).client.block_action(
        "exception_deny", user=SECOND_APPROVER, channel=APPROVALS, message_ts=ts
    )
    if clicked.status != 200:
        raise FlowFailed(f"deny answered {clicked.status}")

    def reason_form() -> bool:
        return any(v.private_metadata == rid for v in stage.slack.views[views:])

    await until(reason_form, "the reason form opened")
    form = next(v for v in reversed(stage.slack.views) if v.private_metadata == rid)
    done = await replica(stage).client.view_submission(
        form.id, {"reason": {"reason": "Fix the chart instead."}}, user=SECOND_APPROVER
    )
    if done.status != 200 or done.text:
        raise FlowFailed(f"reason answered {done.status} {done.text[:200]}")


async def exception_flow(stage: Stage, script: Script, n: int) -> None:
    rid = await file_request(stage, n)
    script.decisions[rid] = "deny" if stage.rng.random() < 0.3 else "approve"
    await decide(stage, rid, script.decisions[rid])


async def status_flow(stage: Stage, script: Script, n: int) -> None:
    user = stage.rng.choice(PEOPLE).id
    answer = await replica(stage).client.command("/policy", "status", user=user, channel=GENERAL)
    if answer.status != 200:
        raise FlowFailed(f"/policy status answered {answer.status}")


async def backup_flow(stage: Stage, script: Script, n: int) -> None:
    answer = await replica(stage).client.command(
        "/policy", f"backup {ENVIRONMENT}", user=ADMIN, channel=GENERAL
    )
    if answer.status != 200:
        raise FlowFailed(f"/policy backup answered {answer.status}")
    script.backups_acknowledged += 1


async def post_webhook(stage: Stage, body: dict[str, object]) -> None:
    """Deliver as Alertmanager does: retry (any replica) until one answers 2xx."""
    headers = {"Authorization": f"Bearer {WEBHOOK_TOKEN}", "Content-Type": "application/json"}
    deadline = time.monotonic() + 120
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while time.monotonic() < deadline:
            target = stage.any_replica()
            if target is not None:
                try:
                    url = target.process.url + "/alertmanager"
                    async with session.post(url, data=json.dumps(body), headers=headers) as r:
                        if r.status < 300:
                            return
                except (aiohttp.ClientError, TimeoutError, OSError):
                    pass
            await asyncio.sleep(2)
    raise FlowFailed("no replica took the notification within 120 s")


async def alert_flow(stage: Stage, script: Script, n: int) -> None:
    """Fire a new group, add a resource to one, or resolve one."""
    firing = [p for p, on in script.groups.items() if on]
    roll = stage.rng.random()
    if not firing or roll < 0.4:
        policy = f"soak-policy-{n}"
        script.resources[policy] = [f"svc-{i}" for i in range(stage.rng.randint(1, 4))]
        up = True
    elif roll < 0.6:
        policy = stage.rng.choice(firing)
        script.resources[policy].append(f"svc-{len(script.resources[policy])}")
        up = True
    else:
        policy, up = stage.rng.choice(firing), False
    now = SYSTEM_CLOCK.now()
    alerts = [
        alert(
            name,
            policy=policy,
            namespace="team-payments",
            status="firing" if up else "resolved",
            ends_at=None if up else now,
            extra_labels={"environment": ENVIRONMENT},
        )
        for name in script.resources[policy]
    ]
    await post_webhook(stage, payload(alerts))
    script.groups[policy] = up


def promoted_mode(stage: Stage) -> str:
    """The mode the cluster holds for the promoted policy (read past the proxy)."""
    listed = stage.plane.kubectl("get", "clusterpolicies.kyverno.io", PROMOTED, "-o", "json")
    return str(json.loads(listed.stdout)["spec"]["validationFailureAction"])


async def mode_becomes(stage: Stage, want: str, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while await asyncio.to_thread(promoted_mode, stage) != want:
        if time.monotonic() > deadline:
            raise FlowFailed(f"{what}: not within {timeout:g} s")
        await asyncio.sleep(1)


async def promotion_flow(stage: Stage, script: Script, n: int) -> None:
    """The promoter moves the policy to Enforce (a plan, Promote clicked by a second promoter)
    or demotes it to Audit."""
    mode = await asyncio.to_thread(promoted_mode, stage)
    if mode == "Enforce":
        asked = {e.ts for e in stage.slack.ephemeral(GENERAL, ADMIN)}
        answer = await replica(stage).client.command(
            "/policy", f"demote {PROMOTED} {ENVIRONMENT}", user=ADMIN, channel=GENERAL
        )
        if answer.status != 200:
            raise FlowFailed(f"/policy demote answered {answer.status}")

        def prompt() -> str | None:  # production asks first
            return next(
                (
                    e.ts
                    for e in stage.slack.ephemeral(GENERAL, ADMIN)
                    if e.ts not in asked and "demote_confirm" in str(e.blocks)
                ),
                None,
            )

        await until(prompt, "the demote prompt")
        clicked = await replica(stage).client.block_action(
            "demote_confirm", user=ADMIN, channel=GENERAL, message_ts=prompt(), ephemeral=True
        )
        if clicked.status != 200:
            raise FlowFailed(f"Demote answered {clicked.status}")
        await mode_becomes(stage, "Audit", "the demotion in the cluster")
        return
    before = {m.ts for m in stage.slack.parents(GENERAL)}
    answer = await replica(stage).client.command(
        "/policy", f"promote {PROMOTED}", user=ADMIN, channel=GENERAL
    )
    if answer.status != 200:
        raise FlowFailed(f"/policy promote answered {answer.status}")

    def plan() -> Message | None:
        return next(
            (
                m
                for m in stage.slack.parents(GENERAL)
                if m.ts not in before and m.text.startswith("Promotion plan")
            ),
            None,
        )

    await until(plan, "the promotion plan")
    posted = plan()
    assert posted is not None
    told = len(stage.slack.ephemeral(user=APPROVER))
    clicked = await replica(stage).client.block_action(
        "promote_confirm", user=APPROVER, channel=GENERAL, message_ts=posted.ts
    )
    if clicked.status != 200:
        raise FlowFailed(f"Promote answered {clicked.status}")
    try:
        await mode_becomes(stage, "Enforce", "the promotion in the cluster")
    except FlowFailed as exc:
        said = [e.text[:100] for e in stage.slack.ephemeral(user=APPROVER)[told:]]
        raise FlowFailed(f"{exc} (the promoter was told {said})") from None


Flow = Callable[[Stage, Script, int], Awaitable[None]]
FLOWS: dict[str, tuple[Flow, float]] = {
    # kind: (flow, mean seconds between rounds)
    "exception request": (exception_flow, 6.0),
    "alert notification": (alert_flow, 5.0),
    "/policy status": (status_flow, 12.0),
    "/policy backup": (backup_flow, 45.0),
    "promotion / demotion": (promotion_flow, 20.0),
}


async def person(
    stage: Stage, script: Script, tally: Tally, kind: str, stop: asyncio.Event
) -> None:
    flow, every = FLOWS[kind]
    n = 0
    while not stop.is_set():
        n += 1
        try:
            await flow(stage, script, n)
        except (FlowFailed, aiohttp.ClientError, TimeoutError, OSError) as exc:
            tally.flow(kind, ok=False)
            print(f"  {kind} #{n} not completed: {exc!s:.160}", flush=True)
        except Exception as exc:  # the store down mid-flow, and the like
            tally.flow(kind, ok=False)
            print(f"  {kind} #{n} not completed: {type(exc).__name__}: {exc!s:.160}", flush=True)
        else:
            tally.flow(kind, ok=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), stage.rng.uniform(0.5, 1.5) * every)


async def settle_decisions(stage: Stage, script: Script, deadline: float) -> None:
    """After the faults: the approvers decide every request still waiting, as they would when
    told the first attempt failed (a JIRA outage leaves a request pending)."""
    while time.monotonic() < deadline:
        found = await RequestStore(stage.database).requests([State.PENDING, State.APPROVING])
        if not found:
            return
        for request in found:
            rid = str(request.id)
            if request.state is State.APPROVING:
                continue  # an approval under way: its outcome is coming
            decision = script.decisions.setdefault(rid, "approve")
            try:
                await decide(stage, rid, decision)
            except (FlowFailed, aiohttp.ClientError, TimeoutError, OSError) as exc:
                print(f"  deciding {rid} again: {exc!s:.160}", flush=True)
        await asyncio.sleep(5)
