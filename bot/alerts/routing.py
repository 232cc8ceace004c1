"""Which Slack channels an alert group goes to (SPEC 2.2, `alertmanager.routes`).

Routes are tried in order and the first whose matchers all hold wins, like Alertmanager's own
routing tree without `continue`; a route may name several channels. When nothing matches, the
group goes to `slack.channels.alerts`. A group that matches nothing while no default channel
is configured is refused with a reason instead of being accepted and silently dropped.

Matching uses the group's common labels: they are the labels every alert of the flush shares
(group labels included), so the decision is the same for each alert of one message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bot.settings import AlertRoute


class NoRoute(Exception):
    """No route matches and there is no default channel; `reason` names the labels."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class _CompiledRoute:
    exact: tuple[tuple[str, str], ...]
    patterns: tuple[tuple[str, re.Pattern[str]], ...]
    channels: tuple[str, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        if any(labels.get(name) != value for name, value in self.exact):
            return False
        # Alertmanager anchors match_re; an absent label matches like an empty value.
        return all(p.fullmatch(labels.get(name, "")) for name, p in self.patterns)


class Router:
    """Channels for a label set: first matching route, else the default channel."""

    def __init__(self, routes: Sequence[AlertRoute], *, default_channel: str | None) -> None:
        self._routes = tuple(
            _CompiledRoute(
                exact=tuple(sorted(r.match.items())),
                patterns=tuple((k, re.compile(v)) for k, v in sorted(r.match_re.items())),
                channels=tuple(dict.fromkeys(r.targets)),
            )
            for r in routes
        )
        self._default = default_channel

    @property
    def can_route_anything(self) -> bool:
        """False when no configuration could ever deliver an alert (checked at start)."""
        return bool(self._routes) or self._default is not None

    def channels(self, labels: Mapping[str, str]) -> tuple[str, ...]:
        for route in self._routes:
            if route.matches(labels):
                return route.channels
        if self._default is not None:
            return (self._default,)
        shown = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) or "no labels"
        raise NoRoute(
            f"no alertmanager.routes entry matches {{{shown}}} and slack.channels.alerts is not "
            "set; add a route or a default alerts channel"
        )
