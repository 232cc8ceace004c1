"""Composes a digest from the sources the composition root hands in, and remembers it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.clock import Clock
from bot.digest.model import Digest, Expiring, Figures, Health, Pending, figures_of
from bot.digest.tables import FiguresStore
from bot.ports.snapshot import Snapshot

EXPIRING_WITHIN = timedelta(days=7)
PENDING_OLDER_THAN = timedelta(days=1)


def _carry_over(figures: Figures, previous: Figures | None, unreachable: Sequence[str]) -> Figures:
    """An environment not reached today keeps its previous figures: nothing there is "fixed"
    only because it could not be read."""
    if previous is None or not unreachable:
        return figures
    prefixes = tuple(f"{env}/" for env in unreachable)
    return Figures(
        policies=figures.policies | {p for p in previous.policies if p.startswith(prefixes)},
        namespaces=figures.namespaces | {n for n in previous.namespaces if n.startswith(prefixes)},
    )


@dataclass(frozen=True)
class DigestSources:
    """Where the digest reads from; filled by the composition root."""

    overview: Callable[[], Awaitable[Sequence[Snapshot]]]
    expiring: Callable[[datetime], Awaitable[Sequence[Expiring]]]
    """Active exceptions expiring before the given moment."""
    pending: Callable[[datetime], Awaitable[Sequence[Pending]]]
    """Requests still waiting for a decision, created before the given moment."""


class DigestService:
    def __init__(self, sources: DigestSources, store: FiguresStore, *, clock: Clock) -> None:
        self._sources = sources
        self._store = store
        self._clock = clock

    async def compose(self) -> Digest:
        """The digest as of now, compared with the previous one (not saved yet)."""
        now = self._clock.now()
        snapshots = await self._sources.overview()
        expiring = await self._sources.expiring(now + EXPIRING_WITHIN)
        pending = await self._sources.pending(now - PENDING_OLDER_THAN)
        health = tuple(
            Health(s.environment, s.health.warnings, s.health.failures, s.health.problem)
            for s in snapshots
            if s.health is not None
        )
        previous = await self._store.previous()
        unreachable = tuple(s.environment for s in snapshots if s.error is not None)
        return Digest(
            at=now,
            environments=tuple(s.environment for s in snapshots),
            figures=_carry_over(figures_of(snapshots), previous, unreachable),
            previous=previous,
            expiring=tuple(sorted(expiring, key=lambda e: e.expires_at)),
            pending=tuple(sorted(pending, key=lambda p: p.created_at)),
            health=health,
            unreachable=unreachable,
        )

    async def remember(self, digest: Digest) -> None:
        """Keep this digest's figures as the next one's comparison."""
        await self._store.save(digest.figures, at=digest.at)
