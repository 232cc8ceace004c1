"""A minimal Socket Mode server, served by the Slack emulator's aiohttp application.

In Socket Mode Slack does not call the bot over HTTP: the bot asks ``apps.connections.open``
(with its ``xapp-`` token) for a one-time WebSocket URL, Slack greets it with ``hello`` and
then pushes envelopes (``{"envelope_id", "type", "payload", "accepts_response_payload"}``)
that the bot acknowledges with ``{"envelope_id", "payload"?}``. This module speaks that
protocol well enough for ``slack_sdk.socket_mode.aiohttp.SocketModeClient`` (and so Bolt's
``AsyncSocketModeHandler``) to connect, receive envelopes and ack them, which lets tests
exercise the Socket Mode deployment without Slack.

Protocol notes taken from the client's source: tickets are single use; the client sends
WebSocket pings (``sdk-ping-pong:<time>``) and expects pongs with the same payload, which
aiohttp's ``autoping`` provides; a ``{"type": "disconnect"}`` message makes the client fetch a
new URL and reconnect.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

__all__ = ["SocketConnection", "SocketModeServer"]

JsonDict = dict[str, Any]


async def wait_for(changed: asyncio.Condition, ready: Callable[[], bool], timeout: float) -> bool:
    """Wait until `ready()` holds, re-checked whenever `changed` is notified; False on timeout."""
    try:
        async with asyncio.timeout(timeout), changed:
            await changed.wait_for(ready)
    except TimeoutError:
        return False
    return True


@dataclass
class SocketConnection:
    """One WebSocket connection from the app, with everything it sent."""

    id: int
    ticket: str
    ws: web.WebSocketResponse
    opened_at: float
    closed: bool = False
    received: list[JsonDict] = field(default_factory=list)


class SocketModeServer:
    """Hands out WebSocket URLs, greets connections and routes envelopes and acks.

    Usually reached as ``SlackEmulator.socket_mode``. ``on_change`` is awaited after every
    connection change and every ack, so the owner can wake its waiters.
    """

    path = "/link/"

    def __init__(
        self,
        *,
        app_id: str,
        on_change: Callable[[], Awaitable[None]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app_id = app_id
        self._on_change = on_change
        self._clock = clock
        self._tickets: dict[str, bool] = {}
        self._connections: list[SocketConnection] = []
        self._pending: dict[str, asyncio.Future[JsonDict]] = {}
        self._changed = asyncio.Condition()
        #: Every acknowledgement received, in order.
        self.acks: list[JsonDict] = []
        #: Every envelope sent, in order.
        self.sent: list[JsonDict] = []

    def install(self, app: web.Application) -> None:
        app.router.add_get(self.path, self._handle)

    def issue_url(self, origin: str) -> str:
        """A single-use WebSocket URL under ``origin`` (e.g. ``ws://127.0.0.1:4242``)."""
        ticket = secrets.token_hex(16)
        self._tickets[ticket] = False
        return f"{origin}{self.path}?ticket={ticket}&app_id={self.app_id}"

    @property
    def connections(self) -> list[SocketConnection]:
        return list(self._connections)

    def _current(self) -> SocketConnection | None:
        live = [c for c in self._connections if not c.closed and not c.ws.closed]
        return live[-1] if live else None

    async def wait_connected(self, *, timeout: float = 2.0, count: int = 1) -> SocketConnection:
        """Wait until ``count`` connections were established (``hello`` sent) and one is
        still open; returns the newest open one."""

        def ready() -> bool:
            return len(self._connections) >= count and self._current() is not None

        if not await wait_for(self._changed, ready, timeout):
            raise TimeoutError(f"no Socket Mode connection within {timeout}s")
        current = self._current()
        assert current is not None
        return current

    async def send_envelope(
        self,
        type_: str,
        payload: JsonDict,
        *,
        accepts_response_payload: bool | None = None,
        envelope_id: str | None = None,
        retry_attempt: int | None = None,
        retry_reason: str | None = None,
    ) -> str:
        """Push an envelope to the newest open connection; returns its envelope_id.

        ``accepts_response_payload`` defaults as on Slack: true for slash commands and for
        interactive payloads that take a response (view_submission, block_suggestion).
        """
        connection = self._current()
        if connection is None:
            raise RuntimeError("no open Socket Mode connection")
        if accepts_response_payload is None:
            accepts_response_payload = type_ == "slash_commands" or (
                type_ == "interactive"
                and payload.get("type") in ("view_submission", "block_suggestion")
            )
        eid = envelope_id or secrets.token_hex(16)
        envelope: JsonDict = {
            "envelope_id": eid,
            "type": type_,
            "payload": payload,
            "accepts_response_payload": accepts_response_payload,
        }
        if type_ == "events_api":
            envelope["retry_attempt"] = retry_attempt or 0
            envelope["retry_reason"] = retry_reason or ""
        self._pending[eid] = asyncio.get_running_loop().create_future()
        self.sent.append(envelope)
        await connection.ws.send_str(json.dumps(envelope))
        return eid

    async def wait_ack(self, envelope_id: str, *, timeout: float = 3.0) -> JsonDict:
        """The app's acknowledgement of an envelope (Slack's deadline is 3 s)."""
        future = self._pending.get(envelope_id)
        if future is None:
            for ack in self.acks:
                if ack.get("envelope_id") == envelope_id:
                    return ack
            raise KeyError(envelope_id)
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            raise TimeoutError(f"envelope {envelope_id} not acknowledged in {timeout}s") from None

    async def request(self, type_: str, payload: JsonDict, *, timeout: float = 3.0) -> JsonDict:
        """Send an envelope and return its acknowledgement."""
        envelope_id = await self.send_envelope(type_, payload)
        return await self.wait_ack(envelope_id, timeout=timeout)

    async def disconnect(self, reason: str = "refresh_requested") -> None:
        """Ask the app to reconnect, as Slack does periodically."""
        connection = self._current()
        if connection is None:
            raise RuntimeError("no open Socket Mode connection")
        message = {
            "type": "disconnect",
            "reason": reason,
            "debug_info": {"host": "applink-emulator"},
        }
        await connection.ws.send_str(json.dumps(message))

    async def close(self) -> None:
        """Close every connection and fail pending acks (the emulator is stopping)."""
        for connection in self._connections:
            if not connection.ws.closed:
                await connection.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server stopping")
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionError("Socket Mode server stopped"))
                future.exception()  # retrieved: nobody may be waiting any more
        self._pending.clear()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()
        if self._on_change is not None:
            await self._on_change()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        if self._tickets.get(ticket, True):
            return web.Response(status=401, text="invalid or used ticket")
        self._tickets[ticket] = True
        ws = web.WebSocketResponse(autoping=True, timeout=2.0)
        await ws.prepare(request)
        connection = SocketConnection(len(self._connections) + 1, ticket, ws, self._clock())
        self._connections.append(connection)
        hello = {
            "type": "hello",
            "num_connections": sum(1 for c in self._connections if not c.closed),
            "debug_info": {
                "host": "applink-emulator",
                "build_number": 1,
                "approximate_connection_time": 18060,
            },
            "connection_info": {"app_id": self.app_id},
        }
        await ws.send_str(json.dumps(hello))
        await self._notify()
        try:
            async for frame in ws:
                if frame.type != WSMsgType.TEXT:
                    continue
                try:
                    message = json.loads(frame.data)
                except ValueError:
                    continue
                if not isinstance(message, dict):
                    continue
                connection.received.append(message)
                envelope_id = message.get("envelope_id")
                if isinstance(envelope_id, str):
                    self.acks.append(message)
                    future = self._pending.pop(envelope_id, None)
                    if future is not None and not future.done():
                        future.set_result(message)
                    await self._notify()
        finally:
            connection.closed = True
        await self._notify()
        return ws
