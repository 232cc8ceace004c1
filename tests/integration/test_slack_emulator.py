"""Tests of the Slack emulator and the signed client, driven through the real Slack SDKs.

Every Slack-facing test of the bot trusts the emulator, so these tests hold it to the
behaviour of the real clients: ``slack_sdk``'s ``AsyncWebClient``, its retry handlers and
``files_upload_v2``, Bolt's ``respond()``, request verification and Socket Mode handler.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.playground.slack_emulator import (
    ACK_DEADLINE,
    TIER_REQUESTS_PER_MINUTE,
    EphemeralMessage,
    RateLimits,
    SlackEmulator,
    validate_blocks,
)
from bot.playground.slack_signed_client import SignedSlackClient, Signing, slack_signature
from tests.emulators.fixtures import APP_TOKEN, BOT_TOKEN, SIGNING_SECRET

CHANNEL = "C0ALERTS"


def _is_slack_library_task(task: asyncio.Task[Any]) -> bool:
    code = getattr(task.get_coro(), "cr_code", None)
    filename = getattr(code, "co_filename", "")
    return "slack_bolt" in filename or "slack_sdk" in filename


async def _settle_slack_library_tasks() -> None:
    """Bolt and the Socket Mode client fire tasks they never await (listener runs, cancelled
    receivers); give them a moment to finish so the leak check below sees only real leaks."""
    pending = {t for t in asyncio.all_tasks() if not t.done() and _is_slack_library_task(t)} - {
        asyncio.current_task()
    }
    if pending:
        await asyncio.wait(pending, timeout=2.0)


@pytest_asyncio.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    before = asyncio.all_tasks()
    yield
    leaked = {t for t in asyncio.all_tasks() - before if not t.done()}
    leaked.discard(asyncio.current_task())
    assert not leaked, leaked


@pytest.fixture
def client(slack_emulator: SlackEmulator) -> AsyncWebClient:
    return AsyncWebClient(token=BOT_TOKEN, base_url=slack_emulator.base_url)


def section(text: str, **extra: Any) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}, **extra}


def button(action_id: str, text: str = "Go", **extra: Any) -> dict[str, Any]:
    return {
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": text},
        **extra,
    }


def modal(**overrides: Any) -> dict[str, Any]:
    view: dict[str, Any] = {
        "type": "modal",
        "callback_id": "exception:request",
        "private_metadata": json.dumps({"channel": CHANNEL}),
        "title": {"type": "plain_text", "text": "Request exception"},
        "submit": {"type": "plain_text", "text": "Submit"},
        "blocks": [
            {
                "type": "input",
                "block_id": "reason",
                "label": {"type": "plain_text", "text": "Reason"},
                "element": {"type": "plain_text_input", "action_id": "value"},
            },
            {
                "type": "input",
                "block_id": "duration",
                "label": {"type": "plain_text", "text": "Duration"},
                "element": {
                    "type": "static_select",
                    "action_id": "days",
                    "options": [
                        {"text": {"type": "plain_text", "text": "7 days"}, "value": "7"},
                        {"text": {"type": "plain_text", "text": "30 days"}, "value": "30"},
                    ],
                },
            },
        ],
    }
    view.update(overrides)
    return view


# ------------------------------------------------------------------------------ messages


async def test_post_update_and_thread_keep_one_parent(
    slack_emulator: SlackEmulator, client: AsyncWebClient
) -> None:
    posted = await client.chat_postMessage(
        channel=CHANNEL, text="2 alerts firing", blocks=[section("*2* firing")]
    )
    assert posted["ok"] is True
    assert posted["channel"] == CHANNEL
    parent_ts = posted["ts"]

    updated = await client.chat_update(
        channel=CHANNEL, ts=parent_ts, text="3 alerts firing", blocks=[section("*3* firing")]
    )
    assert updated["ts"] == parent_ts
    reply = await client.chat_postMessage(
        channel=CHANNEL, text="alert resolved", thread_ts=parent_ts
    )

    [parent] = slack_emulator.parents(CHANNEL)
    assert parent.ts == parent_ts
    assert parent.text == "3 alerts firing"
    assert parent.blocks[0]["text"]["text"] == "*3* firing"
    assert parent.blocks[0]["block_id"]  # Slack fills in missing block ids
    assert [v.text for v in parent.history] == ["2 alerts firing", "3 alerts firing"]
    assert parent.edits == 1
    [thread_reply] = slack_emulator.replies(CHANNEL, parent_ts)
    assert thread_reply.ts == reply["ts"]
    assert thread_reply.text == "alert resolved"

    call = await slack_emulator.next_call("chat.postMessage")
    assert call.params["channel"] == CHANNEL
    assert call.headers["Authorization"] == f"Bearer {BOT_TOKEN}"
    assert call.content_type == "application/json"
    assert (await slack_emulator.next_call("chat.postMessage")).params["thread_ts"] == parent_ts


async def test_ts_values_are_slack_shaped_unique_and_increasing(client: AsyncWebClient) -> None:
    stamps = [(await client.chat_postMessage(channel=f"C{i}", text="x"))["ts"] for i in range(5)]
    assert all(len(ts.split(".")[1]) == 6 for ts in stamps)
    assert stamps == sorted(stamps, key=float)
    assert len(set(stamps)) == len(stamps)


async def test_update_delete_and_permalink_errors(
    slack_emulator: SlackEmulator, client: AsyncWebClient
) -> None:
    with pytest.raises(SlackApiError) as err:
        await client.chat_update(channel=CHANNEL, ts="1733000000.000100", text="x")
    assert err.value.response["error"] == "message_not_found"
    assert err.value.response.status_code == 200

    with pytest.raises(SlackApiError) as err:
        await client.chat_postMessage(channel="X0NOPE", text="x")
    assert err.value.response["error"] == "channel_not_found"

    human = slack_emulator.add_user_message(CHANNEL, "U0ALICE", "hello")
    with pytest.raises(SlackApiError) as err:
        await client.chat_update(channel=CHANNEL, ts=human.ts, text="edited")
    assert err.value.response["error"] == "cant_update_message"

    posted = await client.chat_postMessage(channel=CHANNEL, text="x")
    link = await client.chat_getPermalink(channel=CHANNEL, message_ts=posted["ts"])
    assert link["permalink"].endswith(posted["ts"].replace(".", ""))
    await client.chat_delete(channel=CHANNEL, ts=posted["ts"])
    assert slack_emulator.message(CHANNEL, posted["ts"]).deleted  # type: ignore[union-attr]
    with pytest.raises(SlackApiError) as err:
        await client.chat_update(channel=CHANNEL, ts=posted["ts"], text="x")
    assert err.value.response["error"] == "message_not_found"

    with pytest.raises(SlackApiError) as err:
        await client.chat_postMessage(channel=CHANNEL, text="x", thread_ts="1.000001")
    assert err.value.response["error"] == "thread_not_found"


async def test_registered_channels_and_archived_or_foreign_ones(
    slack_emulator: SlackEmulator, client: AsyncWebClient
) -> None:
    slack_emulator.auto_channel_prefixes = ()
    slack_emulator.add_channel("G0PRIVATE", "platform-team", is_private=True)
    slack_emulator.add_channel("C0OLD", "old", is_archived=True)
    slack_emulator.add_channel("C0OTHER", "other", is_member=False)

    by_name = await client.chat_postMessage(channel="#platform-team", text="hi")
    assert by_name["channel"] == "G0PRIVATE"
    info = await client.conversations_info(channel="G0PRIVATE")
    assert info["channel"]["name"] == "platform-team"
    assert info["channel"]["is_private"] is True
    for channel, error in [
        ("C0OLD", "is_archived"),
        ("C0OTHER", "not_in_channel"),
        ("C0X", "channel_not_found"),
    ]:
        with pytest.raises(SlackApiError) as err:
            await client.chat_postMessage(channel=channel, text="x")
        assert err.value.response["error"] == error


async def test_form_encoded_requests_with_json_fields(
    slack_emulator: SlackEmulator, client: AsyncWebClient
) -> None:
    blocks = [section("from a form")]
    response = await client.api_call(
        "chat.postMessage",
        data={"channel": CHANNEL, "text": "form", "blocks": json.dumps(blocks)},
    )
    assert response["ok"] is True
    [message] = slack_emulator.messages(CHANNEL)
    assert message.blocks[0]["text"]["text"] == "from a form"
    call = slack_emulator.calls("chat.postMessage")[0]
    assert call.content_type == "application/x-www-form-urlencoded"


async def test_authentication(slack_emulator: SlackEmulator) -> None:
    cases = [
        (None, "not_authed"),
        ("xoxb-wrong", "invalid_auth"),
        (APP_TOKEN, "not_allowed_token_type"),
    ]
    for token, error in cases:
        with pytest.raises(SlackApiError) as err:
            await AsyncWebClient(token=token, base_url=slack_emulator.base_url).chat_postMessage(
                channel=CHANNEL, text="x"
            )
        assert err.value.response["error"] == error
    assert slack_emulator.messages(CHANNEL) == []
    auth = await AsyncWebClient(token=BOT_TOKEN, base_url=slack_emulator.base_url).auth_test()
    assert auth["user_id"] == slack_emulator.bot_user_id
    assert auth["team_id"] == slack_emulator.team_id


async def test_unknown_method_is_404(client: AsyncWebClient) -> None:
    with pytest.raises(SlackApiError) as err:
        await client.api_call("chat.teleport", json={"channel": CHANNEL})
    assert err.value.response.status_code == 404
    assert err.value.response["error"] == "unknown_method"


# ------------------------------------------------------------------------------ Block Kit


def _blocks_case(name: str) -> list[dict[str, Any]]:
    long = "x" * 4000
    cases: dict[str, list[dict[str, Any]]] = {
        "too_many_blocks": [{"type": "divider"}] * 51,
        "section_text": [section("x" * 3001)],
        "header_text": [{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}],
        "too_many_fields": [{"type": "section", "fields": [{"type": "mrkdwn", "text": "f"}] * 11}],
        "long_field": [{"type": "section", "fields": [{"type": "mrkdwn", "text": "f" * 2001}]}],
        "context_elements": [
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}] * 11}
        ],
        "actions_elements": [{"type": "actions", "elements": [button(f"a{i}") for i in range(26)]}],
        "button_text": [{"type": "actions", "elements": [button("a", "b" * 76)]}],
        "action_id": [{"type": "actions", "elements": [button("a" * 256)]}],
        "button_value": [{"type": "actions", "elements": [button("a", value=long[:2001])]}],
        "button_url": [{"type": "actions", "elements": [button("a", url="https://" + long)]}],
        "unknown_type": [{"type": "carousel"}],
        "missing_type": [{"text": {"type": "mrkdwn", "text": "no type"}}],
        "empty_text": [section("")],
        "duplicate_block_id": [section("a", block_id="x"), section("b", block_id="x")],
    }
    return cases[name]


@pytest.mark.parametrize(
    ("case", "pointer"),
    [
        ("too_many_blocks", "/blocks]"),
        ("section_text", "/blocks/0/text/text]"),
        ("header_text", "/blocks/0/text/text]"),
        ("too_many_fields", "/blocks/0/fields]"),
        ("long_field", "/blocks/0/fields/0/text]"),
        ("context_elements", "/blocks/0/elements]"),
        ("actions_elements", "/blocks/0/elements]"),
        ("button_text", "/blocks/0/elements/0/text/text]"),
        ("action_id", "/blocks/0/elements/0/action_id]"),
        ("button_value", "/blocks/0/elements/0/value]"),
        ("button_url", "/blocks/0/elements/0/url]"),
        ("unknown_type", "/blocks/0/type]"),
        ("missing_type", "/blocks/0]"),
        ("empty_text", "/blocks/0/text/text]"),
        ("duplicate_block_id", "/blocks/1/block_id]"),
    ],
)
async def test_invalid_blocks_are_rejected_like_slack(
    slack_emulator: SlackEmulator, client: AsyncWebClient, case: str, pointer: str
) -> None:
    with pytest.raises(SlackApiError) as err:
        await client.chat_postMessage(channel=CHANNEL, text="fallback", blocks=_blocks_case(case))
    body = err.value.response.data
    assert body["error"] == "invalid_blocks"
    assert any(e.endswith(pointer) for e in body["errors"]), body["errors"]
    assert body["response_metadata"]["messages"][0].startswith("[ERROR] ")
    assert slack_emulator.messages(CHANNEL) == []


@pytest.mark.parametrize(
    ("blocks", "problem"),
    [
        (
            [{"type": "section", "text": {"type": "mrkdwn", "text": "x"}, "txt": "typo"}],
            "invalid additional property: txt [json-pointer:/blocks/0]",
        ),
        (
            [{"type": "actions", "elements": [{**button("go", "Go"), "styel": "primary"}]}],
            "invalid additional property: styel [json-pointer:/blocks/0/elements/0]",
        ),
        (
            [{"type": "header", "text": {"type": "plain_text", "text": "h", "markdown": True}}],
            "invalid additional property: markdown [json-pointer:/blocks/0/text]",
        ),
        (
            [
                {
                    "type": "actions",
                    "elements": [
                        {
                            **button("rm", "Remove"),
                            "confirm": {
                                "title": {"type": "plain_text", "text": "Sure?"},
                                "text": {"type": "mrkdwn", "text": "It goes."},
                                "confirm": {"type": "plain_text", "text": "Yes"},
                                "deny": {"type": "plain_text", "text": "No"},
                                "colour": "red",
                            },
                        }
                    ],
                }
            ],
            "invalid additional property: colour [json-pointer:/blocks/0/elements/0/confirm]",
        ),
    ],
)
async def test_unknown_properties_are_refused_naming_the_path(
    slack_emulator: SlackEmulator, client: AsyncWebClient, blocks: Any, problem: str
) -> None:
    """Slack refuses properties its Block Kit reference does not document; so does this."""
    assert validate_blocks(blocks) == [problem]
    with pytest.raises(SlackApiError) as err:
        await client.chat_postMessage(channel=CHANNEL, text="fallback", blocks=blocks)
    assert err.value.response["error"] == "invalid_blocks"
    assert problem in err.value.response["errors"]
    assert slack_emulator.messages(CHANNEL) == []


async def test_limits_at_the_boundary_are_accepted(client: AsyncWebClient) -> None:
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": "h" * 150}},
        section("x" * 3000, accessory=button("acc", "b" * 75, value="v" * 2000)),
        {"type": "section", "fields": [{"type": "mrkdwn", "text": "f" * 2000}] * 10},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}] * 10},
        {"type": "actions", "elements": [button(f"a{i}" + "z" * 200) for i in range(25)]},
    ]
    blocks += [{"type": "divider"}] * (50 - len(blocks))
    assert validate_blocks(blocks) == []
    await client.chat_postMessage(channel=CHANNEL, text="t" * 40_000, blocks=blocks)


async def test_text_and_content_errors(client: AsyncWebClient) -> None:
    with pytest.raises(SlackApiError) as err:
        await client.chat_postMessage(channel=CHANNEL, text="t" * 40_001)
    assert err.value.response["error"] == "msg_too_long"
    with pytest.raises(SlackApiError) as err:
        await client.api_call("chat.postMessage", json={"channel": CHANNEL})
    assert err.value.response["error"] == "no_text"
    with pytest.raises(SlackApiError) as err:
        await client.api_call(
            "chat.postMessage", data={"channel": CHANNEL, "text": "x", "blocks": "[{"}
        )
    assert err.value.response["error"] == "invalid_blocks_format"


# ------------------------------------------------------------------------------ views


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        (
            {"blocks": [{"type": "divider"}] * 101},
            "must be less than 101 items [json-pointer:/view/blocks]",
        ),
        ({"title": None}, "missing required field: title [json-pointer:/view]"),
        ({"type": None}, "missing required field: type [json-pointer:/view]"),
        ({"title": {"type": "plain_text", "text": "t" * 25}}, "[json-pointer:/view/title/text]"),
        ({"private_metadata": "m" * 3001}, "[json-pointer:/view/private_metadata]"),
        ({"callback_id": "c" * 256}, "[json-pointer:/view/callback_id]"),
        ({"submit": None}, "submit is required"),
    ],
)
async def test_invalid_views_are_rejected_like_slack(
    slack_emulator: SlackEmulator, client: AsyncWebClient, overrides: dict[str, Any], problem: str
) -> None:
    view = {k: v for k, v in modal(**overrides).items() if v is not None}
    trigger = slack_emulator.issue_trigger_id("U0ALICE")
    with pytest.raises(SlackApiError) as err:
        await client.views_open(trigger_id=trigger, view=view)
    assert err.value.response["error"] == "invalid_arguments"
    messages = err.value.response["response_metadata"]["messages"]
    assert any(problem in m for m in messages), messages
    assert slack_emulator.views == []


async def test_views_lifecycle_and_triggers(
    slack_emulator: SlackEmulator, client: AsyncWebClient
) -> None:
    trigger = slack_emulator.issue_trigger_id("U0ALICE")
    opened = await client.views_open(trigger_id=trigger, view=modal(external_id="req-1"))
    view = opened["view"]
    assert view["id"].startswith("V")
    assert view["callback_id"] == "exception:request"
    assert view["state"] == {"values": {}}

    with pytest.raises(SlackApiError) as err:
        await client.views_open(trigger_id=trigger, view=modal())
    assert err.value.response["error"] == "exchanged_trigger_id"
    with pytest.raises(SlackApiError) as err:
        await client.views_open(trigger_id="123.456.abc", view=modal())
    assert err.value.response["error"] == "invalid_arguments"

    updated = await client.views_update(
        view_id=view["id"],
        hash=view["hash"],
        view=modal(external_id="req-1", title={"type": "plain_text", "text": "Step 2"}),
    )
    assert updated["view"]["title"]["text"] == "Step 2"
    with pytest.raises(SlackApiError) as err:
        await client.views_update(view_id=view["id"], hash=view["hash"], view=modal())
    assert err.value.response["error"] == "hash_conflict"
    by_external = await client.views_update(external_id="req-1", view=modal(external_id="req-1"))
    assert by_external["view"]["id"] == view["id"]
    record = slack_emulator.view(view["id"])
    assert record.user == "U0ALICE"
    assert len(record.history) == 3

    for _ in range(2):
        pushed = await client.views_push(
            trigger_id=slack_emulator.issue_trigger_id("U0ALICE", view_id=view["id"]),
            view=modal(callback_id="detail"),
        )
        assert pushed["view"]["root_view_id"] == view["id"]
    with pytest.raises(SlackApiError) as err:
        await client.views_push(
            trigger_id=slack_emulator.issue_trigger_id("U0ALICE", view_id=view["id"]),
            view=modal(),
        )
    assert err.value.response["error"] == "push_limit_reached"


async def test_expired_trigger(client: AsyncWebClient) -> None:
    now = [100.0]
    emulator = SlackEmulator(bot_token=BOT_TOKEN, clock=lambda: now[0])
    async with emulator:
        trigger = emulator.issue_trigger_id("U0ALICE")
        now[0] += 3.5
        web_client = AsyncWebClient(token=BOT_TOKEN, base_url=emulator.base_url)
        with pytest.raises(SlackApiError) as err:
            await web_client.views_open(trigger_id=trigger, view=modal())
        assert err.value.response["error"] == "expired_trigger_id"


# ------------------------------------------------------------------------------ lookups


async def test_users_usergroups_and_conversations_are_get_requests(
    slack_emulator: SlackEmulator, client: AsyncWebClient
) -> None:
    slack_emulator.add_user("U0ALICE", "alice", "Alice Approver", tz="Europe/Paris")
    slack_emulator.add_usergroup("S0APPROVERS", "policy-approvers", ["U0ALICE"])

    info = await client.users_info(user="U0ALICE")
    assert info["user"]["name"] == "alice"
    assert info["user"]["real_name"] == "Alice Approver"
    assert info["user"]["tz"] == "Europe/Paris"
    assert info["user"]["profile"]["display_name"] == "alice"
    members = await client.usergroups_users_list(usergroup="S0APPROVERS")
    assert members["users"] == ["U0ALICE"]
    slack_emulator.set_usergroup_members("S0APPROVERS", [])
    assert (await client.usergroups_users_list(usergroup="S0APPROVERS"))["users"] == []
    channel = await client.conversations_info(channel=CHANNEL)
    assert channel["channel"]["id"] == CHANNEL

    for method in ("users.info", "usergroups.users.list", "conversations.info"):
        assert {c.http_method for c in slack_emulator.calls(method)} == {"GET"}

    with pytest.raises(SlackApiError) as err:
        await client.usergroups_users_list(usergroup="S0NOPE")
    assert err.value.response["error"] == "no_such_subteam"
    with pytest.raises(SlackApiError) as err:
        await client.users_info(user="U0NOBODY")
    assert err.value.response["error"] == "user_not_found"


async def test_post_ephemeral(slack_emulator: SlackEmulator, client: AsyncWebClient) -> None:
    slack_emulator.add_user("U0ALICE", "alice")
    slack_emulator.add_user("U0BOB", "bob")
    slack_emulator.add_channel("C0OPS", "ops", members=["U0ALICE"])
    response = await client.chat_postEphemeral(channel="C0OPS", user="U0ALICE", text="only you")
    [ephemeral] = slack_emulator.ephemeral("C0OPS", "U0ALICE")
    assert ephemeral.ts == response["message_ts"]
    assert ephemeral.text == "only you"
    with pytest.raises(SlackApiError) as err:
        await client.chat_postEphemeral(channel="C0OPS", user="U0BOB", text="x")
    assert err.value.response["error"] == "user_not_in_channel"


# ------------------------------------------------------------------------------ rate limits


async def test_rate_limit_answers_429_then_the_sdk_retry_handler_succeeds(
    slack_emulator: SlackEmulator,
) -> None:
    slack_emulator.set_rate_limits(per_channel_rate=1.0, per_channel_burst=1)
    plain = AsyncWebClient(token=BOT_TOKEN, base_url=slack_emulator.base_url)
    await plain.chat_postMessage(channel=CHANNEL, text="first")
    with pytest.raises(SlackApiError) as err:
        await plain.chat_postMessage(channel=CHANNEL, text="second")
    assert err.value.response.status_code == 429
    assert err.value.response["error"] == "ratelimited"
    assert int(err.value.response.headers["Retry-After"]) >= 1
    await plain.chat_postMessage(channel="C0OTHER", text="other channels have their own budget")
    assert slack_emulator.ratelimited_count("chat.postMessage") == 1

    retrying = AsyncWebClient(
        token=BOT_TOKEN,
        base_url=slack_emulator.base_url,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=2)],
    )
    started = time.monotonic()
    response = await retrying.chat_postMessage(channel=CHANNEL, text="third")
    assert response["ok"] is True
    assert time.monotonic() - started >= 1.0
    assert slack_emulator.ratelimited_count() == 2
    assert [m.text for m in slack_emulator.messages(CHANNEL)] == ["first", "third"]
    statuses = [c.status for c in slack_emulator.calls("chat.postMessage")]
    assert statuses == [200, 429, 200, 429, 200]


async def test_tier_limits_are_on_by_default_and_per_method(
    slack_emulator: SlackEmulator, client: AsyncWebClient
) -> None:
    assert slack_emulator.rate_limits.tiers
    slack_emulator.add_usergroup("S0G", "g", [])
    # Tier 2: 20 calls a minute, a minute's worth at once, then one every 3 s.
    for _ in range(20):
        await client.usergroups_users_list(usergroup="S0G")
    with pytest.raises(SlackApiError) as err:
        await client.usergroups_users_list(usergroup="S0G")
    assert err.value.response.status_code == 429
    assert int(err.value.response.headers["Retry-After"]) == 3
    assert slack_emulator.ratelimited_count("usergroups.users.list") == 1
    # Each method has its own budget: conversations.info (Tier 3) is untouched.
    await client.conversations_info(channel=CHANNEL)

    slack_emulator.set_rate_limits(tier_requests_per_minute={**TIER_REQUESTS_PER_MINUTE, 3: 2})
    for _ in range(2):
        await client.conversations_info(channel=CHANNEL)
    with pytest.raises(SlackApiError) as err:
        await client.conversations_info(channel=CHANNEL)
    assert int(err.value.response.headers["Retry-After"]) == 30


async def test_rate_limits_can_be_switched_off(
    slack_emulator: SlackEmulator, client: AsyncWebClient
) -> None:
    slack_emulator.set_rate_limits(RateLimits.off())
    slack_emulator.add_usergroup("S0G", "g", [])
    for i in range(25):
        await client.chat_postMessage(channel=CHANNEL, text=f"burst {i}")
        await client.usergroups_users_list(usergroup="S0G")
    assert slack_emulator.ratelimited_count() == 0


async def test_default_burst_then_one_message_per_second(
    slack_emulator: SlackEmulator, client: AsyncWebClient
) -> None:
    burst = slack_emulator.rate_limits.per_channel_burst
    for i in range(burst):
        await client.chat_postMessage(channel=CHANNEL, text=f"{i}")
    with pytest.raises(SlackApiError):
        await client.chat_postMessage(channel=CHANNEL, text="one too many")


# ------------------------------------------------------------------------------ faults


async def test_fail_next_and_slow(slack_emulator: SlackEmulator, client: AsyncWebClient) -> None:
    slack_emulator.fail_next("chat.postMessage")
    slack_emulator.fail_next("chat.postMessage", "fatal_error", status=200)
    with pytest.raises(SlackApiError) as err:
        await client.chat_postMessage(channel=CHANNEL, text="x")
    assert err.value.response.status_code == 500
    assert err.value.response["error"] == "internal_error"
    with pytest.raises(SlackApiError) as err:
        await client.chat_postMessage(channel=CHANNEL, text="x")
    assert err.value.response.status_code == 200
    assert err.value.response["error"] == "fatal_error"
    await client.chat_postMessage(channel=CHANNEL, text="x")
    assert len(slack_emulator.messages(CHANNEL)) == 1

    slack_emulator.slow("users.info", 0.3)
    slack_emulator.add_user("U0ALICE", "alice")
    started = time.monotonic()
    await client.users_info(user="U0ALICE")
    assert time.monotonic() - started >= 0.3


async def test_a_fault_after_the_side_effect_loses_only_the_answer(
    slack_emulator: SlackEmulator, client: AsyncWebClient
) -> None:
    slack_emulator.fail_next("chat.postMessage", after_effect=True)
    meta = {"event_type": "policy_bot_notice", "event_payload": {"outbox_id": 7}}
    with pytest.raises(SlackApiError) as err:
        await client.chat_postMessage(channel=CHANNEL, text="landed", metadata=meta)
    assert err.value.response.status_code == 500
    (landed,) = slack_emulator.messages(CHANNEL)
    assert landed.text == "landed" and landed.metadata == meta

    # conversations.history finds it again, with its metadata only when asked
    plain = await client.conversations_history(channel=CHANNEL)
    assert [m["ts"] for m in plain["messages"]] == [landed.ts]
    assert "metadata" not in plain["messages"][0]
    found = await client.conversations_history(channel=CHANNEL, include_all_metadata=True)
    assert found["messages"][0]["metadata"] == meta
    reply = await client.chat_postMessage(channel=CHANNEL, text="r", thread_ts=landed.ts)
    thread = await client.conversations_replies(channel=CHANNEL, ts=landed.ts)
    assert [m["ts"] for m in thread["messages"]] == [landed.ts, reply["ts"]]

    # a DM is read by its conversation id, which conversations.open gives for a user
    slack_emulator.add_user("U0ALICE", "alice")
    with pytest.raises(SlackApiError, match="channel_not_found"):
        await client.conversations_history(channel="U0ALICE")
    opened = await client.conversations_open(users="U0ALICE")
    await client.chat_postMessage(channel="U0ALICE", text="hi")
    dm = await client.conversations_history(channel=opened["channel"]["id"])
    assert [m["text"] for m in dm["messages"]] == ["hi"]


async def test_an_outage_fails_every_call_without_effect_until_it_ends(
    slack_emulator: SlackEmulator, client: AsyncWebClient
) -> None:
    slack_emulator.set_outage(503)
    for _ in range(3):
        with pytest.raises(SlackApiError) as err:
            await client.chat_postMessage(channel=CHANNEL, text="x")
        assert err.value.response.status_code == 503
    assert slack_emulator.messages(CHANNEL) == []
    slack_emulator.set_outage(None)
    await client.chat_postMessage(channel=CHANNEL, text="x")
    assert len(slack_emulator.messages(CHANNEL)) == 1


async def test_next_call_waits_without_polling(
    slack_emulator: SlackEmulator, client: AsyncWebClient
) -> None:
    async def later() -> None:
        await asyncio.sleep(0.05)
        await client.chat_postMessage(channel=CHANNEL, text="late")

    task = asyncio.create_task(later())
    call = await slack_emulator.next_call(
        "chat.postMessage", predicate=lambda c: c.params.get("text") == "late"
    )
    await task
    assert call.ok
    with pytest.raises(TimeoutError, match=r"no chat\.postMessage call"):
        await slack_emulator.next_call("chat.postMessage", timeout=0.05)


# ------------------------------------------------------------------------------ files


async def test_files_upload_v2_round_trip(
    slack_emulator: SlackEmulator, client: AsyncWebClient
) -> None:
    parent = await client.chat_postMessage(channel=CHANNEL, text="backup ready")
    response = await client.files_upload_v2(
        channel=CHANNEL,
        content="apiVersion: kyverno.io/v1\n",
        filename="policies.yaml",
        title="Policy backup",
        initial_comment="Here you go",
        thread_ts=parent["ts"],
    )
    assert response["file"]["title"] == "Policy backup"
    [uploaded] = slack_emulator.files
    assert uploaded.content == b"apiVersion: kyverno.io/v1\n"
    assert uploaded.completed
    assert uploaded.channels == [CHANNEL]
    [share] = slack_emulator.replies(CHANNEL, parent["ts"])
    assert share.text == "Here you go"
    assert share.files[0]["id"] == uploaded.id
    assert [c.method for c in slack_emulator.calls()][-3:] == [
        "files.getUploadURLExternal",
        "file_upload",
        "files.completeUploadExternal",
    ]


# ------------------------------------------------------------------------------ response_url


async def test_response_url_use_limit_and_effects(
    slack_emulator: SlackEmulator, client: AsyncWebClient
) -> None:
    posted = await client.chat_postMessage(
        channel=CHANNEL, text="approve?", blocks=[section("approve?")]
    )
    url = slack_emulator.response_url(CHANNEL, "U0ALICE", message_ts=posted["ts"])
    webhook = AsyncWebhookClient(url)

    first = await webhook.send(text="working on it")
    assert first.status_code == 200
    replaced = await webhook.send(text="approved", replace_original=True)
    assert replaced.status_code == 200
    for _ in range(3):
        assert (await webhook.send(text="more")).status_code == 200
    sixth = await webhook.send(text="too many")
    assert sixth.status_code == 404
    assert json.loads(sixth.body)["error"] == "used_url"

    message = slack_emulator.message(CHANNEL, posted["ts"])
    assert message is not None
    assert message.text == "approved"
    assert message.blocks == []
    assert [r.action for r in slack_emulator.responses] == [
        "new",
        "replace",
        "new",
        "new",
        "new",
        "rejected",
    ]
    assert [e.text for e in slack_emulator.ephemeral(CHANNEL, "U0ALICE")] == ["working on it"] + [
        "more"
    ] * 3
    call = await slack_emulator.next_call("response_url")
    assert call.params == {"text": "working on it"}
    assert "Authorization" not in call.headers

    delete_url = slack_emulator.response_url(CHANNEL, "U0ALICE", message_ts=posted["ts"])
    await AsyncWebhookClient(delete_url).send_dict({"delete_original": True})
    assert message.deleted


async def test_response_url_expiry_and_command_urls_do_not_replace(
    slack_emulator: SlackEmulator,
) -> None:
    command_url = slack_emulator.response_url(CHANNEL, "U0ALICE")
    reply = await AsyncWebhookClient(command_url).send(text="one", replace_original=True)
    assert reply.status_code == 200
    assert slack_emulator.responses[0].action == "new"

    slack_emulator.response_url_ttl = 0.0
    expired = await AsyncWebhookClient(slack_emulator.response_url(CHANNEL, "U0ALICE")).send(
        text="late"
    )
    assert expired.status_code == 404
    assert json.loads(expired.body)["error"] == "expired_url"

    slack_emulator.response_url_ttl = 1800.0
    invalid = await AsyncWebhookClient(command_url).send(
        text="x", blocks=[{"type": "header", "text": {"type": "mrkdwn", "text": "h"}}]
    )
    assert invalid.status_code == 400
    assert json.loads(invalid.body)["error"] == "invalid_blocks"


def test_command_ack_display_rules() -> None:
    emulator = SlackEmulator()
    shown = emulator.record_command_ack(
        channel=CHANNEL,
        user="U0ALICE",
        status=200,
        body=json.dumps({"response_type": "in_channel", "text": "for everyone"}),
        content_type="application/json",
    )
    assert shown in emulator.messages(CHANNEL)
    late = emulator.record_command_ack(
        channel=CHANNEL,
        user="U0ALICE",
        status=200,
        body="ok",
        content_type="text/plain",
        elapsed=3.2,
    )
    assert isinstance(late, EphemeralMessage)
    assert late.error == "operation_timeout"
    empty = emulator.record_command_ack(
        channel=CHANNEL, user="U0ALICE", status=200, body="", content_type="text/plain"
    )
    assert empty is None


async def test_view_submission_response_actions(
    slack_emulator: SlackEmulator, client: AsyncWebClient
) -> None:
    opened = await client.views_open(
        trigger_id=slack_emulator.issue_trigger_id("U0ALICE"), view=modal()
    )
    view_id = opened["view"]["id"]

    def answer(body: dict[str, Any]) -> dict[str, Any]:
        return slack_emulator.record_view_submission_ack(
            view_id, status=200, body=json.dumps(body), content_type="application/json"
        )

    assert answer({"response_action": "errors", "errors": {"nope": "x"}})["problems"] == [
        "not an input block_id: nope"
    ]
    bad = answer({"response_action": "update", "view": modal(title=None)})
    assert bad["result"] == "rejected"
    assert bad["problems"]
    updated = answer(
        {"response_action": "update", "view": modal(title={"type": "plain_text", "text": "Next"})}
    )
    assert updated["result"] == "updated"
    assert slack_emulator.view(view_id).title == "Next"
    pushed = answer({"response_action": "push", "view": modal(callback_id="confirm")})
    assert slack_emulator.view(pushed["view_id"]).previous_view_id == view_id
    assert answer({"response_action": "clear"})["result"] == "cleared"
    assert slack_emulator.open_views() == []


# ------------------------------------------------------------------------------ signed client


def test_signature_matches_slack_sdk_verifier() -> None:
    verifier = SignatureVerifier(SIGNING_SECRET)
    emulator = SlackEmulator()
    signed = SignedSlackClient("http://127.0.0.1:9", SIGNING_SECRET, emulator)
    body = "command=%2Fpolicy&text=status"
    assert verifier.is_valid_request(body, signed.sign(body))
    assert signed.sign(body)["X-Slack-Signature"] == verifier.generate_signature(
        timestamp=signed.sign(body)["X-Slack-Request-Timestamp"], body=body
    )
    assert slack_signature(SIGNING_SECRET, "1", body) == verifier.generate_signature(
        timestamp="1", body=body
    )
    for broken in (Signing.UNSIGNED, Signing.WRONG_SIGNATURE, Signing.STALE_TIMESTAMP):
        assert not verifier.is_valid_request(body, signed.sign(body, signing=broken))


@pytest_asyncio.fixture
async def bolt_bot(slack_emulator: SlackEmulator) -> AsyncIterator[tuple[AsyncApp, str]]:
    """A real Bolt app mounted on aiohttp, as the bot mounts it, with a few listeners."""
    bolt = AsyncApp(
        client=AsyncWebClient(token=BOT_TOKEN, base_url=slack_emulator.base_url),
        signing_secret=SIGNING_SECRET,
    )

    @bolt.command("/policy")
    async def command(ack: Any, command: dict[str, str], client: AsyncWebClient) -> None:
        if command["text"] == "exception":
            await ack()
            await client.views_open(trigger_id=command["trigger_id"], view=modal())
            return
        await ack(text=f"status for {command['user_name']}")
        await client.chat_postMessage(
            channel=command["channel_id"],
            text="approve?",
            blocks=[
                section("approve?"),
                {
                    "type": "actions",
                    "elements": [button("exception:approve", "Approve", value="req-1")],
                },
            ],
        )

    @bolt.action("exception:approve")
    async def approve(ack: Any, body: dict[str, Any], respond: Any) -> None:
        await ack()
        value = body["actions"][0]["value"]
        await respond(text=f"approved {value} by {body['user']['id']}", replace_original=True)

    @bolt.view("exception:request")
    async def submitted(ack: Any, view: dict[str, Any]) -> None:
        values = view["state"]["values"]
        if not values["reason"]["value"]["value"]:
            await ack(response_action="errors", errors={"reason": "required"})
            return
        assert values["duration"]["days"]["selected_option"]["value"] == "30"
        await ack()

    async def events(request: web.Request) -> web.StreamResponse:
        return await to_aiohttp_response(await bolt.async_dispatch(await to_bolt_request(request)))

    app = web.Application()
    app.router.add_post("/slack/events", events)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield bolt, f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await _settle_slack_library_tasks()
        await runner.cleanup()


@pytest.fixture
def signed(
    slack_emulator: SlackEmulator, bolt_bot: tuple[AsyncApp, str]
) -> Iterator[SignedSlackClient]:
    yield SignedSlackClient(bolt_bot[1], SIGNING_SECRET, slack_emulator)


async def test_signed_requests_reach_bolt_and_broken_ones_get_401(
    slack_emulator: SlackEmulator, signed: SignedSlackClient
) -> None:
    slack_emulator.add_user("U0ALICE", "alice")
    async with signed:
        result = await signed.command("/policy", "status", user="U0ALICE", channel=CHANNEL)
        assert result.response.status == 200
        assert result.response.text == "status for alice"
        assert result.response.elapsed < 3.0
        [ack] = slack_emulator.ephemeral(CHANNEL, "U0ALICE")
        assert ack.via == "command_ack"
        assert ack.text == "status for alice"

        for broken in (Signing.UNSIGNED, Signing.WRONG_SIGNATURE, Signing.STALE_TIMESTAMP):
            rejected = await signed.command(
                "/policy", "status", user="U0ALICE", channel=CHANNEL, signing=broken
            )
            assert rejected.response.status == 401
            assert rejected.response.json() == {"error": "invalid request"}


async def test_button_click_from_a_rendered_message(
    slack_emulator: SlackEmulator, signed: SignedSlackClient
) -> None:
    slack_emulator.add_user("U0ALICE", "alice")
    async with signed:
        await signed.command("/policy", "status", user="U0ALICE", channel=CHANNEL)
        call = await slack_emulator.next_call("chat.postMessage")
        ts = call.response["ts"]
        with pytest.raises(ValueError, match="no element"):
            await signed.block_action(
                "exception:deny", user="U0ALICE", channel=CHANNEL, message_ts=ts
            )
        click = await signed.block_action(
            "exception:approve", user="U0ALICE", channel=CHANNEL, message_ts=ts
        )
        assert click.response.status == 200
        assert click.payload["actions"][0]["value"] == "req-1"
        assert click.payload["message"]["ts"] == ts
        assert click.payload["container"]["message_ts"] == ts
        await slack_emulator.next_call("response_url")
    message = slack_emulator.message(CHANNEL, ts)
    assert message is not None
    assert message.text == "approved req-1 by U0ALICE"


async def test_a_click_acknowledged_after_3_s_is_held_against_the_bot(
    slack_emulator: SlackEmulator,
) -> None:
    """Slack shows the person an error when the answer to a click comes after 3 s; the
    client notes it and the emulator fixture fails any test that leaves such a note."""
    started = asyncio.Event()

    async def late(request: web.Request) -> web.Response:
        started.set()
        await asyncio.sleep(ACK_DEADLINE + 0.1)
        return web.Response()

    app = web.Application()
    app.router.add_post("/slack/events", late)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    slack_emulator.add_user("U0ALICE", "alice")
    posted = await AsyncWebClient(
        token=BOT_TOKEN, base_url=slack_emulator.base_url
    ).chat_postMessage(
        channel=CHANNEL,
        text="approve?",
        blocks=[{"type": "actions", "elements": [button("exception:approve", "Approve")]}],
    )
    try:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"
        async with SignedSlackClient(url, SIGNING_SECRET, slack_emulator) as signed:
            await signed.block_action(
                "exception:approve", user="U0ALICE", channel=CHANNEL, message_ts=posted["ts"]
            )
    finally:
        await runner.cleanup()
    assert started.is_set()
    [note] = slack_emulator.late_acks
    assert note.startswith("click on exception:approve: acknowledged after 3.")
    slack_emulator.late_acks.clear()  # seen: the fixture would fail this test otherwise


async def test_modal_opened_by_command_then_submitted(
    slack_emulator: SlackEmulator, signed: SignedSlackClient
) -> None:
    slack_emulator.add_user("U0ALICE", "alice")
    async with signed:
        await signed.command("/policy", "exception", user="U0ALICE", channel=CHANNEL)
        opened = await slack_emulator.next_call("views.open")
        assert opened.ok, opened.response
        view_id = opened.response["view"]["id"]

        empty = await signed.view_submission(
            view_id, {"reason": {"value": ""}, "duration": {"days": "30"}}
        )
        assert empty.response.json() == {
            "response_action": "errors",
            "errors": {"reason": "required"},
        }
        assert slack_emulator.view(view_id).state == "open"

        with pytest.raises(ValueError, match="no option"):
            signed.view_state(slack_emulator.view(view_id), {"duration": {"days": "365"}})
        done = await signed.view_submission(
            view_id, {"reason": {"value": "vendor fix pending"}, "duration": {"days": "30"}}
        )
        assert done.response.status == 200
    record = slack_emulator.view(view_id)
    assert record.state == "closed"
    assert [s["result"] for s in record.submissions] == ["errors_shown", "closed"]


# ------------------------------------------------------------------------------ Socket Mode


async def test_socket_mode_with_a_real_bolt_handler(slack_emulator: SlackEmulator) -> None:
    # The test reconnects at once; apps.connections.open is Tier 1 (one a minute, and the SDK
    # honours the 429 by waiting its Retry-After), which would only add a real-time minute to
    # a test of the reconnection itself: Tier 1 allows the two connections here.
    slack_emulator.set_rate_limits(tier_requests_per_minute={**TIER_REQUESTS_PER_MINUTE, 1: 2})
    bolt = AsyncApp(
        client=AsyncWebClient(token=BOT_TOKEN, base_url=slack_emulator.base_url),
        signing_secret=SIGNING_SECRET,
    )

    @bolt.command("/policy")
    async def command(ack: Any, command: dict[str, str]) -> None:
        await ack(text=f"socket: {command['text']}")

    handler = AsyncSocketModeHandler(bolt, APP_TOKEN)
    try:
        await handler.connect_async()  # type: ignore[no-untyped-call]
        connection = await slack_emulator.socket_mode.wait_connected()
        assert connection.ticket
        open_call = await slack_emulator.next_call("apps.connections.open")
        assert open_call.headers["Authorization"] == f"Bearer {APP_TOKEN}"

        signed = SignedSlackClient("http://127.0.0.1:9", SIGNING_SECRET, slack_emulator)
        fields, _ = signed.command_fields("/policy", "status", user="U0ALICE", channel=CHANNEL)
        ack = await slack_emulator.socket_mode.request("slash_commands", dict(fields))
        assert ack["payload"] == {"text": "socket: status"}
        assert await handler.client.is_connected()

        await slack_emulator.socket_mode.disconnect()
        await slack_emulator.socket_mode.wait_connected(count=2)
        fields, _ = signed.command_fields("/policy", "again", user="U0ALICE", channel=CHANNEL)
        ack = await slack_emulator.socket_mode.request("slash_commands", dict(fields))
        assert ack["payload"] == {"text": "socket: again"}
        assert len(slack_emulator.calls("apps.connections.open")) == 2
    finally:
        await handler.close_async()  # type: ignore[no-untyped-call]
        await _settle_slack_library_tasks()

    with pytest.raises(SlackApiError) as err:
        await AsyncWebClient(
            token=BOT_TOKEN, base_url=slack_emulator.base_url
        ).apps_connections_open(app_token=BOT_TOKEN)
    assert err.value.response["error"] == "not_allowed_token_type"
