"""One environment's Kubernetes API, reached through urllib3 (`bot.kube.transport`: directly
for a kubeconfig's static credentials, else through the `kubernetes` SDK's client).

The calls block, so every call runs on this gateway's own small thread pool (a hung
cluster cannot starve the others or the event loop) and is bounded twice: by the HTTP
timeouts handed to urllib3 and by `asyncio.wait_for` around the whole call. Lists are
read as raw JSON pages (the client's model classes would triple the time and memory of a
20,000-report list) and can be folded page by page inside the worker thread, so a large
list never sits in memory whole.

Watches (`watch`) hold a connection for minutes, so they use a transport and connection pool
of their own and are read in threads of their own (`bot.kube.watch`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import urllib3

from bot.errors import ClusterForbidden, ClusterUnavailable
from bot.kinds import GROUPS, Kind, resolve
from bot.kube.errors import Conflict, Expired, Invalid, NotFound
from bot.kube.transport import Transport, open_transport
from bot.kube.watch import StreamingResponse, WatchReader, follow
from bot.objects import Obj
from bot.ports.cluster import Listing, WatchEvent
from bot.settings import Environment

log = logging.getLogger(__name__)

T = TypeVar("T")

DISCOVERY_TTL_S = 60.0
FIELD_MANAGER = "policy-bot"
MERGE_PATCH = "application/merge-patch+json"
AGGREGATED_DISCOVERY = (
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
)
"""Every group's resources in one answer, or the plain group list from older servers."""
WATCH_POOL_SIZE = 32
"""Connections kept for watches: one per watched kind (fewer than 20) with room to spare."""
WATCH_READ_MARGIN_S = 30.0
"""A watch's read timeout beyond its `timeoutSeconds`: the server ends it first, unless the
connection died silently, which this bound then detects."""


class ClusterGateway:
    """Reads and writes Kyverno objects on one environment, off the event loop."""

    def __init__(self, env: Environment, *, workers: int = 4) -> None:
        self.env = env
        self.name = env.name
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"kube-{env.name}")
        # A list's next page, asked for while its worker folds the current one (`_pages`).
        self._next_pages = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix=f"kube-{env.name}-next"
        )
        self._client: Transport | None = None
        self._watch_client: Transport | None = None
        self._client_lock = threading.Lock()
        self._readers: set[WatchReader] = set()
        self._kinds: tuple[Kind, ...] | None = None
        self._kinds_at = 0.0
        self.reachable: bool | None = None

    # -- lifecycle ---------------------------------------------------------------------

    async def close(self) -> None:
        for reader in list(self._readers):
            reader.stop()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._next_pages.shutdown(wait=False, cancel_futures=True)
        for client in (self._client, self._watch_client):
            if client is not None:
                await asyncio.get_running_loop().run_in_executor(None, client.close)

    # -- reads -------------------------------------------------------------------------

    async def ping(self) -> str:
        """The server's version string; raises ClusterUnavailable when it does not answer."""
        info = await self._call(lambda: self._get_json("/version", timeout=min(3.0, self._t)))
        return str(info.get("gitVersion", "unknown"))

    async def kinds(self, *, refresh: bool = False) -> tuple[Kind, ...]:
        """The Kyverno and report kinds this cluster serves (cached for a minute)."""
        fresh = time.monotonic() - self._kinds_at < DISCOVERY_TTL_S
        if self._kinds is not None and fresh and not refresh:
            return self._kinds
        self._kinds = await self._call(self._discover)
        self._kinds_at = time.monotonic()
        return self._kinds

    async def list_all(self, kind: Kind, *, namespace: str | None = None) -> list[Obj]:
        """Every object of `kind` (all namespaces unless `namespace`), read page by page."""
        pages = await self.scan(kind, lambda items: items, namespace=namespace)
        return [obj for page in pages for obj in page]

    async def scan(
        self, kind: Kind, reduce: Callable[[list[Obj]], T], *, namespace: str | None = None
    ) -> list[T]:
        """`reduce(page)` for every page of the list, computed in the worker thread."""
        return await self._call(
            lambda: list(self._pages(kind, reduce, namespace)), timeout=self._list_timeout
        )

    async def scan_versioned(
        self, kind: Kind, reduce: Callable[[list[Obj]], T], *, namespace: str | None = None
    ) -> Listing[T]:
        """`scan`, plus the list's resourceVersion, from which a `watch` continues."""

        def read() -> Listing[T]:
            versions: list[str] = []
            pages = list(self._pages(kind, reduce, namespace, versions))
            return Listing(pages, versions[-1] if versions else "")

        return await self._call(read, timeout=self._list_timeout)

    async def watch(
        self,
        kind: Kind,
        *,
        resource_version: str,
        timeout_s: float,
        namespace: str | None = None,
    ) -> AsyncIterator[WatchEvent]:
        """Changes of `kind` after `resource_version`, bookmarks included, until the server
        ends the watch after `timeout_s` (see `bot.ports.cluster.WatchableCluster.watch`)."""
        query = [
            ("watch", "true"),
            ("allowWatchBookmarks", "true"),
            ("resourceVersion", resource_version),
            ("timeoutSeconds", str(max(1, round(timeout_s)))),
        ]
        path = kind.path(namespace)

        def open_response() -> StreamingResponse:
            return self._open_stream(path, query, read_timeout=timeout_s + WATCH_READ_MARGIN_S)

        events = follow(
            open_response,
            environment=self.name,
            start_version=resource_version,
            name=f"watch-{self.name}-{kind.spec.plural}-{random.randrange(16**4):04x}",
            readers=self._readers,
        )
        try:
            async for event in events:
                yield event
        finally:
            await events.aclose()

    async def get(self, kind: Kind, name: str, *, namespace: str | None = None) -> Obj | None:
        path = f"{kind.path(namespace)}/{name}"
        try:
            return await self._call(lambda: self._get_json(path))
        except NotFound:
            return None

    async def get_path(self, path: str) -> Obj:
        """GET an arbitrary API path (e.g. `/api/v1/namespaces/kyverno/secrets`)."""
        return await self._call(lambda: self._get_json(path))

    # -- writes ------------------------------------------------------------------------

    async def apply(
        self,
        kind: Kind,
        obj: Obj,
        *,
        dry_run: bool = False,
        force: bool = False,
        warnings: list[str] | None = None,
    ) -> Obj:
        """Server-side apply of `obj` with field manager `policy-bot`.

        Writes take an optional `warnings` list that receives the API server's warnings for
        the call (its `Warning: 299` headers): admission webhooks such as Kyverno's use them
        to say, for example, that the object's API is deprecated.
        """
        meta = obj.get("metadata", {})
        path = f"{kind.path(meta.get('namespace'))}/{meta['name']}"
        query = [("fieldManager", FIELD_MANAGER), ("force", "true" if force else "false")]
        if dry_run:
            query.append(("dryRun", "All"))
        body = {**obj, "apiVersion": kind.api_version, "kind": kind.spec.kind}
        return await self._call(
            lambda: self._request(
                "PATCH",
                path,
                query,
                body,
                content_type="application/apply-patch+yaml",
                warnings=warnings,
            )
        )

    async def merge_patch(
        self,
        kind: Kind,
        name: str,
        patch: Obj,
        *,
        namespace: str | None = None,
        warnings: list[str] | None = None,
    ) -> Obj:
        """JSON merge patch of one object, recorded under field manager `policy-bot`.

        Server-side apply cannot remove an element of an `x-kubernetes-list-type: set` list
        that another manager owns (e.g. `spec.validationActions`); a merge patch replaces it.
        """
        path = f"{kind.path(namespace)}/{name}"
        query = [("fieldManager", FIELD_MANAGER)]
        return await self._call(
            lambda: self._request(
                "PATCH", path, query, patch, content_type=MERGE_PATCH, warnings=warnings
            )
        )

    async def create(self, kind: Kind, obj: Obj, *, warnings: list[str] | None = None) -> Obj:
        meta = obj.get("metadata", {})
        body = {**obj, "apiVersion": kind.api_version, "kind": kind.spec.kind}
        return await self._call(
            lambda: self._request(
                "POST", kind.path(meta.get("namespace")), [], body, warnings=warnings
            )
        )

    async def delete(self, kind: Kind, name: str, *, namespace: str | None = None) -> bool:
        """Delete; False when it was already gone (idempotent)."""
        path = f"{kind.path(namespace)}/{name}"
        try:
            await self._call(lambda: self._request("DELETE", path, [], None))
        except NotFound:
            return False
        return True

    # -- internals ---------------------------------------------------------------------

    @property
    def _t(self) -> float:
        return self.env.timeout_s

    @property
    def _list_timeout(self) -> float:
        # A list of 100,000 results takes seconds; bound it, but not by the per-call timeout.
        return max(self._t * 8, 60.0)

    async def _call(self, fn: Callable[[], T], *, timeout: float | None = None) -> T:
        loop = asyncio.get_running_loop()
        try:
            result = await asyncio.wait_for(
                loop.run_in_executor(self._pool, fn), timeout=timeout or self._t + 1.0
            )
        except TimeoutError:
            self.reachable = False
            raise ClusterUnavailable(
                self.name, f"no answer within {timeout or self._t:.0f} s"
            ) from None
        except ClusterUnavailable:
            self.reachable = False
            raise
        self.reachable = True
        return result

    def _api(self) -> Transport:
        with self._client_lock:
            if self._client is None:
                self._client = open_transport(self.env, pool_size=8)
            return self._client

    def _discover(self) -> tuple[Kind, ...]:
        """One request where the server offers aggregated discovery (Kubernetes ≥ 1.30: every
        group's resources in `/apis`), else `/apis` and one request per Kyverno group version."""
        found = self._request("GET", "/apis", [], None, accept=AGGREGATED_DISCOVERY)
        served: dict[str, dict[str, set[str]]] = {}
        if found.get("kind") == "APIGroupDiscoveryList":
            for entry in found.get("items", []):
                name = (entry.get("metadata") or {}).get("name")
                if name not in GROUPS:
                    continue
                for version in entry.get("versions", []):
                    if version.get("freshness", "Current") == "Current":
                        plurals = {r["resource"] for r in version.get("resources", [])}
                    else:  # an aggregated API server's list may be out of date: ask it
                        plurals = self._plurals(f"{name}/{version['version']}")
                    served.setdefault(name, {})[version["version"]] = plurals
            return resolve(served)
        for group in found.get("groups", []):
            if group.get("name") not in GROUPS:
                continue
            for version in group.get("versions", []):
                plurals = self._plurals(version["groupVersion"])
                served.setdefault(group["name"], {})[version["version"]] = plurals
        return resolve(served)

    def _plurals(self, group_version: str) -> set[str]:
        resources = self._get_json(f"/apis/{group_version}").get("resources", [])
        return {r["name"] for r in resources if "/" not in r["name"]}

    def _pages(
        self,
        kind: Kind,
        reduce: Callable[[list[Obj]], T],
        namespace: str | None,
        versions: list[str] | None = None,
    ) -> Iterator[T]:
        """`reduce` of each page, in order. The next page is asked for before the current
        one is folded, so the server prepares it meanwhile: at most two pages are held."""
        path = kind.path(namespace)
        page = self._list_page(path, None)
        while True:
            meta = page.get("metadata") or {}
            token = meta.get("continue")
            following = self._next_pages.submit(self._list_page, path, token) if token else None
            try:
                yield reduce(page.get("items") or [])
            except BaseException:  # the fold failed, or the reader stopped early
                if following is not None:
                    following.cancel()
                raise
            if versions is not None and meta.get("resourceVersion"):
                versions.append(str(meta["resourceVersion"]))
            if following is None:
                return
            page = following.result()

    def _list_page(self, path: str, token: str | None) -> Obj:
        query: list[tuple[str, str]] = [("limit", str(self.env.page_size))]
        if token:
            query.append(("continue", token))
        return self._get_json(path, query, timeout=self._list_timeout)

    def _watch_api(self) -> Transport:
        with self._client_lock:
            if self._watch_client is None:
                self._watch_client = open_transport(self.env, pool_size=WATCH_POOL_SIZE)
            return self._watch_client

    def _open_stream(
        self, path: str, query: list[tuple[str, str]], *, read_timeout: float
    ) -> StreamingResponse:
        """GET `path` and return the response unread, for a watch (runs in its thread)."""
        api = self._watch_api()
        try:
            response = api.request(
                "GET",
                path,
                query,
                headers={"Accept": "application/json"},
                body=None,
                timeout=(min(3.0, self._t), read_timeout),
                stream=True,
            )
            if response.status >= 400:
                data = response.data
                if response.status == 410:
                    raise Expired(_message(data))
                raise _translate(response.status, data, self.name, "WATCH", path)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ClusterUnavailable(self.name, _reason(exc)) from None
        stream: StreamingResponse = response
        return stream

    def _get_json(
        self, path: str, query: list[tuple[str, str]] | None = None, *, timeout: float | None = None
    ) -> Obj:
        return self._request("GET", path, query or [], None, timeout=timeout)

    def _request(
        self,
        method: str,
        path: str,
        query: list[tuple[str, str]],
        body: Obj | None,
        *,
        content_type: str = "application/json",
        accept: str = "application/json",
        timeout: float | None = None,
        warnings: list[str] | None = None,
    ) -> Obj:
        api = self._api()
        try:
            response = api.request(
                method,
                path,
                query,
                headers={"Accept": accept, "Content-Type": content_type},
                body=body,
                timeout=(min(3.0, self._t), timeout or self._t),
            )
            data = response.data
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ClusterUnavailable(self.name, _reason(exc)) from None
        if warnings is not None:
            warnings.extend(api_warnings(response.headers.getlist("Warning")))
        if response.status >= 400:
            raise _translate(response.status, data, self.name, method, path)
        return json.loads(data) if data else {}


def _translate(status: int, data: bytes, env: str, method: str, path: str) -> Exception:
    if status == 404:
        return NotFound(path)
    if status == 409:
        return Conflict(_message(data))
    if status == 422:
        return Invalid(_message(data))
    if status in (401, 403):
        verb = {
            "GET": "list",
            "WATCH": "watch",
            "POST": "create",
            "PATCH": "patch",
            "DELETE": "delete",
        }[method]
        return ClusterForbidden(env, verb, path)
    return ClusterUnavailable(env, f"HTTP {status} from {path}")


def _message(data: bytes) -> str:
    try:
        return str(json.loads(data or b"{}").get("message") or "")
    except ValueError:
        return data[:300].decode("utf-8", "replace")


_WARNING = re.compile(r'^\s*299\s+\S+\s+"((?:[^"\\]|\\.)*)"')


def api_warnings(headers: list[str]) -> list[str]:
    """The texts of the API server's `Warning` headers (`299 - "text"`, RFC 7234), in order.

    The server folds several warnings into one header line only when they arrive in one
    value; each value here is split on the commas between quoted warnings.
    """
    texts: list[str] = []
    for header in headers:
        for part in re.split(r'(?<=")\s*,\s*(?=299\s)', header):
            found = _WARNING.match(part)
            if found is None:
                texts.append(part.strip())
                continue
            texts.append(re.sub(r"\\(.)", r"\1", found.group(1)))
    return [t for t in texts if t]


def _reason(exc: BaseException) -> str:
    text = str(getattr(exc, "reason", None) or exc)
    if "Connection refused" in text:
        return "connection refused"
    if "timed out" in text.lower():
        return "timed out"
    return text.split(": ", 1)[-1][:120]


__all__ = ["ClusterGateway", "api_warnings"]
