"""What changed between two backups of an environment, from their MANIFESTs. Pure.

Files are compared by sha256, so "changed" means the cleaned YAML differs: a new rule, a
mode switched, an annotation edited. Status and bookkeeping never count (they were cleaned
away). Namespace files only follow the objects and are not reported.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.backup.bundle import HELM_DIR, ObjectKey, key_of


@dataclass(frozen=True)
class EnvironmentDiff:
    environment: str
    previous_id: str | None  # None: no earlier backup of this environment
    added: tuple[ObjectKey, ...] = ()
    removed: tuple[ObjectKey, ...] = ()
    changed: tuple[ObjectKey, ...] = ()
    helm_changed: tuple[str, ...] = ()  # "namespace/release"

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed or self.helm_changed)


def environment_files(manifest: Mapping[str, Any], environment: str) -> dict[str, str]:
    """path -> sha256 of one environment's files in a MANIFEST."""
    files: Mapping[str, str] = manifest.get("files") or {}
    prefix = f"{environment}/"
    return {p: h for p, h in files.items() if p.startswith(prefix)}


def diff_environment(
    environment: str,
    current: Mapping[str, str],
    previous: Mapping[str, str] | None,
    *,
    previous_id: str | None,
) -> EnvironmentDiff:
    """Compare one environment's files (path -> sha256) with the previous backup's."""
    if previous is None:
        return EnvironmentDiff(environment, None)

    def objects(files: Mapping[str, str]) -> dict[ObjectKey, str]:
        found = {}
        for path, digest in files.items():
            key = key_of(path)
            if key is not None and key.kind != "Namespace":
                found[key] = digest
        return found

    now, then = objects(current), objects(previous)
    order = _order
    helm_now = {p: h for p, h in current.items() if f"/{HELM_DIR}/" in p}
    helm_then = {p: h for p, h in previous.items() if f"/{HELM_DIR}/" in p}
    helm_changed = sorted(
        p.split("/", 2)[2].removesuffix(".values")
        for p in helm_now.keys() | helm_then.keys()
        if helm_now.get(p) != helm_then.get(p)
    )
    return EnvironmentDiff(
        environment,
        previous_id,
        added=tuple(sorted(now.keys() - then.keys(), key=order)),
        removed=tuple(sorted(then.keys() - now.keys(), key=order)),
        changed=tuple(
            sorted((k for k in now.keys() & then.keys() if now[k] != then[k]), key=order)
        ),
        helm_changed=tuple(helm_changed),
    )


def _order(key: ObjectKey) -> tuple[str, str, str, str]:
    return (key.kind, key.group, key.namespace or "", key.name)
