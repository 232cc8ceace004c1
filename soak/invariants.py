"""What must hold once the faults are over, read from Slack, JIRA, the cluster and the store.

Slack and JIRA are read from the emulators' own records (what a person would see), the cluster
through its API server, the store with the bot's own tables; the audit chain is verified by the
bot's command line, as an operator would.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import sys
import time
from collections import Counter
from typing import Any

import sqlalchemy as sa

from bot.alerts.tables import alert_messages, alert_notifications
from bot.audit import AuditEntry as Entry
from bot.clock import SYSTEM_CLOCK
from bot.exceptions.model import State
from bot.exceptions.store import RequestStore
from bot.notices.outbox import EVENT_TYPE
from bot.notices.tables import PENDING, POST, SENT, notices
from bot.playground.kyverno import EXCEPTION_NAMESPACE
from bot.playground.slack_emulator import Message
from bot.playground.world import CHANNELS, PEOPLE
from bot.store.audit_trail import AuditTrail
from soak.stage import PROMOTED, Stage
from soak.tally import Tally
from soak.users import APPROVALS, REQUESTER, Script, promoted_mode

ALERTS = CHANNELS["alerts"]
WORD_END = r"\b"
OUTCOMES = {State.ACTIVE, State.DENIED, State.FAILED}


def shown(message: Message) -> str:
    """Everything a message shows: its text and every string in its blocks."""
    return message.text + "\n" + json.dumps(message.blocks, ensure_ascii=False)


def conversations() -> list[str]:
    return [*CHANNELS.values(), *("D" + p.id[1:] for p in PEOPLE)]


def policy_exceptions(stage: Stage) -> list[dict[str, Any]]:
    listed = stage.plane.kubectl(
        "get", "policyexceptions.kyverno.io", "-n", EXCEPTION_NAMESPACE, "-o", "json", timeout=60
    )
    return list(json.loads(listed.stdout)["items"])


def posts_of(stage: Stage, pattern: str) -> str:
    """The chat.postMessage calls whose parameters match `pattern`: when (emulator clock),
    HTTP status and error, so a duplicate can be laid next to the fault schedule."""
    found = [
        f"t+{c.at - stage.started:.0f}s:{c.status}:{c.error or 'ok'}"
        for c in stage.slack.calls("chat.postMessage")
        if re.search(pattern, json.dumps(c.params, default=str))
    ]
    return "posts " + ", ".join(found)


async def check_requests(stage: Stage, tally: Tally, entries: list[Entry]) -> None:
    requests = await RequestStore(stage.database).requests(list(State))
    exceptions = await asyncio.to_thread(policy_exceptions, stage)
    by_rid: Counter[str] = Counter(
        o["metadata"].get("labels", {}).get("policy-bot.io/request-id", "")
        for o in exceptions
        if o["metadata"].get("labels", {}).get("app.kubernetes.io/managed-by") == "policy-bot"
    )
    active = {str(r.id) for r in requests if r.state is State.ACTIVE}
    dms = [shown(m) for m in stage.slack.messages("D" + REQUESTER[1:])]
    for request in requests:
        rid = str(request.id)
        tally.check(
            "request has one outcome",
            request.state in OUTCOMES,
            f"{rid} is {request.state.value}",
        )
        decisions = [
            e
            for e in entries
            if e.target == rid
            and e.action in ("exception.approve", "exception.deny")
            and e.outcome == "ok"
        ]
        tally.check(
            "request decided once in the audit trail",
            len(decisions) == (1 if request.state in (State.ACTIVE, State.DENIED) else 0),
            f"{rid} ({request.state.value}) has {len(decisions)} decisions audited",
        )
        tickets = stage.jira.with_label(f"policy-bot-{rid}")
        want = "exactly one" if request.state is State.ACTIVE else "at most one"
        tally.check(
            "request has at most one ticket, one if approved",
            len(tickets) == 1 if request.state is State.ACTIVE else len(tickets) <= 1,
            f"{rid} ({request.state.value}) has {len(tickets)} tickets, wants {want}: "
            f"{[t.key for t in tickets]}",
        )
        if request.state is State.ACTIVE:
            tally.check(
                "approved request names its ticket",
                request.ticket is not None and [t.key for t in tickets] == [request.ticket],
                f"{rid} names {request.ticket}, JIRA has {[t.key for t in tickets]}",
            )
        tally.check(
            "PolicyException exists iff the request is active",
            by_rid[rid] == (1 if request.state is State.ACTIVE else 0),
            f"{rid} ({request.state.value}) has {by_rid[rid]} PolicyExceptions",
        )
        parents = [m for m in stage.slack.parents(APPROVALS) if rid in m.text]
        tally.check(
            "request has one approval message",
            len(parents) == 1,
            f"{rid} has {len(parents)} approval messages",
        )
        word = {State.ACTIVE: "Approved by", State.DENIED: "Denied by"}.get(request.state)
        if word and len(parents) == 1:
            tally.check(
                "approval message shows the outcome",
                word in shown(parents[0]),
                f"{rid} ({request.state.value}) message lacks {word!r}",
            )
        told = {State.ACTIVE: "was approved by", State.DENIED: "was denied by"}.get(request.state)
        if told:
            count = sum(rid in t and told in t for t in dms)
            tally.check(
                "requester told the outcome once",
                count == 1,
                f"{rid} ({request.state.value}): {count} DMs {told!r}",
            )
    for rid, count in by_rid.items():
        tally.check(
            "PolicyException belongs to an active request",
            rid in active and count == 1,
            f"PolicyException(s) for {rid or 'no request id'}: {count}, request active: "
            f"{rid in active}",
        )


async def check_alerts(stage: Stage, script: Script, tally: Tally) -> None:
    parents = stage.slack.parents(ALERTS)
    for policy, firing in script.groups.items():
        mine = [m for m in parents if re.search(rf"{re.escape(policy)}\b", shown(m))]
        tally.messages["expected"] += 1
        tally.messages["delivered"] += min(1, len(mine))
        tally.messages["duplicated"] += max(0, len(mine) - 1)
        tally.check(
            "alert group has one parent",
            len(mine) == 1,
            f"{policy}: {len(mine)} parents; {posts_of(stage, re.escape(policy) + WORD_END)}",
        )
        if len(mine) == 1:
            want = "FIRING" if firing else "RESOLVED"
            tally.check(
                "alert parent shows the final state",
                want in shown(mine[0]),
                f"{policy} should show {want}: {mine[0].text[:120]!r}",
            )
    m = alert_messages.c
    async with stage.database.connect() as conn:
        pending = await conn.scalar(sa.select(sa.func.count()).where(m.pending.is_(True)))
        unapplied = await conn.scalar(
            sa.select(sa.func.count()).where(alert_notifications.c.applied.is_(False))
        )
    tally.check("alert outbox drained", pending == 0, f"{pending} alert messages still pending")
    tally.check("alert inbox applied", unapplied == 0, f"{unapplied} notifications not applied")


async def check_notices(stage: Stage, tally: Tally) -> None:
    """Every post the notice outbox owes is in Slack exactly once, found by its metadata."""
    seen: Counter[int] = Counter()
    for channel in conversations():
        for message in stage.slack.messages(channel):
            meta = message.metadata or {}
            if meta.get("event_type") == EVENT_TYPE:
                seen[int(meta.get("event_payload", {}).get("outbox_id", -1))] += 1
    n = notices.c
    async with stage.database.connect() as conn:
        rows = (
            await conn.execute(
                sa.select(n.id, n.state, n.channel, n.text).where(
                    n.op == POST, n.state.in_([SENT, PENDING])
                )
            )
        ).all()
    for row_id, state, channel, text in rows:
        tally.messages["expected"] += 1
        tally.messages["delivered"] += min(1, seen[row_id])
        tally.messages["duplicated"] += max(0, seen[row_id] - 1)
        tally.check(
            "notice delivered exactly once",
            state == SENT and seen[row_id] == 1,
            f"notice {row_id} ({state}) to {channel} found {seen[row_id]} times: {text[:80]!r}; "
            f"{posts_of(stage, rf'outbox_id[^0-9]+{row_id}[^0-9]')}",
        )


async def check_audit(stage: Stage, tally: Tally) -> list[Entry]:
    replica = stage.replicas["a"]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "audit",
        "verify",
        "--config",
        str(replica.config),
        env={**stage.env, "PATH": "/usr/bin:/bin"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 120)
    tally.check(
        "audit chain verifies (python -m bot audit verify)",
        process.returncode == 0,
        f"exit {process.returncode}: {out.decode(errors='replace')[-300:]}",
    )
    return await AuditTrail(stage.database, clock=SYSTEM_CLOCK).entries()


def check_backups(stage: Stage, script: Script, tally: Tally, entries: list[Entry]) -> None:
    """Each backup that ran left its bundle in the directory target and its file in Slack once;
    the figures say how many acknowledged commands never ran (their replica was killed)."""
    runs = [e for e in entries if e.action == "backup.run" and e.target]
    tally.messages["backups acknowledged"] = script.backups_acknowledged
    tally.messages["backups run"] = len(runs)
    bundles = [p.name for p in stage.backups.iterdir()]
    for entry in runs:
        bid = str(entry.target)
        tally.check(
            "backup bundle in the dir target",
            any(name.startswith(bid) for name in bundles),
            f"{bid} ({entry.outcome}) not among {bundles}",
        )
        shared = [f for f in stage.slack.files if f.completed and f.filename == f"{bid}.tar.gz"]
        tally.check(
            "backup file shared once", len(shared) == 1, f"{bid}: shared {len(shared)} times"
        )


def check_promotion(stage: Stage, tally: Tally, entries: list[Entry]) -> None:
    """The cluster holds the mode of the last change the audit trail records: no write the
    trail lacks (a crash between the two), none it claims that did not happen."""
    changes = [
        e
        for e in entries
        if e.target == f"ClusterPolicy/{PROMOTED}"
        and e.outcome == "applied"
        and e.action in ("promotion.apply", "promotion.demote")
    ]
    tally.messages["promotions applied"] = sum(e.action == "promotion.apply" for e in changes)
    tally.messages["demotions applied"] = sum(e.action == "promotion.demote" for e in changes)
    want = "Audit"
    if changes and changes[-1].action == "promotion.apply":
        want = "Enforce"
    held = promoted_mode(stage)
    tally.check(
        "promoted policy's mode is the last audited change",
        held == want,
        f"{PROMOTED} is {held} in the cluster, the audit trail says {want} "
        f"({len(changes)} changes audited)",
    )
    modes = [e.action for e in changes]
    alternating = all(a != b for a, b in itertools.pairwise(modes))
    # Every promotion entry, errors and refusals included, with its time and actor: what a
    # person needs to place a broken alternation next to the faults printed above.
    t0 = stage.started + SYSTEM_CLOCK.now().timestamp() - time.monotonic()  # t+0, wall clock
    trail = [
        f"t+{e.at.timestamp() - t0:.0f}s {e.action} {e.outcome} by {e.actor}"
        for e in entries
        if e.target == f"ClusterPolicy/{PROMOTED}" and e.action.startswith("promotion.")
    ]
    tally.check(
        "promotions and demotions alternate in the audit trail",
        alternating,
        "audited changes in order: " + "; ".join(trail),
    )


async def check_all(stage: Stage, script: Script, tally: Tally) -> None:
    # Acknowledgements after Slack's 3 s (the person saw an error): a figure, not an
    # invariant, as a loaded machine makes them too.
    tally.messages["acknowledgements later than 3 s"] = len(stage.slack.late_acks)
    entries = await check_audit(stage, tally)
    check_backups(stage, script, tally, entries)
    check_promotion(stage, tally, entries)
    await check_requests(stage, tally, entries)
    await check_alerts(stage, script, tally)
    await check_notices(stage, tally)
