"""The `/policy` slash command: ack at once, then parse, call the core, render, reply.

The answer goes out through `respond()` (the command's response_url), ephemeral unless the
user shares it. Every command is written to the audit trail with its outcome.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.errors import BotError
from bot.services import Services
from handlers.render import kit, messages
from handlers.render.help import Entry, closest, help_message

log = logging.getLogger(__name__)

Respond = Callable[..., Awaitable[Any]]
Blocks = list[dict[str, Any]]
Answer = Blocks | tuple[str, Blocks] | None
"""What a subcommand answers: blocks, or (notification text, blocks), or None."""


@dataclass(frozen=True)
class Invocation:
    """A parsed `/policy` command: who, where, which subcommand and its arguments."""

    user: str
    channel: str
    text: str
    sub: str
    args: tuple[str, ...]
    trigger_id: str = ""
    response_url: str = ""


@dataclass(frozen=True)
class Subcommand:
    """One `/policy` subcommand.

    `run` returns the blocks of the ephemeral answer, or None when it answered by other
    means (a modal, a channel message). `interim` is shown at once while it runs (the ack);
    None acks silently, for subcommands that open a modal.
    """

    name: str
    usage: str
    summary: str
    run: Callable[[Invocation], Awaitable[Answer]]
    interim: str | None = "Reading {what}…"


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
    def __init__(self, services: Services, subcommands: list[Subcommand]) -> None:
        self._svc = services
        self._subcommands = {s.name: s for s in subcommands}

    async def on_command(
        self, ack: Callable[..., Awaitable[None]], command: dict[str, Any], respond: Respond
    ) -> None:
        inv = parse(command)
        handler = None if inv.sub == "help" else self._subcommands.get(inv.sub)
        if handler is None:
            text, blocks = self._help(inv)
            await ack(text=text, blocks=blocks, response_type="ephemeral")
            await self._audit(inv, "help" if inv.sub == "help" else "unknown")
            return
        if handler.interim is None:
            await ack()
        else:
            interim = handler.interim.format(what=f"`{inv.sub}`")
            await ack(text=f":hourglass_flowing_sand: {interim}", response_type="ephemeral")
        self._svc.tasks.spawn(self._answer(handler, inv, respond), name=f"command:{inv.sub}")

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
        return help_message(entries, environments=self._svc.status.environments, problem=problem)

    async def _answer(self, handler: Subcommand, inv: Invocation, respond: Respond) -> None:
        started = time.monotonic()
        outcome = "ok"
        try:
            answer = await handler.run(inv)
            if answer is not None:
                text, blocks = (
                    answer if isinstance(answer, tuple) else (f"/policy {inv.text}", answer)
                )
                await respond(blocks=blocks, text=text, response_type="ephemeral")
        except BotError as err:
            outcome = "error"
            await respond(text=f":warning: {err.user_message}", response_type="ephemeral")
        except Exception:
            outcome = "crash"
            log.exception("command failed", extra={"sub": inv.sub})
            await respond(
                text=messages.UNEXPECTED.format(text=inv.text[:100]), response_type="ephemeral"
            )
        finally:
            self._svc.metrics.command_seconds.labels(inv.sub).observe(time.monotonic() - started)
            self._svc.metrics.commands.labels(inv.sub, outcome).inc()
            await self._audit(inv, outcome)

    async def _audit(self, inv: Invocation, outcome: str) -> None:
        try:
            await self._svc.audit.append(
                actor=inv.user,
                action=f"command.{inv.sub if inv.sub.isalpha() else 'unknown'}"[:64],
                outcome=outcome,
                details={"text": inv.text[:500], "channel": inv.channel},
            )
        except Exception:
            log.exception("audit append failed", extra={"sub": inv.sub})


def register(bolt: AsyncApp, services: Services, subcommands: list[Subcommand]) -> None:
    help_command = Subcommand("help", "help", "this list", _no_answer, interim=None)
    command = PolicyCommand(services, [*subcommands, help_command])
    bolt.command("/policy")(command.on_command)


async def _no_answer(inv: Invocation) -> None:
    return None
