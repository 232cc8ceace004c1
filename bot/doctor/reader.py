"""Reads Kyverno's installation on one environment through raw API paths.

Where Kyverno lives: the chart labels every Deployment `app.kubernetes.io/part-of=<fullname>`
(usually `kyverno`) and `app.kubernetes.io/instance=<release>`, so a label-selected list across
namespaces finds it; a bot with only namespaced RBAC cannot list across namespaces, and then the
configured `backup.helm_releases` entry for `kyverno`, else namespace `kyverno`, is used.

Each read that RBAC forbids becomes a `Gap` naming the permission; a read that finds nothing is
simply absent. Only an environment that does not answer at all raises (`ClusterUnavailable`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from functools import partial
from typing import TypeVar
from urllib.parse import quote

from bot.doctor.filters import parse_resource_filters
from bot.doctor.migration import LEGACY_GROUP, NEW_GROUP, REPLACEMENTS, PolicyApis, policy_apis
from bot.doctor.model import Container, Deployment, Gap, KyvernoHealth
from bot.doctor.runbook import CONTROLLERS, HELM_RELEASES, KYVERNO_NAMESPACE
from bot.errors import ClusterForbidden
from bot.helm import HelmRelease, decode_releases
from bot.kinds import Kind
from bot.kube.errors import NotFound
from bot.objects import Obj
from bot.ports.cluster import ClusterReader

log = logging.getLogger(__name__)
T = TypeVar("T")
REPLACED_BY = frozenset(k for kinds in REPLACEMENTS.values() for k in kinds)

COMPONENT_ROLES = {c.component: c.role for c in CONTROLLERS}
CONFIG_MAP = "kyverno"
CONFIG_KEY = "resourceFilters"
POLICY_REPORTER_NAMESPACE = "policy-reporter"
DECODED_REVISIONS = 3
"""Newest revisions decoded in full (plus the deployed one); older ones come from labels."""


class HealthReader:
    """Builds a `KyvernoHealth` for one environment.

    `releases` maps Helm release names to the namespace configured for them
    (`backup.helm_releases`); unconfigured releases are looked for in Kyverno's namespace
    (and policy-reporter also in its chart's usual `policy-reporter` namespace).
    """

    def __init__(self, releases: Mapping[str, str] | None = None) -> None:
        self._configured = dict(releases or {})

    async def read(self, cluster: ClusterReader) -> KyvernoHealth:
        gaps: list[Gap] = []
        namespace, located_by = await self._locate(cluster)
        deployments, (filters_text, config_found), found, apis = await asyncio.gather(
            self._deployments(cluster, namespace, gaps),
            self._config_map(cluster, namespace, gaps),
            asyncio.gather(*(self._release(cluster, n, namespace, gaps) for n in HELM_RELEASES)),
            self._policy_apis(cluster, gaps),
        )
        releases = tuple(r for r, _ in found if r is not None)
        lookups = {name: where for (_, where), name in zip(found, HELM_RELEASES, strict=True)}
        return KyvernoHealth(
            environment=cluster.name,
            namespace=namespace,
            located_by=located_by,
            deployments=deployments or (),
            deployments_read=deployments is not None,
            filters=parse_resource_filters(filters_text) if config_found else None,
            config_map=CONFIG_MAP,
            config_map_found=config_found,
            releases=releases,
            release_lookups=lookups,
            policy_apis=apis,
            gaps=tuple(gaps),
        )

    async def _locate(self, cluster: ClusterReader) -> tuple[str, str]:
        for selector in ("app.kubernetes.io/part-of=kyverno", "app.kubernetes.io/instance=kyverno"):
            path = f"/apis/apps/v1/deployments?labelSelector={quote(selector, safe='')}&limit=100"
            try:
                items = (await cluster.get_path(path)).get("items") or []
            except ClusterForbidden:
                break  # namespaced RBAC only: fall back to configuration
            namespace = _namespace_of(items)
            if namespace is not None:
                return namespace, "labels"
        configured = self._configured.get("kyverno")
        if configured:
            return configured, "configured"
        return KYVERNO_NAMESPACE, "default"

    async def _deployments(
        self, cluster: ClusterReader, namespace: str, gaps: list[Gap]
    ) -> tuple[Deployment, ...] | None:
        path = f"/apis/apps/v1/namespaces/{namespace}/deployments"
        try:
            items = (await cluster.get_path(path)).get("items") or []
        except ClusterForbidden:
            gaps.append(Gap("Deployments", "list", "deployments", "apps", namespace))
            return None
        parsed = (deployment_from_object(item) for item in items)
        return tuple(sorted((d for d in parsed if d.role), key=_role_order))

    async def _policy_apis(self, cluster: ClusterReader, gaps: list[Gap]) -> PolicyApis | None:
        """Names of every deprecated kyverno.io object and of the policies.kyverno.io kinds
        that replace them (names only: each page is reduced in the gateway's thread)."""
        wanted = [
            k
            for k in await cluster.kinds()
            if (k.spec.group == LEGACY_GROUP and k.spec.kind in REPLACEMENTS)
            or (k.spec.group == NEW_GROUP and k.spec.kind in REPLACED_BY)
        ]

        async def refs(kind: Kind) -> list[str] | None:
            try:
                pages = await cluster.scan(kind, _refs)
            except ClusterForbidden:
                gaps.append(
                    Gap(f"{kind.spec.kind} objects", "list", kind.spec.plural, kind.spec.group, "")
                )
                return None
            return [ref for page in pages for ref in page]

        listed = await asyncio.gather(*(refs(k) for k in wanted))
        if any(found is None for found in listed):
            return None  # counting part of them would understate what is left to migrate
        return policy_apis(
            {
                (k.spec.group, k.spec.kind): found or []
                for k, found in zip(wanted, listed, strict=True)
            }
        )

    async def _config_map(
        self, cluster: ClusterReader, namespace: str, gaps: list[Gap]
    ) -> tuple[str | None, bool]:
        path = f"/api/v1/namespaces/{namespace}/configmaps/{CONFIG_MAP}"
        try:
            obj = await cluster.get_path(path)
        except NotFound:
            return None, False
        except ClusterForbidden:
            gaps.append(Gap(f"ConfigMap {CONFIG_MAP}", "get", "configmaps", "", namespace))
            return None, False
        value = (obj.get("data") or {}).get(CONFIG_KEY)
        return (value if isinstance(value, str) else None), True

    async def _release(
        self, cluster: ClusterReader, name: str, kyverno_namespace: str, gaps: list[Gap]
    ) -> tuple[HelmRelease | None, tuple[str, ...]]:
        configured = self._configured.get(name)
        if configured:
            candidates = [configured]
        elif name == "kyverno":
            candidates = [kyverno_namespace]
        else:
            candidates = list(dict.fromkeys([kyverno_namespace, POLICY_REPORTER_NAMESPACE]))
        selector = quote(f"owner=helm,name={name}", safe="")
        looked: list[str] = []
        for namespace in candidates:
            looked.append(namespace)
            path = f"/api/v1/namespaces/{namespace}/secrets?labelSelector={selector}"
            try:
                items = (await cluster.get_path(path)).get("items") or []
            except ClusterForbidden:
                # A guessed namespace the bot has no Role in is not a gap; a known one is.
                if configured or name == "kyverno":
                    gaps.append(Gap(f"Helm release {name}", "list", "secrets", "", namespace))
                continue
            if items:
                release = await asyncio.to_thread(
                    partial(decode_releases, decode_last=DECODED_REVISIONS),
                    name,
                    namespace,
                    items,
                )
                if release.undecodable:
                    log.warning(
                        "undecodable Helm release secrets",
                        extra={"environment": cluster.name, "secrets": release.undecodable},
                    )
                return release, tuple(looked)
        return None, tuple(looked)


def _refs(items: list[Obj]) -> list[str]:
    refs = []
    for item in items:
        meta = item.get("metadata") or {}
        name, namespace = str(meta.get("name", "")), meta.get("namespace")
        refs.append(f"{namespace}/{name}" if namespace else name)
    return refs


def deployment_from_object(obj: Obj) -> Deployment:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
    name = str(meta.get("name") or "")
    pod = (spec.get("template") or {}).get("spec") or {}
    status = obj.get("status") or {}
    desired = spec.get("replicas")
    return Deployment(
        name=name,
        role=_role(name, labels),
        labels=labels,
        desired=int(desired) if isinstance(desired, int) else 1,
        ready=int(status.get("readyReplicas") or 0) if status else None,
        updated=int(status.get("updatedReplicas") or 0) if status else None,
        containers=tuple(_container(c) for c in pod.get("containers") or []),
    )


def _container(obj: Obj) -> Container:
    resources = obj.get("resources") or {}
    return Container(
        name=str(obj.get("name") or ""),
        image=str(obj.get("image") or ""),
        args=tuple(str(a) for a in [*(obj.get("command") or []), *(obj.get("args") or [])]),
        requests={str(k): str(v) for k, v in (resources.get("requests") or {}).items()},
        limits={str(k): str(v) for k, v in (resources.get("limits") or {}).items()},
    )


def _role(name: str, labels: Mapping[str, str]) -> str | None:
    role = COMPONENT_ROLES.get(labels.get("app.kubernetes.io/component", ""))
    if role is not None:
        return role
    for component, candidate in COMPONENT_ROLES.items():
        if name == component or name.endswith(f"-{component}"):
            return candidate
    return "admission" if name == "kyverno" else None  # before 1.10: one Deployment


def _role_order(deployment: Deployment) -> int:
    roles = [c.role for c in CONTROLLERS]
    return roles.index(deployment.role) if deployment.role in roles else len(roles)


def _namespace_of(items: Sequence[Obj]) -> str | None:
    """The namespace of the admission controller among labelled Deployments, else the most
    common one."""
    namespaces: Counter[str] = Counter()
    for item in items:
        meta = item.get("metadata") or {}
        namespace = meta.get("namespace")
        if not namespace:
            continue
        labels = meta.get("labels") or {}
        if labels.get("app.kubernetes.io/component") == "admission-controller":
            return str(namespace)
        namespaces[str(namespace)] += 1
    return namespaces.most_common(1)[0][0] if namespaces else None
