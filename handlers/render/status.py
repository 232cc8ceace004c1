"""Block Kit for `/policy status`: the overview, one environment, one policy. Pure."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta

from bot.errors import BotError
from bot.ladder import StageView
from bot.policies import Mode, Policy
from bot.status import (
    HealthSummary,
    PolicyInEnvironment,
    PolicyReportView,
    Snapshot,
    active_exceptions,
    mode_counts,
)
from handlers.render import kit

MODE_ORDER = (Mode.ENFORCE.value, Mode.AUDIT.value, Mode.MIXED.value, Mode.NONE.value)
SHARE_ACTION = "status_share"


def overview(
    snapshots: Sequence[Snapshot], *, now: datetime, share: str | None = ""
) -> list[kit.Block]:
    blocks: list[kit.Block] = [kit.header(f"Kyverno policies · {len(snapshots)} environments")]
    for snap in snapshots:
        blocks.append(kit.divider())
        if snap.error is not None:
            blocks.append(
                kit.section(f"*{snap.environment}* · :warning: {snap.error.user_message}")
            )
            continue
        blocks.append(kit.section(_environment_summary(snap, now)))
    return _with_share(blocks, share)


def _environment_summary(snap: Snapshot, now: datetime) -> str:
    counts = mode_counts(snap.policies)
    modes = " · ".join(f"{counts[m]} {m}" for m in MODE_ORDER if counts.get(m))
    not_ready = sum(1 for p in snap.policies if p.ready is False)
    unknown = sum(1 for p in snap.policies if p.ready is None)
    totals = snap.tally.totals
    lines = [
        f"*{snap.environment}* · {len(snap.policies)} policies" + (f": {modes}" if modes else ""),
        f"Not ready: {not_ready}" + (f" · readiness not reported: {unknown}" if unknown else ""),
        f"Results: {totals['fail']:,} fail · {totals['warn']:,} warn · {totals['error']:,} error"
        f" · {totals['pass']:,} pass ({snap.tally.reports:,} reports)",
    ]
    top = snap.tally.top_failing(3)
    if top:
        lines.append("Top failing: " + " · ".join(f"`{k[1]}` {n:,}" for k, n in top))
    others = snap.tally.others
    if others:
        shown = ", ".join(kit.escape(source) for source, _ in others.most_common(4))
        more = f" and {len(others) - 4} more" if len(others) > 4 else ""
        lines.append(
            f"Also in the report APIs: {sum(others.values()):,} results from {shown}{more} "
            "(not counted above)"
        )
    active, soon = active_exceptions(snap, now)
    lines.append(f"Exceptions: {active} active · {soon} expiring within 7 days")
    if snap.backups_known:
        lines.append(_backup_line(snap.last_backup, now))
    if snap.health is not None:
        lines.append(_health_line(snap.environment, snap.health))
    return "\n".join(lines)


def _backup_line(last: datetime | None, now: datetime) -> str:
    if last is None:
        return "Last backup: none yet (`/policy backup`)"
    return f"Last backup: {_age(now - last)} ago ({last:%Y-%m-%d %H:%M} UTC)"


def _age(delta: timedelta) -> str:
    minutes = max(0, int(delta.total_seconds() // 60))
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h"
    return f"{minutes // (24 * 60)} days"


def _health_line(environment: str, health: HealthSummary) -> str:
    parts = [f"Kyverno {health.version}" if health.version else "Kyverno"]
    if health.problem:
        return " · ".join([*parts, health.problem, f"see `/policy doctor {environment}`"])
    if health.admission is not None:
        ready, desired = health.admission
        parts.append(f"admission {'?' if ready is None else ready}/{desired}")
    if health.failures:
        parts.append(f"{health.failures} failing check{'s' if health.failures != 1 else ''}")
    if health.warnings:
        parts.append(f"{health.warnings} warning{'s' if health.warnings != 1 else ''}")
    parts.append(f"see `/policy doctor {environment}`")
    return " · ".join(parts)


def environment(snap: Snapshot, *, now: datetime, share: str | None = "") -> list[kit.Block]:
    if snap.error is not None:
        return error(snap.error)
    blocks: list[kit.Block] = [
        kit.header(f"{snap.environment} · {len(snap.policies)} policies"),
        kit.section(_environment_summary(snap, now)),
    ]
    rows = [
        _policy_row(snap, p)
        for p in sorted(snap.policies, key=lambda p: (-snap.failures(p), p.name))
    ]
    blocks.append(kit.divider())
    # Several sections of whole lines; the last one says how many rows did not fit.
    per_section = 25
    room = kit.MAX_BLOCKS - len(blocks) - 2
    chunks = [rows[i : i + per_section] for i in range(0, len(rows), per_section)]
    for index, chunk in enumerate(chunks[:room]):
        shown_before = index * per_section
        last = index == min(len(chunks), room) - 1
        more = len(rows) - shown_before - len(chunk)
        blocks.append(
            kit.lines_section(chunk, more=f"… and {more} more" if last and more > 0 else None)
        )
    if not rows:
        blocks.append(kit.section("No Kyverno policies in this environment."))
    blocks.append(kit.context([f"Kinds served: {', '.join(snap.kinds) or 'none'}"]))
    return _with_share(blocks, share)


def _policy_row(snap: Snapshot, policy: Policy) -> str:
    ready = {True: "ready", False: ":x: not ready", None: "readiness unknown"}[policy.ready]
    fails = snap.failures(policy)
    where = f" ({policy.namespace})" if policy.namespace else ""
    return (
        f"`{policy.name}`{where} · {policy.kind} · {policy.mode.value} · {ready} · {fails:,} fail"
    )


def policy(view: PolicyReportView, *, share: str | None = "") -> list[kit.Block]:
    return policies((view,), share=share)


def policies(views: Sequence[PolicyReportView], *, share: str | None = "") -> list[kit.Block]:
    """One policy across environments; several when one name stands for several kinds."""
    blocks: list[kit.Block] = []
    if len(views) > 1:
        names = ", ".join(f"`{kit.escape(v.name)}`" for v in views)
        blocks.append(
            kit.context([f"{len(views)} policies have this name: {names}. Name one to act on it."])
        )
    for view in views:
        blocks.append(kit.header(f"{view.name} · {len(view.environments)} environments"))
        for env in view.environments:
            blocks.append(kit.section(_policy_in(env)))
        if view.stage is not None:
            blocks.append(kit.divider())
            blocks.append(kit.section(_stage(view.stage)))
    return _with_share(kit.fit(blocks, reserve=2), share)


def _policy_in(env: PolicyInEnvironment) -> str:
    if env.error is not None:
        return f"*{env.environment}* · :warning: {env.error.user_message}"
    p = env.policy
    if p is None:
        return f"*{env.environment}* · not deployed"
    ready = {
        True: "ready",
        False: f":x: not ready {kit.escape(p.ready_message)}",
        None: "readiness unknown",
    }[p.ready]
    lines = [
        f"*{env.environment}* · {p.kind} · {p.mode.value} · {ready}"
        f" · {env.fail:,} fail · {env.warn:,} warn"
    ]
    if p.rules:
        lines.append("Rules: " + " · ".join(kit.escape(r.describe()) for r in p.rules))
    if env.top_namespaces:
        lines.append("Failing in: " + " · ".join(f"{ns} {n:,}" for ns, n in env.top_namespaces))
    if env.exceptions:
        lines.append(
            "Exceptions: "
            + " · ".join(
                f"{e.name}"
                + (f" ({e.ticket})" if e.ticket else "")
                + (
                    f", expires {e.expires_at.date().isoformat()}"
                    if e.expires_at
                    else ", no expiry"
                )
                for e in env.exceptions
            )
        )
    return "\n".join(lines)


def _stage(stage: StageView) -> str:
    changed = [f":warning: {kit.escape(note)}" for note in stage.notes]
    if stage.current is None:
        target = stage.next.label() if stage.next else "the first stage"
        return "\n".join(
            [f"Promotion: not on the ladder yet · next step: deploy to {target}", *changed]
        )
    lines = [f"Promotion stage: {stage.current.label()}", *changed]
    if stage.next is None:
        lines.append("Top of the ladder: nothing further to promote.")
        return "\n".join(lines)
    for gate in stage.gates:
        lines.append(
            f"{':white_check_mark:' if gate.passed else ':x:'} {gate.description}: {gate.figure}"
        )
    verdict = "passes" if stage.next_passes else "blocked"
    lines.append(f"Next step: promote to {stage.next.label()} — {verdict}")
    return "\n".join(lines)


def error(err: BotError) -> list[kit.Block]:
    return [kit.section(f":warning: {err.user_message}")]


def share_value(args: Sequence[str]) -> str:
    """The `status_share` button value: the query to run again, never the answer itself."""
    return json.dumps({"q": list(args)}, separators=(",", ":"))


def parse_share_value(value: str) -> list[str]:
    try:
        data = json.loads(value)
        query = data["q"]
    except (ValueError, KeyError, TypeError):
        return []
    return [str(a) for a in query][:2] if isinstance(query, list) else []


def _with_share(blocks: list[kit.Block], share: str | None) -> list[kit.Block]:
    if share is None:
        return kit.fit(blocks)
    button = kit.button("Post in channel", action_id=SHARE_ACTION, value=share)
    return [*kit.fit(blocks, reserve=1), kit.actions([button], block_id="status_share")]
