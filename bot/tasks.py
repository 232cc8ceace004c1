"""Background work that must not be lost: owned, awaited at shutdown, errors logged.

Bolt keeps no reference to listener tasks and cancels them at shutdown without draining;
work started after an `ack()` is spawned here instead, so a clean shutdown finishes it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


class TaskGroup:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        if self._closing:
            coro.close()
            raise RuntimeError("shutting down: no new work is accepted")
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "background task failed", extra={"task": task.get_name()}, exc_info=task.exception()
            )

    @property
    def pending(self) -> int:
        return len(self._tasks)

    async def drain(self, timeout: float) -> None:
        """Let in-flight work finish for up to `timeout` seconds, then cancel what is left."""
        self._closing = True
        if not self._tasks:
            return
        _, late = await asyncio.wait(set(self._tasks), timeout=timeout)
        for task in late:
            task.cancel()
        if late:
            log.warning("cancelled unfinished work at shutdown", extra={"count": len(late)})
            await asyncio.gather(*late, return_exceptions=True)
