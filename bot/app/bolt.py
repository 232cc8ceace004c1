"""The Bolt app: every feature's listeners registered through the one listener plumbing."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot.app.services import Services
from handlers.commands import PolicyCommand
from handlers.listener import Listeners, Plumbing

log = logging.getLogger(__name__)

AUTH_TEST_WITHIN_S = 1.0
"""How long a request waits for `auth.test` before it is handled on the token alone: the
acknowledgement has 3 s in all."""

Authorize = Callable[[str | None, str | None, str | None], Awaitable[AuthorizeResult]]


def workspace_authorization(client: AsyncWebClient) -> Authorize:
    """Bolt's authorization for the one workspace: `auth.test` once it answers, kept; until
    then the token alone, asked again on the next request.

    Bolt's own single-workspace authorization answers every command and click with "your
    installation with this app is no longer available. Please reinstall this app" as long as
    `auth.test` fails, so a replica started during a Slack outage dropped every click. The
    requests are signed (HTTP mode) or come over the app's own socket: they are genuine, and
    what the bot posts in answer is queued until Slack is back.
    """
    known: list[AuthorizeResult] = []

    async def authorize(
        enterprise_id: str | None, team_id: str | None, user_id: str | None
    ) -> AuthorizeResult:
        if known:
            return known[0]
        try:
            async with asyncio.timeout(AUTH_TEST_WITHIN_S):
                answer = await client.auth_test()
        except (SlackApiError, SlackClientError, TimeoutError, OSError) as err:
            log.warning("auth.test failed; handling the request on the token alone: %s", err)
            return AuthorizeResult(
                enterprise_id=enterprise_id,
                team_id=team_id,
                user_id=user_id,
                bot_token=client.token,
            )
        known.append(
            AuthorizeResult.from_auth_test_response(
                auth_test_response=answer, bot_token=client.token
            )
        )
        return known[0]

    return authorize


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
        authorize=workspace_authorization(services.slack.web_client),
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
