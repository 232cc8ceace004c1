"""Buttons on alert messages: Silence (`alert_silence:<duration>`) and the link buttons.

The listener acknowledges at once (Slack allows 3 s, the Alertmanager call may take longer),
then calls the silence service; whatever goes wrong after the ack is told to the person who
clicked, ephemerally, with what to do, and never raised back into Bolt.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck

from bot.alerts.silencing import SilenceService
from bot.errors import BotError
from bot.slack_api import SlackError
from handlers.render.alerts import LINK_ACTION_PREFIX, SILENCE_ACTION_ID

log = logging.getLogger(__name__)

SILENCE_ACTIONS = re.compile(rf"^{re.escape(SILENCE_ACTION_ID)}(:[a-z0-9]+)?$")
LINK_ACTIONS = re.compile(rf"^{re.escape(LINK_ACTION_PREFIX)}:")

MALFORMED = "This button is malformed, so nothing was silenced. Use the Alertmanager link instead."
UNEXPECTED = (
    "Something went wrong while silencing, and it may not have happened. "
    "Check the Alertmanager link on the message before trying again."
)


class EphemeralSender(Protocol):
    async def post_ephemeral(
        self, channel: str, user: str, text: str, blocks: Sequence[dict[str, Any]] | None = None
    ) -> None: ...


class AlertActions:
    """Bound methods of this class are the Bolt listeners."""

    def __init__(self, *, service: SilenceService, slack: EphemeralSender) -> None:
        self._service = service
        self._slack = slack

    async def on_silence(self, ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]) -> None:
        await ack()
        user = body.get("user") or {}
        user_id = str(user.get("id", ""))
        user_name = str(user.get("username") or user.get("name") or user_id)
        channel = _channel(body)
        try:
            message_id, duration = parse_silence_value(str(action.get("value", "")))
        except ValueError:
            await self._tell(channel, user_id, MALFORMED)
            return
        try:
            outcome = await self._service.silence(
                message_id, duration, user_id=user_id, user_name=user_name
            )
        except BotError as err:
            await self._tell(channel, user_id, err.user_message)
            return
        except Exception:
            # The edge of the click: report, never raise into Bolt (it already answered 200).
            log.exception("silencing from Slack failed", extra={"message_id": message_id})
            await self._tell(channel, user_id, UNEXPECTED)
            return
        silence = outcome.silence
        until = silence.until.strftime("%Y-%m-%d %H:%M UTC")
        if outcome.created:
            text = (
                f"Silenced for {silence.duration}, until {until} "
                f"(Alertmanager silence `{silence.silence_id}`). The alert message will say so."
            )
        else:
            text = f"Already silenced by @{silence.user_name} until {until}; nothing changed."
        await self._tell(channel, user_id, text)

    async def on_link(self, ack: AsyncAck) -> None:
        """Link buttons open a URL in the browser; Slack still sends the click, which we ack."""
        await ack()

    async def _tell(self, channel: str | None, user: str, text: str) -> None:
        if not channel or not user:
            log.warning("cannot answer a click without channel and user")
            return
        try:
            await self._slack.post_ephemeral(channel, user, text)
        except SlackError:
            log.warning("could not tell the user the outcome of a click", exc_info=True)


def parse_silence_value(value: str) -> tuple[int, str]:
    """`"<message id>:<duration>"` from a Silence button; raises ValueError otherwise."""
    raw_id, sep, duration = value.partition(":")
    if not sep or not raw_id.isdigit() or not duration:
        raise ValueError(f"not a silence button value: {value!r}")
    return int(raw_id), duration


def _channel(body: Mapping[str, Any]) -> str | None:
    container = body.get("container") or {}
    channel = body.get("channel") or {}
    found = container.get("channel_id") or channel.get("id")
    return str(found) if found else None


def register(bolt: AsyncApp, *, service: SilenceService, slack: EphemeralSender) -> AlertActions:
    """Register the alert message buttons on `bolt`."""
    actions = AlertActions(service=service, slack=slack)
    bolt.action(SILENCE_ACTIONS)(actions.on_silence)
    bolt.action(LINK_ACTIONS)(actions.on_link)
    return actions
