"""Block Kit for `/policy help`. Pure."""

from __future__ import annotations

from collections.abc import Sequence

from handlers.render import kit


def help_blocks(
    lines: Sequence[tuple[str, str]], *, environments: list[str], problem: str | None = None
) -> list[kit.Block]:
    blocks: list[kit.Block] = []
    if problem:
        blocks.append(kit.section(f":grey_question: {kit.escape(problem)}"))
    blocks.append(kit.header("policy-bot · Kyverno policy operations"))
    blocks.append(kit.section("\n".join(f"`/policy {usage}` — {what}" for usage, what in lines)))
    blocks.append(kit.context([f"Environments: {', '.join(environments)}"]))
    return blocks
