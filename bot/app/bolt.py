"""The Bolt app: every feature's listeners registered through the one listener plumbing."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.app.services import Services
from handlers.commands import PolicyCommand
from handlers.listener import Listeners, Plumbing

log = logging.getLogger(__name__)


def build_bolt(services: Services, listeners: Sequence[Listeners]) -> AsyncApp:
    """The Bolt app with `/policy` and every button and modal of `listeners` registered."""
    settings = services.settings
    http_mode = settings.slack.mode == "http"
    bolt = AsyncApp(
        client=services.slack.web_client,
        signing_secret=(
            settings.slack.signing_secret.get_secret_value()
            if http_mode and settings.slack.signing_secret
            else None
        ),
        request_verification_enabled=http_mode,
        logger=logging.getLogger("slack_bolt"),
    )
    plumbing = Plumbing(
        tasks=services.tasks, slack=services.slack, roles=services.roles, dms=services.notices
    )
    command = PolicyCommand(
        [sub for group in listeners for sub in group.subcommands],
        plumbing=plumbing,
        environments=services.status.environments,
        audit=services.audit,
        metrics=services.metrics,
    )
    bolt.command("/policy")(command.on_command)
    plumbing.mount(bolt, listeners)

    @bolt.error
    async def on_error(error: Exception, body: dict[str, Any]) -> None:
        log.error(
            "unhandled Slack listener error", exc_info=error, extra={"type": body.get("type")}
        )

    return bolt
