"""What the features ask of an environment's API server, in one place.

`bot.kube.gateway.ClusterGateway` implements both protocols over the `kubernetes` SDK; the
features type against these so they never import the SDK, and tests can hand them a small
fake. Status and the alert checks list (`ClusterLister`); the doctor and backups also read
single objects and paths (`ClusterReader`); writers (promotion, exceptions, restore) need
`Cluster`; the status cache, which follows changes, needs `WatchableCluster`.

Every call is bounded by the environment's timeout and raises the errors of
`bot.kube.errors` (or `bot.errors.ClusterUnavailable`), never the SDK's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Generic, Literal, Protocol, TypeVar

from bot.kinds import Kind
from bot.objects import Obj

T = TypeVar("T")


class ClusterLister(Protocol):
    """Lists whole kinds: all status and the alert checks need."""

    name: str

    async def kinds(self, *, refresh: bool = False) -> tuple[Kind, ...]:
        """The Kyverno and report kinds the cluster serves (cached unless `refresh`)."""
        ...

    async def list_all(self, kind: Kind, *, namespace: str | None = None) -> list[Obj]: ...

    async def scan(
        self, kind: Kind, reduce: Callable[[list[Obj]], T], *, namespace: str | None = None
    ) -> list[T]:
        """`reduce(page)` for every page of the list, computed off the event loop."""
        ...


class ClusterReader(ClusterLister, Protocol):
    """Lists, and reads single objects and arbitrary API paths."""

    async def get(self, kind: Kind, name: str, *, namespace: str | None = None) -> Obj | None: ...

    async def get_path(self, path: str) -> Obj: ...


@dataclass(frozen=True)
class Listing(Generic[T]):
    """A list read page by page, with the resourceVersion a watch continues from."""

    pages: list[T]
    resource_version: str


WatchEventType = Literal["ADDED", "MODIFIED", "DELETED", "BOOKMARK"]


@dataclass(frozen=True)
class WatchEvent:
    """One change of a watched kind. A BOOKMARK carries only `metadata.resourceVersion`: the
    watch has seen everything up to there, nothing changed for this client."""

    type: WatchEventType
    object: Obj

    @property
    def resource_version(self) -> str:
        return str((self.object.get("metadata") or {}).get("resourceVersion") or "")


class WatchableCluster(ClusterLister, Protocol):
    """A lister that can follow a kind's changes (list, then watch from the list's version)."""

    async def scan_versioned(
        self, kind: Kind, reduce: Callable[[list[Obj]], T], *, namespace: str | None = None
    ) -> Listing[T]:
        """`scan`, plus the resourceVersion of the list (every page is read at that version)."""
        ...

    def watch(
        self,
        kind: Kind,
        *,
        resource_version: str,
        timeout_s: float,
        namespace: str | None = None,
    ) -> AsyncIterator[WatchEvent]:
        """The changes after `resource_version`, with bookmarks, until the server ends the
        watch (after about `timeout_s`) or the caller stops iterating.

        The first event, once the server accepted the watch, is a BOOKMARK at
        `resource_version`. The stream is read in a thread of its own, never on the event
        loop. An expired
        `resource_version` raises `bot.kube.errors.Expired` (list again); a lost connection
        or an ERROR event raises `bot.errors.ClusterUnavailable`.
        """
        ...


class Cluster(ClusterReader, Protocol):
    """A reader that also writes; `warnings` receives the API server's Warning headers."""

    async def apply(
        self,
        kind: Kind,
        obj: Obj,
        *,
        dry_run: bool = False,
        force: bool = False,
        warnings: list[str] | None = None,
    ) -> Obj: ...

    async def merge_patch(
        self,
        kind: Kind,
        name: str,
        patch: Obj,
        *,
        namespace: str | None = None,
        warnings: list[str] | None = None,
    ) -> Obj: ...

    async def create(self, kind: Kind, obj: Obj, *, warnings: list[str] | None = None) -> Obj: ...

    async def delete(self, kind: Kind, name: str, *, namespace: str | None = None) -> bool: ...
