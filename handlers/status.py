"""`/policy status [ENV] [POLICY]` and its `status_share` button."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.errors import BotError
from bot.policy_ref import parse_policy_ref
from bot.services import Services
from handlers.commands import Invocation, Subcommand
from handlers.render import kit, messages
from handlers.render import status as render

log = logging.getLogger(__name__)

ENV = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class StatusHandler:
    def __init__(self, services: Services) -> None:
        self._svc = services

    async def command(self, inv: Invocation) -> render.Message:
        return await self.answer(inv.args, share=render.share_value(inv.args))

    async def answer(self, args: Sequence[str], *, share: str | None) -> render.Message:
        """Notification text and blocks for `status` with `args`; `args` are validated here,
        never trusted."""
        status = self._svc.status
        envs = status.environments
        now = status.now()
        if not args:
            return render.overview_message(await status.overview(), now=now, share=share)
        if len(args) > 2:
            raise BotError("Usage: `/policy status [ENV] [POLICY]`: at most two arguments.")
        first = args[0]
        if len(args) == 1 and first in envs:
            return render.environment_message(await status.environment(first), now=now, share=share)
        if len(args) == 2:
            if not ENV.match(first) or len(first) > 63:
                raise BotError(
                    f"`{kit.escape(first[:60])}` is not a valid environment name: use "
                    "lower-case letters, digits and '-'."
                )
            views = await status.policy(parse_policy_ref(args[1]), only=first)
        else:
            views = await status.policy(parse_policy_ref(first))
        return render.policies_message(views, share=share)

    async def on_share(
        self,
        ack: Callable[..., Awaitable[None]],
        body: dict[str, Any],
        action: dict[str, Any],
        respond: Callable[..., Awaitable[Any]],
    ) -> None:
        await ack()
        user = str((body.get("user") or {}).get("id", ""))
        args = render.parse_share_value(str(action.get("value", "")))
        self._svc.tasks.spawn(self._share(user, args, respond), name="status_share")

    async def _share(
        self, user: str, args: list[str], respond: Callable[..., Awaitable[Any]]
    ) -> None:
        try:
            text, blocks = await self.answer(args, share=None)
            blocks = [
                *blocks[: kit.MAX_BLOCKS - 1],
                kit.context([messages.SHARED_BY.format(user=user)]),
            ]
            await respond(
                blocks=blocks,
                text=text,
                response_type="in_channel",
                replace_original=False,
            )
            outcome = "ok"
        except BotError as err:
            await respond(
                text=f":warning: {err.user_message}",
                response_type="ephemeral",
                replace_original=False,
            )
            outcome = "error"
        await self._svc.audit.append(
            actor=user, action="status.share", outcome=outcome, details={"args": args}
        )


def register(bolt: AsyncApp, services: Services) -> list[Subcommand]:
    handler = StatusHandler(services)
    bolt.action(render.SHARE_ACTION)(handler.on_share)
    return [
        Subcommand(
            "status",
            "status [ENV] [POLICY]",
            "policies per environment: modes, readiness, failures, exceptions, promotion stage",
            handler.command,
        )
    ]
