"""The daily digest: a verdict-first parent in the reports channel, the details in its thread.

Pure: a `Digest` in, `(text, blocks)` pairs out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.digest.model import Digest
from bot.objects import Block
from handlers.render import kit

MAX_NAMED = 15


@dataclass(frozen=True)
class DigestMessage:
    text: str
    blocks: list[Block]


def parent(digest: Digest) -> DigestMessage:
    """One short message: how many environments, and the verdict."""
    envs = len(digest.environments)
    head = f"Daily digest · {envs} environment{'s' if envs != 1 else ''} · {_verdict(digest)}"
    icon = _icon(digest)
    facts = [
        f"Failing now: {_count(len(digest.figures.policies), 'policy', 'policies')} in "
        f"{_count(len(digest.figures.namespaces), 'namespace', 'namespaces')}",
        f"Exceptions expiring within 7 days: {len(digest.expiring)}",
        f"Requests waiting over a day: {len(digest.pending)}",
    ]
    if digest.unreachable:
        facts.append("Not reached: " + ", ".join(digest.unreachable))
    blocks: list[Block] = [
        kit.header(f"{icon} {head}"),
        kit.context([" · ".join(facts), f"{_clock(digest.at)} · details in the thread"]),
    ]
    return DigestMessage(text=kit.clip(f"{icon} {head}", kit.MAX_FALLBACK_TEXT), blocks=blocks)


def details(digest: Digest) -> DigestMessage:
    """The thread reply: what changed, what expires, who waits, Kyverno's health."""
    lines: list[str] = []
    if digest.first:
        lines.append(
            f"*First digest:* {_failing(digest)}" + _named(sorted(digest.figures.policies))
        )
    else:
        lines.append(_change("New failing policies", digest.new_policies))
        lines.append(_change("Fixed policies", digest.fixed_policies))
        lines.append(_change("New failing namespaces", digest.new_namespaces))
        lines.append(_change("Fixed namespaces", digest.fixed_namespaces))
    lines.append(
        _listed(
            "Exceptions expiring within 7 days",
            [
                f"{kit.escape(e.policy)} in {kit.escape(e.environment)} "
                f"({e.request_id}, {e.expires_at:%d %b})"
                for e in digest.expiring
            ],
        )
    )
    lines.append(
        _listed(
            "Requests waiting over a day",
            [
                f"{p.request_id} {kit.escape(p.policy)} in {kit.escape(p.environment)} "
                f"from <@{p.requester}> ({_age(digest.at, p.created_at)})"
                for p in digest.pending
            ],
        )
    )
    if digest.health:
        lines.append(
            "*Kyverno health:* "
            + " · ".join(
                f"{kit.escape(h.environment)} "
                + (kit.escape(h.problem) if h.problem else f"{h.failures} fail, {h.warnings} warn")
                for h in digest.health
            )
            + " (`/policy doctor`)"
        )
    text = "\n".join(lines)
    return DigestMessage(
        text=kit.clip(text, kit.MAX_FALLBACK_TEXT), blocks=[kit.lines_section(lines)]
    )


def _verdict(digest: Digest) -> str:
    if digest.first:
        return f"first digest: {_failing(digest)}"
    new, fixed = len(digest.new_policies), len(digest.fixed_policies)
    parts = []
    if new:
        parts.append(f"{new} new failing")
    if fixed:
        parts.append(f"{fixed} fixed")
    return " · ".join(parts) or "no change"


def _failing(digest: Digest) -> str:
    return _count(len(digest.figures.policies), "failing policy", "failing policies")


def _icon(digest: Digest) -> str:
    if digest.unreachable or (not digest.first and digest.new_policies):
        return "🔴"
    if any(h.failures or h.problem for h in digest.health):
        return "⚠️"
    return "✅" if not digest.figures.policies else "📋"


def _change(label: str, items: Sequence[str]) -> str:
    if not items:
        return f"*{label}:* none"
    return f"*{label}:* {len(items)}" + _named(items)


def _named(items: Sequence[str]) -> str:
    if not items:
        return ""
    return " — " + ", ".join(kit.escape(i) for i in items[:MAX_NAMED]) + _more(len(items))


def _more(total: int) -> str:
    return f" … and {total - MAX_NAMED} more" if total > MAX_NAMED else ""


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _clock(moment: datetime) -> str:
    return f"{moment:%a %d %b %H:%M} UTC"


def _age(now: datetime, then: datetime) -> str:
    days = (now - then).days
    if days >= 1:
        return f"{days} day{'s' if days != 1 else ''}"
    return f"{int((now - then).total_seconds() // 3600)} h"


def _listed(label: str, items: list[str]) -> str:
    """`*label:*` and the first MAX_NAMED items, how many more, or `none`."""
    if not items:
        return f"*{label}:* none"
    return f"*{label}:* " + ", ".join(items[:MAX_NAMED]) + _more(len(items))
