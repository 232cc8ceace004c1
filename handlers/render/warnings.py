"""What an API server warned about the bot's writes, as people read it. Pure.

Kyverno's admission webhook answers writes of kyverno.io/v1 policies with a deprecation
warning (and warns on deprecated fields); the server passes it on in `Warning` headers. The
bot shows it where the write is reported, so migrating is not left to whoever reads the logs.
"""

from __future__ import annotations

from collections.abc import Sequence

from handlers.render import kit


def warnings_block(environment: str, warnings: Sequence[tuple[str, int]]) -> list[kit.Block]:
    """One section listing each distinct warning, with how many objects drew it when more
    than one; nothing when the server said nothing."""
    if not warnings:
        return []
    lines = [
        f":warning: {kit.escape(text)}" + (f" ({count} objects)" if count > 1 else "")
        for text, count in warnings
    ]
    return [
        kit.lines_section(
            [f"The API server of {environment} warned:", *lines], more="… (more warnings)"
        )
    ]
