"""`POST /alertmanager`: authenticate, bound, parse and store one Alertmanager notification.

The answer is what drives Alertmanager's retries (SPEC 2.2, reference A3): 200 once the
notification is durably stored (Slack work happens later, in the sender); 5xx for trouble that
a retry can fix (store down: 503); 4xx for requests no retry can fix (401 wrong token, 413 too
large, 400 malformed or unroutable). Never 429: Alertmanager treats it as final and drops the
notification until the next `group_interval`.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from aiohttp import web

from bot.alerts import metrics
from bot.alerts.intake import StoreResult
from bot.alerts.routing import NoRoute
from bot.alerts.webhook import Notification, ParseError, parse_notification
from bot.store.errors import StoreUnavailable

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.Response]]


class NotificationSink(Protocol):
    """Where parsed notifications go (`bot.alerts.intake.Intake`)."""

    async def store(
        self, notification: Notification, *, raw: bytes | None = None
    ) -> StoreResult: ...


def alertmanager_webhook(
    *, token: str | None, max_body_bytes: int, sink: NotificationSink
) -> Handler:
    """The aiohttp handler for `POST /alertmanager`.

    Without a configured token every request is refused: Alertmanager signs nothing, so an
    open endpoint would let anyone post alerts into the channels.
    """
    expected = token.encode() if token else None
    if expected is None:
        log.warning("ALERTMANAGER_WEBHOOK_TOKEN is not set; POST /alertmanager refuses every call")

    async def handle(request: web.Request) -> web.Response:
        started = time.perf_counter()
        try:
            return await _handle(request)
        finally:
            metrics.WEBHOOK_SECONDS.observe(time.perf_counter() - started)

    async def _handle(request: web.Request) -> web.Response:
        if expected is None or not _bearer_matches(request, expected):
            return _reject(
                401,
                "unauthorized",
                "missing or wrong bearer token (http_config.authorization)",
                headers={"WWW-Authenticate": 'Bearer realm="policy-bot"'},
            )
        declared = request.content_length
        if declared is not None and declared > max_body_bytes:
            return _too_large(max_body_bytes)
        body = await _read_at_most(request, max_body_bytes)
        if body is None:
            return _too_large(max_body_bytes)
        try:
            notification = parse_notification(body)
        except ParseError as err:
            return _reject(400, err.code, err.reason)
        try:
            result = await sink.store(notification, raw=body)
        except NoRoute as err:
            return _reject(400, "no_route", err.reason)
        except StoreUnavailable as err:
            log.warning("alert store unavailable; asking Alertmanager to retry", exc_info=err)
            return _reject(503, "store_unavailable", "the bot's store is unavailable; retry later")
        outcome = "duplicate" if result.duplicate else "stored"
        metrics.WEBHOOKS.labels(outcome).inc()
        log.debug(
            "alert notification accepted",
            extra={"group_key": notification.group_key, "outcome": outcome},
        )
        return web.json_response({"status": outcome, "channels": list(result.channels)})

    return handle


def _bearer_matches(request: web.Request, expected: bytes) -> bool:
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    # Constant time, so the token cannot be guessed byte by byte from response timings.
    return hmac.compare_digest(credentials.strip().encode(), expected)


async def _read_at_most(request: web.Request, limit: int) -> bytes | None:
    """The body, or None when it is longer than `limit` (reading at most `limit + 1` bytes).

    Chunked requests carry no Content-Length, so the limit is enforced while streaming.
    """
    chunks: list[bytes] = []
    remaining = limit + 1
    while remaining > 0:
        chunk = await request.content.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return None if remaining <= 0 else b"".join(chunks)


def _too_large(limit: int) -> web.Response:
    return _reject(
        413,
        "too_large",
        f"body larger than {limit} bytes; lower max_alerts in the webhook_config "
        "or raise alertmanager.max_body_bytes",
    )


def _reject(
    status: int, reason: str, detail: str, *, headers: dict[str, str] | None = None
) -> web.Response:
    metrics.WEBHOOKS.labels("rejected").inc()
    metrics.WEBHOOKS_REJECTED.labels(reason).inc()
    log.warning("alert notification rejected", extra={"status": status, "reason": reason})
    return web.json_response(
        {"status": "rejected", "reason": reason, "detail": detail}, status=status, headers=headers
    )
