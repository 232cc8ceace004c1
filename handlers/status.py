"""`/policy status [ENV] [POLICY]` and its `status_share` button."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

from bot.errors import BotError
from bot.policy_ref import parse_policy_ref
from bot.status.service import StatusService
from bot.store.audit_trail import AuditTrail
from handlers.listener import Action, Click, Invocation, Listeners, Reply, Subcommand
from handlers.render import kit, messages
from handlers.render import status as render

log = logging.getLogger(__name__)

ENV = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class StatusHandler:
    def __init__(self, status: StatusService, *, audit: AuditTrail) -> None:
        self._status = status
        self._audit = audit

    async def command(self, inv: Invocation) -> render.Message:
        return await self.answer(inv.args, share=render.share_value(inv.args))

    async def answer(self, args: Sequence[str], *, share: str | None) -> render.Message:
        """Notification text and blocks for `status` with `args`; `args` are validated here,
        never trusted."""
        status = self._status
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

    async def share(self, click: Click) -> None:
        """Post the answer the clicker saw in the channel, for everyone."""
        args = render.parse_share_value(click.value)
        try:
            text, blocks = await self.answer(args, share=None)
        except BotError:
            await self._audited(click.user, args, "error")
            raise
        blocks = [
            *blocks[: kit.MAX_BLOCKS - 1],
            kit.context([messages.SHARED_BY.format(user=click.user)]),
        ]
        assert click.respond is not None  # a button click always carries its response_url
        await click.respond(
            blocks=blocks, text=text, response_type="in_channel", replace_original=False
        )
        await self._audited(click.user, args, "ok")

    async def _audited(self, user: str, args: list[str], outcome: str) -> None:
        await self._audit.append(
            actor=user, action="status.share", outcome=outcome, details={"args": args}
        )


def listeners(*, status: StatusService, audit: AuditTrail) -> Listeners:
    handler = StatusHandler(status, audit=audit)
    return Listeners(
        subcommands=(
            Subcommand(
                "status",
                "status [ENV] [POLICY]",
                "policies per environment: modes, readiness, failures, exceptions, promotion stage",
                handler.command,
            ),
        ),
        actions=(Action(render.SHARE_ACTION, "status_share", handler.share, reply=Reply.RESPOND),),
    )
