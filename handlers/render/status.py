"""Block Kit for `/policy status`: the overview, one environment, one policy. Pure.

Each answer says first what a reader acts on (which environment fails, what blocks the next
promotion) and keeps what is fine to one word; the details a person drills into are one
command away. Every answer comes with a notification text that carries the figures.
"""

from __future__ import annotations

import heapq
import json
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta

from bot.errors import BotError
from bot.ladder import GateResult, StageView
from bot.policies import Mode, Policy
from bot.ports.snapshot import HealthSummary, Snapshot
from bot.reports import ranked
from bot.status.service import (
    PolicyInEnvironment,
    PolicyReportView,
    active_exceptions,
    mode_counts,
)
from handlers.render import kit

MODE_ORDER = (Mode.ENFORCE.value, Mode.AUDIT.value, Mode.MIXED.value, Mode.NONE.value)
SHARE_ACTION = "status_share"
TOP_FAILING = 3
DEFAULT_KIND = "ClusterPolicy"

Message = tuple[str, list[kit.Block]]

RED, YELLOW, GREEN, UNREACHABLE = (
    ":red_circle:",
    ":large_yellow_circle:",
    ":large_green_circle:",
    ":warning:",
)


# -- overview ---------------------------------------------------------------------------


def overview(
    snapshots: Sequence[Snapshot], *, now: datetime, share: str | None = ""
) -> list[kit.Block]:
    return overview_message(snapshots, now=now, share=share)[1]


def overview_message(
    snapshots: Sequence[Snapshot], *, now: datetime, share: str | None = ""
) -> Message:
    """One line per environment, then what spans them: top failing, exceptions, Kyverno,
    last backup."""
    title = f"Policy status · {_count(len(snapshots), 'environment')} · {now:%H:%M} UTC"
    rows = [_environment_line(s) for s in snapshots]
    blocks: list[kit.Block] = [kit.header(title), kit.lines_section(rows, more="… and more")]
    facts = _overview_facts(snapshots, now)
    if facts:
        blocks.append(kit.divider())
        blocks.append(kit.lines_section(facts, more="… and more"))
    others = _others_line(snapshots)
    if others:
        blocks.append(kit.context([others]))
    text = f"{title}: " + " · ".join(_environment_figures(s) for s in snapshots)
    return kit.clip(text, kit.MAX_FALLBACK_TEXT), _with_share(blocks, share)


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _expire(n: int) -> str:
    return "expires" if n == 1 else "expire"


def _policies(n: int) -> str:
    return f"{n:,} {'policy' if n == 1 else 'policies'}"


def _not_ready(snap: Snapshot) -> int:
    return sum(1 for p in snap.policies if p.ready is False)


def _signal(snap: Snapshot) -> str:
    """Colour for the eye; the words next to it carry the meaning."""
    if snap.error is not None:
        return UNREACHABLE
    totals = snap.tally.totals
    health = snap.health
    if totals["fail"] or totals["error"] or _not_ready(snap) or (health and health.failures):
        return RED
    if totals["warn"] or (health and (health.warnings or health.problem)):
        return YELLOW
    return GREEN


def _modes(policies: Sequence[Policy]) -> str:
    counts = mode_counts(policies)
    return " · ".join(f"{m} {counts[m]}" for m in MODE_ORDER if counts.get(m))


def _environment_line(snap: Snapshot) -> str:
    name = f"*{kit.escape(snap.environment)}*"
    if snap.error is not None:
        line = f"{UNREACHABLE} {name} · {snap.error.user_message}"
        return f"{line} {_last_known(snap, snap.as_of)}" if snap.as_of is not None else line
    parts = [f"{_signal(snap)} {name}", _policies(len(snap.policies))]
    modes = _modes(snap.policies)
    if modes:
        parts.append(modes)
    parts.append(_results(snap))
    not_ready = _not_ready(snap)
    if not_ready:
        parts.append(f"*{not_ready} not ready*")
    unknown = sum(1 for p in snap.policies if p.ready is None)
    if unknown:
        parts.append(f"{unknown} readiness not reported")
    if snap.as_of is not None:
        parts.append(f"_as of {_when(snap.as_of)}_")
    return " · ".join(parts)


def _when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def _last_known(snap: Snapshot, as_of: datetime) -> str:
    """What the cache last knew of an environment that cannot be read now."""
    return f"_Last known, as of {_when(as_of)}:_ {_policies(len(snap.policies))} · {_results(snap)}"


def _results(snap: Snapshot) -> str:
    totals = snap.tally.totals
    text = f"fail {totals['fail']:,} · warn {totals['warn']:,}"
    if totals["error"]:
        text += f" · error {totals['error']:,}"
    return text


def _environment_figures(snap: Snapshot) -> str:
    """The notification's share of one environment: its name and what needs a look."""
    if snap.error is not None:
        return f"{snap.environment} unreachable"
    totals = snap.tally.totals
    text = f"{snap.environment} fail {totals['fail']:,} warn {totals['warn']:,}"
    not_ready = _not_ready(snap)
    return text + (f" ({not_ready} not ready)" if not_ready else "")


def _overview_facts(snapshots: Sequence[Snapshot], now: datetime) -> list[str]:
    seen = [s for s in snapshots if s.error is None]
    lines: list[str] = []
    top = _top_failing(seen)
    if top:
        lines.append("*Top failing:* " + " · ".join(top))
    if seen:
        active = soon = 0
        for snap in seen:
            a, s = active_exceptions(snap, now)
            active, soon = active + a, soon + s
        expiring = f" · {soon} {_expire(soon)} within 7 days" if soon else ""
        lines.append(f"*Exceptions:* {active} active{expiring} (`/policy exceptions`)")
    health = _kyverno_line(seen)
    if health:
        lines.append(health)
    backup = _backups_line(seen, now)
    if backup:
        lines.append(backup)
    return lines


def _top_failing(snapshots: Sequence[Snapshot]) -> list[str]:
    """The policies with most failures across environments, each with where they fail."""
    total: Counter[tuple[bool, str]] = Counter()
    for snap in snapshots:
        for key, counts in snap.tally.by_policy.items():
            fail = counts["fail"]
            if fail:
                total[key] += fail
    top = heapq.nsmallest(TOP_FAILING, total.items(), key=lambda kv: (-kv[1], kv[0][1], kv[0][0]))
    lines = []
    for key, _ in top:  # where each fails, in the environments' order
        where = ((s.environment, s.tally.by_policy.get(key, Counter())["fail"]) for s in snapshots)
        shown = ", ".join(f"{kit.escape(env)} {n:,}" for env, n in where if n)
        lines.append(f"{kit.escape(key[1])} ({shown})")
    return lines


def _kyverno_line(snapshots: Sequence[Snapshot]) -> str | None:
    known = [s for s in snapshots if s.health is not None]
    if not known:
        return None
    parts: list[str] = []
    versions = {s.health.version for s in known if s.health and s.health.version}
    installed = [s for s in known if s.health and not s.health.problem]
    if len(versions) == 1 and len(installed) == len(known):
        parts.append(f"{versions.pop()} everywhere")
    else:
        parts.append(
            " · ".join(
                f"{s.environment} {s.health.version or '?'}"
                for s in installed
                if s.health is not None
            )
        )
    findings: list[tuple[int, int, str]] = []
    for snap in known:
        h = snap.health
        assert h is not None
        if h.problem:
            # Kyverno missing or unreadable ranks above any finding of a running one.
            findings.append((-(10**6), 0, f"{snap.environment} {kit.escape(h.problem)}"))
            continue
        said: list[str] = []
        if h.admission is not None and (h.admission[0] is None or h.admission[0] < h.admission[1]):
            ready = "?" if h.admission[0] is None else str(h.admission[0])
            said.append(f"admission {ready}/{h.admission[1]}")
        if h.failures:
            said.append(_count(h.failures, "failing check"))
        if h.warnings:
            said.append(_count(h.warnings, "warning"))
        if said:
            findings.append((-h.failures, -h.warnings, f"{snap.environment} " + ", ".join(said)))
    findings.sort(key=lambda f: (f[0], f[1]))
    parts.extend(f[2] for f in findings)
    if not findings:
        parts.append("no doctor findings")
    read_at = [s.health.as_of for s in known if s.health is not None and s.health.as_of]
    if read_at:
        parts.append(f"_as of {_when(min(read_at))}_")
    return "*Kyverno:* " + " · ".join(p for p in parts if p) + " (`/policy doctor`)"


def _backups_line(snapshots: Sequence[Snapshot], now: datetime) -> str | None:
    known = [s for s in snapshots if s.backups_known]
    if not known:
        return None
    times = {s.last_backup for s in known}
    if len(times) == 1:
        return "*Last backup:* " + _backup_phrase(times.pop(), now)
    return "*Last backup:* " + " · ".join(
        f"{s.environment} {_backup_phrase(s.last_backup, now)}" for s in known
    )


def _backup_phrase(last: datetime | None, now: datetime) -> str:
    if last is None:
        return "none yet (`/policy backup`)"
    return f"{_age(now - last)} ago ({last:%Y-%m-%d %H:%M} UTC)"


def _others_line(snapshots: Sequence[Snapshot]) -> str | None:
    others: Counter[str] = Counter()
    for snap in snapshots:
        others.update(snap.tally.others)
    if not others:
        return None
    shown = ", ".join(kit.escape(source) for source, _ in ranked(others, 4))
    more = f" and {len(others) - 4} more" if len(others) > 4 else ""
    return (
        f"Also in the report APIs: {sum(others.values()):,} results from {shown}{more} "
        "(not counted above)"
    )


def _age(delta: timedelta) -> str:
    minutes = max(0, int(delta.total_seconds() // 60))
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h"
    return f"{minutes // (24 * 60)} days"


def _health_line(environment: str, health: HealthSummary) -> str:
    parts = [f"*Kyverno* {health.version}" if health.version else "*Kyverno*"]
    if health.problem:
        return " · ".join([*parts, kit.escape(health.problem), f"`/policy doctor {environment}`"])
    if health.admission is not None:
        ready, desired = health.admission
        parts.append(f"admission {'?' if ready is None else ready}/{desired}")
    if health.failures:
        parts.append(_count(health.failures, "failing check"))
    if health.warnings:
        parts.append(_count(health.warnings, "warning"))
    if health.as_of is not None:
        parts.append(f"_as of {_when(health.as_of)}_")
    parts.append(f"`/policy doctor {environment}`")
    return " · ".join(parts)


# -- one environment --------------------------------------------------------------------


def environment(snap: Snapshot, *, now: datetime, share: str | None = "") -> list[kit.Block]:
    return environment_message(snap, now=now, share=share)[1]


def environment_message(snap: Snapshot, *, now: datetime, share: str | None = "") -> Message:
    """Failing and not-ready policies first with their figures; the rest as names per mode."""
    if snap.error is not None:
        unreadable = error(snap.error)
        if snap.as_of is not None:
            unreadable.append(kit.context([_last_known(snap, snap.as_of)]))
        return f"{snap.environment}: {snap.error.user_message}", unreadable
    title = f"{snap.environment} · {_policies(len(snap.policies))} · {now:%H:%M} UTC"
    summary = [_environment_line(snap)]
    active, soon = active_exceptions(snap, now)
    expiring = f" · {soon} {_expire(soon)} within 7 days" if soon else ""
    summary.append(f"*Exceptions:* {active} active{expiring}")
    if snap.health is not None:
        summary.append(_health_line(snap.environment, snap.health))
    if snap.backups_known:
        summary.append("*Last backup:* " + _backup_phrase(snap.last_backup, now))
    blocks: list[kit.Block] = [kit.header(title), kit.section("\n".join(summary))]
    attention = sorted(
        (p for p in snap.policies if snap.failures(p) or p.ready is False),
        key=lambda p: (-snap.failures(p), p.ref),
    )
    if attention:
        blocks.append(kit.divider())
        rows = [_attention_row(snap, p) for p in attention]
        head = f"*Needs a look ({len(attention)}):*"
        blocks.append(
            kit.lines_section(
                [head, *rows], more=f"… and more (`/policy status {snap.environment} POLICY`)"
            )
        )
    # By identity (`attention` holds the snapshot's own objects): a list's `in` compared
    # whole policies, quadratic in their number (80,000 comparisons for 500 policies).
    needing = {id(p) for p in attention}
    rest = [p for p in snap.policies if id(p) not in needing]
    if rest:
        blocks.append(kit.divider())
        blocks.append(kit.section(_names_by_mode(rest, clean=bool(attention))))
    if not snap.policies:
        blocks.append(kit.section("No Kyverno policies in this environment."))
    others = _others_line([snap])
    if others:
        blocks.append(kit.context([others]))
    text = f"{title}: {_environment_figures(snap)}" + (
        f" · top failing {attention[0].ref} {snap.failures(attention[0]):,}"
        if attention and snap.failures(attention[0])
        else ""
    )
    return kit.clip(text, kit.MAX_FALLBACK_TEXT), _with_share(blocks, share)


def _attention_row(snap: Snapshot, policy: Policy) -> str:
    # The row's shape ("`name` · kind · mode · readiness · N fail") is what the Kyverno
    # integration tests read back; keep it when changing the wording around it.
    ready = {
        True: "ready",
        False: ":x: not ready"
        + (f": {kit.escape(policy.ready_message)}" if policy.ready_message else ""),
        None: "readiness unknown",
    }[policy.ready]
    where = f" ({kit.escape(policy.namespace)})" if policy.namespace else ""
    return (
        f"`{kit.escape(policy.name)}`{where} · {policy.kind} · {policy.mode.value} · {ready}"
        f" · {snap.failures(policy):,} fail"
    )


def _names_by_mode(policies: Sequence[Policy], *, clean: bool) -> str:
    """`Enforce (12): a, b, c` per mode, names plain; a long list says how many it left out."""
    by_mode: dict[str, list[Policy]] = {}
    for p in policies:
        by_mode.setdefault(p.mode.value, []).append(p)
    lead = "*No failures:*" if clean else "*Policies:*"
    lines = [lead]
    budget = (kit.MAX_SECTION_TEXT - len(lead) - 40) // max(1, len(by_mode))
    for mode in MODE_ORDER:
        group = by_mode.get(mode)
        if not group:
            continue
        label = "no validate rules" if mode == Mode.NONE.value else mode
        lines.append(f"{label} ({len(group)}): " + _name_list(group, budget))
    return "\n".join(lines)


def _name_list(policies: Sequence[Policy], budget: int) -> str:
    names = [_plain_name(p) for p in policies]
    shown: list[str] = []
    used = 0
    for index, name in enumerate(names):
        if used + len(name) + 2 > budget - 20:
            return ", ".join(shown) + f" … and {len(names) - index} more"
        shown.append(name)
        used += len(name) + 2
    return ", ".join(shown)


def _plain_name(policy: Policy) -> str:
    name = kit.escape(policy.ref)
    return name if policy.kind == DEFAULT_KIND else f"{name} ({policy.kind})"


# -- one policy -------------------------------------------------------------------------


def policy(view: PolicyReportView, *, share: str | None = "") -> list[kit.Block]:
    return policies((view,), share=share)


def policies(views: Sequence[PolicyReportView], *, share: str | None = "") -> list[kit.Block]:
    return policies_message(views, share=share)[1]


def policies_message(views: Sequence[PolicyReportView], *, share: str | None = "") -> Message:
    """One policy across environments; several when one name stands for several kinds.
    Each starts with its verdict and next step, then one block per environment."""
    blocks: list[kit.Block] = []
    if len(views) > 1:
        # What to type next, so code style: `cpol/NAME`, `vpol/NAME`.
        names = ", ".join(f"`{kit.escape(v.name)}`" for v in views)
        blocks.append(
            kit.context([f"{len(views)} policies have this name: {names}. Name one to act on it."])
        )
    texts: list[str] = []
    for view in views:
        blocks.extend(_policy_blocks(view))
        texts.append(f"{view.name}: {_verdict_text(view)}")
    return kit.clip(" · ".join(texts), kit.MAX_FALLBACK_TEXT), _with_share(
        kit.fit(blocks, reserve=2), share
    )


def _policy_blocks(view: PolicyReportView) -> list[kit.Block]:
    deployed = [e for e in view.environments if e.policy is not None]
    kinds = sorted({e.policy.kind for e in deployed if e.policy is not None})
    rules = max((len(e.policy.rules) for e in deployed if e.policy is not None), default=0)
    title = " · ".join([view.name, *kinds, *([_count(rules, "rule")] if rules else [])])
    blocks: list[kit.Block] = [kit.header(title), kit.section(_verdict(view))]
    absent = [e.environment for e in view.environments if e.policy is None and e.error is None]
    for env in view.environments:
        if env.policy is None and env.error is None:
            continue
        blocks.append(kit.divider())
        blocks.append(kit.section(_policy_in(env)))
    if absent:
        blocks.append(kit.divider())
        blocks.append(kit.context(["Not deployed in " + ", ".join(absent)]))
    stage = _stage_context(view.stage)
    if stage:
        blocks.append(kit.context([stage]))
    return blocks


def _verdict(view: PolicyReportView) -> str:
    """The first line: where it fails, then the next promotion step and what blocks it."""
    failing = [(e.environment, e.fail) for e in view.environments if e.fail]
    not_ready = [e.environment for e in view.environments if e.policy and e.policy.ready is False]
    lines = [_next_step(view)]
    facts = []
    if failing:
        facts.append("Failing: " + " · ".join(f"{env} {n:,}" for env, n in failing))
    else:
        facts.append("No failing results")
    if not_ready:
        facts.append(":x: not ready in " + ", ".join(not_ready))
    lines.append(" · ".join(facts))
    return "\n".join(lines)


def _next_step(view: PolicyReportView) -> str:
    stage = view.stage
    if stage is None:
        return "No promotion ladder is configured."
    if stage.current is None:
        target = stage.next.label() if stage.next else "the first stage"
        return f":arrow_up: *Next: deploy to {target}* · not on the ladder yet"
    if stage.next is None:
        return (
            f":white_check_mark: *Top of the ladder:* {stage.current.label()} · nothing to promote"
        )
    if stage.next_passes:
        return (
            f":white_check_mark: *Next: {stage.next.label()} — ready to promote* "
            f"(`/policy promote {kit.escape(view.name)}`)"
        )
    blockers = "; ".join(_blocker(g) for g in stage.gates if not g.passed)
    return f":no_entry: *Next: {stage.next.label()} — blocked:* {blockers}"


def _blocker(gate: GateResult) -> str:
    return f"{kit.escape(gate.figure)} (gate: {kit.escape(gate.description)})"


def _verdict_text(view: PolicyReportView) -> str:
    stage = view.stage
    failing = ", ".join(f"{e.environment} fail {e.fail:,}" for e in view.environments if e.fail)
    if stage is None or stage.current is None:
        step = "not on the ladder"
    elif stage.next is None:
        step = f"top of the ladder ({stage.current.label()})"
    elif stage.next_passes:
        step = f"next {stage.next.label()} ready to promote"
    else:
        step = f"next {stage.next.label()} blocked"
    return step + (f" · {failing}" if failing else " · no failing results")


def _policy_in(env: PolicyInEnvironment) -> str:
    name = f"*{kit.escape(env.environment)}*"
    if env.error is not None:
        return f"{UNREACHABLE} {name} · {env.error.user_message}"
    p = env.policy
    assert p is not None
    ready = {
        True: "ready",
        False: f":x: not ready: {kit.escape(p.ready_message)}",
        None: "readiness unknown",
    }[p.ready]
    lines = [
        f"{name} · {p.kind} · {p.mode.value} · {ready} · {env.fail:,} fail · {env.warn:,} warn"
    ]
    if p.rules:
        lines.append("Rules: " + " · ".join(kit.escape(r.describe()) for r in p.rules))
    if env.top_namespaces:
        lines.append(
            "Failing in: " + " · ".join(f"{kit.escape(ns)} {n:,}" for ns, n in env.top_namespaces)
        )
    if env.exceptions:
        lines.append(
            "Exceptions: "
            + " · ".join(
                f"{kit.escape(e.name)}"
                + (f" ({kit.escape(e.ticket)})" if e.ticket else "")
                + (
                    f", expires {e.expires_at.date().isoformat()}"
                    if e.expires_at
                    else ", no expiry"
                )
                for e in env.exceptions
            )
        )
    return "\n".join(lines)


def _stage_context(stage: StageView | None) -> str | None:
    """The gates behind the verdict, and mode changes made outside the bot."""
    if stage is None:
        return None
    lines = [f":warning: {kit.escape(note)}" for note in stage.notes]
    if stage.current is not None:
        lines.append(f"Promotion stage: {stage.current.label()}")
    if stage.next is not None and stage.current is not None:
        for gate in stage.gates:
            icon = ":white_check_mark:" if gate.passed else ":x:"
            detail = f" — {kit.escape(gate.detail)}" if gate.detail else ""
            lines.append(
                f"{icon} {kit.escape(gate.description)}: {kit.escape(gate.figure)}{detail}"
            )
    return "\n".join(lines) or None


def error(err: BotError) -> list[kit.Block]:
    return [kit.section(f":warning: {err.user_message}")]


# -- the share button -------------------------------------------------------------------


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
    """The answer with "Post in channel" at the top, right under the header."""
    if share is None:
        return kit.fit(blocks)
    button = kit.button("Post in channel", action_id=SHARE_ACTION, value=share)
    fitted = kit.fit(blocks, reserve=1)
    at = 1 if fitted and fitted[0].get("type") == "header" else 0
    return [*fitted[:at], kit.actions([button], block_id="status_share"), *fitted[at:]]
