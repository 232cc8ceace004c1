"""Restore a bundle into an environment: a server-side dry run first, then the real apply.

The dry run sends every object as a server-side apply with `dryRun=All` (field manager
policy-bot, force) and compares what the server would store with what it stores now, both
cleaned of server-set fields: `created` (absent now), `changed`, `unchanged`. The API
server does the validation (CRD schemas, Kyverno's own rules if its webhook runs), so an
object the cluster would refuse shows as `invalid` before anything is written.

Restore only adds and updates: objects the bundle does not hold are never deleted. Kinds
the environment does not serve are `skipped`. Namespaces the objects live in come first.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.backup.bundle import LoadedBundle, ObjectKey
from bot.backup.serialization import YamlError, load_yaml
from bot.errors import BotError, ClusterForbidden
from bot.kinds import Family, Kind, KindSpec
from bot.kube.errors import Conflict, Invalid, NotFound
from bot.ports.cluster import Cluster
from bot.server_fields import clean

CONCURRENCY = 8
ACTIONS = ("created", "changed", "unchanged", "invalid", "skipped")

NAMESPACE_SPEC = KindSpec("", "Namespace", "namespaces", False, Family.CORE, ("v1",))


@dataclass(frozen=True)
class NamespaceKind(Kind):
    """The core Namespace kind, which lives under /api/v1 rather than /apis/<group>."""

    spec: KindSpec = NAMESPACE_SPEC
    version: str = "v1"

    @property
    def api_version(self) -> str:
        return "v1"

    def path(self, namespace: str | None = None) -> str:
        return "/api/v1/namespaces"


NAMESPACE = NamespaceKind()


@dataclass(frozen=True)
class PlanItem:
    kind: str
    group: str
    namespace: str | None
    name: str
    action: str  # one of ACTIONS
    detail: str = ""

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "group": self.group,
            "namespace": self.namespace,
            "name": self.name,
            "action": self.action,
            "detail": self.detail,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PlanItem:
        return cls(
            kind=str(data["kind"]),
            group=str(data.get("group", "")),
            namespace=data.get("namespace"),
            name=str(data["name"]),
            action=str(data["action"]),
            detail=str(data.get("detail", "")),
        )


def tally_warnings(per_object: Sequence[Sequence[str]]) -> tuple[tuple[str, int], ...]:
    """Each distinct API server warning with the number of objects that drew it, most first
    (Kyverno warns once per kyverno.io/v1 policy; a bundle holds hundreds)."""
    counts = Counter(w for warnings in per_object for w in dict.fromkeys(warnings))
    return tuple(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


@dataclass(frozen=True)
class RestorePlan:
    environment: str
    items: tuple[PlanItem, ...]
    warnings: tuple[tuple[str, int], ...] = ()
    """What the API server warned in the dry run: (text, number of objects)."""

    @property
    def counts(self) -> dict[str, int]:
        found = Counter(i.action for i in self.items)
        return {a: found.get(a, 0) for a in ACTIONS}


@dataclass(frozen=True)
class RestoreResult:
    environment: str
    applied: tuple[PlanItem, ...] = ()
    failed: tuple[PlanItem, ...] = ()
    skipped: tuple[PlanItem, ...] = ()
    warnings: tuple[tuple[str, int], ...] = ()

    @property
    def ok(self) -> bool:
        return not self.failed


@dataclass
class _Object:
    key: ObjectKey
    body: dict[str, Any]
    kind: Kind | None
    extra: dict[str, Any] = field(default_factory=dict)


async def plan_restore(cluster: Cluster, bundle: LoadedBundle, environment: str) -> RestorePlan:
    """Dry-run every object of `environment` in `bundle` against `cluster`."""
    objects = await _objects(cluster, bundle, environment)
    live = await _live(cluster, objects)
    missing_namespaces = {
        o.key.name for o in objects if o.key.kind == "Namespace" and live.get(_id(o)) is None
    }
    gate = asyncio.Semaphore(CONCURRENCY)
    warned: list[list[str]] = []

    async def one(obj: _Object) -> PlanItem:
        if obj.kind is None:
            return _item(obj.key, "skipped", "the environment does not serve this kind")
        current = live.get(_id(obj))
        if obj.key.namespace in missing_namespaces:
            return _item(obj.key, "created", f"namespace {obj.key.namespace} is created first")
        async with gate:
            warnings: list[str] = []
            warned.append(warnings)
            try:
                result = await cluster.apply(
                    obj.kind, obj.body, dry_run=True, force=True, warnings=warnings
                )
            except (Invalid, Conflict) as err:
                return _item(obj.key, "invalid", _reason(err))
            except NotFound as err:
                return _item(obj.key, "invalid", f"not found: {err}")
        if current is None:
            return _item(obj.key, "created")
        if clean(result) == clean(current):
            return _item(obj.key, "unchanged")
        return _item(obj.key, "changed", _changed_fields(clean(current), clean(result)))

    items = await asyncio.gather(*(one(o) for o in objects))
    return RestorePlan(environment, tuple(items), tally_warnings(warned))


async def apply_restore(cluster: Cluster, bundle: LoadedBundle, environment: str) -> RestoreResult:
    """Server-side apply (policy-bot, force) every object of `environment`, namespaces first."""
    objects = await _objects(cluster, bundle, environment)
    gate = asyncio.Semaphore(CONCURRENCY)
    warned: list[list[str]] = []

    async def one(obj: _Object) -> PlanItem:
        if obj.kind is None:
            return _item(obj.key, "skipped", "the environment does not serve this kind")
        async with gate:
            warnings: list[str] = []
            warned.append(warnings)
            try:
                await cluster.apply(obj.kind, obj.body, force=True, warnings=warnings)
            except (Invalid, Conflict, NotFound) as err:
                return _item(obj.key, "failed", _reason(err))
            except ClusterForbidden as err:
                # One object the bot may not write must not stop the rest of the restore.
                return _item(obj.key, "failed", err.user_message)
        return _item(obj.key, "applied")

    namespaces = [o for o in objects if o.key.kind == "Namespace"]
    others = [o for o in objects if o.key.kind != "Namespace"]
    done = [await one(o) for o in namespaces]
    done += await asyncio.gather(*(one(o) for o in others))
    return RestoreResult(
        environment,
        applied=tuple(i for i in done if i.action == "applied"),
        failed=tuple(i for i in done if i.action == "failed"),
        skipped=tuple(i for i in done if i.action == "skipped"),
        warnings=tally_warnings(warned),
    )


async def _objects(cluster: Cluster, bundle: LoadedBundle, environment: str) -> list[_Object]:
    served = {(k.spec.group, k.spec.kind): k for k in await cluster.kinds(refresh=True)}
    parsed = await asyncio.to_thread(_parse, bundle.objects(environment))
    objects = []
    for key, body in parsed:
        kind: Kind | None = (
            NAMESPACE if key.kind == "Namespace" else served.get((key.group, key.kind))
        )
        objects.append(_Object(key, body, kind))
    return objects


def _parse(files: Sequence[tuple[ObjectKey, bytes]]) -> list[tuple[ObjectKey, dict[str, Any]]]:
    parsed = []
    for key, data in files:
        try:
            body = load_yaml(data)
        except YamlError as err:
            raise BotError(f"{key.describe()} in the bundle is not valid YAML: {err}") from None
        if not isinstance(body, dict) or not isinstance(body.get("metadata"), dict):
            raise BotError(f"{key.describe()} in the bundle is not a Kubernetes object")
        parsed.append((key, body))
    return parsed


async def _live(
    cluster: Cluster, objects: Sequence[_Object]
) -> dict[tuple[str, str, str, str], dict[str, Any]]:
    """The current objects of every kind in the bundle, by (group, kind, namespace, name)."""
    kinds = {o.kind for o in objects if o.kind is not None and o.key.kind != "Namespace"}
    lists = await asyncio.gather(*(cluster.list_all(k) for k in kinds))
    live: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for kind, items in zip(kinds, lists, strict=True):
        for item in items:
            meta = item.get("metadata") or {}
            live[(kind.spec.group, kind.spec.kind, meta.get("namespace") or "", meta["name"])] = (
                item
            )
    for obj in objects:
        if obj.key.kind == "Namespace":
            with contextlib.suppress(NotFound):
                live[_id(obj)] = await cluster.get_path(f"/api/v1/namespaces/{obj.key.name}")
    return live


def _id(obj: _Object) -> tuple[str, str, str, str]:
    return (obj.key.group, obj.key.kind, obj.key.namespace or "", obj.key.name)


def _item(key: ObjectKey, action: str, detail: str = "") -> PlanItem:
    return PlanItem(key.kind, key.group, key.namespace, key.name, action, detail)


def _reason(err: Exception) -> str:
    text = getattr(err, "message", None) or str(err)
    return text[:300]


def _changed_fields(before: Mapping[str, Any], after: Mapping[str, Any]) -> str:
    """The top-level paths that differ, e.g. `spec.rules, metadata.labels`."""
    paths: list[str] = []
    for section in sorted(before.keys() | after.keys()):
        old, new = before.get(section), after.get(section)
        if old == new:
            continue
        if isinstance(old, Mapping) and isinstance(new, Mapping):
            paths += [
                f"{section}.{k}"
                for k in sorted(old.keys() | new.keys())
                if old.get(k) != new.get(k)
            ]
        else:
            paths.append(section)
    return ", ".join(paths[:6])
