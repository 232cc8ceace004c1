"""An environment whose every call is in time but whose whole read is not: the answer does
not wait for it, names it, and shows the others."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bot.kinds import KIND_SPECS, Kind
from bot.ladder import Ladder
from bot.status.service import StatusService
from tests.timeline import MovableClock, suite_start

CPOL = Kind(next(s for s in KIND_SPECS if s.kind == "ClusterPolicy"), "v1")


class PagedCluster:
    """Answers each call after `delay` seconds: quick calls, but many of them."""

    def __init__(self, name: str, delay: float, pages: int) -> None:
        self.name, self._delay, self._pages = name, delay, pages

    async def kinds(self, *, refresh: bool = False) -> tuple[Kind, ...]:
        await asyncio.sleep(self._delay)
        return (CPOL,)

    async def list_all(self, kind: Kind, *, namespace: str | None = None) -> list[Any]:
        policies = []
        for page in range(self._pages):
            await asyncio.sleep(self._delay)
            policies.append(
                {
                    "metadata": {"name": f"p{page}", "creationTimestamp": "2026-11-01T00:00:00Z"},
                    "spec": {"validationFailureAction": "Audit", "rules": []},
                }
            )
        return policies

    async def scan(self, kind: Kind, reduce: Any, *, namespace: str | None = None) -> list[Any]:
        return []


async def test_a_read_longer_than_its_budget_is_named_and_the_others_shown() -> None:
    quick = PagedCluster("dev", 0.0, 3)
    slow = PagedCluster("production", 0.4, 50)  # 20 s in all, each call 0.4 s
    status = StatusService(
        [quick, slow],
        clock=MovableClock(suite_start()),
        ladder=Ladder(()),
        answer_within_s={"dev": 5.0, "production": 1.0},
    )
    started = time.monotonic()
    dev, production = await status.overview()
    assert time.monotonic() - started < 10.0  # the 1 s budget, not the 20 s of the read
    assert dev.error is None and [p.name for p in dev.policies] == ["p0", "p1", "p2"]
    assert production.error is not None
    assert production.error.user_message.startswith(
        "Environment *production* is unreachable (no complete answer within 1 s)."
    )
