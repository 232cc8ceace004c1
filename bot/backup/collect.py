"""Read one environment's policies, exceptions, cleanup policies and Helm values into files.

Every kind of SPEC 2.4 that the cluster serves is listed page by page; cleaning and YAML
rendering happen inside the gateway's worker thread as each page arrives, so the event loop
only ever sees finished bytes. A kind whose CRD is absent is recorded as missing, not as an
error; an environment that cannot be read at all is reported failed with the reason.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from bot.backup.bundle import (
    EnvironmentBackup,
    HelmValues,
    helm_path,
    kind_dir,
    namespace_path,
    object_path,
)
from bot.backup.serialization import dump_yaml
from bot.errors import BotError, ClusterForbidden
from bot.helm import decode_releases
from bot.kinds import KIND_SPECS, Family, Kind
from bot.kube.errors import NotFound
from bot.ports.cluster import ClusterReader
from bot.server_fields import clean
from bot.settings import HelmRelease

log = logging.getLogger(__name__)

BACKED_UP = (Family.LEGACY_POLICY, Family.CEL_POLICY, Family.EXCEPTION, Family.CLEANUP)
"""The families SPEC 2.4 backs up; reports are not configuration and are left out."""

Rendered = list[tuple[str, bytes, str | None]]  # (path, YAML, namespace)
PageSink = Callable[[Mapping[str, bytes]], None]


async def collect_environment(
    cluster: ClusterReader,
    *,
    helm_releases: Sequence[HelmRelease] = (),
    on_page: PageSink | None = None,
) -> EnvironmentBackup:
    """Everything to back up from `cluster`; never raises for cluster trouble.

    `on_page` receives each page's files as soon as they are rendered, in the gateway's
    worker thread (it must return at once: `bot.backup.targets.SpooledBackup.add`); the
    result holds every file all the same.
    """
    started = time.monotonic()
    try:
        kinds = await cluster.kinds(refresh=True)
        chosen = [k for k in kinds if k.spec.family in BACKED_UP]
        served = {k.spec for k in chosen}
        missing = tuple(
            kind_dir(s) for s in KIND_SPECS if s.family in BACKED_UP and s not in served
        )
        pages, helm = await asyncio.gather(
            asyncio.gather(*(cluster.scan(k, _renderer(cluster.name, k, on_page)) for k in chosen)),
            asyncio.gather(*(_helm_values(cluster, r) for r in helm_releases)),
        )
    except BotError as err:
        log.warning("backup of an environment failed", extra={"environment": cluster.name})
        return EnvironmentBackup(
            environment=cluster.name, error=err.user_message, seconds=time.monotonic() - started
        )
    files: dict[str, bytes] = {}
    counts: dict[str, int] = {}
    namespaces: set[str] = set()
    for kind, kind_pages in zip(chosen, pages, strict=True):
        rendered: Rendered = [item for page in kind_pages for item in page]
        counts[kind_dir(kind.spec)] = len(rendered)
        for path, data, namespace in rendered:
            files[path] = data
            if namespace:
                namespaces.add(namespace)
    for namespace in sorted(namespaces):
        files[namespace_path(cluster.name, namespace)] = _namespace_yaml(namespace)
    values: list[HelmValues] = []
    for entry, data in helm:
        values.append(entry)
        if data is not None:
            files[helm_path(cluster.name, entry.namespace, entry.release)] = data
    return EnvironmentBackup(
        environment=cluster.name,
        files=dict(sorted(files.items())),
        counts=counts,
        api_versions={kind_dir(k.spec): k.api_version for k in chosen},
        missing_kinds=missing,
        helm=tuple(values),
        seconds=time.monotonic() - started,
    )


def _renderer(environment: str, kind: Kind, on_page: PageSink | None = None) -> Any:
    """The per-page fold run in the gateway's worker thread: clean, render, place."""

    def render(items: list[dict[str, Any]]) -> Rendered:
        out: Rendered = []
        for item in items:
            obj = clean(item)
            obj["apiVersion"] = kind.api_version
            obj["kind"] = kind.spec.kind
            meta = obj["metadata"]
            namespace = meta.get("namespace") if kind.spec.namespaced else None
            path = object_path(environment, kind.spec, str(meta["name"]), namespace)
            out.append((path, dump_yaml(obj), namespace))
        if on_page is not None and out:
            on_page({path: data for path, data, _ in out})
        return out

    return render


def _namespace_yaml(name: str) -> bytes:
    return dump_yaml({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})


async def _helm_values(
    cluster: ClusterReader, release: HelmRelease
) -> tuple[HelmValues, bytes | None]:
    """`helm get values` of the deployed revision, read from Helm's release Secrets."""
    selector = quote(f"owner=helm,name={release.name},status=deployed", safe="")
    path = f"/api/v1/namespaces/{release.namespace}/secrets?labelSelector={selector}"
    try:
        items = (await cluster.get_path(path)).get("items") or []
    except ClusterForbidden:
        return HelmValues(
            release.name,
            release.namespace,
            error=f"the bot may not list Secrets in namespace {release.namespace}",
        ), None
    except NotFound:  # the release's namespace does not exist
        items = []
    history = await asyncio.to_thread(decode_releases, release.name, release.namespace, items)
    deployed = history.deployed
    if deployed is None:
        reason = "undecodable release Secrets" if history.undecodable else "no deployed revision"
        return HelmValues(release.name, release.namespace, error=reason), None
    data = await asyncio.to_thread(dump_yaml, dict(deployed.values))
    return (
        HelmValues(
            release.name,
            release.namespace,
            revision=deployed.revision,
            chart=f"{deployed.chart}-{deployed.chart_version}",
            app_version=deployed.app_version,
        ),
        data,
    )
