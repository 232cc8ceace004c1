"""Sends requests to the bot exactly as Slack does: form-encoded, signed, timed.

Slash commands arrive as ``application/x-www-form-urlencoded`` fields; interactions as a
single form field ``payload`` holding JSON. Every request is signed with the app's signing
secret (``X-Slack-Signature: v0=hex(HMAC-SHA256(secret, "v0:{ts}:{body}"))`` plus
``X-Slack-Request-Timestamp``), and the signing can be broken on purpose to test the bot's 401
path. ``response_url`` and ``trigger_id`` values come from the :class:`SlackEmulator`, so the
bot's follow-ups (``respond()``, ``views.open``) land there and obey Slack's limits.

Payloads are built from the emulator's state where possible: clicking a button requires the
button to exist in the message the bot posted, and a view submission is built from the view
the bot opened. A test therefore cannot exercise an interaction the bot never offered.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypedDict, Unpack
from urllib.parse import urlencode

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from bot.playground.slack_emulator import (
    ACK_DEADLINE,
    JsonDict,
    SlackEmulator,
    ViewRecord,
    find_action,
)

__all__ = ["BotResponse", "Interaction", "SignedSlackClient", "Signing", "slack_signature"]


class Signing(StrEnum):
    """How to sign a request: correctly, or broken in one of the ways the bot must reject."""

    VALID = "valid"
    UNSIGNED = "unsigned"
    WRONG_SIGNATURE = "wrong_signature"
    STALE_TIMESTAMP = "stale_timestamp"


def slack_signature(secret: str, timestamp: str, body: str) -> str:
    """Slack's request signature (v0) of ``body`` sent at ``timestamp``."""
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class BotResponse:
    """The bot's HTTP answer to one request, with how long it took."""

    status: int
    text: str
    headers: CIMultiDictProxy[str]
    elapsed: float

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "").split(";")[0].strip()

    def json(self) -> Any:
        return json.loads(self.text)

    @property
    def within_deadline(self) -> bool:
        """Whether Slack would have accepted the answer (3 s acknowledgement deadline)."""
        return self.elapsed < ACK_DEADLINE


@dataclass(frozen=True)
class Interaction:
    """The bot's answer to an interaction, plus what Slack sent and issued for it."""

    response: BotResponse
    response_url: str | None
    trigger_id: str
    payload: JsonDict

    @property
    def status(self) -> int:
        return self.response.status

    @property
    def text(self) -> str:
        return self.response.text

    @property
    def elapsed(self) -> float:
        return self.response.elapsed

    def json(self) -> Any:
        return self.response.json()


class Click(TypedDict, total=False):
    """Where and how an element is clicked (see `SignedSlackClient.block_actions_payload`)."""

    channel: str | None
    message_ts: str | None
    ephemeral: bool
    view_id: str | None
    value: str | None
    selected_option: JsonDict | None
    block_id: str | None
    state_values: JsonDict | None


class SignedSlackClient:
    """Plays Slack's side towards the bot's ``POST /slack/events``.

    ``bot_url`` is the bot's base URL (``/slack/events`` is appended when it has no path) or
    the full events URL. Use as an async context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        bot_url: str | URL,
        signing_secret: str,
        emulator: SlackEmulator,
        *,
        path: str = "/slack/events",
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        url = URL(str(bot_url))
        self.url = url.with_path(path) if url.path in ("", "/") else url
        self.signing_secret = signing_secret
        self.emulator = emulator
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None
        self._event_seq = 0

    async def __aenter__(self) -> SignedSlackClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    # ---------------------------------------------------------------- transport

    def sign(self, body: str, *, signing: Signing = Signing.VALID) -> dict[str, str]:
        """Headers Slack would send with ``body`` (or deliberately broken ones)."""
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if signing is Signing.UNSIGNED:
            return headers
        now = int(self._clock())
        timestamp = str(now - 301 if signing is Signing.STALE_TIMESTAMP else now)
        secret = self.signing_secret
        if signing is Signing.WRONG_SIGNATURE:
            secret = "not-" + secret
        headers["X-Slack-Request-Timestamp"] = timestamp
        headers["X-Slack-Signature"] = slack_signature(secret, timestamp, body)
        return headers

    async def post_form(
        self,
        fields: Mapping[str, str],
        *,
        signing: Signing = Signing.VALID,
        headers: Mapping[str, str] | None = None,
    ) -> BotResponse:
        """POST form fields, signed, and time the answer."""
        body = urlencode(fields)
        return await self._post(body, {**self.sign(body, signing=signing), **(headers or {})})

    async def post_json(
        self, document: JsonDict, *, signing: Signing = Signing.VALID
    ) -> BotResponse:
        """POST a JSON body, signed, as the Events API does."""
        body = json.dumps(document)
        headers = {**self.sign(body, signing=signing), "Content-Type": "application/json"}
        return await self._post(body, headers)

    async def _post(self, body: str, headers: Mapping[str, str]) -> BotResponse:
        """POST `body` to the bot and time the answer."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        started = time.monotonic()
        async with self._session.post(self.url, data=body.encode(), headers=headers) as resp:
            text = await resp.text()
            return BotResponse(
                status=resp.status,
                text=text,
                headers=CIMultiDictProxy(resp.headers.copy()),
                elapsed=time.monotonic() - started,
            )

    def _check_deadline(self, what: str, response: BotResponse) -> None:
        """Note an acknowledgement Slack would not have waited for: the person would have
        seen an error instead (the test fixture fails a test that leaves one)."""
        if response.status != 401 and not response.within_deadline:
            self.emulator.late_acks.append(f"{what}: acknowledged after {response.elapsed:.2f} s")

    async def post_payload(
        self,
        payload: JsonDict,
        *,
        signing: Signing = Signing.VALID,
        headers: Mapping[str, str] | None = None,
    ) -> BotResponse:
        """POST an interaction payload as the ``payload`` form field."""
        return await self.post_form(
            {"payload": json.dumps(payload)}, signing=signing, headers=headers
        )

    # ---------------------------------------------------------------- identities

    def _user(self, user_id: str) -> JsonDict:
        known = self.emulator.user(user_id)
        name = str(known["name"]) if known else user_id.lower()
        return {"id": user_id, "username": name, "name": name, "team_id": self.emulator.team_id}

    def _team(self) -> JsonDict:
        return {"id": self.emulator.team_id, "domain": self.emulator.team_domain}

    def _channel(self, channel_id: str) -> JsonDict:
        known = self.emulator.channel(channel_id)
        return {"id": channel_id, "name": known.name if known else channel_id.lower()}

    # ---------------------------------------------------------------- Events API

    def event_callback(self, event: JsonDict) -> JsonDict:
        """The Events API envelope Slack wraps `event` in."""
        self._event_seq += 1
        return {
            "token": "verification-token",
            "team_id": self.emulator.team_id,
            "api_app_id": self.emulator.app_id,
            "event": event,
            "type": "event_callback",
            "event_id": f"Ev{self._event_seq:08d}",
            "event_time": int(self._clock()),
            "authorizations": [
                {
                    "team_id": self.emulator.team_id,
                    "user_id": self.emulator.bot_user_id,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
        }

    def app_home_opened_event(self, user: str, *, tab: str = "home") -> JsonDict:
        """`app_home_opened` as Slack sends it; `view` is the Home last published, if any."""
        event: JsonDict = {
            "type": "app_home_opened",
            "user": user,
            "channel": f"D{user[1:]}",
            "tab": tab,
            "event_ts": f"{self._clock():.6f}",
        }
        home = self.emulator.home(user)
        if tab == "home" and home is not None:
            event["view"] = home.to_payload(
                team_id=self.emulator.team_id,
                app_id=self.emulator.app_id,
                bot_id=self.emulator.bot_id,
            )
        return event

    async def app_home_opened(
        self, user: str, *, tab: str = "home", signing: Signing = Signing.VALID
    ) -> BotResponse:
        """The user opens the app's Home (or Messages/About) tab."""
        envelope = self.event_callback(self.app_home_opened_event(user, tab=tab))
        return await self.post_json(envelope, signing=signing)

    # ---------------------------------------------------------------- slash commands

    def command_fields(
        self,
        command: str,
        text: str = "",
        *,
        user: str,
        channel: str,
    ) -> tuple[dict[str, str], str]:
        """The form fields of a slash command (also the Socket Mode payload) and its
        response_url."""
        response_url = self.emulator.response_url(channel, user)
        fields = {
            "token": "verification-token",
            "team_id": self.emulator.team_id,
            "team_domain": self.emulator.team_domain,
            "channel_id": channel,
            "channel_name": self._channel(channel)["name"],
            "user_id": user,
            "user_name": self._user(user)["name"],
            "command": command,
            "text": text,
            "api_app_id": self.emulator.app_id,
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": self.emulator.issue_trigger_id(user),
        }
        return fields, response_url

    async def command(
        self,
        command: str,
        text: str = "",
        *,
        user: str,
        channel: str,
        signing: Signing = Signing.VALID,
        headers: Mapping[str, str] | None = None,
    ) -> Interaction:
        """Run a slash command; the acknowledgement body is shown to the user through the
        emulator (see :meth:`SlackEmulator.record_command_ack`)."""
        fields, response_url = self.command_fields(command, text, user=user, channel=channel)
        response = await self.post_form(fields, signing=signing, headers=headers)
        self._check_deadline(f"/{command.lstrip('/')} {text}".strip(), response)
        self.emulator.record_command_ack(
            channel=channel,
            user=user,
            status=response.status,
            body=response.text,
            content_type=response.content_type,
            elapsed=response.elapsed,
        )
        return Interaction(response, response_url, fields["trigger_id"], dict(fields))

    # ---------------------------------------------------------------- block_actions

    def block_actions_payload(
        self,
        action_id: str,
        *,
        user: str,
        channel: str | None = None,
        message_ts: str | None = None,
        ephemeral: bool = False,
        view_id: str | None = None,
        value: str | None = None,
        selected_option: JsonDict | None = None,
        block_id: str | None = None,
        state_values: JsonDict | None = None,
    ) -> tuple[JsonDict, str | None]:
        """A ``block_actions`` payload for clicking ``action_id``; returns it and its
        response_url.

        With ``message_ts`` the element is looked up in that message (channel or ephemeral)
        and must exist; with ``view_id`` in that view. Its ``block_id``, ``type``, ``text`` and
        ``value`` come from what the bot rendered unless given explicitly.
        """
        blocks: list[Any] = []
        container: JsonDict
        message_payload: JsonDict | None = None
        view: ViewRecord | None = None
        if view_id is not None:
            view = self.emulator.view(view_id)
            blocks = view.blocks
            container = {"type": "view", "view_id": view_id}
        elif message_ts is not None and channel is not None:
            if ephemeral:
                match = [e for e in self.emulator.ephemeral(channel, user) if e.ts == message_ts]
                if not match:
                    raise ValueError(f"no ephemeral message {message_ts} for {user} in {channel}")
                blocks = match[0].blocks
            else:
                message = self.emulator.message(channel, message_ts)
                if message is None or message.deleted:
                    raise ValueError(f"no message {message_ts} in {channel}")
                blocks = message.blocks
                message_payload = message.to_payload(
                    team_id=self.emulator.team_id, app_id=self.emulator.app_id
                )
            container = {
                "type": "message",
                "message_ts": message_ts,
                "channel_id": channel,
                "is_ephemeral": ephemeral,
            }
        else:
            raise ValueError("give message_ts and channel, or view_id")

        found = find_action(blocks, action_id)
        if found is None:
            raise ValueError(f"no element with action_id {action_id!r} was rendered")
        found_block_id, element = found
        action: JsonDict = {
            "type": element.get("type", "button"),
            "action_id": action_id,
            "block_id": block_id or found_block_id,
            "action_ts": f"{self._clock():.6f}",
        }
        if "text" in element:
            action["text"] = copy.deepcopy(element["text"])
        if value is not None or "value" in element:
            action["value"] = value if value is not None else element["value"]
        if selected_option is not None:
            action["selected_option"] = selected_option

        trigger_id = self.emulator.issue_trigger_id(user, view_id=view_id)
        payload: JsonDict = {
            "type": "block_actions",
            "user": self._user(user),
            "api_app_id": self.emulator.app_id,
            "token": "verification-token",
            "container": container,
            "trigger_id": trigger_id,
            "team": self._team(),
            "enterprise": None,
            "is_enterprise_install": False,
            "state": {"values": copy.deepcopy(state_values or {})},
            "actions": [action],
        }
        response_url: str | None = None
        if view is not None:
            payload["view"] = view.to_payload(
                team_id=self.emulator.team_id,
                app_id=self.emulator.app_id,
                bot_id=self.emulator.bot_id,
                state_values=state_values,
            )
        else:
            assert channel is not None
            response_url = self.emulator.response_url(channel, user, message_ts=message_ts)
            payload["channel"] = self._channel(channel)
            payload["response_url"] = response_url
            if message_payload is not None:
                payload["message"] = message_payload
        return payload, response_url

    async def block_action(
        self,
        action_id: str,
        *,
        user: str,
        signing: Signing = Signing.VALID,
        **click: Unpack[Click],
    ) -> Interaction:
        """Click an element the bot rendered (see :meth:`block_actions_payload`)."""
        payload, response_url = self.block_actions_payload(action_id, user=user, **click)
        response = await self.post_payload(payload, signing=signing)
        self._check_deadline(f"click on {action_id}", response)
        return Interaction(response, response_url, str(payload["trigger_id"]), payload)

    # ---------------------------------------------------------------- view_submission

    def view_state(self, view: ViewRecord, values: Mapping[str, Mapping[str, Any]]) -> JsonDict:
        """``view.state.values`` as Slack builds it from the view's input blocks.

        ``values`` maps block_id → action_id → value. A plain value is placed according to
        the element type (``value`` for text inputs, ``selected_option`` for selects, ...,
        matching options by value); a dict is used as the state entry itself. Inputs without
        a value are present with an empty value, as on Slack. Unknown ids raise ValueError.
        """
        state: dict[str, dict[str, JsonDict]] = {}
        elements: dict[tuple[str, str], JsonDict] = {}
        for block in view.blocks:
            if block.get("type") != "input" or not isinstance(block.get("element"), dict):
                continue
            element = block["element"]
            key = (str(block.get("block_id")), str(element.get("action_id")))
            elements[key] = element
            state.setdefault(key[0], {})[key[1]] = _empty_state(element)
        for block_id, actions in values.items():
            for action_id, value in actions.items():
                element_or_none = elements.get((block_id, action_id))
                if element_or_none is None:
                    raise ValueError(f"view {view.id} has no input {block_id}/{action_id}")
                state[block_id][action_id] = _state_entry(element_or_none, value)
        return state

    def view_submission_payload(
        self,
        view_id: str,
        values: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        user: str | None = None,
    ) -> JsonDict:
        """A ``view_submission`` payload for the open view ``view_id``."""
        view = self.emulator.view(view_id)
        if view.state != "open":
            raise ValueError(f"view {view_id} is not open")
        submitter = user or view.user
        return {
            "type": "view_submission",
            "team": self._team(),
            "user": self._user(submitter),
            "api_app_id": self.emulator.app_id,
            "token": "verification-token",
            "trigger_id": self.emulator.issue_trigger_id(submitter, view_id=view_id),
            "view": view.to_payload(
                team_id=self.emulator.team_id,
                app_id=self.emulator.app_id,
                bot_id=self.emulator.bot_id,
                state_values=self.view_state(view, values or {}),
            ),
            "response_urls": [],
            "is_enterprise_install": False,
            "enterprise": None,
        }

    async def view_submission(
        self,
        view_id: str,
        values: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        user: str | None = None,
        signing: Signing = Signing.VALID,
    ) -> Interaction:
        """Submit a view; the bot's ``response_action`` is applied to the emulator's views
        (see :meth:`SlackEmulator.record_view_submission_ack`)."""
        payload = self.view_submission_payload(view_id, values, user=user)
        response = await self.post_payload(payload, signing=signing)
        self._check_deadline(f"submission of view {view_id}", response)
        if response.within_deadline:
            self.emulator.record_view_submission_ack(
                view_id,
                status=response.status,
                body=response.text,
                content_type=response.content_type,
            )
        return Interaction(response, None, str(payload["trigger_id"]), payload)


_EMPTY_KEYS: Mapping[str, str] = {
    "static_select": "selected_option",
    "external_select": "selected_option",
    "radio_buttons": "selected_option",
    "multi_static_select": "selected_options",
    "multi_external_select": "selected_options",
    "checkboxes": "selected_options",
    "users_select": "selected_user",
    "multi_users_select": "selected_users",
    "conversations_select": "selected_conversation",
    "multi_conversations_select": "selected_conversations",
    "channels_select": "selected_channel",
    "multi_channels_select": "selected_channels",
    "datepicker": "selected_date",
    "timepicker": "selected_time",
    "datetimepicker": "selected_date_time",
    "rich_text_input": "rich_text_value",
}


def _empty_state(element: Mapping[str, Any]) -> JsonDict:
    kind = str(element.get("type"))
    key = _EMPTY_KEYS.get(kind, "value")
    empty: Any = [] if key.endswith("s") and key.startswith("selected_") else None
    return {"type": kind, key: empty}


def _options(element: Mapping[str, Any]) -> list[JsonDict]:
    options = list(element.get("options") or [])
    for group in element.get("option_groups") or []:
        options.extend(group.get("options") or [])
    return options


def _option(element: Mapping[str, Any], value: Any) -> JsonDict:
    for option in _options(element):
        if option.get("value") == value:
            return copy.deepcopy(option)
    if element.get("type") in ("external_select", "multi_external_select"):
        return {"text": {"type": "plain_text", "text": str(value)}, "value": str(value)}
    raise ValueError(f"no option with value {value!r} in {element.get('action_id')}")


def _state_entry(element: Mapping[str, Any], value: Any) -> JsonDict:
    kind = str(element.get("type"))
    if isinstance(value, dict):
        return {"type": kind, **value}
    key = _EMPTY_KEYS.get(kind, "value")
    if key == "selected_option":
        return {"type": kind, key: _option(element, value)}
    if key == "selected_options":
        return {"type": kind, key: [_option(element, v) for v in value]}
    if key in ("selected_users", "selected_conversations", "selected_channels"):
        return {"type": kind, key: list(value)}
    return {"type": kind, key: value}
