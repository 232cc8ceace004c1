"""Somebody hears of a report Slack refused for good.

A demotion notice, a backup summary, an evidence pack, the digest: when Slack refuses one for
good (the bot is not in the channel, the channel is private or gone, blocks it will not take),
the outbox marks it failed and nothing retries it. Whoever started the work hears it by direct
message, with what was refused, Slack's reason and what to do; for scheduled work (the nightly
backup, the digest, the monthly evidence pack) the admins do, or, with no admin named, the
other channels the bot posts to. Once per refused message: the notice is keyed by it, and a
direct message is not named, so its own refusal tells nobody and nothing loops.

Who started the work travels in the message's outbox name (`outbox_name`), so it survives a
restart between the post being stored and Slack refusing it.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Sequence

from bot.notices.outbox import NoticeOutbox
from handlers.render import kit

log = logging.getLogger(__name__)

STARTER = "~"
"""Separates an outbox name from the Slack user who started the work (empty: scheduled)."""
USER = re.compile(r"^[UW][A-Z0-9]{2,}$")

_ADVICE = {
    "not_in_channel": "Invite the bot to <#{channel}> (`/invite @policy-bot` there).",
    "channel_not_found": (
        "The bot cannot see <#{channel}>: it is private and the bot was not invited, or it "
        "was deleted. Invite the bot to it (`/invite @policy-bot` there), or name another "
        "channel in the configuration."
    ),
    "is_archived": "<#{channel}> is archived: unarchive it, or name another channel in the "
    "configuration.",
}
_BUG = (
    "Slack would not take the message itself, which is the bot's fault: report it with the "
    "error above."
)


def outbox_name(prefix: str, *, by: str | None, unique: str | None = None) -> str:
    """An outbox name under `prefix` that says who to tell if Slack refuses the post: `by`,
    the Slack user who started the work, or None for scheduled work (the admins are told).
    `unique` (a fresh id by default) must make the name unique."""
    return f"{prefix}{unique or uuid.uuid4().hex}{STARTER}{by or ''}"


def started_by(name: str) -> str | None:
    """The user an `outbox_name` names; None for scheduled work (or an older name)."""
    _, sep, who = name.rpartition(STARTER)
    return who if sep and USER.match(who) else None


class RefusalNotices:
    """Tells people of refused reports, once `watch` names which posts are reports."""

    def __init__(
        self,
        notices: NoticeOutbox,
        *,
        admins: Sequence[str],
        fallback_channels: Sequence[str] = (),
    ) -> None:
        self._notices = notices
        self._admins = tuple(admins)
        self._fallback = tuple(dict.fromkeys(fallback_channels))

    def watch(self, prefix: str, *, what: str, done: str) -> None:
        """Posts named under `prefix` are `what` ("the backup summary"); `done` says what
        happened anyway ("The backup itself was made.")."""

        async def refused(name: str, channel: str, error: str) -> None:
            await self._tell(name, channel, error, what=what, done=done)

        self._notices.on_refused(prefix, refused)

    async def _tell(self, name: str, channel: str, error: str, *, what: str, done: str) -> None:
        starter = started_by(name)
        advice = _ADVICE.get(error, _BUG).format(channel=channel)
        text = (
            f":warning: {what[:1].upper()}{what[1:]} could not be posted in <#{channel}>: "
            f"Slack answered `{kit.escape(error)}`. {advice} {done}"
        )
        if starter is not None:
            recipients: tuple[str, ...] = (starter,)
        else:
            recipients = self._admins or tuple(c for c in self._fallback if c != channel)
        if not recipients:
            log.error(
                "a report Slack refused cannot be told to anybody: no admin is configured",
                extra={"notice": name, "channel": channel, "error": error},
            )
            return
        for recipient in recipients:
            await self._notices.enqueue(
                recipient, text, [kit.section(text)], key=f"{name}:refused:{recipient}"[:200]
            )
