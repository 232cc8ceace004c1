"""Buttons on alert messages: Silence (`alert_silence:<duration>`), Unsilence
(`alert_unsilence`). Links (Alertmanager, Policy Reporter) are text links in the message,
not buttons, so no click reaches the bot for them.

The listener acknowledges at once (Slack allows 3 s, the Alertmanager call may take longer),
then calls the silence service; whatever goes wrong after the ack is told to the person who
clicked, ephemerally, with what to do (`handlers.listener` does that for every listener).
"""

from __future__ import annotations

import re

from bot.alerts.silencing import SilenceService
from bot.errors import BotError
from handlers.listener import Action, Click, Listeners
from handlers.render.alerts import SILENCE_ACTION_ID, UNSILENCE_ACTION_ID

SILENCE_ACTIONS = re.compile(rf"^{re.escape(SILENCE_ACTION_ID)}(:[a-z0-9]+)?$")

MALFORMED = "This button is malformed, so nothing was silenced. Use the Alertmanager link instead."
UNEXPECTED = (
    "Something went wrong while silencing, and it may not have happened. "
    "Check the Alertmanager link on the message before trying again."
)

UNSILENCE_UNEXPECTED = (
    "Something went wrong while unsilencing, and it may not have happened. "
    "Check the Alertmanager link on the message before trying again."
)


class AlertActions:
    """Bound methods of this class are the work behind the buttons."""

    def __init__(self, *, service: SilenceService) -> None:
        self._service = service

    async def silence(self, click: Click) -> None:
        try:
            message_id, duration = parse_silence_value(click.value)
        except ValueError:
            raise BotError(MALFORMED) from None
        outcome = await self._service.silence(
            message_id, duration, user_id=click.user, user_name=click.user_name
        )
        silence = outcome.silence
        until = silence.until.strftime("%Y-%m-%d %H:%M UTC")
        if outcome.created:
            text = (
                f"Silenced for {silence.duration}, until {until} "
                f"(Alertmanager silence `{silence.silence_id}`). The alert message will say so."
            )
        else:
            text = f"Already silenced by @{silence.user_name} until {until}; nothing changed."
        await click.tell(text)

    async def unsilence(self, click: Click) -> None:
        if not click.value.isdigit():
            raise BotError(
                "This button is malformed, so nothing was unsilenced. "
                "Use the Alertmanager link instead."
            )
        silence = await self._service.unsilence(
            int(click.value), user_id=click.user, user_name=click.user_name
        )
        await click.tell(
            f"Unsilenced: Alertmanager silence `{silence.silence_id}` is expired, so its "
            "notifications flow again. The alert message will say so."
        )


def parse_silence_value(value: str) -> tuple[int, str]:
    """`"<message id>:<duration>"` from a Silence button; raises ValueError otherwise."""
    raw_id, sep, duration = value.partition(":")
    if not sep or not raw_id.isdigit() or not duration:
        raise ValueError(f"not a silence button value: {value!r}")
    return int(raw_id), duration


def listeners(*, service: SilenceService) -> Listeners:
    """The Silence and Unsilence buttons."""
    actions = AlertActions(service=service)
    return Listeners(
        actions=(
            Action(SILENCE_ACTIONS, "alert_silence", actions.silence, unexpected=UNEXPECTED),
            Action(
                UNSILENCE_ACTION_ID,
                "alert_unsilence",
                actions.unsilence,
                unexpected=UNSILENCE_UNEXPECTED,
            ),
        )
    )
