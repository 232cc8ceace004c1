"""Block Kit for the alert relay: the parent message of an alert group and its thread replies.

Pure functions of the stored group state and the time, so the same state always renders the
same message (golden-tested) and a re-send after a failure shows exactly what was meant.
Everything that came from labels or annotations is escaped: a resource name cannot page the
channel or forge a link. Buttons carry the stored message id, never the state they act on.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote

from bot.alerts.labels import (
    KIND_LABELS,
    NAME_LABELS,
    NAMESPACE_LABELS,
    POLICY_LABELS,
    RULE_LABELS,
    first,
)
from bot.alerts.ports import RenderedMessage
from bot.alerts.state import AlertGroup, GroupChange, Silence, environment_of
from bot.alerts.webhook import Alert
from bot.objects import Block
from handlers.render import kit

SILENCE_ACTION_ID = "alert_silence"
"""Action id family of the Silence buttons: `alert_silence:1h`, `alert_silence:1d`.

Slack wants action ids unique within a block, so each duration gets its own suffix; the
handler matches the family, and the value (`<message id>:<duration>`) is what it trusts.
"""
UNSILENCE_ACTION_ID = "alert_unsilence"
"""The Unsilence button on a silenced parent; its value is the stored message id."""

MESSAGE_ANNOTATIONS = ("message", "description", "summary")
SEVERITY_ORDER = ("critical", "high", "error", "warning", "medium", "low", "info", "none")

MAX_RESOURCE_LINES = 10
MAX_REPLY_ITEMS = 20
MAX_MESSAGE_CHARS = 200
MAX_NAMESPACE_COUNTS = 5

ExtraActions = Callable[[AlertGroup], Sequence[Block]]
"""Extension point for more buttons on a firing parent (e.g. `alert_request_exception`).

Called with the group; returns button elements placed after the Silence buttons.
"""


@dataclass(frozen=True)
class AlertLinks:
    """Where the text links point. `{policy}` in the Policy Reporter URL is filled in."""

    policy_reporter_url: str | None = None


class AlertRenderer:
    """`MessageRenderer` for the sender: the functions below with configuration bound."""

    def __init__(
        self, *, links: AlertLinks = AlertLinks(), extra_actions: ExtraActions | None = None
    ) -> None:
        self._links = links
        self._extra_actions = extra_actions

    def parent(self, group: AlertGroup, *, now: datetime) -> RenderedMessage:
        extra = self._extra_actions(group) if self._extra_actions and not group.all_resolved else ()
        return parent_message(group, now=now, links=self._links, extra_actions=extra)

    def replies(
        self, group: AlertGroup, change: GroupChange, *, now: datetime
    ) -> list[RenderedMessage]:
        return thread_replies(change, now=now)

    def full_list(self, group: AlertGroup, *, now: datetime) -> list[RenderedMessage]:
        return full_list(group)


# -- parent ----------------------------------------------------------------------------


def parent_message(
    group: AlertGroup,
    *,
    now: datetime,
    links: AlertLinks = AlertLinks(),
    extra_actions: Sequence[Block] = (),
) -> RenderedMessage:
    """The message that stands for the group in the channel, edited as the group changes."""
    resolved = group.all_resolved
    title = _title(group)
    icon, state = _state(group, now=now)
    environment = _environment(group)
    blocks: list[Block] = [kit.header(f"{icon} {state}  {title}")]
    blocks.append(kit.context([_summary_line(group, now=now)]))
    if resolved:
        expired = [a for a in group.ordered() if a.fingerprint in group.expired_failing]
        if expired:
            blocks.append(
                kit.section(
                    "Alertmanager stopped firing, but the cluster still reports these as "
                    "failing: " + _resource_list(expired, limit=MAX_RESOURCE_LINES)
                )
            )
    else:
        blocks.append(_resource_section(group.firing))
        notes = _firing_notes(group, now=now)
        if notes:
            blocks.append(kit.context(notes))
    blocks.append(kit.context([_links_line(group, links)]))
    buttons = _actions(group, extra=extra_actions, now=now)
    if buttons is not None:
        blocks.append(buttons)
    text = f"{icon} {state} {title}" + (f" ({environment})" if environment else "")
    return RenderedMessage(text=kit.clip(text, kit.MAX_FALLBACK_TEXT), blocks=kit.fit(blocks))


def _silenced(group: AlertGroup, *, now: datetime) -> bool:
    return group.silence is not None and group.silence.active(now)


def _state(group: AlertGroup, *, now: datetime) -> tuple[str, str]:
    """(icon, word) the header opens with: what the group is, honestly, right now."""
    if group.all_resolved:
        if group.expired_failing:
            return "⚠️", "ENDED — still failing in the cluster"
        return "✅", "RESOLVED"
    if group.silence is not None and _silenced(group, now=now):
        return "🔕", f"SILENCED until {_clock(group.silence.until, now)}"
    return "🔴", "FIRING"


def _title(group: AlertGroup) -> str:
    labels = group.common_labels
    parts = [labels.get("alertname") or group.group_labels.get("alertname") or "Alert group"]
    policy = first(labels, POLICY_LABELS)
    if policy:
        parts.append(policy)
    count = len(group.alerts) if group.all_resolved else len(group.firing)
    parts.append(f"{count} resource{'s' if count != 1 else ''}")
    return " · ".join(parts)


def _summary_line(group: AlertGroup, *, now: datetime) -> str:
    labels = group.common_labels
    parts: list[str] = []
    environment = _environment(group)
    if group.all_resolved:
        ended = group.resolved_at or now
        parts.append(
            f"fired {_span(group.first_fired_at, ended, now)} "
            f"({_duration(ended - group.first_fired_at)})"
        )
        if environment:
            parts.append(kit.escape(environment))
        if group.silence is not None:
            parts.append(_silence_phrase(group.silence, now=now))
        return " · ".join(parts)
    severity = _severity(group.firing)
    if severity:
        parts.append(f"severity *{kit.escape(severity)}*")
    rule = first(labels, RULE_LABELS)
    if rule:
        parts.append(f"rule {kit.escape(rule)}")
    parts.append(
        f"since {_clock(group.first_fired_at, now)} ({_duration(now - group.first_fired_at)})"
    )
    if environment:
        parts.append(kit.escape(environment))
    return " · ".join(parts)


def _firing_notes(group: AlertGroup, *, now: datetime) -> list[str]:
    notes: list[str] = []
    if group.silence is not None and group.silence.active(now):
        notes.append("🔕 " + _silence_phrase(group.silence, now=now))
    resolved = len(group.resolved)
    if resolved:
        notes.append(f"{resolved} resolved so far (see thread)")
    if group.truncated_alerts:
        notes.append(
            f"Alertmanager left out {group.truncated_alerts} more alerts of this group (max_alerts)"
        )
    return notes


def _resource_section(alerts: Sequence[Alert]) -> Block:
    ordered = sorted(alerts, key=_resource_key)
    shown = ordered[:MAX_RESOURCE_LINES]
    common = _common_message(ordered)
    if common is not None:
        # Every resource fails the same way: say it once, then only the names.
        lines = [
            f"Each of these: _{kit.escape(common)}_",
            *(kit.escape(_resource_name(a)) for a in shown),
        ]
    else:
        lines = [_resource_line(a) for a in shown]
    hidden = ordered[MAX_RESOURCE_LINES:]
    if hidden:
        lines.append(
            f"{kit.ELLIPSIS} and {len(hidden)} more{_namespace_counts(hidden)}, all in the thread"
        )
    return kit.lines_section(lines, more=f"{kit.ELLIPSIS} and more")


def _common_message(alerts: Sequence[Alert]) -> str | None:
    """The message every alert carries, when there are several and it is the same."""
    if len(alerts) < 2:
        return None
    found = {_message(a) for a in alerts}
    if len(found) != 1:
        return None
    message = found.pop()
    return kit.clip(message, MAX_MESSAGE_CHARS) if message else None


def _resource_line(alert: Alert) -> str:
    namespace = first(alert.labels, NAMESPACE_LABELS)
    target = _target(alert)
    head = f"{kit.escape(namespace)} {kit.escape(target)}" if namespace else kit.escape(target)
    message = _message(alert)
    if message:
        return f"{head} — {kit.escape(kit.clip(message, MAX_MESSAGE_CHARS))}"
    return head


def _message(alert: Alert) -> str:
    """The alert's message without the resource it names again at its start
    (`Deployment payments/api is missing label 'team'` → `is missing label 'team'`)."""
    message = " ".join((first(alert.annotations, MESSAGE_ANNOTATIONS) or "").split())
    namespace = first(alert.labels, NAMESPACE_LABELS)
    kind = first(alert.labels, KIND_LABELS)
    name = first(alert.labels, NAME_LABELS)
    if kind and name:
        for prefix in (f"{kind} {namespace}/{name} ", f"{kind} {name} "):
            if message.startswith(prefix) and len(message) > len(prefix):
                return message[len(prefix) :]
    return message


def _namespace_counts(alerts: Sequence[Alert]) -> str:
    counts = Counter(first(a.labels, NAMESPACE_LABELS) or "cluster-wide" for a in alerts)
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_NAMESPACE_COUNTS]
    text = " · ".join(f"{kit.escape(ns)} {n}" for ns, n in top)
    if len(counts) > MAX_NAMESPACE_COUNTS:
        text += f" · {len(counts) - MAX_NAMESPACE_COUNTS} more namespaces"
    return f" ({text})"


def _actions(group: AlertGroup, *, extra: Sequence[Block], now: datetime) -> Block | None:
    """The buttons, which only act (Silence, Unsilence, ...); a resolved group has none."""
    if group.all_resolved:
        return None
    elements: list[Block] = []
    if not _silenced(group, now=now):
        elements += [
            kit.button(
                f"Silence {duration}",
                action_id=f"{SILENCE_ACTION_ID}:{duration}",
                value=f"{group.id}:{duration}",
            )
            for duration in ("1h", "1d")
        ]
    else:
        elements.append(kit.button("Unsilence", action_id=UNSILENCE_ACTION_ID, value=str(group.id)))
    elements += list(extra)
    return kit.actions(elements, block_id=f"alert:{group.id}")


def _links_line(group: AlertGroup, links: AlertLinks) -> str:
    """Where to look further, as text links: they open a page, they do not act."""
    parts = [kit.link(alertmanager_url(group.external_url, group.group_labels), "Alertmanager")]
    reporter = _policy_reporter_url(links, group)
    if reporter:
        parts.append(kit.link(reporter, "Policy Reporter"))
    return " · ".join(parts)


def alertmanager_url(external_url: str, group_labels: Mapping[str, str]) -> str:
    """Alertmanager's alert list filtered to the group (`#/alerts?filter={a="b",...}`)."""
    base = external_url.rstrip("/")
    if not group_labels:
        return f"{base}/#/alerts"
    matchers = ",".join(f'{k}="{_quote_label(v)}"' for k, v in sorted(group_labels.items()))
    return f"{base}/#/alerts?filter={quote('{' + matchers + '}', safe='')}"


def _quote_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _policy_reporter_url(links: AlertLinks, group: AlertGroup) -> str | None:
    if not links.policy_reporter_url:
        return None
    policy = first(group.common_labels, POLICY_LABELS) or ""
    return links.policy_reporter_url.replace("{policy}", quote(policy, safe=""))


# -- thread replies --------------------------------------------------------------------


def thread_reply(change: GroupChange, *, now: datetime) -> RenderedMessage:
    """One reply listing what changed since Slack last saw the group (the first of
    `thread_replies`, which is all of them unless a list runs past `MAX_REPLY_ITEMS`)."""
    return thread_replies(change, now=now)[0]


def thread_replies(change: GroupChange, *, now: datetime) -> list[RenderedMessage]:
    """What changed since Slack last saw the group. Short lists read as one line each; a
    list longer than `MAX_REPLY_ITEMS` is followed by every resource, one per line, in as
    many replies as it takes, so no resource is only counted."""
    lines: list[str] = []
    complete: list[tuple[str, Sequence[Alert]]] = []
    for mark, label, alerts in (
        ("🔴", f"+{len(change.fired)} firing", change.fired),
        ("✅", f"{len(change.resolved)} resolved", change.resolved),
        ("⚠️", "expired, still failing in the cluster", change.still_failing),
    ):
        if not alerts:
            continue
        lines.append(f"{mark} {label}: {_resource_list(alerts)}")
        if len(alerts) > MAX_REPLY_ITEMS:
            complete.append((label, alerts))
    if change.silence is not None and change.silence.lifted_at is not None:
        lines.append(f"🔔 Unsilenced by @{kit.escape(change.silence.lifted_by_name or '')}")
    elif change.silence is not None:
        lines.append("🔕 " + _silence_phrase(change.silence, now=now))
    blocks = [kit.section(line) for line in lines]
    text = "\n".join(lines) or "no change"
    first = RenderedMessage(text=kit.clip(text, kit.MAX_FALLBACK_TEXT), blocks=kit.fit(blocks))
    rest = [m for label, alerts in complete for m in _every_resource(label, alerts)]
    return [first, *rest]


def full_list(group: AlertGroup) -> list[RenderedMessage]:
    """Every firing resource of a group whose parent lists only the first ones."""
    firing = list(group.firing)
    if len(firing) <= MAX_RESOURCE_LINES:
        return []
    return _every_resource(f"All {len(firing)} firing", firing)


def _every_resource(label: str, alerts: Sequence[Alert]) -> list[RenderedMessage]:
    """`label` and every resource of `alerts`, one line each, over as many messages as needed."""
    lines = [_resource_line(a) for a in sorted(alerts, key=_resource_key)]
    pages = kit.paged_sections(lines)
    messages: list[RenderedMessage] = []
    for number, sections in enumerate(pages, start=1):
        part = f" (part {number} of {len(pages)})" if len(pages) > 1 else ""
        head = f"{label}{part}:"
        messages.append(
            RenderedMessage(
                text=kit.clip(f"{head} {len(alerts)} resources", kit.MAX_FALLBACK_TEXT),
                blocks=[kit.section(f"*{kit.escape(head)}*"), *sections],
            )
        )
    return messages


def _resource_list(alerts: Iterable[Alert], *, limit: int = MAX_REPLY_ITEMS) -> str:
    ordered = sorted(alerts, key=_resource_key)
    names = [_resource_name(a) for a in ordered[:limit]]
    text = ", ".join(kit.escape(n) for n in names)
    if len(ordered) > limit:
        text += f", {kit.ELLIPSIS} and {len(ordered) - limit} more (all listed below)"
    return text


# -- formatting -------------------------------------------------------------------------


def _resource_name(alert: Alert) -> str:
    """`payments Deployment/api`: namespace, then kind/name, as people say it."""
    namespace = first(alert.labels, NAMESPACE_LABELS)
    target = _target(alert)
    return f"{namespace} {target}" if namespace else target


def _target(alert: Alert) -> str:
    kind = first(alert.labels, KIND_LABELS)
    name = first(alert.labels, NAME_LABELS)
    if kind and name:
        return f"{kind}/{name}"
    if kind or name:
        return kind or name or ""
    # No resource labels: show what sets this alert apart from the group instead.
    distinct = [f"{k}={v}" for k, v in sorted(alert.labels.items()) if k != "alertname"]
    return " ".join(distinct[:4]) or alert.fingerprint


def _resource_key(alert: Alert) -> tuple[str, str, str, str]:
    return (
        first(alert.labels, NAMESPACE_LABELS) or "",
        first(alert.labels, KIND_LABELS) or "",
        first(alert.labels, NAME_LABELS) or "",
        alert.fingerprint,
    )


def _environment(group: AlertGroup) -> str | None:
    return environment_of(group.common_labels)


def _severity(alerts: Sequence[Alert]) -> str | None:
    found = {a.labels["severity"] for a in alerts if a.labels.get("severity")}
    if not found:
        return None

    def rank(value: str) -> tuple[int, str]:
        lowered = value.lower()
        order = SEVERITY_ORDER.index(lowered) if lowered in SEVERITY_ORDER else len(SEVERITY_ORDER)
        return (order, lowered)

    return ", ".join(sorted(found, key=rank))


def _silence_phrase(silence: Silence, *, now: datetime) -> str:
    phrase = (
        f"silenced by @{kit.escape(silence.user_name)} for {silence.duration} "
        f"at {_clock(silence.at, now)}"
    )
    if silence.lifted_at is not None:
        phrase += (
            f", unsilenced by @{kit.escape(silence.lifted_by_name or '')} "
            f"at {_clock(silence.lifted_at, now)}"
        )
    elif silence.until > now:
        phrase += f" (until {_clock(silence.until, now)})"
    return phrase


def _clock(moment: datetime, now: datetime) -> str:
    """`08:51 UTC` today, `Nov 27 08:51 UTC` on another day."""
    if moment.date() == now.date():
        return moment.strftime("%H:%M UTC")
    return f"{moment:%b} {moment.day} {moment:%H:%M} UTC"


def _span(start: datetime, end: datetime, now: datetime) -> str:
    """`08:51 → resolved 10:02 UTC`, with dates when the two are not both today."""
    if start.date() == end.date() == now.date():
        return f"{start:%H:%M} → resolved {end:%H:%M} UTC"
    return f"{start:%b} {start.day} {start:%H:%M} → resolved {end:%b} {end.day} {end:%H:%M} UTC"


def _duration(span: timedelta) -> str:
    """`23 min`, `1 h 11 min`, `2 d 3 h`: as precise as a person needs."""
    minutes = max(0, int(span.total_seconds() // 60))
    if minutes < 1:
        return "under 1 min"
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"
