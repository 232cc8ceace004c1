"""What the features ask of an environment's API server, in one place.

`bot.kube.gateway.ClusterGateway` implements both protocols over the `kubernetes` SDK; the
features type against these so they never import the SDK, and tests can hand them a small
fake. Readers (status, alerts, doctor, backups) need `ClusterReader`; writers (promotion,
exceptions, restore) need `Cluster`.

Every call is bounded by the environment's timeout and raises the errors of
`bot.kube.errors` (or `bot.errors.ClusterUnavailable`), never the SDK's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from bot.kinds import Kind
from bot.objects import Obj

T = TypeVar("T")


class ClusterReader(Protocol):
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

    async def get(self, kind: Kind, name: str, *, namespace: str | None = None) -> Obj | None: ...

    async def get_path(self, path: str) -> Obj: ...


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
