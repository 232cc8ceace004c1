"""Block Kit for `/policy help`: what each person may do, grouped by role, one example each.
Pure."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass

from handlers.render import kit

EVERYONE, PROMOTERS, ADMINS = "Everyone", "Promoters", "Admins"
GROUPS = (
    (EVERYONE, "look, ask, keep copies"),
    (PROMOTERS, "move policies along the ladder"),
    (ADMINS, "put a backup back"),
)
ROLE = {"promote": PROMOTERS, "demote": PROMOTERS, "restore": ADMINS}
ORDER = (
    "status",
    "exception",
    "exceptions",
    "doctor",
    "backup",
    "audit",
    "promote",
    "demote",
    "restore",
)


@dataclass(frozen=True)
class Entry:
    """One subcommand as help lists it: its usage line and what it is for."""

    name: str
    usage: str
    summary: str


def example(name: str, environments: Sequence[str]) -> str | None:
    """A command worth copying, with this installation's environment names."""
    first = environments[0] if environments else "dev"
    last = environments[-1] if environments else "production"
    return {
        "status": f"/policy status {last}",
        "exception": "/policy exception require-labels",
        "exceptions": f"/policy exceptions {last}",
        "doctor": f"/policy doctor {last}",
        "backup": "/policy backup all",
        "audit": "/policy audit verify",
        "promote": "/policy promote require-labels",
        "demote": f"/policy demote require-labels {last}",
        "restore": f"/policy restore BACKUP_ID {first}",
    }.get(name)


def closest(word: str, names: Sequence[str]) -> str | None:
    """The subcommand a mistyped word most likely meant (`stauts` → `status`)."""
    found = difflib.get_close_matches(word.lower(), list(names), n=1, cutoff=0.6)
    return found[0] if found else None


def help_message(
    entries: Sequence[Entry], *, environments: list[str], problem: str | None = None
) -> tuple[str, list[kit.Block]]:
    """(notification text, blocks): the problem first when there is one, then every command
    under the role that may use it."""
    blocks: list[kit.Block] = []
    if problem:
        blocks.append(kit.section(f":grey_question: {problem}"))
    blocks.append(kit.header("policy-bot · Kyverno policy operations"))
    rank = {name: i for i, name in enumerate(ORDER)}
    shown = sorted(
        (e for e in entries if e.name != "help"), key=lambda e: (rank.get(e.name, 99), e.name)
    )
    for group, purpose in GROUPS:
        members = [e for e in shown if ROLE.get(e.name, EVERYONE) == group]
        if not members:
            continue
        lines = [f"*{group}* — {purpose}"]
        for entry in members:
            lines.append(f"`/policy {entry.usage}` — {kit.escape(entry.summary)}")
            sample = example(entry.name, environments)
            if sample:
                lines.append(f"      e.g. `{kit.escape(sample)}`")
        blocks.append(kit.section("\n".join(lines)))
    blocks.append(
        kit.context(
            [
                "*Approvers* decide exception requests with the buttons in the approvals "
                "channel, never on their own request.",
                f"Environments, in ladder order: {', '.join(environments)}",
            ]
        )
    )
    text = problem.replace("`", "") if problem else "policy-bot: what you can ask, by role"
    return kit.clip(text, kit.MAX_FALLBACK_TEXT), blocks
