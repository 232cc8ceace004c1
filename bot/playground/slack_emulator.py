"""A loopback emulator of the Slack Web API, strict enough to stand in for Slack in tests.

Slack cannot be reached from the test environment, so every Slack-facing test talks to this
emulator instead, through the real ``slack_sdk`` clients. A lenient fake would let mistakes
through that production Slack rejects (``slack_sdk`` never validates plain-dict blocks, for
instance), so the emulator checks what Slack checks: tokens, Block Kit limits, message and view
lifecycles, trigger expiry, ``response_url`` use limits and rate limits, answering with Slack's
error codes and response shapes (``{"ok": false, "error": ...}`` with HTTP 200, 429 with
``Retry-After``). Where Slack's behaviour is undocumented the emulator picks the answer that
makes a mistake visible, and says so where it does.

It also keeps the resulting workspace state (messages with their edit history, threads,
ephemeral messages, views, files, ``response_url`` replies) and records every request in full,
so tests assert on outcomes ("one parent per alert group, updated in place") instead of on the
bot's internals. Accessors such as :meth:`SlackEmulator.next_call` are awaitable and driven by
an :class:`asyncio.Condition`: tests never sleep-poll.

Served on ``127.0.0.1`` with an OS-assigned port; :attr:`SlackEmulator.base_url` ends with
``/api/`` because ``slack_sdk`` joins method names with ``urljoin``.
"""

from __future__ import annotations

import asyncio
import copy
import json
import math
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal
from urllib.parse import parse_qsl

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from bot.playground.slack_socket_mode import SocketModeServer, wait_for

__all__ = [
    "ACK_DEADLINE",
    "METHOD_TIERS",
    "TIER_REQUESTS_PER_MINUTE",
    "Call",
    "Channel",
    "EphemeralMessage",
    "Message",
    "MessageVersion",
    "RateLimits",
    "ResponsePost",
    "SlackEmulator",
    "UploadedFile",
    "ViewRecord",
    "find_action",
    "validate_blocks",
    "validate_view",
]

JsonDict = dict[str, Any]

# --------------------------------------------------------------------------------------------
# Block Kit validation
#
# Limits follow Slack's published Block Kit reference (and the table in the project's Slack
# reference notes). Messages are phrased like Slack's: "<problem> [json-pointer:<path>]".
# --------------------------------------------------------------------------------------------

MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_MESSAGE_TEXT = 40_000
MAX_ATTACHMENTS = 100
#: Slack discards an acknowledgement that takes longer than this (seconds).
ACK_DEADLINE = 3.0

Surface = Literal["message", "modal", "home"]

_BLOCK_TYPES = frozenset(
    {
        "actions",
        "context",
        "divider",
        "file",
        "header",
        "image",
        "input",
        "markdown",
        "rich_text",
        "section",
        "video",
    }
)
_MESSAGE_ONLY_BLOCKS = frozenset({"file", "markdown"})

_SELECTS = frozenset(
    {"static_select", "external_select", "users_select", "conversations_select", "channels_select"}
)
_MULTI_SELECTS = frozenset(f"multi_{name}" for name in _SELECTS)
_TEXT_INPUTS = frozenset(
    {
        "plain_text_input",
        "email_text_input",
        "url_text_input",
        "number_input",
        "rich_text_input",
        "file_input",
    }
)
# Interactive elements allowed both as a section's accessory and in an actions block.
_INTERACTIVE = (
    frozenset(
        {
            "button",
            "checkboxes",
            "datepicker",
            "overflow",
            "radio_buttons",
            "timepicker",
            "workflow_button",
        }
    )
    | _SELECTS
    | _MULTI_SELECTS
)
_ACCESSORY_ELEMENTS = _INTERACTIVE | {"image"}
_ACTIONS_ELEMENTS = _INTERACTIVE | {"datetimepicker"}
_INPUT_ELEMENTS = (
    frozenset({"checkboxes", "datepicker", "datetimepicker", "radio_buttons", "timepicker"})
    | _SELECTS
    | _MULTI_SELECTS
    | _TEXT_INPUTS
)


# The properties Slack's Block Kit reference documents per block and element type; anything
# else is refused as Slack refuses it ("invalid additional property"), so a typo such as
# `acton_id` or `styel` fails in tests as it fails in Slack.
_BLOCK_KEYS: dict[str, frozenset[str]] = {
    kind: frozenset({"type", "block_id", *keys})
    for kind, keys in {
        "section": {"text", "fields", "accessory", "expand"},
        "header": {"text"},
        "context": {"elements"},
        "divider": set(),
        "actions": {"elements"},
        "image": {"image_url", "slack_file", "alt_text", "title"},
        "input": {"label", "element", "dispatch_action", "hint", "optional"},
        "markdown": {"text"},
        "rich_text": {"elements"},
        "file": {"external_id", "source"},
        "video": {
            "alt_text", "author_name", "description", "provider_icon_url", "provider_name",
            "title", "title_url", "thumbnail_url", "video_url",
        },
    }.items()
}  # fmt: skip
_SELECT_KEYS = {"confirm", "focus_on_load", "placeholder"}
_INPUT_KEYS = {"initial_value", "dispatch_action_config", "focus_on_load", "placeholder"}
_ELEMENT_KEYS: dict[str, frozenset[str]] = {
    kind: frozenset({"type", "action_id", *keys})
    for kind, keys in {
        "button": {"text", "url", "value", "style", "confirm", "accessibility_label"},
        "workflow_button": {"text", "workflow", "style", "accessibility_label"},
        "static_select": {"options", "option_groups", "initial_option", *_SELECT_KEYS},
        "multi_static_select": {
            "options", "option_groups", "initial_options", "max_selected_items", *_SELECT_KEYS
        },
        "external_select": {"initial_option", "min_query_length", *_SELECT_KEYS},
        "multi_external_select": {
            "initial_options", "min_query_length", "max_selected_items", *_SELECT_KEYS
        },
        "users_select": {"initial_user", *_SELECT_KEYS},
        "multi_users_select": {"initial_users", "max_selected_items", *_SELECT_KEYS},
        "conversations_select": {
            "initial_conversation", "default_to_current_conversation", "response_url_enabled",
            "filter", *_SELECT_KEYS,
        },
        "multi_conversations_select": {
            "initial_conversations", "default_to_current_conversation", "max_selected_items",
            "filter", *_SELECT_KEYS,
        },
        "channels_select": {"initial_channel", "response_url_enabled", *_SELECT_KEYS},
        "multi_channels_select": {"initial_channels", "max_selected_items", *_SELECT_KEYS},
        "overflow": {"options", "confirm"},
        "checkboxes": {"options", "initial_options", "confirm", "focus_on_load"},
        "radio_buttons": {"options", "initial_option", "confirm", "focus_on_load"},
        "datepicker": {"initial_date", "confirm", "focus_on_load", "placeholder"},
        "timepicker": {"initial_time", "confirm", "focus_on_load", "placeholder", "timezone"},
        "datetimepicker": {"initial_date_time", "confirm", "focus_on_load"},
        "plain_text_input": {"multiline", "min_length", "max_length", *_INPUT_KEYS},
        "email_text_input": _INPUT_KEYS,
        "url_text_input": _INPUT_KEYS,
        "number_input": {"is_decimal_allowed", "min_value", "max_value", *_INPUT_KEYS},
        "rich_text_input": _INPUT_KEYS,
        "file_input": {"filetypes", "max_files"},
        "image": {"image_url", "slack_file", "alt_text"},
    }.items()
}  # fmt: skip
_TEXT_KEYS = frozenset({"type", "text", "emoji", "verbatim"})
_CONFIRM_KEYS = frozenset({"title", "text", "confirm", "deny", "style"})
_OPTION_KEYS = frozenset({"text", "value", "description", "url"})


class _Problems:
    """Collects validation problems in Slack's wording."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, problem: str, pointer: str) -> None:
        self.items.append(f"{problem} [json-pointer:{pointer}]")

    def only(self, obj: Mapping[str, Any], allowed: frozenset[str], pointer: str) -> None:
        """Refuse properties Slack does not know, naming each."""
        for key in sorted(set(obj) - allowed):
            self.add(f"invalid additional property: {key}", pointer)


def _check_str(
    p: _Problems,
    value: Any,
    pointer: str,
    *,
    max_len: int,
    min_len: int = 1,
) -> None:
    if not isinstance(value, str):
        p.add("must provide a string", pointer)
        return
    if len(value) < min_len:
        p.add(f"must be more than {min_len - 1} characters", pointer)
    if len(value) > max_len:
        p.add(f"must be less than {max_len + 1} characters", pointer)


def _check_text_object(
    p: _Problems, obj: Any, pointer: str, *, max_len: int, plain_only: bool = False
) -> None:
    """Validate a text composition object (``{"type": "mrkdwn", "text": ...}``)."""
    if not isinstance(obj, dict):
        p.add("must provide an object", pointer)
        return
    p.only(obj, _TEXT_KEYS, pointer)
    allowed = ("plain_text",) if plain_only else ("plain_text", "mrkdwn")
    if obj.get("type") not in allowed:
        p.add("must be a valid enum value", f"{pointer}/type")
    if "text" not in obj:
        p.add("missing required field: text", pointer)
        return
    _check_str(p, obj["text"], f"{pointer}/text", max_len=max_len)


def _check_text(
    p: _Problems,
    parent: Mapping[str, Any],
    key: str,
    pointer: str,
    *,
    max_len: int,
    plain_only: bool = False,
    required: bool = True,
) -> None:
    """Validate the text object stored under ``parent[key]``."""
    if parent.get(key) is None:
        if required:
            p.add(f"missing required field: {key}", pointer)
        return
    _check_text_object(p, parent[key], f"{pointer}/{key}", max_len=max_len, plain_only=plain_only)


def _check_optional_str(
    p: _Problems, parent: Mapping[str, Any], key: str, pointer: str, *, max_len: int
) -> None:
    if key in parent and parent[key] is not None:
        _check_str(p, parent[key], f"{pointer}/{key}", max_len=max_len)


def _check_list(
    p: _Problems,
    parent: Mapping[str, Any],
    key: str,
    pointer: str,
    *,
    max_items: int,
    min_items: int = 1,
    required: bool = True,
) -> list[Any]:
    value = parent.get(key)
    ptr = f"{pointer}/{key}"
    if value is None:
        if required:
            p.add(f"missing required field: {key}", pointer)
        return []
    if not isinstance(value, list):
        p.add("must provide an array", ptr)
        return []
    if len(value) < min_items:
        p.add(f"must provide at least {min_items} items", ptr)
    if len(value) > max_items:
        p.add(f"must be less than {max_items + 1} items", ptr)
    return value


def _check_confirm(p: _Problems, element: Mapping[str, Any], pointer: str) -> None:
    confirm = element.get("confirm")
    if confirm is None:
        return
    ptr = f"{pointer}/confirm"
    if not isinstance(confirm, dict):
        p.add("must provide an object", ptr)
        return
    p.only(confirm, _CONFIRM_KEYS, ptr)
    _check_text(p, confirm, "title", ptr, max_len=100, plain_only=True)
    _check_text(p, confirm, "text", ptr, max_len=300)
    _check_text(p, confirm, "confirm", ptr, max_len=30, plain_only=True)
    _check_text(p, confirm, "deny", ptr, max_len=30, plain_only=True)
    if confirm.get("style") not in (None, "primary", "danger"):
        p.add("must be a valid enum value", f"{ptr}/style")


def _check_options(
    p: _Problems,
    options: list[Any],
    pointer: str,
    *,
    allow_mrkdwn: bool = False,
    allow_url: bool = False,
) -> None:
    for i, option in enumerate(options):
        ptr = f"{pointer}/{i}"
        if not isinstance(option, dict):
            p.add("must provide an object", ptr)
            continue
        p.only(option, _OPTION_KEYS, ptr)
        _check_text(p, option, "text", ptr, max_len=75, plain_only=not allow_mrkdwn)
        if "value" not in option:
            p.add("missing required field: value", ptr)
        else:
            _check_str(p, option["value"], f"{ptr}/value", max_len=150)
        _check_text(
            p,
            option,
            "description",
            ptr,
            max_len=75,
            plain_only=not allow_mrkdwn,
            required=False,
        )
        if "url" in option:
            if allow_url:
                _check_str(p, option["url"], f"{ptr}/url", max_len=3000)
            else:
                p.add("invalid additional property: url", ptr)


def _check_image_element(p: _Problems, element: Mapping[str, Any], pointer: str) -> None:
    if "image_url" in element:
        _check_str(p, element["image_url"], f"{pointer}/image_url", max_len=3000)
    elif "slack_file" not in element:
        p.add("missing required field: image_url", pointer)
    if "alt_text" not in element:
        p.add("missing required field: alt_text", pointer)
    else:
        _check_str(p, element["alt_text"], f"{pointer}/alt_text", max_len=2000)


def _typed(
    p: _Problems, value: Any, pointer: str, allowed: Collection[str], noun: str
) -> str | None:
    """The `type` of a block or element, or None (with the problem added) when it has none
    Slack accepts here."""
    if not isinstance(value, dict):
        p.add("must provide an object", pointer)
        return None
    kind = value.get("type")
    if kind is None:
        p.add("missing required field: type", pointer)
        return None
    if kind not in allowed:
        p.add(f"unsupported {noun} type: {kind}", f"{pointer}/type")
        return None
    return str(kind)


def _check_element(
    p: _Problems,
    element: Any,
    pointer: str,
    *,
    allowed: frozenset[str],
    action_ids: set[str] | None = None,
) -> None:
    """Validate one block element (button, select, input, ...)."""
    kind = _typed(p, element, pointer, allowed, "element")
    if kind is None:
        return
    if kind in _ELEMENT_KEYS:
        p.only(element, _ELEMENT_KEYS[kind], pointer)
    if kind == "image":
        _check_image_element(p, element, pointer)
        return
    if "action_id" in element:
        action_id = element["action_id"]
        _check_str(p, action_id, f"{pointer}/action_id", max_len=255)
        if action_ids is not None and isinstance(action_id, str):
            if action_id in action_ids:
                p.add(f"action_id must be unique within a block: {action_id}", pointer)
            action_ids.add(action_id)
    _check_confirm(p, element, pointer)
    _check_text(p, element, "placeholder", pointer, max_len=150, plain_only=True, required=False)

    if kind in ("button", "workflow_button"):
        _check_text(p, element, "text", pointer, max_len=75, plain_only=True)
        _check_optional_str(p, element, "value", pointer, max_len=2000)
        _check_optional_str(p, element, "url", pointer, max_len=3000)
        _check_optional_str(p, element, "accessibility_label", pointer, max_len=75)
        if element.get("style") not in (None, "primary", "danger"):
            p.add("must be a valid enum value", f"{pointer}/style")
    elif kind in ("static_select", "multi_static_select"):
        if "option_groups" in element:
            groups = _check_list(p, element, "option_groups", pointer, max_items=100)
            for g, group in enumerate(groups):
                gptr = f"{pointer}/option_groups/{g}"
                if isinstance(group, dict):
                    _check_text(p, group, "label", gptr, max_len=75, plain_only=True)
                    opts = _check_list(p, group, "options", gptr, max_items=100)
                    _check_options(p, opts, f"{gptr}/options")
        else:
            options = _check_list(p, element, "options", pointer, max_items=100)
            _check_options(p, options, f"{pointer}/options")
    elif kind == "overflow":
        options = _check_list(p, element, "options", pointer, max_items=5)
        _check_options(p, options, f"{pointer}/options", allow_url=True)
    elif kind in ("checkboxes", "radio_buttons"):
        options = _check_list(p, element, "options", pointer, max_items=10)
        _check_options(p, options, f"{pointer}/options", allow_mrkdwn=True)
    elif kind == "plain_text_input":
        for key in ("min_length", "max_length"):
            value = element.get(key)
            if value is not None and (not isinstance(value, int) or not 0 <= value <= 3000):
                p.add("must be an integer between 0 and 3000", f"{pointer}/{key}")


def _check_block(
    p: _Problems,
    block: Any,
    pointer: str,
    *,
    surface: Surface,
    block_ids: set[str],
) -> None:
    kind = _typed(p, block, pointer, _BLOCK_TYPES, "block")
    if kind is None:
        return
    if surface != "message" and kind in _MESSAGE_ONLY_BLOCKS:
        p.add(f"block type not allowed in a {surface}: {kind}", f"{pointer}/type")
    p.only(block, _BLOCK_KEYS[kind], pointer)
    if "block_id" in block:
        block_id = block["block_id"]
        _check_str(p, block_id, f"{pointer}/block_id", max_len=255)
        if isinstance(block_id, str):
            if block_id in block_ids:
                p.add(f"duplicate block_id: {block_id}", f"{pointer}/block_id")
            block_ids.add(block_id)

    if kind == "section":
        if "text" not in block and "fields" not in block:
            p.add("must provide either text or fields", pointer)
        _check_text(p, block, "text", pointer, max_len=3000, required=False)
        fields = _check_list(p, block, "fields", pointer, max_items=10, required=False)
        for i, text in enumerate(fields):
            _check_text_object(p, text, f"{pointer}/fields/{i}", max_len=2000)
        if "accessory" in block:
            _check_element(
                p, block["accessory"], f"{pointer}/accessory", allowed=_ACCESSORY_ELEMENTS
            )
    elif kind == "header":
        _check_text(p, block, "text", pointer, max_len=150, plain_only=True)
    elif kind == "context":
        elements = _check_list(p, block, "elements", pointer, max_items=10)
        for i, element in enumerate(elements):
            ptr = f"{pointer}/elements/{i}"
            if isinstance(element, dict) and element.get("type") == "image":
                _check_image_element(p, element, ptr)
            else:
                _check_text_object(p, element, ptr, max_len=3000)
    elif kind == "actions":
        elements = _check_list(p, block, "elements", pointer, max_items=25)
        action_ids: set[str] = set()
        for i, element in enumerate(elements):
            _check_element(
                p,
                element,
                f"{pointer}/elements/{i}",
                allowed=_ACTIONS_ELEMENTS,
                action_ids=action_ids,
            )
    elif kind == "image":
        _check_image_element(p, block, pointer)
        _check_text(p, block, "title", pointer, max_len=2000, plain_only=True, required=False)
    elif kind == "input":
        _check_text(p, block, "label", pointer, max_len=2000, plain_only=True)
        _check_text(p, block, "hint", pointer, max_len=2000, plain_only=True, required=False)
        if "element" not in block:
            p.add("missing required field: element", pointer)
        else:
            _check_element(p, block["element"], f"{pointer}/element", allowed=_INPUT_ELEMENTS)
    elif kind == "markdown":
        if "text" not in block:
            p.add("missing required field: text", pointer)
        else:
            _check_str(p, block["text"], f"{pointer}/text", max_len=12_000)
    elif kind == "rich_text":
        _check_list(p, block, "elements", pointer, max_items=10_000, min_items=0)
    elif kind == "file":
        for key in ("external_id", "source"):
            if key not in block:
                p.add(f"missing required field: {key}", pointer)
    elif kind == "video":
        for key in ("alt_text", "thumbnail_url", "video_url"):
            if key not in block:
                p.add(f"missing required field: {key}", pointer)
        _check_text(p, block, "title", pointer, max_len=200, plain_only=True)


def validate_blocks(
    blocks: Any, *, surface: Surface = "message", pointer: str = "/blocks"
) -> list[str]:
    """Return Slack-style problems for a list of blocks; an empty list means valid.

    Exposed so that rendering tests can check Block Kit output without a round trip.
    """
    p = _Problems()
    if not isinstance(blocks, list):
        p.add("must provide an array", pointer)
        return p.items
    limit = MAX_MESSAGE_BLOCKS if surface == "message" else MAX_VIEW_BLOCKS
    if len(blocks) > limit:
        p.add(f"must be less than {limit + 1} items", pointer)
    block_ids: set[str] = set()
    for i, block in enumerate(blocks):
        _check_block(p, block, f"{pointer}/{i}", surface=surface, block_ids=block_ids)
    return p.items


def validate_view(view: Any, *, pointer: str = "/view") -> list[str]:
    """Return Slack-style problems for a modal or Home tab view; empty means valid."""
    p = _Problems()
    if not isinstance(view, dict):
        p.add("must provide an object", pointer)
        return p.items
    kind = view.get("type")
    if kind is None:
        p.add("missing required field: type", pointer)
    elif kind not in ("modal", "home"):
        p.add("must be a valid enum value", f"{pointer}/type")
    if kind == "modal":
        _check_text(p, view, "title", pointer, max_len=24, plain_only=True)
    else:
        _check_text(p, view, "title", pointer, max_len=24, plain_only=True, required=False)
    _check_text(p, view, "submit", pointer, max_len=24, plain_only=True, required=False)
    _check_text(p, view, "close", pointer, max_len=24, plain_only=True, required=False)
    _check_optional_str(p, view, "private_metadata", pointer, max_len=3000)
    _check_optional_str(p, view, "callback_id", pointer, max_len=255)
    _check_optional_str(p, view, "external_id", pointer, max_len=255)
    blocks = view.get("blocks")
    if blocks is None:
        p.add("missing required field: blocks", pointer)
    else:
        surface: Surface = "home" if kind == "home" else "modal"
        p.items.extend(validate_blocks(blocks, surface=surface, pointer=f"{pointer}/blocks"))
        has_inputs = isinstance(blocks, list) and any(
            isinstance(b, dict) and b.get("type") == "input" for b in blocks
        )
        if kind == "modal" and has_inputs and "submit" not in view:
            p.add("submit is required when a modal contains input blocks", pointer)
    return p.items


def find_action(blocks: Iterable[Any], action_id: str) -> tuple[str, JsonDict] | None:
    """Find the interactive element with ``action_id``: returns ``(block_id, element)``.

    Used to build interaction payloads from what the bot really rendered, so a test can only
    "click" a button that exists.
    """
    for block in blocks:
        if not isinstance(block, dict):
            continue
        candidates: list[Any] = []
        if block.get("type") == "actions":
            candidates = list(block.get("elements") or [])
        elif block.get("type") == "section" and "accessory" in block:
            candidates = [block["accessory"]]
        elif block.get("type") == "input" and "element" in block:
            candidates = [block["element"]]
        for element in candidates:
            if isinstance(element, dict) and element.get("action_id") == action_id:
                return str(block.get("block_id", "")), element
    return None


# --------------------------------------------------------------------------------------------
# Rate limits
# --------------------------------------------------------------------------------------------

#: Per-method tiers, from each method's page on api.slack.com (the same table as
#: slackapi/java-slack-sdk's MethodsRateLimits), for every method the emulator serves.
#: Absent: methods with "special" limits that no tier floor describes: chat.postMessage is
#: limited per channel instead, auth.test and api.test allow hundreds a minute.
#: conversations.history/replies are Tier 3 for internal (custom) apps like the bot; Slack
#: moved them to Tier 1 only for commercially distributed apps outside the Marketplace.
#: chat.getPermalink is "special, hundreds a minute": Tier 4's floor is stricter than Slack.
METHOD_TIERS: Mapping[str, int] = {
    "apps.connections.open": 1,
    "chat.delete": 3,
    "chat.getPermalink": 4,
    "chat.postEphemeral": 4,
    "chat.update": 3,
    "conversations.history": 3,
    "conversations.info": 3,
    "conversations.open": 3,
    "conversations.replies": 3,
    "files.completeUploadExternal": 4,
    "files.getUploadURLExternal": 4,
    "usergroups.users.list": 2,
    "users.info": 4,
    "views.open": 4,
    "views.publish": 4,
    "views.push": 4,
    "views.update": 4,
}

#: Requests per minute each tier allows ("+" in Slack's docs: these are the floors).
TIER_REQUESTS_PER_MINUTE: Mapping[int, int] = {1: 1, 2: 20, 3: 50, 4: 100}


@dataclass(frozen=True)
class RateLimits:
    """Rate-limit settings; replace them per test with :meth:`SlackEmulator.set_rate_limits`.

    Both are on by default, as strict as Slack: the per-channel limit models Slack's special
    "about one message per second per channel, short bursts allowed" rule (the bot has to
    pace bursts, an Alertmanager fan-out say, itself), and the tier limits are per method and
    per workspace (Tier 1 to 4: 1, 20, 50, 100 calls a minute, each a full minute's worth at
    once). A test that switches one off says why.
    """

    per_channel: bool = True
    per_channel_rate: float = 1.0
    per_channel_burst: int = 3
    per_channel_methods: frozenset[str] = frozenset({"chat.postMessage", "chat.update"})
    tiers: bool = True
    method_tiers: Mapping[str, int] = field(default_factory=lambda: dict(METHOD_TIERS))
    tier_requests_per_minute: Mapping[int, int] = field(
        default_factory=lambda: dict(TIER_REQUESTS_PER_MINUTE)
    )

    @classmethod
    def off(cls) -> RateLimits:
        return cls(per_channel=False, tiers=False)


@dataclass
class _Bucket:
    """A token bucket: ``capacity`` requests at once, refilled at ``rate`` per second."""

    capacity: float
    rate: float
    tokens: float
    updated: float

    def take(self, now: float) -> float | None:
        """Consume one token; return the seconds to wait instead when none is left."""
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return None
        return (1.0 - self.tokens) / self.rate


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One request the emulator answered, recorded in full.

    ``method`` is the Web API method, or ``"response_url"`` / ``"file_upload"`` for posts to
    those URLs. ``params`` merges query, form and JSON input as Slack does. ``at`` is the
    arrival time on the emulator's monotonic clock; ``status`` the HTTP status answered.
    """

    method: str
    params: JsonDict
    headers: CIMultiDictProxy[str]
    at: float
    status: int
    http_method: str = "POST"
    content_type: str = ""
    body: bytes = b""
    response: Any = None
    seq: int = 0

    @property
    def ok(self) -> bool:
        return (
            self.status == 200
            and isinstance(self.response, dict)
            and self.response.get("ok") is True
        )

    @property
    def error(self) -> str | None:
        if isinstance(self.response, dict):
            error = self.response.get("error")
            return str(error) if error is not None else None
        return None


@dataclass(frozen=True)
class MessageVersion:
    """The content of a message at one point in time (the post, then each edit)."""

    text: str
    blocks: list[JsonDict]
    attachments: list[JsonDict]
    at: float
    via: str


@dataclass
class Message:
    """A message in a channel, with its edits applied and its history kept."""

    channel: str
    ts: str
    text: str
    blocks: list[JsonDict]
    thread_ts: str | None
    user: str
    bot_id: str | None
    via: str
    attachments: list[JsonDict] = field(default_factory=list)
    metadata: JsonDict | None = None
    files: list[JsonDict] = field(default_factory=list)
    reply_broadcast: bool = False
    deleted: bool = False
    history: list[MessageVersion] = field(default_factory=list)

    @property
    def is_reply(self) -> bool:
        return self.thread_ts is not None and self.thread_ts != self.ts

    @property
    def edits(self) -> int:
        """How many times the message was changed after it was posted."""
        return max(0, len(self.history) - 1)

    def to_payload(self, *, team_id: str, app_id: str) -> JsonDict:
        """The message as Slack returns it (in API answers and interaction payloads)."""
        payload: JsonDict = {
            "type": "message",
            "text": self.text,
            "user": self.user,
            "ts": self.ts,
            "team": team_id,
        }
        if self.bot_id is not None:
            payload["bot_id"] = self.bot_id
            payload["app_id"] = app_id
        if self.blocks:
            payload["blocks"] = copy.deepcopy(self.blocks)
        if self.attachments:
            payload["attachments"] = copy.deepcopy(self.attachments)
        if self.thread_ts is not None:
            payload["thread_ts"] = self.thread_ts
        if self.metadata is not None:
            payload["metadata"] = copy.deepcopy(self.metadata)
        if self.files:
            payload["files"] = copy.deepcopy(self.files)
        if self.edits:
            payload["edited"] = {"user": self.user, "ts": self.ts}
        return payload


@dataclass
class EphemeralMessage:
    """A message only ``user`` sees: chat.postEphemeral, an ephemeral response_url reply, or
    the body of a slash-command acknowledgement (``via`` tells which)."""

    channel: str
    user: str
    ts: str
    text: str
    blocks: list[JsonDict]
    via: str
    thread_ts: str | None = None
    deleted: bool = False
    history: list[MessageVersion] = field(default_factory=list)
    error: str | None = None


@dataclass(frozen=True)
class ResponsePost:
    """One POST to a response_url, and what it did (``new``, ``replace``, ``delete``,
    ``ignored`` or ``rejected``)."""

    url: str
    channel: str
    user: str
    payload: JsonDict
    status: int
    action: str
    at: float
    error: str | None = None
    target_ts: str | None = None


@dataclass
class _ResponseUrl:
    id: str
    url: str
    channel: str
    user: str
    message_ts: str | None
    created: float
    uses: int = 0


class _DefinitionField:
    """A string field of a view's definition, read like a property ("" when absent)."""

    def __set_name__(self, owner: object, name: str) -> None:
        self.key = name

    def __get__(self, view: Any, owner: object = None) -> str:
        return str(view.definition.get(self.key, ""))


@dataclass
class ViewRecord:
    """A view opened through views.open/views.push, with its updates and submissions."""

    id: str
    user: str
    definition: JsonDict
    hash: str
    root_view_id: str
    previous_view_id: str | None
    opened_at: float
    state: Literal["open", "closed"] = "open"
    closed_by: str | None = None
    history: list[JsonDict] = field(default_factory=list)
    submissions: list[JsonDict] = field(default_factory=list)

    type = _DefinitionField()
    callback_id = _DefinitionField()
    private_metadata = _DefinitionField()
    external_id = _DefinitionField()

    @property
    def title(self) -> str:
        title = self.definition.get("title") or {}
        return str(title.get("text", "")) if isinstance(title, dict) else ""

    @property
    def blocks(self) -> list[JsonDict]:
        blocks = self.definition.get("blocks")
        return blocks if isinstance(blocks, list) else []

    def to_payload(
        self, *, team_id: str, app_id: str, bot_id: str, state_values: JsonDict | None = None
    ) -> JsonDict:
        """The view as Slack returns it from views.* and embeds it in interaction payloads."""
        payload: JsonDict = {
            "id": self.id,
            "team_id": team_id,
            "type": self.type,
            "blocks": copy.deepcopy(self.blocks),
            "private_metadata": self.private_metadata,
            "callback_id": self.callback_id,
            "external_id": self.external_id,
            "state": {"values": copy.deepcopy(state_values or {})},
            "hash": self.hash,
            "clear_on_close": bool(self.definition.get("clear_on_close", False)),
            "notify_on_close": bool(self.definition.get("notify_on_close", False)),
            "root_view_id": self.root_view_id,
            "previous_view_id": self.previous_view_id,
            "app_id": app_id,
            "app_installed_team_id": team_id,
            "bot_id": bot_id,
        }
        for key in ("title", "submit", "close"):
            if key in self.definition:
                payload[key] = copy.deepcopy(self.definition[key])
        return payload


@dataclass
class UploadedFile:
    """A file going through the files_upload_v2 flow (URL issued, bytes posted, completed)."""

    id: str
    filename: str
    length: int
    upload_url: str
    content: bytes | None = None
    title: str | None = None
    alt_txt: str | None = None
    snippet_type: str | None = None
    completed: bool = False
    channels: list[str] = field(default_factory=list)
    initial_comment: str | None = None
    thread_ts: str | None = None

    def to_payload(self, *, user: str, created: int) -> JsonDict:
        return {
            "id": self.id,
            "created": created,
            "timestamp": created,
            "name": self.filename,
            "title": self.title or self.filename,
            "mimetype": "text/plain",
            "filetype": "text",
            "size": len(self.content or b""),
            "user": user,
            "is_external": False,
            "shares": {},
            "channels": list(self.channels),
        }


@dataclass
class Channel:
    """A conversation the emulator knows about."""

    id: str
    name: str
    is_private: bool = False
    is_member: bool = True
    is_archived: bool = False
    is_im: bool = False
    members: frozenset[str] | None = None
    created: int = 1_700_000_000

    def to_payload(self) -> JsonDict:
        return {
            "id": self.id,
            "name": self.name,
            "name_normalized": self.name,
            "is_channel": not self.is_private and not self.is_im,
            "is_group": False,
            "is_im": self.is_im,
            "is_mpim": False,
            "is_private": self.is_private,
            "is_archived": self.is_archived,
            "is_general": False,
            "is_member": self.is_member,
            "is_shared": False,
            "is_ext_shared": False,
            "is_org_shared": False,
            "created": self.created,
            "creator": "",
            "topic": {"value": "", "creator": "", "last_set": 0},
            "purpose": {"value": "", "creator": "", "last_set": 0},
        }


@dataclass
class _Trigger:
    id: str
    user: str
    issued: float
    view_id: str | None
    used: bool = False


@dataclass(frozen=True)
class _Fault:
    error: str
    status: int
    retry_after: int | None
    #: The call takes effect (the message lands) and only then fails: the answer is lost.
    after_effect: bool = False
    #: With ``after_effect``: hold the answer this long first (past the client's timeout).
    hang: float = 0.0


class _ApiError(Exception):
    """Raised inside handlers to answer ``{"ok": false, "error": ...}``."""

    def __init__(
        self,
        error: str,
        *,
        status: int = 200,
        extra: JsonDict | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(error)
        self.error = error
        self.status = status
        self.extra = extra or {}
        self.headers = dict(headers or {})

    def body(self) -> JsonDict:
        return {"ok": False, "error": self.error, **self.extra}


def _invalid_arguments(messages: list[str]) -> _ApiError:
    return _ApiError(
        "invalid_arguments",
        extra={"response_metadata": {"messages": [f"[ERROR] {m}" for m in messages]}},
    )


def _invalid_blocks(problems: list[str]) -> _ApiError:
    return _ApiError(
        "invalid_blocks",
        extra={
            "errors": problems,
            "response_metadata": {"messages": [f"[ERROR] {m}" for m in problems]},
        },
    )


def _flag(value: Any) -> bool:
    """Slack's boolean parsing: JSON booleans, or "true"/"1" in forms and queries."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    return str(value).strip().lower() in ("1", "true", "yes")


def _json_param(params: Mapping[str, Any], key: str, *, error: str) -> Any:
    """A structured argument: JSON bodies carry it as-is, forms as a JSON-encoded string."""
    value = params.get(key)
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError as exc:
            raise _ApiError(error) from exc
    return value


Handler = Callable[["_Request"], Awaitable[JsonDict]]


@dataclass(frozen=True)
class _Request:
    method: str
    params: JsonDict
    token_kind: Literal["bot", "app"]


# --------------------------------------------------------------------------------------------
# The emulator
# --------------------------------------------------------------------------------------------


class SlackEmulator:
    """The Slack Web API (and response_url, upload URL, Socket Mode) on loopback.

    Construct, ``await start()``, point ``AsyncWebClient(base_url=emulator.base_url)`` at it,
    ``await stop()``. All state lives in memory and belongs to one test.
    """

    def __init__(
        self,
        *,
        bot_token: str = "xoxb-test-token",
        app_token: str = "xapp-test-token",
        team_id: str = "T0POLICY",
        team_domain: str = "policy-bot-test",
        team_name: str = "Policy Bot Test",
        app_id: str = "A0POLICY",
        bot_id: str = "B0POLICY",
        bot_user_id: str = "U0POLICYBOT",
        bot_name: str = "policy-bot",
        auto_channel_prefixes: Iterable[str] = ("C",),
        rate_limits: RateLimits | None = None,
        trigger_ttl: float = 3.0,
        check_triggers: bool = True,
        response_url_uses: int = 5,
        response_url_ttl: float = 30 * 60,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.bot_token = bot_token
        self.app_token = app_token
        self.team_id = team_id
        self.team_domain = team_domain
        self.team_name = team_name
        self.app_id = app_id
        self.bot_id = bot_id
        self.bot_user_id = bot_user_id
        self.bot_name = bot_name
        #: Channel ids with these prefixes exist without registration (``()`` to disable).
        self.auto_channel_prefixes: tuple[str, ...] = tuple(auto_channel_prefixes)
        #: Seconds a trigger_id stays exchangeable (Slack: about 3 s).
        self.trigger_ttl = trigger_ttl
        #: When false, views.open/push accept any trigger_id (for tests that skip interactions).
        self.check_triggers = check_triggers
        self.response_url_uses = response_url_uses
        self.response_url_ttl = response_url_ttl
        self._clock = clock
        self._wall_clock = wall_clock

        self._rate_limits = rate_limits or RateLimits()
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._ratelimited: Counter[str] = Counter()

        self._calls: list[Call] = []
        self._claimed: set[int] = set()
        self._changed = asyncio.Condition()
        self._faults: dict[str, list[_Fault]] = {}
        self._delays: dict[str, float] = {}
        self._outage: int | None = None

        self._channels: dict[str, Channel] = {}
        self._users: dict[str, JsonDict] = {}
        self._usergroups: dict[str, JsonDict] = {}
        self._messages: dict[str, dict[str, Message]] = {}
        self._ephemeral: list[EphemeralMessage] = []
        self._response_urls: dict[str, _ResponseUrl] = {}
        self._responses: list[ResponsePost] = []
        # Slash commands, clicks and view submissions acknowledged after Slack's 3 s: the
        # person saw an error ("operation_timeout") however the bot went on.
        self.late_acks: list[str] = []
        self._views: dict[str, ViewRecord] = {}
        self._homes: dict[str, ViewRecord] = {}
        self._triggers: dict[str, _Trigger] = {}
        self._files: dict[str, UploadedFile] = {}
        self._uploads: dict[str, str] = {}

        self._seq = 0
        self._last_ts_us = 0

        #: Socket Mode endpoint (apps.connections.open hands out its URLs).
        self.socket_mode = SocketModeServer(app_id=app_id, on_change=self._notify)

        self._methods: dict[str, Handler] = {
            "api.test": self._api_test,
            "apps.connections.open": self._apps_connections_open,
            "auth.test": self._auth_test,
            "chat.delete": self._chat_delete,
            "chat.getPermalink": self._chat_get_permalink,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "conversations.history": self._conversations_history,
            "conversations.info": self._conversations_info,
            "conversations.open": self._conversations_open,
            "conversations.replies": self._conversations_replies,
            "files.completeUploadExternal": self._files_complete_upload_external,
            "files.getUploadURLExternal": self._files_get_upload_url_external,
            "usergroups.users.list": self._usergroups_users_list,
            "users.info": self._users_info,
            "views.open": self._views_open,
            "views.publish": self._views_publish,
            "views.push": self._views_push,
            "views.update": self._views_update,
        }

        self.app = web.Application()
        self.app.router.add_get("/api/{method}", self._handle_api)
        self.app.router.add_post("/api/{method}", self._handle_api)
        self.app.router.add_post("/response/{id}", self._handle_response_url)
        self.app.router.add_post("/upload/v1/{id}", self._handle_upload)
        self.socket_mode.install(self.app)
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Serve on 127.0.0.1 with an OS-assigned port."""
        if self._runner is not None:
            raise RuntimeError("the Slack emulator is already running")
        runner = web.AppRunner(self.app, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runner = runner
        self._port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        """Close Socket Mode connections, then the server; in-flight requests are cut short."""
        await self.socket_mode.close()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> SlackEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        """Root URL, e.g. ``http://127.0.0.1:43121``."""
        if self._port is None:
            raise RuntimeError("the Slack emulator is not running")
        return f"http://127.0.0.1:{self._port}"

    @property
    def base_url(self) -> str:
        """Web API base URL for ``AsyncWebClient(base_url=...)``; the trailing slash matters."""
        return f"{self.url}/api/"

    # ---------------------------------------------------------------- workspace set-up

    def add_channel(
        self,
        channel_id: str,
        name: str | None = None,
        *,
        is_private: bool = False,
        is_member: bool = True,
        is_archived: bool = False,
        members: Iterable[str] | None = None,
    ) -> Channel:
        """Register a channel. ``members`` (when given) is enforced by chat.postEphemeral;
        ``is_member=False`` makes chat.postMessage answer ``not_in_channel``."""
        channel = Channel(
            id=channel_id,
            name=name or channel_id.lower(),
            is_private=is_private,
            is_member=is_member,
            is_archived=is_archived,
            members=frozenset(members) if members is not None else None,
        )
        self._channels[channel_id] = channel
        return channel

    def add_user(
        self,
        user_id: str,
        name: str,
        real_name: str | None = None,
        *,
        tz: str = "Europe/Berlin",
        tz_label: str = "Central European Time",
        tz_offset: int = 3600,
        email: str | None = None,
        display_name: str | None = None,
        is_bot: bool = False,
        is_admin: bool = False,
        deleted: bool = False,
    ) -> JsonDict:
        """Register a user; users.info returns it in Slack's user shape."""
        real = real_name or name
        profile: JsonDict = {
            "title": "",
            "phone": "",
            "skype": "",
            "real_name": real,
            "real_name_normalized": real,
            "display_name": display_name if display_name is not None else name,
            "display_name_normalized": display_name if display_name is not None else name,
            "fields": None,
            "status_text": "",
            "status_emoji": "",
            "status_expiration": 0,
            "avatar_hash": "g0000000000",
            "image_24": f"https://avatars.example/{user_id}_24.png",
            "image_48": f"https://avatars.example/{user_id}_48.png",
            "team": self.team_id,
        }
        if email is not None:
            profile["email"] = email
        user: JsonDict = {
            "id": user_id,
            "team_id": self.team_id,
            "name": name,
            "deleted": deleted,
            "color": "9f69e7",
            "real_name": real,
            "tz": tz,
            "tz_label": tz_label,
            "tz_offset": tz_offset,
            "profile": profile,
            "is_admin": is_admin,
            "is_owner": False,
            "is_primary_owner": False,
            "is_restricted": False,
            "is_ultra_restricted": False,
            "is_bot": is_bot,
            "is_app_user": False,
            "updated": 1_700_000_000,
            "is_email_confirmed": True,
            "who_can_share_contact_card": "EVERYONE",
        }
        self._users[user_id] = user
        return user

    def add_usergroup(
        self, usergroup_id: str, handle: str, users: Iterable[str], *, name: str | None = None
    ) -> None:
        """Register a user group (``S...``) for usergroups.users.list."""
        self._usergroups[usergroup_id] = {
            "id": usergroup_id,
            "handle": handle,
            "name": name or handle,
            "users": list(users),
        }

    def set_usergroup_members(self, usergroup_id: str, users: Iterable[str]) -> None:
        """Change membership mid-test (to exercise membership caches)."""
        self._usergroups[usergroup_id]["users"] = list(users)

    def add_user_message(
        self, channel: str, user: str, text: str, *, thread_ts: str | None = None
    ) -> Message:
        """Put a message from a human into a channel (the bot may reply, not edit it)."""
        ts = self._next_ts()
        message = Message(
            channel=channel,
            ts=ts,
            text=text,
            blocks=[],
            thread_ts=thread_ts,
            user=user,
            bot_id=None,
            via="user",
        )
        message.history.append(MessageVersion(text, [], [], self._clock(), "user"))
        self._messages.setdefault(channel, {})[ts] = message
        return message

    # ---------------------------------------------------------------- behaviour knobs

    @property
    def rate_limits(self) -> RateLimits:
        return self._rate_limits

    def set_rate_limits(self, limits: RateLimits | None = None, **changes: Any) -> RateLimits:
        """Replace the rate-limit settings (``set_rate_limits(per_channel=False)``,
        ``set_rate_limits(RateLimits.off())``, ...) and reset the buckets."""
        base = limits or self._rate_limits
        self._rate_limits = replace(base, **changes) if changes else base
        self._buckets.clear()
        return self._rate_limits

    def ratelimited_count(self, method: str | None = None) -> int:
        """How many requests were answered 429 because a rate limit was exceeded (injected
        faults not included)."""
        if method is None:
            return sum(self._ratelimited.values())
        return self._ratelimited[method]

    def fail_next(
        self,
        method: str,
        error: str = "internal_error",
        *,
        status: int = 500,
        times: int = 1,
        retry_after: int | None = None,
        after_effect: bool = False,
        hang: float = 0.0,
    ) -> None:
        """Make the next ``times`` calls of ``method`` fail without side effects.

        ``status=200`` gives Slack's ``{"ok": false, "error": error}``; ``status=429`` adds a
        ``Retry-After`` header (``retry_after``, default 1). Applies after authentication, like
        a server-side failure would. ``method`` may also be ``"response_url"`` or
        ``"file_upload"``.

        ``after_effect=True`` (Web API methods) lets the call take effect first (the message
        lands) and loses only the answer, as a 5xx or timeout behind Slack's front door does;
        ``hang`` holds that answer for so many seconds first (past the client's timeout).
        """
        if status == 429 and retry_after is None:
            retry_after = 1
        self._faults.setdefault(method, []).extend(
            _Fault(error, status, retry_after, after_effect, hang) for _ in range(times)
        )

    def set_outage(self, status: int | None = 503) -> None:
        """Slack down: every call answers ``status`` without effect until ``set_outage(None)``."""
        self._outage = status

    def slow(self, method: str, seconds: float | None) -> None:
        """Delay every answer of ``method`` by ``seconds`` (``None`` or 0 to stop)."""
        if seconds:
            self._delays[method] = seconds
        else:
            self._delays.pop(method, None)

    # ---------------------------------------------------------------- interaction plumbing

    def issue_trigger_id(self, user: str, *, view_id: str | None = None) -> str:
        """A trigger_id as Slack puts into an interaction payload: single use, short-lived.
        ``view_id`` is the view the interaction happened in (needed for views.push)."""
        trigger_id = f"{int(self._wall_clock())}.{self._seq + 1}.{secrets.token_hex(16)}"
        self._seq += 1
        self._triggers[trigger_id] = _Trigger(trigger_id, user, self._clock(), view_id)
        return trigger_id

    def response_url(self, channel: str, user: str, *, message_ts: str | None = None) -> str:
        """Create a response_url as Slack does for a command or interaction.

        ``message_ts`` names the message that held the clicked component (a channel message,
        or an ephemeral message of ``user``); ``replace_original``/``delete_original`` act on
        it. Without it (slash commands) ``replace_original`` posts a new reply instead, as on
        Slack.
        """
        url_id = secrets.token_urlsafe(12)
        url = f"{self.url}/response/{url_id}"
        self._response_urls[url_id] = _ResponseUrl(
            url_id, url, channel, user, message_ts, self._clock()
        )
        return url

    def record_command_ack(
        self,
        *,
        channel: str,
        user: str,
        status: int,
        body: str,
        content_type: str,
        elapsed: float = 0.0,
    ) -> EphemeralMessage | Message | None:
        """Show a slash-command acknowledgement the way Slack does.

        A JSON body with text/blocks becomes an ephemeral reply (or a channel message with
        ``response_type: in_channel``); plain text becomes an ephemeral text reply; an empty
        body shows nothing. Invalid blocks are recorded with ``error`` set, as the user would
        see an error instead of the reply. An answer after the 3 s deadline is discarded and
        the user sees ``operation_timeout``. Other non-200 answers show nothing here.
        """
        if elapsed >= ACK_DEADLINE:
            timed_out = EphemeralMessage(
                channel=channel,
                user=user,
                ts=self._next_ts(),
                text="",
                blocks=[],
                via="command_ack",
                error="operation_timeout",
            )
            self._ephemeral.append(timed_out)
            return timed_out
        if status != 200 or not body.strip():
            return None
        payload: JsonDict
        if content_type.startswith("application/json"):
            try:
                loaded = json.loads(body)
            except ValueError:
                return None
            if not isinstance(loaded, dict):
                return None
            payload = loaded
        else:
            payload = {"text": body}
        problems: list[str] = []
        blocks = payload.get("blocks") or []
        if blocks:
            problems = validate_blocks(blocks)
        text = str(payload.get("text") or "")
        now = self._clock()
        if payload.get("response_type") == "in_channel" and not problems:
            return self._store_message(
                channel=channel,
                text=text,
                blocks=blocks,
                attachments=[],
                thread_ts=None,
                via="command_ack",
            )
        ephemeral = EphemeralMessage(
            channel=channel,
            user=user,
            ts=self._next_ts(),
            text=text,
            blocks=copy.deepcopy(blocks),
            via="command_ack",
            error="invalid_blocks" if problems else None,
        )
        ephemeral.history.append(MessageVersion(text, blocks, [], now, "command_ack"))
        self._ephemeral.append(ephemeral)
        return ephemeral

    def record_view_submission_ack(
        self, view_id: str, *, status: int, body: str, content_type: str
    ) -> JsonDict:
        """Apply the bot's answer to a view_submission the way Slack does.

        Empty 200 closes the view; ``response_action``: ``errors`` keeps it open,
        ``update`` replaces it, ``push`` opens another on top, ``clear`` closes the whole
        stack. Returns the outcome recorded in ``ViewRecord.submissions``.
        """
        view = self._views[view_id]
        outcome: JsonDict = {"status": status, "response_action": None, "problems": []}
        if status != 200:
            outcome["result"] = "error_shown"
            view.submissions.append(outcome)
            return outcome
        answer: JsonDict = {}
        if body.strip() and content_type.startswith("application/json"):
            loaded = json.loads(body)
            if isinstance(loaded, dict):
                answer = loaded
        action = answer.get("response_action")
        outcome["response_action"] = action
        if action is None:
            self._close_view(view, by="submit")
            outcome["result"] = "closed"
        elif action == "errors":
            errors = answer.get("errors")
            if not isinstance(errors, dict) or not errors:
                outcome["problems"] = ["errors must be a non-empty object"]
            else:
                input_ids = {b.get("block_id") for b in view.blocks if b.get("type") == "input"}
                unknown = sorted(k for k in errors if k not in input_ids)
                if unknown:
                    outcome["problems"] = [f"not an input block_id: {k}" for k in unknown]
            outcome["errors"] = errors
            outcome["result"] = "errors_shown"
        elif action in ("update", "push"):
            new_view = answer.get("view")
            problems = validate_view(new_view)
            outcome["problems"] = problems
            if not problems and isinstance(new_view, dict):
                if action == "update":
                    self._replace_view(view, new_view)
                    outcome["result"] = "updated"
                else:
                    pushed = self._open_view(
                        new_view, user=view.user, root=view.root_view_id, previous=view.id
                    )
                    outcome["result"] = "pushed"
                    outcome["view_id"] = pushed.id
            else:
                outcome["result"] = "rejected"
        elif action == "clear":
            for other in self._views.values():
                if other.root_view_id == view.root_view_id and other.state == "open":
                    self._close_view(other, by="clear")
            outcome["result"] = "cleared"
        else:
            outcome["problems"] = [f"unknown response_action: {action}"]
            outcome["result"] = "rejected"
        view.submissions.append(outcome)
        return outcome

    # ---------------------------------------------------------------- inspection

    def calls(self, method: str | None = None) -> list[Call]:
        """Every request answered so far (in completion order), optionally for one method."""
        return [c for c in self._calls if method is None or c.method == method]

    async def next_call(
        self,
        method: str | None = None,
        *,
        timeout: float = 2.0,
        predicate: Callable[[Call], bool] | None = None,
    ) -> Call:
        """The earliest matching call not yet returned by ``next_call``, waiting for it.

        Calls made before the test started waiting count, so there is no race between the
        action under test and this await. Raises :class:`TimeoutError` with a summary of what
        was seen.
        """
        found: Call | None = None

        def ready() -> bool:
            nonlocal found
            for call in self._calls:
                if call.seq in self._claimed:
                    continue
                if method is not None and call.method != method:
                    continue
                if predicate is not None and not predicate(call):
                    continue
                found = call
                return True
            return False

        if not await wait_for(self._changed, ready, timeout):
            seen = ", ".join(f"{c.method}={c.status}" for c in self._calls[-20:]) or "nothing"
            raise TimeoutError(
                f"no {method or 'any'} call matched within {timeout}s; last calls: {seen}"
            )
        assert found is not None
        self._claimed.add(found.seq)
        return found

    async def wait_until(self, condition: Callable[[], bool], *, timeout: float = 2.0) -> None:
        """Wait until ``condition()`` holds; re-checked after every request the emulator
        answers and every Socket Mode event (no polling)."""
        if not await wait_for(self._changed, condition, timeout):
            raise TimeoutError(f"condition not met within {timeout}s")

    def message(self, channel: str, ts: str) -> Message | None:
        """A message by channel and ts (deleted ones included, flagged)."""
        return self._messages.get(channel, {}).get(ts)

    def messages(self, channel: str, *, include_deleted: bool = False) -> list[Message]:
        """Current messages of a channel, top-level and replies, oldest first."""
        return [
            m for m in self._messages.get(channel, {}).values() if include_deleted or not m.deleted
        ]

    def parents(self, channel: str) -> list[Message]:
        """Top-level messages of a channel (what conversations.history would list)."""
        return [m for m in self.messages(channel) if not m.is_reply]

    def replies(self, channel: str, thread_ts: str) -> list[Message]:
        """Replies in a thread, oldest first, without the parent."""
        return [m for m in self.messages(channel) if m.is_reply and m.thread_ts == thread_ts]

    def ephemeral(
        self, channel: str | None = None, user: str | None = None
    ) -> list[EphemeralMessage]:
        """Ephemeral messages, optionally for one channel and/or user."""
        return [
            e
            for e in self._ephemeral
            if (channel is None or e.channel == channel) and (user is None or e.user == user)
        ]

    @property
    def responses(self) -> list[ResponsePost]:
        """Every POST to a response_url, with its effect."""
        return list(self._responses)

    @property
    def views(self) -> list[ViewRecord]:
        """Every view opened or pushed, in order."""
        return list(self._views.values())

    def view(self, view_id: str) -> ViewRecord:
        return self._views[view_id]

    def home(self, user: str) -> ViewRecord | None:
        """The Home tab last published for `user` (its `history` has every version)."""
        return self._homes.get(user)

    def open_views(self, user: str | None = None) -> list[ViewRecord]:
        return [
            v
            for v in self._views.values()
            if v.state == "open" and (user is None or v.user == user)
        ]

    async def close_by_user(self, view_id: str) -> None:
        """The user dismisses a modal (its close button): its whole stack closes, as on Slack.
        (``view_closed`` for ``notify_on_close`` views is not emulated.)"""
        root = self._views[view_id].root_view_id
        for record in self._views.values():
            if record.root_view_id == root and record.state == "open":
                self._close_view(record, by="user")
        await self._notify()

    @property
    def files(self) -> list[UploadedFile]:
        return list(self._files.values())

    def user(self, user_id: str) -> JsonDict | None:
        return self._users.get(user_id)

    def channel(self, channel_id: str) -> Channel | None:
        """A known or auto-accepted channel (registering the latter), else ``None``."""
        try:
            return self._resolve_channel(channel_id)
        except _ApiError:
            return None

    # ---------------------------------------------------------------- HTTP: Web API

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        arrival = self._clock()
        method = request.match_info["method"]
        raw = b""
        params: JsonDict = {}
        headers: dict[str, str] = {}
        try:
            if request.method == "POST" and not request.content_type.startswith("multipart/"):
                raw = await request.read()
            params = await self._read_params(request, raw)
            if method in self._delays:
                await asyncio.sleep(self._delays[method])
            handler = self._methods.get(method)
            if handler is None:
                raise _ApiError("unknown_method", status=404, extra={"req_method": method})
            token_kind = (
                "bot" if method == "api.test" else self._authenticate(method, request, params)
            )
            late = self._inject_fault(method)
            self._enforce_rate_limits(method, params)
            result = await handler(_Request(method, params, token_kind))
            if late is not None:
                await self._lose_answer(late)
            status, body = 200, {"ok": True, **result}
        except _ApiError as err:
            status, body, headers = err.status, err.body(), err.headers
        await self._record(
            Call(
                method=method,
                params=params,
                headers=CIMultiDictProxy(CIMultiDict(request.headers)),
                at=arrival,
                status=status,
                http_method=request.method,
                content_type=request.content_type,
                body=raw,
                response=body,
            )
        )
        return web.json_response(body, status=status, headers=headers)

    async def _read_params(self, request: web.Request, raw: bytes) -> JsonDict:
        """Merge query, form and JSON input, as Slack accepts all three."""
        params: JsonDict = dict(request.query)
        if request.method != "POST":
            return params
        if request.content_type.startswith("multipart/"):
            form = await request.post()
            params.update({k: v for k, v in form.items() if isinstance(v, str)})
            return params
        if not raw:
            return params
        if request.content_type == "application/json":
            try:
                body = json.loads(raw)
            except ValueError as exc:
                raise _ApiError("invalid_json") from exc
            if not isinstance(body, dict):
                raise _ApiError("invalid_json")
            params.update(body)
        elif request.content_type == "application/x-www-form-urlencoded":
            text = raw.decode(request.charset or "utf-8", errors="replace")
            params.update(dict(parse_qsl(text, keep_blank_values=True)))
        else:
            raise _ApiError("invalid_post_type")
        return params

    def _authenticate(
        self, method: str, request: web.Request, params: Mapping[str, Any]
    ) -> Literal["bot", "app"]:
        """Bearer header, or a ``token`` form field (JSON bodies and query strings do not
        carry tokens for current Slack apps)."""
        header = request.headers.get("Authorization")
        token: str | None = None
        if header is not None:
            scheme, _, value = header.partition(" ")
            if scheme != "Bearer" or not value:
                raise _ApiError("invalid_auth")
            token = value.strip()
        elif request.content_type == "application/x-www-form-urlencoded":
            form_token = params.get("token")
            token = form_token if isinstance(form_token, str) else None
        if not token:
            raise _ApiError("not_authed")
        if token == self.bot_token:
            kind: Literal["bot", "app"] = "bot"
        elif token == self.app_token:
            kind = "app"
        else:
            raise _ApiError("invalid_auth")
        needs_app = method == "apps.connections.open"
        if needs_app != (kind == "app"):
            raise _ApiError("not_allowed_token_type")
        return kind

    def _inject_fault(self, method: str) -> _Fault | None:
        """Raise the next fault queued for ``method``; one that strikes after the side effect
        is returned instead, for the caller to apply once the call has taken effect."""
        if self._outage is not None:
            raise _ApiError("service_unavailable", status=self._outage)
        queue = self._faults.get(method)
        if not queue:
            return None
        fault = queue.pop(0)
        if fault.after_effect:
            return fault
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
        raise _ApiError(fault.error, status=fault.status, headers=headers)

    async def _lose_answer(self, fault: _Fault) -> None:
        if fault.hang:
            await asyncio.sleep(fault.hang)
        raise _ApiError(fault.error, status=fault.status)

    def _enforce_rate_limits(self, method: str, params: Mapping[str, Any]) -> None:
        limits = self._rate_limits
        now = self._clock()
        waits: list[float] = []
        if limits.per_channel and method in limits.per_channel_methods:
            raw_channel = str(params.get("channel") or "")
            known = self.channel(raw_channel)
            channel = known.id if known is not None else raw_channel
            bucket = self._buckets.get((method, channel))
            if bucket is None:
                burst = float(max(1, limits.per_channel_burst))
                bucket = _Bucket(burst, limits.per_channel_rate, burst, now)
                self._buckets[(method, channel)] = bucket
            wait = bucket.take(now)
            if wait is not None:
                waits.append(wait)
        tier = limits.method_tiers.get(method)
        if limits.tiers and tier is not None and not waits:
            per_minute = float(limits.tier_requests_per_minute[tier])
            bucket = self._buckets.get((method, "*"))
            if bucket is None:
                bucket = _Bucket(per_minute, per_minute / 60.0, per_minute, now)
                self._buckets[(method, "*")] = bucket
            wait = bucket.take(now)
            if wait is not None:
                waits.append(wait)
        if waits:
            self._ratelimited[method] += 1
            retry_after = max(1, math.ceil(max(waits)))
            raise _ApiError("ratelimited", status=429, headers={"Retry-After": str(retry_after)})

    async def _record(self, call: Call) -> None:
        self._seq += 1
        self._calls.append(replace(call, seq=self._seq))
        await self._notify()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # ---------------------------------------------------------------- helpers

    def _next_ts(self) -> str:
        """Slack-style ts: wall-clock seconds and microseconds, unique and increasing."""
        now_us = int(self._wall_clock() * 1_000_000)
        self._last_ts_us = max(now_us, self._last_ts_us + 1)
        seconds, micros = divmod(self._last_ts_us, 1_000_000)
        return f"{seconds}.{micros:06d}"

    def _new_id(self, prefix: str) -> str:
        self._seq += 1
        return f"{prefix}{self._seq:08X}"

    def _resolve_channel(self, value: Any) -> Channel:
        if not isinstance(value, str) or not value:
            raise _ApiError("channel_not_found")
        if value in self._channels:
            return self._visible(self._channels[value])
        name = value.removeprefix("#")
        for channel in self._channels.values():
            if channel.name == name and not channel.is_im:
                return self._visible(channel)
        if value[0] in "UW" and value in self._users:
            dm_id = "D" + value[1:]
            return self._channels.setdefault(
                dm_id, Channel(id=dm_id, name=dm_id.lower(), is_im=True, is_private=True)
            )
        if len(value) > 1 and any(value.startswith(p) for p in self.auto_channel_prefixes):
            return self._channels.setdefault(value, Channel(id=value, name=value.lower()))
        raise _ApiError("channel_not_found")

    @staticmethod
    def _visible(channel: Channel) -> Channel:
        """A private channel the bot was not invited to does not exist for it, as on Slack."""
        if channel.is_private and not channel.is_im and not channel.is_member:
            raise _ApiError("channel_not_found")
        return channel

    def _with_generated_ids(self, blocks: list[JsonDict]) -> list[JsonDict]:
        """Copy blocks, filling in block_id/action_id where missing, as Slack does."""
        result = copy.deepcopy(blocks)
        for block in result:
            if "block_id" not in block:
                block["block_id"] = self._new_id("b").lower()
            elements: list[Any] = []
            if block.get("type") == "actions":
                elements = list(block.get("elements") or [])
            elif "accessory" in block:
                elements = [block["accessory"]]
            elif block.get("type") == "input" and "element" in block:
                elements = [block["element"]]
            for element in elements:
                if (
                    isinstance(element, dict)
                    and element.get("type") != "image"
                    and "action_id" not in element
                ):
                    element["action_id"] = self._new_id("a").lower()
        return result

    def _message_content(
        self, params: Mapping[str, Any], *, for_update: bool = False
    ) -> tuple[str | None, list[JsonDict] | None, list[JsonDict] | None]:
        """Validate text/blocks/attachments of a message as chat.* does."""
        text = params.get("text")
        if text is not None and not isinstance(text, str):
            text = str(text)
        blocks = _json_param(params, "blocks", error="invalid_blocks_format")
        if blocks is not None and not isinstance(blocks, list):
            raise _ApiError("invalid_blocks_format")
        attachments = _json_param(params, "attachments", error="invalid_attachments")
        if attachments is not None and not isinstance(attachments, list):
            raise _ApiError("invalid_attachments")
        if not text and not blocks and not attachments and not (for_update and blocks == []):
            raise _ApiError("no_text")
        if text is not None and len(text) > MAX_MESSAGE_TEXT:
            raise _ApiError("msg_too_long")
        if attachments and len(attachments) > MAX_ATTACHMENTS:
            raise _ApiError("too_many_attachments")
        problems: list[str] = []
        if blocks:
            problems += validate_blocks(blocks)
        for i, attachment in enumerate(attachments or []):
            if isinstance(attachment, dict) and "blocks" in attachment:
                problems += validate_blocks(
                    attachment["blocks"], pointer=f"/attachments/{i}/blocks"
                )
        if problems:
            raise _invalid_blocks(problems)
        return text, blocks, attachments

    def _store_message(
        self,
        *,
        channel: str,
        text: str,
        blocks: list[JsonDict],
        attachments: list[JsonDict],
        thread_ts: str | None,
        via: str,
        metadata: JsonDict | None = None,
        files: list[JsonDict] | None = None,
        reply_broadcast: bool = False,
    ) -> Message:
        stored_blocks = self._with_generated_ids(blocks)
        message = Message(
            channel=channel,
            ts=self._next_ts(),
            text=text,
            blocks=stored_blocks,
            thread_ts=thread_ts,
            user=self.bot_user_id,
            bot_id=self.bot_id,
            via=via,
            attachments=copy.deepcopy(attachments),
            metadata=copy.deepcopy(metadata),
            files=files or [],
            reply_broadcast=reply_broadcast,
        )
        message.history.append(
            MessageVersion(text, stored_blocks, message.attachments, self._clock(), via)
        )
        self._messages.setdefault(channel, {})[message.ts] = message
        return message

    def _thread_parent(self, channel: str, thread_ts: Any) -> str | None:
        """Normalise thread_ts to the thread's parent.

        Slack does not document what happens with a thread_ts matching no message; the
        emulator answers ``thread_not_found`` so that a reply to a lost parent fails loudly.
        A reply's ts is redirected to its parent, as Slack's docs advise.
        """
        if thread_ts in (None, ""):
            return None
        parent = self._messages.get(channel, {}).get(str(thread_ts))
        if parent is None or parent.deleted:
            raise _ApiError("thread_not_found")
        return parent.thread_ts if parent.is_reply else parent.ts

    def _owned_message(self, channel: str, ts: Any, *, denied: str) -> Message:
        message = self._messages.get(channel, {}).get(str(ts or ""))
        if message is None or message.deleted:
            raise _ApiError("message_not_found")
        if message.bot_id != self.bot_id:
            raise _ApiError(denied)
        return message

    def _apply_edit(
        self,
        message: Message | EphemeralMessage,
        *,
        text: str | None,
        blocks: list[JsonDict] | None,
        attachments: list[JsonDict] | None,
        via: str,
    ) -> None:
        if text is not None:
            message.text = text
        if blocks is not None:
            message.blocks = self._with_generated_ids(blocks)
        if isinstance(message, Message) and attachments is not None:
            message.attachments = copy.deepcopy(attachments)
        kept_attachments = message.attachments if isinstance(message, Message) else []
        message.history.append(
            MessageVersion(message.text, message.blocks, kept_attachments, self._clock(), via)
        )

    # ---------------------------------------------------------------- methods: auth & misc

    async def _api_test(self, req: _Request) -> JsonDict:
        return {"args": {k: v for k, v in req.params.items() if k != "token"}}

    async def _auth_test(self, req: _Request) -> JsonDict:
        return {
            "url": f"https://{self.team_domain}.slack.com/",
            "team": self.team_name,
            "user": self.bot_name,
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    async def _apps_connections_open(self, req: _Request) -> JsonDict:
        origin = self.url.replace("http://", "ws://", 1)
        return {"url": self.socket_mode.issue_url(origin)}

    # ---------------------------------------------------------------- methods: chat.*

    async def _chat_post_message(self, req: _Request) -> JsonDict:
        channel = self._resolve_channel(req.params.get("channel"))
        if channel.is_archived:
            raise _ApiError("is_archived")
        if not channel.is_member:
            raise _ApiError("not_in_channel")
        text, blocks, attachments = self._message_content(req.params)
        thread_ts = self._thread_parent(channel.id, req.params.get("thread_ts"))
        metadata = _json_param(req.params, "metadata", error="invalid_metadata_format")
        message = self._store_message(
            channel=channel.id,
            text=text or "",
            blocks=blocks or [],
            attachments=attachments or [],
            thread_ts=thread_ts,
            via="chat.postMessage",
            metadata=metadata if isinstance(metadata, dict) else None,
            reply_broadcast=_flag(req.params.get("reply_broadcast", False)),
        )
        return {
            "channel": channel.id,
            "ts": message.ts,
            "message": message.to_payload(team_id=self.team_id, app_id=self.app_id),
        }

    async def _chat_update(self, req: _Request) -> JsonDict:
        """Edit a bot message. Omitted text or blocks keep the old ones (Slack documents this
        for blocks; for text the emulator assumes the same); ``blocks: []`` removes blocks."""
        channel = self._resolve_channel(req.params.get("channel"))
        message = self._owned_message(
            channel.id, req.params.get("ts"), denied="cant_update_message"
        )
        text, blocks, attachments = self._message_content(req.params, for_update=True)
        self._apply_edit(
            message, text=text, blocks=blocks, attachments=attachments, via="chat.update"
        )
        return {
            "channel": channel.id,
            "ts": message.ts,
            "text": message.text,
            "message": message.to_payload(team_id=self.team_id, app_id=self.app_id),
        }

    async def _chat_delete(self, req: _Request) -> JsonDict:
        channel = self._resolve_channel(req.params.get("channel"))
        message = self._owned_message(
            channel.id, req.params.get("ts"), denied="cant_delete_message"
        )
        message.deleted = True
        return {"channel": channel.id, "ts": message.ts}

    async def _chat_post_ephemeral(self, req: _Request) -> JsonDict:
        channel = self._resolve_channel(req.params.get("channel"))
        user = req.params.get("user")
        if not isinstance(user, str) or user not in self._users:
            raise _ApiError("user_not_found")
        if channel.members is not None and user not in channel.members:
            raise _ApiError("user_not_in_channel")
        text, blocks, _ = self._message_content(req.params)
        thread_ts = req.params.get("thread_ts") or None
        stored_blocks = self._with_generated_ids(blocks or [])
        ephemeral = EphemeralMessage(
            channel=channel.id,
            user=user,
            ts=self._next_ts(),
            text=text or "",
            blocks=stored_blocks,
            via="chat.postEphemeral",
            thread_ts=str(thread_ts) if thread_ts else None,
        )
        ephemeral.history.append(
            MessageVersion(ephemeral.text, stored_blocks, [], self._clock(), "chat.postEphemeral")
        )
        self._ephemeral.append(ephemeral)
        return {"message_ts": ephemeral.ts}

    async def _chat_get_permalink(self, req: _Request) -> JsonDict:
        channel = self._resolve_channel(req.params.get("channel"))
        ts = str(req.params.get("message_ts") or "")
        message = self._messages.get(channel.id, {}).get(ts)
        if message is None or message.deleted:
            raise _ApiError("message_not_found")
        link = f"https://{self.team_domain}.slack.com/archives/{channel.id}/p{ts.replace('.', '')}"
        if message.is_reply:
            link += f"?thread_ts={message.thread_ts}&cid={channel.id}"
        return {"channel": channel.id, "permalink": link}

    # ---------------------------------------------------------------- methods: lookups

    async def _users_info(self, req: _Request) -> JsonDict:
        user = self._users.get(str(req.params.get("user") or ""))
        if user is None:
            raise _ApiError("user_not_found")
        return {"user": copy.deepcopy(user)}

    async def _usergroups_users_list(self, req: _Request) -> JsonDict:
        usergroup_id = req.params.get("usergroup")
        if not usergroup_id:
            raise _invalid_arguments(["missing required field: usergroup"])
        group = self._usergroups.get(str(usergroup_id))
        if group is None:
            raise _ApiError("no_such_subteam")
        return {"users": list(group["users"])}

    async def _conversations_info(self, req: _Request) -> JsonDict:
        channel = self._resolve_channel(req.params.get("channel"))
        return {"channel": channel.to_payload()}

    async def _conversations_open(self, req: _Request) -> JsonDict:
        """The direct-message channel with one user (``users``), opened if need be."""
        users = str(req.params.get("users") or "")
        if not users or "," in users or users not in self._users:
            raise _ApiError("user_not_found")
        return {"channel": {"id": self._resolve_channel(users).id}}

    def _readable(self, value: Any) -> Channel:
        """A channel to read: by id only (a user id is no conversation), the bot a member."""
        if isinstance(value, str) and value[:1] in ("U", "W"):
            raise _ApiError("channel_not_found")
        channel = self._resolve_channel(value)
        if not channel.is_member:
            raise _ApiError("not_in_channel")
        return channel

    def _page(self, req: _Request, messages: list[Message], key: str) -> JsonDict:
        """One page of ``messages`` (already in answer order), metadata only when asked."""
        try:
            limit = min(999, max(1, int(req.params.get("limit") or 100)))
            start = int(req.params.get("cursor") or 0)
        except ValueError as exc:
            raise _ApiError("invalid_arguments") from exc
        with_metadata = _flag(req.params.get("include_all_metadata", False))
        page = []
        for message in messages[start : start + limit]:
            payload = message.to_payload(team_id=self.team_id, app_id=self.app_id)
            if not with_metadata:
                payload.pop("metadata", None)
            page.append(payload)
        more = start + limit < len(messages)
        return {
            key: page,
            "has_more": more,
            "response_metadata": {"next_cursor": str(start + limit) if more else ""},
        }

    async def _conversations_history(self, req: _Request) -> JsonDict:
        """Top-level messages, newest first, within ``oldest``/``latest`` when given."""
        channel = self._readable(req.params.get("channel"))
        oldest = float(req.params.get("oldest") or 0)
        latest = float(req.params.get("latest") or "inf")
        found = [m for m in self.parents(channel.id) if oldest <= float(m.ts) <= latest]
        found.sort(key=lambda m: float(m.ts), reverse=True)
        return self._page(req, found, "messages")

    async def _conversations_replies(self, req: _Request) -> JsonDict:
        """A thread, parent first, then its replies oldest first."""
        channel = self._readable(req.params.get("channel"))
        ts = str(req.params.get("ts") or "")
        parent = self._messages.get(channel.id, {}).get(ts)
        if parent is None or parent.deleted:
            raise _ApiError("thread_not_found")
        root = parent.thread_ts if parent.is_reply and parent.thread_ts else parent.ts
        thread = [self._messages[channel.id][root], *self.replies(channel.id, root)]
        return self._page(req, thread, "messages")

    # ---------------------------------------------------------------- methods: views.*

    def _parse_view(
        self,
        params: Mapping[str, Any],
        *,
        types: tuple[str, ...],
        replacing: ViewRecord | None = None,
    ) -> JsonDict:
        """Views answer ``invalid_arguments`` with ``response_metadata.messages`` (not
        ``invalid_blocks``), as Slack does for views.open/push/update."""
        view = _json_param(params, "view", error="invalid_arguments")
        if view is None:
            raise _invalid_arguments(["missing required field: view"])
        problems = validate_view(view)
        if not problems and view.get("type") not in types:
            problems = [f"view type must be one of {', '.join(types)} [json-pointer:/view/type]"]
        if problems:
            raise _invalid_arguments(problems)
        assert isinstance(view, dict)
        external_id = view.get("external_id")
        if external_id:
            for other in self._views.values():
                if other.external_id == external_id and other is not replacing:
                    raise _ApiError("duplicate_external_id")
        return view

    def _exchange_trigger(self, params: Mapping[str, Any]) -> _Trigger | None:
        trigger_id = params.get("trigger_id") or params.get("interactivity_pointer")
        if not trigger_id:
            raise _invalid_arguments(["invalid `trigger_id`"])
        trigger = self._triggers.get(str(trigger_id))
        if not self.check_triggers:
            return trigger
        if trigger is None:
            raise _invalid_arguments(["invalid `trigger_id`"])
        if trigger.used:
            raise _ApiError("exchanged_trigger_id")
        if self._clock() - trigger.issued > self.trigger_ttl:
            raise _ApiError("expired_trigger_id")
        trigger.used = True
        return trigger

    def _open_view(
        self, definition: JsonDict, *, user: str, root: str | None, previous: str | None
    ) -> ViewRecord:
        view_id = self._new_id("V")
        stored = copy.deepcopy(definition)
        stored["blocks"] = self._with_generated_ids(stored.get("blocks") or [])
        record = ViewRecord(
            id=view_id,
            user=user,
            definition=stored,
            hash=f"{int(self._wall_clock())}.{secrets.token_hex(4)}",
            root_view_id=root or view_id,
            previous_view_id=previous,
            opened_at=self._clock(),
        )
        record.history.append(copy.deepcopy(stored))
        self._views[view_id] = record
        return record

    def _replace_view(self, record: ViewRecord, definition: JsonDict) -> None:
        stored = copy.deepcopy(definition)
        stored["blocks"] = self._with_generated_ids(stored.get("blocks") or [])
        record.definition = stored
        record.hash = f"{int(self._wall_clock())}.{secrets.token_hex(4)}"
        record.history.append(copy.deepcopy(stored))

    def _close_view(self, record: ViewRecord, *, by: str) -> None:
        record.state = "closed"
        record.closed_by = by

    def _view_answer(self, record: ViewRecord) -> JsonDict:
        return {
            "view": record.to_payload(team_id=self.team_id, app_id=self.app_id, bot_id=self.bot_id)
        }

    async def _views_open(self, req: _Request) -> JsonDict:
        trigger = self._exchange_trigger(req.params)
        view = self._parse_view(req.params, types=("modal",))
        user = trigger.user if trigger is not None else ""
        return self._view_answer(self._open_view(view, user=user, root=None, previous=None))

    async def _views_push(self, req: _Request) -> JsonDict:
        """Push on top of the view the trigger came from; Slack allows 3 views in a stack."""
        trigger = self._exchange_trigger(req.params)
        view = self._parse_view(req.params, types=("modal",))
        source: ViewRecord | None = None
        if trigger is not None and trigger.view_id is not None:
            source = self._views.get(trigger.view_id)
        elif trigger is not None:
            candidates = self.open_views(trigger.user)
            source = candidates[-1] if candidates else None
        if source is None or source.state != "open":
            raise _ApiError("not_found")
        stack = [v for v in self.open_views() if v.root_view_id == source.root_view_id]
        if len(stack) >= 3:
            raise _ApiError("push_limit_reached")
        pushed = self._open_view(
            view, user=source.user, root=source.root_view_id, previous=stack[-1].id
        )
        return self._view_answer(pushed)

    async def _views_update(self, req: _Request) -> JsonDict:
        view_id = req.params.get("view_id")
        external_id = req.params.get("external_id")
        if bool(view_id) == bool(external_id):
            raise _invalid_arguments(["exactly one of view_id and external_id is required"])
        record: ViewRecord | None
        if view_id:
            record = self._views.get(str(view_id))
        else:
            record = next((v for v in self._views.values() if v.external_id == external_id), None)
        if record is None or record.state != "open":
            raise _ApiError("not_found")
        view = self._parse_view(req.params, types=("modal", "home"), replacing=record)
        expected_hash = req.params.get("hash")
        if expected_hash and expected_hash != record.hash:
            raise _ApiError("hash_conflict")
        self._replace_view(record, view)
        return self._view_answer(record)

    async def _views_publish(self, req: _Request) -> JsonDict:
        """Publish a user's Home tab: one view per user, replaced by each publish."""
        user = str(req.params.get("user_id") or "")
        if not user:
            raise _invalid_arguments(["missing required field: user_id"])
        record = self._homes.get(user)
        view = self._parse_view(req.params, types=("home",), replacing=record)
        expected_hash = req.params.get("hash")
        if record is None:
            record = self._open_view(view, user=user, root=None, previous=None)
            del self._views[record.id]  # a Home tab is no modal: it is never "open" on a stack
            self._homes[user] = record
        else:
            if expected_hash and expected_hash != record.hash:
                raise _ApiError("hash_conflict")
            self._replace_view(record, view)
        return self._view_answer(record)

    # ---------------------------------------------------------------- methods: files

    async def _files_get_upload_url_external(self, req: _Request) -> JsonDict:
        filename = req.params.get("filename")
        length = req.params.get("length")
        try:
            size = int(length) if length is not None else -1
        except (TypeError, ValueError):
            size = -1
        if not filename or size < 0:
            raise _invalid_arguments(["filename and length are required"])
        file_id = self._new_id("F")
        upload_id = secrets.token_urlsafe(12)
        upload_url = f"{self.url}/upload/v1/{upload_id}"
        self._files[file_id] = UploadedFile(
            id=file_id,
            filename=str(filename),
            length=size,
            upload_url=upload_url,
            alt_txt=req.params.get("alt_txt"),
            snippet_type=req.params.get("snippet_type"),
        )
        self._uploads[upload_id] = file_id
        return {"upload_url": upload_url, "file_id": file_id}

    async def _files_complete_upload_external(self, req: _Request) -> JsonDict:
        entries = _json_param(req.params, "files", error="invalid_arguments")
        if not isinstance(entries, list) or not entries:
            raise _invalid_arguments(["missing required field: files"])
        channel_ids: list[str] = []
        if req.params.get("channel_id"):
            channel_ids.append(self._resolve_channel(req.params["channel_id"]).id)
        for name in str(req.params.get("channels") or "").split(","):
            if name.strip():
                channel_ids.append(self._resolve_channel(name.strip()).id)
        thread_ts: str | None = None
        if req.params.get("thread_ts"):
            if len(channel_ids) != 1:
                raise _invalid_arguments(["thread_ts requires exactly one channel"])
            thread_ts = self._thread_parent(channel_ids[0], req.params["thread_ts"])
        completed: list[UploadedFile] = []
        for entry in entries:
            file_id = entry.get("id") if isinstance(entry, dict) else None
            upload = self._files.get(str(file_id))
            if upload is None or upload.content is None or upload.completed:
                raise _ApiError("file_not_found")
            completed.append(upload)
        created = int(self._wall_clock())
        payloads: list[JsonDict] = []
        for upload, entry in zip(completed, entries, strict=True):
            upload.title = entry.get("title") or upload.filename
            upload.completed = True
            upload.channels = channel_ids
            upload.initial_comment = req.params.get("initial_comment")
            upload.thread_ts = thread_ts
            payloads.append(upload.to_payload(user=self.bot_user_id, created=created))
        for channel_id in channel_ids:
            self._store_message(
                channel=channel_id,
                text=str(req.params.get("initial_comment") or ""),
                blocks=[],
                attachments=[],
                thread_ts=thread_ts,
                via="files.completeUploadExternal",
                files=copy.deepcopy(payloads),
            )
        return {"files": payloads}

    async def _handle_upload(self, request: web.Request) -> web.StreamResponse:
        """The upload URL: raw bytes in, ``OK - <size>`` as text/plain out (as Slack's)."""
        arrival = self._clock()
        data = await request.read()
        upload_id = request.match_info["id"]
        file_id = self._uploads.get(upload_id)
        status, text = 200, f"OK - {len(data)}"
        try:
            if "file_upload" in self._delays:
                await asyncio.sleep(self._delays["file_upload"])
            self._inject_fault("file_upload")
            if file_id is None or self._files[file_id].content is not None:
                status, text = 404, "invalid upload URL"
            else:
                self._files[file_id].content = data
        except _ApiError as err:
            status, text = err.status, err.error
        await self._record(
            Call(
                method="file_upload",
                params={"file_id": file_id, "size": len(data)},
                headers=CIMultiDictProxy(CIMultiDict(request.headers)),
                at=arrival,
                status=status,
                content_type=request.content_type,
                body=data,
                response=text,
            )
        )
        return web.Response(status=status, text=text, content_type="text/plain")

    # ---------------------------------------------------------------- response_url

    async def _handle_response_url(self, request: web.Request) -> web.StreamResponse:
        """A response_url: JSON in; valid for ``response_url_uses`` posts within
        ``response_url_ttl`` seconds.

        Slack does not document the answers for an exhausted or expired URL; the emulator
        answers 404 with ``used_url`` / ``expired_url`` so that ``respond()`` callers (which do
        not raise on HTTP errors) must check the status to notice.
        """
        arrival = self._clock()
        raw = await request.read()
        record = self._response_urls.get(request.match_info["id"])
        payload: JsonDict = {}
        status = 200
        answer: JsonDict = {"ok": True}
        action = "rejected"
        target: str | None = None
        error: str | None = None
        try:
            if "response_url" in self._delays:
                await asyncio.sleep(self._delays["response_url"])
            if record is None:
                raise _ApiError("invalid_url", status=404)
            payload = self._parse_response_payload(request, raw)
            if arrival - record.created > self.response_url_ttl:
                raise _ApiError("expired_url", status=404)
            if record.uses >= self.response_url_uses:
                raise _ApiError("used_url", status=404)
            self._inject_fault("response_url")
            record.uses += 1
            action, target = self._apply_response(record, payload)
        except _ApiError as err:
            status, answer, error = err.status, err.body(), err.error
        post = ResponsePost(
            url=str(request.url),
            channel=record.channel if record else "",
            user=record.user if record else "",
            payload=payload,
            status=status,
            action=action,
            at=arrival,
            error=error,
            target_ts=target,
        )
        self._responses.append(post)
        await self._record(
            Call(
                method="response_url",
                params=payload,
                headers=CIMultiDictProxy(CIMultiDict(request.headers)),
                at=arrival,
                status=status,
                content_type=request.content_type,
                body=raw,
                response=answer,
            )
        )
        return web.json_response(answer, status=status)

    @staticmethod
    def _parse_response_payload(request: web.Request, raw: bytes) -> JsonDict:
        try:
            if request.content_type == "application/x-www-form-urlencoded":
                form = dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
                loaded = json.loads(form.get("payload", "{}"))
            else:
                loaded = json.loads(raw or b"{}")
        except ValueError as exc:
            raise _ApiError("invalid_payload", status=400) from exc
        if not isinstance(loaded, dict):
            raise _ApiError("invalid_payload", status=400)
        return loaded

    def _apply_response(self, record: _ResponseUrl, payload: JsonDict) -> tuple[str, str | None]:
        if _flag(payload.get("delete_original", False)):
            target = self._response_target(record)
            if target is None:
                return "ignored", None
            target.deleted = True
            return "delete", target.ts
        try:
            text, blocks, _ = self._message_content(payload)
        except _ApiError as err:
            err.status = 400
            raise
        target = self._response_target(record) if _flag(payload.get("replace_original")) else None
        if target is not None:
            self._apply_edit(
                target, text=text, blocks=blocks or [], attachments=None, via="response_url"
            )
            return "replace", target.ts
        if payload.get("response_type") == "in_channel":
            thread_ts = self._thread_parent(record.channel, payload.get("thread_ts"))
            message = self._store_message(
                channel=record.channel,
                text=text or "",
                blocks=blocks or [],
                attachments=[],
                thread_ts=thread_ts,
                via="response_url",
            )
            return "new", message.ts
        stored_blocks = self._with_generated_ids(blocks or [])
        ephemeral = EphemeralMessage(
            channel=record.channel,
            user=record.user,
            ts=self._next_ts(),
            text=text or "",
            blocks=stored_blocks,
            via="response_url",
            thread_ts=payload.get("thread_ts"),
        )
        ephemeral.history.append(
            MessageVersion(ephemeral.text, stored_blocks, [], self._clock(), "response_url")
        )
        self._ephemeral.append(ephemeral)
        return "new", ephemeral.ts

    def _response_target(self, record: _ResponseUrl) -> Message | EphemeralMessage | None:
        if record.message_ts is None:
            return None
        message = self._messages.get(record.channel, {}).get(record.message_ts)
        if message is not None and not message.deleted:
            return message
        for ephemeral in self._ephemeral:
            if (
                ephemeral.ts == record.message_ts
                and ephemeral.user == record.user
                and not ephemeral.deleted
            ):
                return ephemeral
        return None
