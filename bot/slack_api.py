"""The bot's one door to the Slack Web API, over slack_sdk's `AsyncWebClient`.

Callers get plain return values and three errors that say what to do next: `RateLimited`
(wait `retry_after_s`, then retry), `SlackUnavailable` (5xx, timeout, connection trouble:
retry with backoff) and `SlackRejected` (Slack refused the call: retrying will not help).
Retries are deliberately NOT done here: the SDK's retry handlers are disabled, so a
non-idempotent `chat.postMessage` is never repeated behind the caller's back, and the outbox
decides when to try again. Every call is bounded by a timeout and counted in metrics.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import aiohttp
from prometheus_client import Counter, Histogram
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.objects import Block

log = logging.getLogger(__name__)

T = TypeVar("T")

SLACK_CALLS = Counter(
    "policy_bot_slack_calls_total",
    "Slack Web API calls by method and outcome (ok, rate_limited, unavailable, rejected).",
    ["method", "outcome"],
)
SLACK_RATE_LIMITED = Counter(
    "policy_bot_slack_rate_limited_total",
    "Slack answers of 429 (rate limited), by method.",
    ["method"],
)
SLACK_LATENCY = Histogram(
    "policy_bot_slack_call_seconds",
    "Duration of Slack Web API calls, by method.",
    ["method"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)

# Errors Slack reports with HTTP 200 that mean "Slack is in trouble", not "your call is wrong".
_TRANSIENT_ERRORS = frozenset(
    {"internal_error", "fatal_error", "service_unavailable", "request_timeout", "ratelimited"}
)
DEFAULT_RETRY_AFTER_S = 1.0


class SlackError(Exception):
    """Base of the adapter's errors; `method` names the Web API method that failed."""

    def __init__(self, method: str, message: str) -> None:
        super().__init__(f"{method}: {message}")
        self.method = method


class RateLimited(SlackError):
    def __init__(self, method: str, retry_after_s: float) -> None:
        super().__init__(method, f"rate limited, retry after {retry_after_s:g} s")
        self.retry_after_s = retry_after_s


class SlackUnavailable(SlackError):
    """Slack answered 5xx, timed out, or could not be reached."""


class SlackRejected(SlackError):
    """Slack refused the call (`error` is Slack's code, e.g. `channel_not_found`)."""

    def __init__(self, method: str, error: str) -> None:
        super().__init__(method, error)
        self.error = error


def build_web_client(
    *, token: str, base_url: str, timeout_s: float, session: aiohttp.ClientSession | None = None
) -> AsyncWebClient:
    """An `AsyncWebClient` with a timeout and without SDK retries (the caller owns retries).

    The composition root may hand the same client to Bolt (`AsyncApp(client=...)`).
    """
    return AsyncWebClient(
        token=token,
        base_url=base_url if base_url.endswith("/") else base_url + "/",
        timeout=max(1, round(timeout_s)),
        session=session,
        retry_handlers=[],
    )


@dataclass(frozen=True)
class Posted:
    """Where a message landed: the conversation id Slack answered (a user id becomes the
    direct-message channel) and the message's ts."""

    channel: str
    ts: str


MessageMatch = Callable[[Mapping[str, Any]], bool]
"""Tells a message's `metadata.event_payload` apart from the others of its event type."""

FIND_PAGE = 100
FIND_PAGES = 2
"""How far back a lost post is looked for: the newest 200 messages of the conversation (or
of the thread). A count, not a time span, so a clock apart from Slack's cannot hide it."""


class SlackApi:
    """Thin, typed wrapper of the Web API methods the bot uses."""

    def __init__(self, client: AsyncWebClient, *, timeout_s: float) -> None:
        self._client = client
        self._timeout_s = timeout_s
        self._owned_session: aiohttp.ClientSession | None = None

    @classmethod
    def open(cls, *, token: str, base_url: str, timeout_s: float) -> SlackApi:
        """An adapter with its own connection pool; call from a running loop, then `close()`."""
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s))
        api = cls(
            build_web_client(token=token, base_url=base_url, timeout_s=timeout_s, session=session),
            timeout_s=timeout_s,
        )
        api._owned_session = session
        return api

    @property
    def web_client(self) -> AsyncWebClient:
        return self._client

    async def close(self) -> None:
        if self._owned_session is not None:
            await self._owned_session.close()
            self._owned_session = None

    async def post_message(
        self,
        channel: str,
        text: str,
        blocks: Sequence[Block] | None = None,
        *,
        thread_ts: str | None = None,
    ) -> str:
        """Post a message (a thread reply when `thread_ts` is given); returns its `ts`."""
        return (await self.post_tracked(channel, text, blocks, thread_ts=thread_ts)).ts

    async def post_tracked(
        self,
        channel: str,
        text: str,
        blocks: Sequence[Block] | None = None,
        *,
        thread_ts: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Posted:
        """Post a message carrying `metadata` ({event_type, event_payload}), by which
        `find_posted` finds it again when Slack's answer is lost."""
        response = await self._call(
            "chat.postMessage",
            lambda: self._client.chat_postMessage(
                channel=channel,
                text=text,
                blocks=list(blocks) if blocks is not None else None,
                thread_ts=thread_ts,
                metadata=dict(metadata) if metadata is not None else None,
                unfurl_links=False,
                unfurl_media=False,
            ),
        )
        return Posted(str(response.get("channel") or channel), str(response["ts"]))

    async def open_dm(self, user: str) -> str:
        """The direct-message channel with `user` (conversations.open)."""
        response = await self._call(
            "conversations.open", lambda: self._client.conversations_open(users=user)
        )
        found = response.get("channel")
        if not isinstance(found, dict) or not found.get("id"):
            raise SlackRejected("conversations.open", "no_channel")
        return str(found["id"])

    async def find_posted(
        self,
        channel: str,
        *,
        event_type: str,
        match: MessageMatch,
        thread_ts: str | None = None,
    ) -> Posted | None:
        """The bot's message of `event_type` whose payload `match`es, among the newest of the
        conversation (or of the thread under `thread_ts`); None when it is not there."""

        def mine(message: Mapping[str, Any]) -> bool:
            meta = message.get("metadata")
            return (
                isinstance(meta, dict)
                and meta.get("event_type") == event_type
                and isinstance(meta.get("event_payload"), dict)
                and match(meta["event_payload"])
            )

        return await self._find(channel, mine, thread_ts=thread_ts)

    async def find_file(
        self, channel: str, filename: str, *, thread_ts: str | None = None
    ) -> Posted | None:
        """The message sharing a file named `filename` among the newest of the conversation
        (or of the thread): files carry no metadata, so the name must be unique there."""

        def shares(message: Mapping[str, Any]) -> bool:
            files = message.get("files")
            return isinstance(files, list) and any(
                isinstance(f, dict) and f.get("name") == filename for f in files
            )

        return await self._find(channel, shares, thread_ts=thread_ts)

    async def _find(
        self,
        channel: str,
        wanted: Callable[[Mapping[str, Any]], bool],
        *,
        thread_ts: str | None,
    ) -> Posted | None:
        if channel[:1] in ("U", "W"):
            channel = await self.open_dm(channel)
        cursor: str | None = None
        for _ in range(FIND_PAGES):
            if thread_ts:
                method = "conversations.replies"
                read = partial(self._client.conversations_replies, ts=thread_ts)
            else:
                method = "conversations.history"
                read = partial(self._client.conversations_history)
            response = await self._call(
                method,
                partial(
                    read, channel=channel, include_all_metadata=True, limit=FIND_PAGE, cursor=cursor
                ),
            )
            for message in response.get("messages") or []:
                if isinstance(message, dict) and wanted(message):
                    return Posted(channel, str(message["ts"]))
            cursor = str((response.get("response_metadata") or {}).get("next_cursor") or "")
            if not response.get("has_more") or not cursor:
                return None
        return None

    async def update_message(
        self, channel: str, ts: str, text: str, blocks: Sequence[Block] | None = None
    ) -> None:
        await self._call(
            "chat.update",
            lambda: self._client.chat_update(
                channel=channel, ts=ts, text=text, blocks=list(blocks) if blocks else []
            ),
        )

    async def post_ephemeral(
        self, channel: str, user: str, text: str, blocks: Sequence[Block] | None = None
    ) -> None:
        await self._call(
            "chat.postEphemeral",
            lambda: self._client.chat_postEphemeral(
                channel=channel,
                user=user,
                text=text,
                blocks=list(blocks) if blocks is not None else None,
            ),
        )

    async def usergroup_members(self, usergroup: str) -> frozenset[str]:
        """The user ids of a user group (usergroups.users.list, Tier 2: about 20 a minute)."""
        response = await self._call(
            "usergroups.users.list",
            lambda: self._client.usergroups_users_list(usergroup=usergroup),
        )
        return frozenset(str(u) for u in response.get("users") or ())

    async def views_publish(self, user: str, view: Mapping[str, Any]) -> None:
        """Publish `view` as `user`'s App Home tab (views.publish)."""
        await self._call(
            "views.publish", lambda: self._client.views_publish(user_id=user, view=dict(view))
        )

    async def upload_file(
        self,
        channel: str,
        filename: str,
        content: bytes | str,
        *,
        title: str | None = None,
        initial_comment: str | None = None,
        thread_ts: str | None = None,
    ) -> str | None:
        """Upload `content` as a file shared in `channel` (files_upload_v2); returns its id."""
        response = await self._call(
            "files.upload_v2",
            lambda: self._client.files_upload_v2(
                channel=channel,
                filename=filename,
                content=content,
                title=title or filename,
                initial_comment=initial_comment,
                thread_ts=thread_ts,
            ),
            # Three HTTP calls (URL, upload, complete), each bounded by the session timeout.
            deadline_s=3 * self._timeout_s + 1,
        )
        files = response.get("files") or []
        file = files[0] if files and isinstance(files[0], dict) else response.get("file")
        return str(file["id"]) if isinstance(file, dict) and "id" in file else None

    async def _call(
        self,
        method: str,
        send: Callable[[], Awaitable[AsyncSlackResponse]],
        *,
        deadline_s: float | None = None,
    ) -> AsyncSlackResponse:
        deadline = deadline_s if deadline_s is not None else self._timeout_s + 1
        with SLACK_LATENCY.labels(method).time():
            try:
                async with asyncio.timeout(deadline):
                    response = await send()
            except SlackApiError as err:
                raise self._translate(method, err) from err
            except (TimeoutError, aiohttp.ClientError, OSError) as err:
                SLACK_CALLS.labels(method, "unavailable").inc()
                raise SlackUnavailable(method, f"{type(err).__name__}: {err}") from err
            except SlackClientError as err:
                SLACK_CALLS.labels(method, "rejected").inc()
                raise SlackRejected(method, f"client_error: {err}") from err
        SLACK_CALLS.labels(method, "ok").inc()
        return response

    @staticmethod
    def _translate(method: str, err: SlackApiError) -> SlackError:
        response = err.response
        status = int(getattr(response, "status_code", 0) or 0)
        data = getattr(response, "data", None)
        code = str(data.get("error", "")) if isinstance(data, dict) else ""
        if status == 429 or code == "ratelimited":
            SLACK_CALLS.labels(method, "rate_limited").inc()
            SLACK_RATE_LIMITED.labels(method).inc()
            return RateLimited(method, _retry_after(response))
        if status >= 500 or code in _TRANSIENT_ERRORS:
            SLACK_CALLS.labels(method, "unavailable").inc()
            return SlackUnavailable(method, f"HTTP {status} {code}".strip())
        SLACK_CALLS.labels(method, "rejected").inc()
        return SlackRejected(method, code or f"http_{status}")


def _retry_after(response: Any) -> float:
    headers = getattr(response, "headers", None) or {}
    raw = headers.get("Retry-After") or headers.get("retry-after")
    try:
        return max(0.0, float(raw)) if raw is not None else DEFAULT_RETRY_AFTER_S
    except (TypeError, ValueError):
        return DEFAULT_RETRY_AFTER_S
