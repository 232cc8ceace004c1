"""Watch streams: one long-lived HTTP response per watched kind, read off the event loop.

The `kubernetes` client is synchronous and a watch response never ends on its own before the
server's `timeoutSeconds`, so each stream is read in a daemon thread of its own (never in the
gateway's small pool, whose workers it would hold for minutes). The thread splits the chunked
body into lines, decodes each into a `WatchEvent` and hands it to the event loop through an
`asyncio.Queue`; the loop side is an async iterator. Stopping the iteration (a `break`, a
cancelled task, the gateway closing) shuts the socket down, which ends the thread's read.

Once the server has accepted the watch, the first event is a BOOKMARK at the version the
watch started from: the consumer then knows the watch is established even when nothing
changes for minutes. ERROR events never reach the consumer as events: a 410 (the
resourceVersion is older than the server keeps) raises `Expired`, so the caller lists again;
any other raises `ClusterUnavailable`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator
from typing import Any, Protocol

import urllib3

from bot.errors import ClusterUnavailable
from bot.kube.errors import Expired
from bot.ports.cluster import WatchEvent

log = logging.getLogger(__name__)

EVENT_TYPES = frozenset({"ADDED", "MODIFIED", "DELETED", "BOOKMARK"})


class StreamingResponse(Protocol):
    """The part of urllib3's HTTPResponse a watch reads."""

    def stream(
        self, amt: int | None = ..., decode_content: bool | None = ...
    ) -> Iterator[bytes]: ...

    def shutdown(self) -> None: ...

    def release_conn(self) -> None: ...

    def close(self) -> None: ...


def iter_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The newline-separated lines of a chunked body; a line may span several chunks."""
    pending = b""
    for chunk in chunks:
        if not chunk:
            continue
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.strip():
                yield line
    if pending.strip():
        yield pending


def decode_event(line: bytes, environment: str) -> WatchEvent | None:
    """One line of a watch body as an event; None for a type this client does not know."""
    try:
        data: dict[str, Any] = json.loads(line)
    except ValueError:
        raise ClusterUnavailable(environment, "the watch sent a line that is not JSON") from None
    kind = data.get("type")
    obj = data.get("object") or {}
    if kind == "ERROR":
        code = obj.get("code")
        message = str(obj.get("message") or obj.get("reason") or "watch error")
        if code == 410:
            raise Expired(message)
        raise ClusterUnavailable(environment, f"watch error {code}: {message[:200]}")
    if kind not in EVENT_TYPES:
        log.debug("ignored a watch event", extra={"type": kind, "environment": environment})
        return None
    return WatchEvent(kind, obj)


_END = object()


def opened(resource_version: str) -> WatchEvent:
    """The bookmark that says a watch from `resource_version` is established."""
    return WatchEvent("BOOKMARK", {"metadata": {"resourceVersion": resource_version}})


class WatchReader:
    """Reads one watch response in its own thread and delivers events (or the error that
    ended it, or `_END`) through `deliver`, which must be safe to call from that thread."""

    def __init__(
        self,
        open_response: Callable[[], StreamingResponse],
        deliver: Callable[[object], None],
        *,
        environment: str,
        start_version: str,
    ) -> None:
        self._open = open_response
        self._start_version = start_version
        self._deliver = deliver
        self._environment = environment
        self._lock = threading.Lock()
        self._response: StreamingResponse | None = None
        self._stopped = False

    def run(self) -> None:
        response: StreamingResponse | None = None
        complete = False
        try:
            response = self._open()
            with self._lock:
                if self._stopped:
                    return
                self._response = response
            self._deliver(opened(self._start_version))
            for line in iter_lines(response.stream(None, decode_content=True)):
                if self._stopped:
                    return
                event = decode_event(line, self._environment)
                if event is not None:
                    self._deliver(event)
            complete = True
            self._deliver(_END)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            if not self._stopped:
                reason = str(getattr(exc, "reason", None) or exc).split(": ", 1)[-1][:120]
                self._deliver(ClusterUnavailable(self._environment, f"watch broke: {reason}"))
        except Exception as exc:
            if not self._stopped:
                self._deliver(exc)
        finally:
            if response is not None:
                try:
                    if complete:  # the server ended the body: the connection can be reused
                        response.release_conn()
                    else:  # part of a body is still on the wire, or the socket is shut
                        response.close()
                except Exception:  # the connection is gone either way
                    log.debug("closing a watch connection failed", exc_info=True)

    def stop(self) -> None:
        """End the read from any thread: the blocked socket read returns at once."""
        with self._lock:
            self._stopped = True
            response = self._response
        if response is not None:
            try:
                response.shutdown()
            except Exception:  # already closed
                log.debug("shutdown of a watch response failed", exc_info=True)


async def follow(
    open_response: Callable[[], StreamingResponse],
    *,
    environment: str,
    start_version: str,
    name: str,
    readers: set[WatchReader] | None = None,
) -> AsyncGenerator[WatchEvent, None]:
    """Events of the watch `open_response` starts (called in the reader's thread), until the
    server ends it. `readers` tracks the live readers so their owner can stop them all."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[object] = asyncio.Queue()

    def deliver(item: object) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            reader.stop()

    reader = WatchReader(
        open_response, deliver, environment=environment, start_version=start_version
    )
    if readers is not None:
        readers.add(reader)
    threading.Thread(target=reader.run, name=name, daemon=True).start()
    try:
        while True:
            item = await queue.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, WatchEvent)
            yield item
    finally:
        reader.stop()
        if readers is not None:
            readers.discard(reader)
