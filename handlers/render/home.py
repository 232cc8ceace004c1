"""The App Home tab: what waits for me, my exceptions, the environments, the last backup.

Pure: figures in (`bot.home.HomeFigures`), a `home` view out. Short on purpose: each list
shows its first lines and says how many more there are; an empty section says so in one line.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from bot.exceptions.model import ExceptionRequest, State
from bot.home import EnvironmentLine, HomeFigures
from handlers.render import kit

MAX_HOME_BLOCKS = 100
"""Slack's limit for a Home tab (messages and modals allow 50)."""
LIST_LINES = 10
"""Lines shown per list before "… and N more"."""
LINE_CHARS = 280
"""A list line's longest length: a full list stays within one section's 3000 characters."""

FOOTER = (
    "`/policy status` for every environment · `/policy exceptions` for every active "
    "exception · `/policy exception` to ask for one · `/policy help` for the rest"
)


def home_view(figures: HomeFigures, *, approvals_channel: str | None = None) -> dict[str, Any]:
    blocks: list[kit.Block] = [
        kit.header("Policy bot"),
        kit.context([f"Your view · updated {figures.now:%Y-%m-%d %H:%M} UTC"]),
    ]
    if figures.approver:
        blocks += _waiting(figures, approvals_channel)
    blocks += _mine(figures)
    blocks += _environments(figures.environments, figures.now)
    blocks += _backup(figures)
    blocks += [kit.divider(), kit.context([FOOTER])]
    return {"type": "home", "blocks": blocks[:MAX_HOME_BLOCKS]}


def _listed(title: str, lines: Sequence[str], *, empty: str) -> list[kit.Block]:
    if not lines:
        return [kit.section(f"*{title}*\n{empty}")]
    shown = [kit.clip(line, LINE_CHARS) for line in lines[:LIST_LINES]]
    more = len(lines) - len(shown)
    if more:
        shown.append(f"{kit.ELLIPSIS} and {more} more")
    return [kit.section("\n".join([f"*{title}*", *shown]))]


def _waiting(figures: HomeFigures, approvals_channel: str | None) -> list[kit.Block]:
    count = len(figures.waiting)
    lines = [
        f"`{r.id}` · `{kit.escape(r.policy)}` in {kit.escape(r.environment)} · from "
        f"<@{r.requester}> · asked {_ago(figures.now - r.created_at)}"
        for r in figures.waiting
    ]
    where = f" Approve or deny in <#{approvals_channel}>." if approvals_channel else ""
    blocks = _listed(
        f"Waiting for your decision ({count})",
        lines,
        empty="Nothing waits for your decision.",
    )
    if count and where:
        blocks.append(kit.context([where.strip()]))
    return blocks


def _mine(figures: HomeFigures) -> list[kit.Block]:
    lines = [_my_line(r, figures.now) for r in figures.mine]
    return _listed(
        "Your exceptions",
        lines,
        empty="You have no pending or active exception.",
    )


def _my_line(request: ExceptionRequest, now: datetime) -> str:
    what = f"`{request.id}` · `{kit.escape(request.policy)}` in {kit.escape(request.environment)}"
    if request.state is State.ACTIVE and request.expires_at is not None:
        left = request.expires_at - now
        return f"{what} · active, expires {request.expires_at:%Y-%m-%d} ({_within(left)})"
    return (
        f"{what} · pending since {request.created_at:%Y-%m-%d}, {request.days} days once approved"
    )


def _environments(lines: Sequence[EnvironmentLine], now: datetime) -> list[kit.Block]:
    return _listed(
        "Environments",
        [_environment(e, now) for e in lines],
        empty="No environment is configured.",
    )


def _environment(env: EnvironmentLine, now: datetime) -> str:
    name = f"*{kit.escape(env.name)}*"
    if env.error is not None and env.as_of is None:
        return f"{name} · :warning: {kit.clip(kit.escape(env.error), 200)}"
    parts = [name, f"fail {env.fail}", f"warn {env.warn}"]
    if env.not_ready:
        parts.append(f"*{env.not_ready} not ready*")
    if env.as_of is not None:
        unreachable = "unreachable now, " if env.error is not None else ""
        parts.append(f"{unreachable}figures as of {_ago(now - env.as_of)}")
    signal = ":red_circle:" if env.fail or env.not_ready else ":large_green_circle:"
    return f"{signal} " + " · ".join(parts)


def _backup(figures: HomeFigures) -> list[kit.Block]:
    last = figures.last_backup
    if last is None:
        return [kit.section("*Last backup*\nNo backup recorded yet.")]
    return [
        kit.section(
            f"*Last backup*\n{last.finished_at:%Y-%m-%d %H:%M} UTC "
            f"({_ago(figures.now - last.finished_at)}) · `{kit.escape(last.id)}`"
        )
    ]


def _ago(delta: timedelta) -> str:
    return "just now" if delta < timedelta(minutes=1) else f"{_span(delta)} ago"


def _within(delta: timedelta) -> str:
    return "overdue" if delta <= timedelta(0) else f"in {_span(delta)}"


def _span(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 60:
        return f"{max(minutes, 1)} min"
    hours = minutes // 60
    if hours < 48:
        return f"{hours} h"
    return f"{hours // 24} days"
