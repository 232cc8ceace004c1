"""The `/policy` slash command: ack at once, then parse, call the core, render, reply.

The answer goes out through `respond()` (the command's response_url), ephemeral unless the
user shares it. Every command is written to the audit trail with its outcome.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from bot.metrics import Metrics
from bot.store.audit_trail import AuditTrail
from handlers.listener import Answer, Invocation, Outcome, Plumbing, Respond, Subcommand
from handlers.render import kit, messages
from handlers.render.help import Entry, closest, help_message

log = logging.getLogger(__name__)

__all__ = ["Answer", "Invocation", "PolicyCommand", "Subcommand", "parse"]


def parse(command: dict[str, Any]) -> Invocation:
    text = " ".join(str(command.get("text") or "").split())
    words = text.split(" ") if text else []
    sub = words[0].lower() if words else "help"
    return Invocation(
        user=str(command.get("user_id", "")),
        channel=str(command.get("channel_id", "")),
        text=text,
        sub=sub,
        args=tuple(words[1:]),
        trigger_id=str(command.get("trigger_id", "")),
        response_url=str(command.get("response_url", "")),
    )


class PolicyCommand:
    """The `/policy` listener: help and unknown subcommands are answered in the ack; the
    others acknowledge with their interim line and answer through `respond()` when done."""

    def __init__(
        self,
        subcommands: Sequence[Subcommand],
        *,
        plumbing: Plumbing,
        environments: Sequence[str],
        audit: AuditTrail,
        metrics: Metrics,
    ) -> None:
        help_command = Subcommand("help", "help", "this list", _no_answer, interim=None)
        self._subcommands = {s.name: s for s in [*subcommands, help_command]}
        self._plumbing = plumbing
        self._environments = list(environments)
        self._audit_trail = audit
        self._metrics = metrics

    async def on_command(
        self, ack: Callable[..., Awaitable[None]], command: dict[str, Any], respond: Respond
    ) -> None:
        inv = parse(command)
        respond = self._plumbing.answering(respond, channel=inv.channel, user=inv.user)
        handler = None if inv.sub == "help" else self._subcommands.get(inv.sub)
        if handler is None:
            text, blocks = self._help(inv)
            await ack(text=text, blocks=blocks, response_type="ephemeral")
            await self._audit(inv, "help" if inv.sub == "help" else "unknown")
            return
        interim = handler.interim

        async def acknowledge() -> None:
            if interim is None:
                await ack()
            else:
                line = interim.format(what=f"`{inv.sub}`")
                await ack(text=f":hourglass_flowing_sand: {line}", response_type="ephemeral")

        async def warn(text: str) -> None:
            await respond(text=f":warning: {text}", response_type="ephemeral")

        started = time.monotonic()

        async def settle(outcome: Outcome) -> None:
            self._metrics.command_seconds.labels(inv.sub).observe(time.monotonic() - started)
            self._metrics.commands.labels(inv.sub, outcome.value).inc()
            await self._audit(inv, outcome.value)

        await self._plumbing.handle(
            ack=acknowledge,
            user=inv.user,
            role=handler.role,
            work=lambda: self._answer(handler, inv, respond),
            tell=warn,
            unexpected=messages.UNEXPECTED.format(text=inv.text[:100]),
            name=f"command:{inv.sub}",
            settle=settle,
        )

    def _help(self, inv: Invocation) -> tuple[str, list[dict[str, Any]]]:
        if inv.sub == "help":
            problem = None
        elif inv.sub in messages.SUBCOMMANDS:
            problem = messages.NOT_YET.format(sub=inv.sub)
        else:
            problem = messages.UNKNOWN.format(sub=kit.escape(inv.sub[:40]))
            guess = closest(inv.sub[:40], [s for s in self._subcommands if s != "help"])
            if guess is not None:
                problem += " " + messages.DID_YOU_MEAN.format(sub=guess)
        entries = [Entry(s.name, s.usage, s.summary) for s in self._subcommands.values()]
        return help_message(entries, environments=self._environments, problem=problem)

    async def _answer(self, handler: Subcommand, inv: Invocation, respond: Respond) -> None:
        answer = await handler.run(inv)
        if answer is not None:
            text, blocks = answer if isinstance(answer, tuple) else (f"/policy {inv.text}", answer)
            await respond(blocks=blocks, text=text, response_type="ephemeral")

    async def _audit(self, inv: Invocation, outcome: str) -> None:
        try:
            await self._audit_trail.append(
                actor=inv.user,
                action=f"command.{inv.sub if inv.sub.isalpha() else 'unknown'}"[:64],
                outcome=outcome,
                details={"text": inv.text[:500], "channel": inv.channel},
            )
        except Exception:
            log.exception("audit append failed", extra={"sub": inv.sub})


async def _no_answer(inv: Invocation) -> None:
    return None
