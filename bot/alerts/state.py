"""What one Slack message knows about its alert group, and how notifications change it.

The merge below is what makes retries and HA duplicates harmless: for each fingerprint the
state only moves forward (a later `startsAt` is a new instance of the alert; for the same
`startsAt`, resolved beats firing), so applying a notification twice, or applying an older one
after a newer one, changes nothing and therefore sends nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from bot.alerts.webhook import Alert, AlertStatus

SILENCE_DURATIONS: dict[str, int] = {"1h": 3600, "1d": 86400}
"""Durations the Silence buttons offer, in seconds; a click naming anything else is refused."""
ENVIRONMENT_LABELS = ("environment", "env", "cluster")
"""Labels naming where an alert comes from, most specific first."""


@dataclass(frozen=True)
class SentMark:
    """How an alert looked in the last state Slack was shown: enough to tell what changed."""

    status: AlertStatus
    starts_at: datetime


@dataclass(frozen=True)
class Silence:
    """Who silenced the group from Slack, for how long, and the Alertmanager silence id."""

    silence_id: str
    user_id: str
    user_name: str
    duration: str
    at: datetime
    until: datetime
    lifted_by_id: str | None = None
    """Who expired the silence from Slack (the Unsilence button), and when."""
    lifted_by_name: str | None = None
    lifted_at: datetime | None = None

    def active(self, now: datetime) -> bool:
        """Whether Alertmanager is still holding the group's notifications back."""
        return self.lifted_at is None and self.until > now

    def lifted(self, *, user_id: str, user_name: str, at: datetime) -> Silence:
        return replace(self, lifted_by_id=user_id, lifted_by_name=user_name, lifted_at=at)

    @property
    def key(self) -> str:
        """Changes whenever the silence shown should change (new, extended, or lifted)."""
        lifted = f"~{self.lifted_at.isoformat()}" if self.lifted_at is not None else ""
        return f"{self.silence_id}@{self.until.isoformat()}{lifted}"


@dataclass(frozen=True)
class AlertGroup:
    """One (group, channel) message: the alerts it shows and what decorates them."""

    id: int
    group_key: str
    channel: str
    alerts: Mapping[str, Alert]
    group_labels: Mapping[str, str]
    external_url: str
    receiver: str
    truncated_alerts: int
    first_fired_at: datetime
    silence: Silence | None = None
    expired_failing: frozenset[str] = frozenset()
    parent_ts: str | None = None

    @property
    def firing(self) -> tuple[Alert, ...]:
        return tuple(a for a in self.ordered() if a.firing)

    @property
    def resolved(self) -> tuple[Alert, ...]:
        return tuple(a for a in self.ordered() if not a.firing)

    @property
    def all_resolved(self) -> bool:
        return all(not a.firing for a in self.alerts.values())

    @property
    def resolved_at(self) -> datetime | None:
        """When the last alert ended, once every alert has."""
        if not self.all_resolved:
            return None
        ends = [a.ends_at for a in self.alerts.values() if a.ends_at is not None]
        return max(ends) if ends else None

    @property
    def common_labels(self) -> dict[str, str]:
        """Labels every alert of the message shares: the group labels and usually more."""
        return common_labels(self.alerts.values())

    def ordered(self) -> tuple[Alert, ...]:
        """Alerts in a stable display order: oldest first, then by their labels."""
        return tuple(
            sorted(self.alerts.values(), key=lambda a: (a.starts_at, sorted(a.labels.items())))
        )


def environment_of(labels: Mapping[str, str]) -> str | None:
    return next((labels[k] for k in ENVIRONMENT_LABELS if labels.get(k)), None)


def common_labels(alerts: Iterable[Alert]) -> dict[str, str]:
    """The label pairs present, with the same value, on every alert given."""
    shared: dict[str, str] | None = None
    for alert in alerts:
        if shared is None:
            shared = dict(alert.labels)
        else:
            shared = {k: v for k, v in shared.items() if alert.labels.get(k) == v}
    return {k: v for k, v in (shared or {}).items() if v}


def _supersedes(new: Alert, current: Alert) -> bool:
    """Whether `new` says something newer than `current` about one alert (one fingerprint).

    Alertmanager merges overlapping copies of an alert (an HA Prometheus pair, a restarted
    rule) keeping the earliest `startsAt`, so the start it reports can move earlier between
    notifications: a resolve ends the stored instance whenever it ended after that instance
    began, whatever start it carries. Once resolved, an alert fires again only as a new
    instance, started after it ended; a late copy of the earlier firing state (a retry, a
    slow peer) does not revive it, and a second resolution is not news.
    """
    if current.firing:
        if new.firing:
            return new.starts_at > current.starts_at  # a later instance; its resolve never came
        return new.ends_at is None or new.ends_at >= current.starts_at
    if new.firing:
        return new.starts_at > (current.ends_at or current.starts_at)
    return False


def merge_alerts(stored: Mapping[str, Alert], incoming: Iterable[Alert]) -> dict[str, Alert] | None:
    """The alert map after `incoming`, or None when it changes nothing.

    Alertmanager drops alerts it already reported as resolved, so an alert missing from a
    notification keeps its stored state.
    """
    merged = dict(stored)
    changed = False
    for alert in incoming:
        current = merged.get(alert.fingerprint)
        if current is None or _supersedes(alert, current):
            merged[alert.fingerprint] = alert
            changed = True
    return merged if changed else None


def sent_marks(alerts: Mapping[str, Alert]) -> dict[str, SentMark]:
    return {fp: SentMark(a.status, a.starts_at) for fp, a in alerts.items()}


@dataclass(frozen=True)
class GroupChange:
    """What Slack has not been told yet: newly firing and newly ended alerts."""

    fired: tuple[Alert, ...] = ()
    resolved: tuple[Alert, ...] = ()
    still_failing: tuple[Alert, ...] = ()
    silence: Silence | None = None

    def __bool__(self) -> bool:
        return bool(self.fired or self.resolved or self.still_failing or self.silence)


def change_since(
    sent: Mapping[str, SentMark],
    group: AlertGroup,
    *,
    still_failing: frozenset[str] = frozenset(),
    silence_was: str | None = None,
) -> GroupChange:
    """The difference between what Slack shows (`sent`) and `group`.

    Alerts that ended but that the cluster still reports as failing (`still_failing`) are
    listed apart: Policy Reporter ends its alerts after a while even when nothing was fixed.
    """
    fired: list[Alert] = []
    resolved: list[Alert] = []
    expired: list[Alert] = []
    for alert in group.ordered():
        mark = sent.get(alert.fingerprint)
        new_instance = mark is None or mark.starts_at != alert.starts_at
        if alert.firing:
            if new_instance or (mark is not None and mark.status != "firing"):
                fired.append(alert)
        elif new_instance or (mark is not None and mark.status == "firing"):
            (expired if alert.fingerprint in still_failing else resolved).append(alert)
    silence = group.silence
    new_silence = silence if silence is not None and silence.key != silence_was else None
    return GroupChange(tuple(fired), tuple(resolved), tuple(expired), new_silence)
