"""Every Slack listener's edge, written once: acknowledge, authorise, work, answer.

Slack wants an acknowledgement within 3 s, and the work behind a click (a cluster read, a
JIRA call, a write and the wait for Kyverno) often takes longer. So each listener
acknowledges first, then runs its work in the background on the bot's task group (which a
clean shutdown drains), and whatever goes wrong there is told to the person who clicked and
never raised back into Bolt: a `BotError` with its own sentence, anything else logged with
its traceback and answered with the listener's "something went wrong" sentence.

A handlers module declares its listeners as data (`Listeners`: subcommands, buttons, modal
submissions, scheduled jobs); the composition root hands them to `Plumbing.mount`, which
wraps each one in the sequence above. A handler is then its parsing and its call.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Any, Protocol

import aiohttp
from slack_bolt.async_app import AsyncApp

from bot.errors import BotError
from bot.roles import Role
from bot.scheduler import JobSpec
from bot.slack_api import RateLimited, SlackError
from bot.store.errors import StoreUnavailable
from handlers.render import messages

log = logging.getLogger(__name__)

Ack = Callable[..., Awaitable[None]]
Respond = Callable[..., Awaitable[Any]]
Work = Callable[[], Awaitable[None]]
Tell = Callable[[str], Awaitable[None]]
FieldErrors = Mapping[str, str]
"""A modal's errors by block id, shown under the fields (the modal stays open)."""
EPHEMERAL_ATTEMPTS = 3
"""An ephemeral answer rate limited this often in a row is given up (and logged)."""


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
    role: Role | None = None
    """Who may run it; others are told who may, and nothing runs."""


class Outcome(StrEnum):
    OK = "ok"
    ERROR = "error"  # a BotError, told to the person
    CRASH = "crash"  # anything else, logged and answered with the generic sentence


class Spawner(Protocol):
    """Where background work runs (`bot.tasks.TaskGroup`): owned, drained at shutdown."""

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> Any: ...


class Authority(Protocol):
    """Who holds which role (`bot.roles.RoleChecker`)."""

    async def has(self, user: str, role: Role) -> bool: ...

    def describe(self, role: Role) -> str: ...


class Messenger(Protocol):
    """How the plumbing reaches a person (`bot.slack_api.SlackApi`)."""

    async def post_ephemeral(
        self, channel: str, user: str, text: str, blocks: Sequence[dict[str, Any]] | None = None
    ) -> None: ...

    async def post_message(
        self,
        channel: str,
        text: str,
        blocks: Sequence[dict[str, Any]] | None = None,
        *,
        thread_ts: str | None = None,
    ) -> str: ...


class DirectMessages(Protocol):
    """The durable way to a person's DMs (`bot.notices.outbox.NoticeOutbox`)."""

    async def enqueue(
        self, channel: str, text: str, blocks: Sequence[dict[str, Any]] | None = None
    ) -> bool: ...


class NotAllowed(BotError):
    """The person clicked something their role does not allow; the message says who may."""


class Reply(Enum):
    """How a listener's answers reach the person who clicked."""

    EPHEMERAL = "ephemeral"
    """An ephemeral message in the channel of the click; nothing where there is none."""
    EPHEMERAL_OR_DM = "ephemeral or direct message"
    """An ephemeral message in the channel of the click, a direct message without one."""
    RESPOND = "respond"
    """`:warning:` through the click's response_url, next to the message clicked."""


@dataclass(frozen=True)
class Click:
    """A button click or a modal submission: who, where, and what it carried."""

    user: str
    channel: str | None
    value: str
    """The button's value, or the modal's private_metadata."""
    trigger_id: str = ""
    message_ts: str = ""
    ephemeral: bool = False
    """The click came from an ephemeral message (which only response_url can change)."""
    user_name: str = ""
    view: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """The submitted modal (its `state.values`), empty for a button."""
    body: Mapping[str, Any] = dataclasses.field(default_factory=dict, repr=False)
    respond: Respond | None = dataclasses.field(default=None, repr=False)
    teller: Callable[[Click, str], Awaitable[None]] | None = dataclasses.field(
        default=None, repr=False
    )

    @classmethod
    def of(
        cls,
        body: Mapping[str, Any],
        *,
        action: Mapping[str, Any] | None = None,
        view: Mapping[str, Any] | None = None,
        respond: Respond | None = None,
    ) -> Click:
        user = body.get("user") or {}
        user_id = str(user.get("id", ""))
        container = body.get("container") or {}
        channel = container.get("channel_id") or (body.get("channel") or {}).get("id")
        value = (
            str((action or {}).get("value", ""))
            if view is None
            else str(view.get("private_metadata", ""))
        )
        return cls(
            user=user_id,
            channel=str(channel) if channel else None,
            value=value,
            trigger_id=str(body.get("trigger_id", "")),
            message_ts=str(container.get("message_ts", "")),
            ephemeral=bool(container.get("is_ephemeral")),
            user_name=str(user.get("username") or user.get("name") or user_id),
            view=view or {},
            body=body,
            respond=respond,
        )

    def at(self, channel: str | None) -> Click:
        """This click, answered in `channel` (a modal's work that belongs to a message)."""
        return dataclasses.replace(self, channel=channel)

    async def tell(self, text: str) -> None:
        """Tell the person who clicked, the way the listener answers (its `Reply`)."""
        if self.teller is not None:
            await self.teller(self, text)


@dataclass(frozen=True)
class Action:
    """A button: `run` is the work after the acknowledgement (None: acknowledge only)."""

    action_id: str | re.Pattern[str]
    name: str
    run: Callable[[Click], Awaitable[None]] | None
    reply: Reply = Reply.EPHEMERAL
    unexpected: str = messages.CLICK_FAILED
    role: Role | None = None
    """Who may click it; others are told who may, and nothing runs."""


@dataclass(frozen=True)
class Accepted:
    """A modal submission that passed its checks: the modal closes and `run` goes on."""

    run: Callable[[Click], Awaitable[None]]
    channel: str | None = None
    """Where to answer (the message the modal belongs to); None: by direct message."""


@dataclass(frozen=True)
class Refused:
    """A modal submission with errors under its fields; `then` runs after the answer (an
    audit entry, say), so it never delays it."""

    errors: FieldErrors
    then: Callable[[], Coroutine[Any, Any, None]] | None = None


@dataclass(frozen=True)
class View:
    """A modal submission. `check` runs inside Slack's 3 s window, because only the
    acknowledgement can show errors under the fields; everything else is in `Accepted.run`."""

    callback_id: str
    name: str
    check: Callable[[Click], Awaitable[FieldErrors | Refused | Accepted]]
    reply: Reply = Reply.EPHEMERAL
    unexpected: str = messages.CLICK_FAILED
    role: Role | None = None


@dataclass(frozen=True)
class EventListener:
    """An Events API event (`app_home_opened`): `run` gets the event after the
    acknowledgement; there is nobody to answer, so its failures are logged."""

    event: str
    name: str
    run: Callable[[Mapping[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class Listeners:
    """What one feature answers: `/policy` subcommands, buttons, modals, events, jobs."""

    subcommands: tuple[Subcommand, ...] = ()
    actions: tuple[Action, ...] = ()
    views: tuple[View, ...] = ()
    jobs: tuple[JobSpec, ...] = ()
    events: tuple[EventListener, ...] = ()


BoltListener = Callable[..., Awaitable[None]]


class Plumbing:
    """Acknowledge first, authorise, run on the task group, answer errors."""

    def __init__(
        self,
        *,
        tasks: Spawner,
        slack: Messenger,
        roles: Authority | None = None,
        dms: DirectMessages | None = None,
    ) -> None:
        self._tasks = tasks
        self._slack = slack
        self._roles = roles
        self._dms = dms

    def answering(self, respond: Respond, *, channel: str | None, user: str) -> Respond:
        """`respond` that falls back to chat.postEphemeral (to `user` in `channel`) when the
        response_url no longer takes an answer: expired (30 minutes), used up (5 answers),
        unknown (404), or Slack's webhook endpoint failing. An ephemeral message is what the
        person would have seen; an edit of the original becomes a new ephemeral message."""

        async def answer(**kwargs: Any) -> Any:
            try:
                result = await respond(**kwargs)
            except (aiohttp.ClientError, OSError, TimeoutError) as err:
                problem = f"{type(err).__name__}: {err}"
            else:
                status = int(getattr(result, "status_code", 200) or 200)
                if status < 400:
                    return result
                problem = f"HTTP {status} {getattr(result, 'body', '')}".strip()
            if kwargs.get("delete_original") or not channel or not user:
                log.warning("response_url failed; nothing to fall back to: %s", problem)
                return None
            log.info("response_url failed (%s); answering with chat.postEphemeral", problem)
            text = str(kwargs.get("text") or "")
            blocks = kwargs.get("blocks")
            try:
                await self._post_ephemeral(channel, user, text or " ", blocks)
            except SlackError:
                log.warning("could not answer by chat.postEphemeral either", exc_info=True)
            return None

        return answer

    def mount(self, bolt: AsyncApp, listeners: Iterable[Listeners]) -> None:
        """Register every button and modal of `listeners` on `bolt`."""
        for group in listeners:
            for action in group.actions:
                bolt.action(action.action_id)(self.action(action))
            for view in group.views:
                bolt.view(view.callback_id)(self.view(view))
            for event in group.events:
                bolt.event(event.event)(self.event(event))

    def action(self, spec: Action) -> BoltListener:
        async def listener(
            ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond
        ) -> None:
            click = self._click(spec.reply, body, action=action, respond=respond)
            run = spec.run
            await self.handle(
                ack=ack,
                user=click.user,
                role=spec.role,
                work=None if run is None else lambda: run(click),
                tell=click.tell,
                unexpected=spec.unexpected,
                name=spec.name,
            )

        return listener

    def event(self, spec: EventListener) -> BoltListener:
        async def listener(ack: Ack, event: dict[str, Any]) -> None:
            await ack()
            self._tasks.spawn(self._logged(spec, event), name=spec.name)

        return listener

    @staticmethod
    async def _logged(spec: EventListener, event: Mapping[str, Any]) -> None:
        try:
            await spec.run(event)
        except Exception:
            # The edge of the listener: nobody clicked, so there is nobody to tell.
            log.exception("event listener failed", extra={"listener": spec.name})

    def view(self, spec: View) -> BoltListener:
        async def listener(
            ack: Ack, body: dict[str, Any], view: dict[str, Any], respond: Respond
        ) -> None:
            click = self._click(spec.reply, body, view=view, respond=respond)
            checked = await spec.check(click)
            if not isinstance(checked, Accepted):
                refused = checked if isinstance(checked, Refused) else Refused(checked)
                await ack(response_action="errors", errors=dict(refused.errors))
                if refused.then is not None:
                    self._tasks.spawn(refused.then(), name=f"{spec.name}:refused")
                return
            answered = click.at(checked.channel)
            await self.handle(
                ack=ack,
                user=click.user,
                role=spec.role,
                work=lambda: checked.run(answered),
                tell=answered.tell,
                unexpected=spec.unexpected,
                name=spec.name,
            )

        return listener

    async def handle(
        self,
        *,
        ack: Callable[[], Awaitable[None]],
        user: str,
        role: Role | None,
        work: Work | None,
        tell: Tell,
        unexpected: str,
        name: str,
        settle: Callable[[Outcome], Awaitable[None]] | None = None,
    ) -> None:
        """Acknowledge, then (unless there is no work) authorise and work in the background."""
        await ack()
        if work is None:
            return
        self._tasks.spawn(
            self._guarded(
                user=user,
                role=role,
                work=work,
                tell=tell,
                unexpected=unexpected,
                name=name,
                settle=settle,
            ),
            name=name,
        )

    async def _guarded(
        self,
        *,
        user: str,
        role: Role | None,
        work: Work,
        tell: Tell,
        unexpected: str,
        name: str,
        settle: Callable[[Outcome], Awaitable[None]] | None,
    ) -> None:
        outcome = Outcome.OK
        try:
            if role is not None:
                await self._authorise(user, role)
            await work()
        except BotError as err:
            outcome = Outcome.ERROR
            await tell(err.user_message)
        except StoreUnavailable as err:
            # Expected while the database restarts: one line in the log, not a traceback.
            outcome = Outcome.ERROR
            log.warning("store unavailable", extra={"listener": name, "error": str(err)})
            await tell(messages.STORE_DOWN)
        except Exception:
            # The edge of the listener: report, never raise into Bolt (it already answered).
            outcome = Outcome.CRASH
            log.exception("listener failed", extra={"listener": name})
            await tell(unexpected)
        finally:
            if settle is not None:
                await settle(outcome)

    async def _authorise(self, user: str, role: Role) -> None:
        if self._roles is None:
            raise NotAllowed(messages.NOT_ALLOWED.format(role=role.value, who="nobody"))
        if not await self._roles.has(user, role):
            who = self._roles.describe(role)
            raise NotAllowed(messages.NOT_ALLOWED.format(role=role.value, who=who))

    def _click(
        self,
        reply: Reply,
        body: Mapping[str, Any],
        *,
        action: Mapping[str, Any] | None = None,
        view: Mapping[str, Any] | None = None,
        respond: Respond | None = None,
    ) -> Click:
        click = Click.of(body, action=action, view=view, respond=respond)
        if respond is not None:
            click = dataclasses.replace(
                click, respond=self.answering(respond, channel=click.channel, user=click.user)
            )
        teller = {
            Reply.EPHEMERAL: self._ephemeral,
            Reply.EPHEMERAL_OR_DM: self._ephemeral_or_dm,
            Reply.RESPOND: _respond,
        }[reply]
        return dataclasses.replace(click, teller=teller)

    async def _post_ephemeral(
        self, channel: str, user: str, text: str, blocks: Sequence[dict[str, Any]] | None = None
    ) -> None:
        """chat.postEphemeral (Tier 4, counted for the whole app): a 429 means Slack took
        nothing, so wait as long as it asks and send again rather than leave the person
        without the outcome of their click."""
        for attempt in range(1, EPHEMERAL_ATTEMPTS + 1):
            try:
                await self._slack.post_ephemeral(channel, user, text, blocks)
                return
            except RateLimited as err:
                if attempt == EPHEMERAL_ATTEMPTS:
                    raise
                await asyncio.sleep(err.retry_after_s)

    async def _ephemeral(self, click: Click, text: str) -> None:
        if not click.channel or not click.user:
            log.debug("no channel to answer a click in")
            return
        try:
            await self._post_ephemeral(click.channel, click.user, text)
        except SlackError:
            log.warning("could not tell the user the outcome of a click", exc_info=True)

    async def _ephemeral_or_dm(self, click: Click, text: str) -> None:
        if not click.user:
            return
        try:
            if click.channel:
                await self._post_ephemeral(click.channel, click.user, text)
            elif self._dms is not None:
                await self._dms.enqueue(click.user, text)  # stored: Slack down delays it only
            else:
                await self._slack.post_message(click.user, text)
        except SlackError:
            log.warning("could not tell the user the outcome of a click", exc_info=True)


async def _respond(click: Click, text: str) -> None:
    if click.respond is None:
        return
    await click.respond(text=f":warning: {text}", response_type="ephemeral", replace_original=False)
