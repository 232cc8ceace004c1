"""Helm release history read from Helm's own storage: one Secret per revision.

Helm 3 (and 4) store revision N of release R as Secret `sh.helm.release.v1.R.vN`, type
`helm.sh/release.v1`, labelled `owner=helm`, `name=R`, `status=…`, `version=N`. Its
`data.release` is base64(gzip(JSON)) written by Helm, base64-encoded once more by the Secret
API, so it is decoded twice and then gunzipped (very old releases are not compressed).
The JSON's `config` is what `helm get values` prints.

Decoding is CPU work on data that can reach megabytes (the release keeps the rendered
manifest and the chart's files), so callers run `decode_releases` in a thread.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

GZIP_MAGIC = b"\x1f\x8b\x08"
PENDING = ("pending-install", "pending-upgrade", "pending-rollback")


@dataclass(frozen=True)
class HelmRevision:
    """One revision of a release: what `helm history` shows, plus its user values."""

    release: str
    namespace: str
    revision: int
    status: str
    chart: str
    chart_version: str
    app_version: str
    updated: datetime | None
    description: str = ""
    values: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class HelmRelease:
    """Every stored revision of one release, oldest first."""

    name: str
    namespace: str
    revisions: tuple[HelmRevision, ...]
    undecodable: tuple[str, ...] = ()  # Secret names whose payload could not be read

    @property
    def latest(self) -> HelmRevision | None:
        """The highest revision whatever its status (what `helm get values` reads)."""
        return self.revisions[-1] if self.revisions else None

    @property
    def deployed(self) -> HelmRevision | None:
        """The live revision: the highest one with status `deployed`."""
        return next((r for r in reversed(self.revisions) if r.status == "deployed"), None)


def decode_releases(
    name: str,
    namespace: str,
    secrets: Sequence[Mapping[str, Any]],
    *,
    decode_last: int | None = None,
) -> HelmRelease:
    """The release history of `name` from its Secrets (any order, foreign Secrets skipped).

    With `decode_last`, only the newest `decode_last` revisions and the deployed one are
    decoded; older ones are described from their labels alone (revision, status, time), which
    keeps a release with a long history from costing megabytes of JSON on every read.
    """
    mine = [
        s for s in secrets if _labels(s).get("owner") == "helm" and _labels(s).get("name") == name
    ]
    mine.sort(key=_label_revision)
    keep = len(mine) if decode_last is None else decode_last
    revisions: list[HelmRevision] = []
    broken: list[str] = []
    for index, secret in enumerate(mine):
        labels = _labels(secret)
        full = index >= len(mine) - keep or labels.get("status") == "deployed"
        try:
            revisions.append(decode_revision(secret) if full else _from_labels(secret, namespace))
        except ValueError:
            broken.append(str((secret.get("metadata") or {}).get("name", "?")))
    revisions.sort(key=lambda r: r.revision)
    return HelmRelease(name, namespace, tuple(revisions), tuple(broken))


def _labels(secret: Mapping[str, Any]) -> Mapping[str, Any]:
    return (secret.get("metadata") or {}).get("labels") or {}


def _label_revision(secret: Mapping[str, Any]) -> int:
    try:
        return int(str(_labels(secret).get("version")))
    except ValueError:
        return 0


def _from_labels(secret: Mapping[str, Any], namespace: str) -> HelmRevision:
    """A revision described by the storage labels Helm sets, without decoding its payload."""
    labels = _labels(secret)
    try:
        revision = int(str(labels.get("version")))
    except ValueError:
        raise ValueError("no revision label") from None
    stamp = labels.get("modifiedAt") or labels.get("createdAt")
    try:
        updated = datetime.fromtimestamp(int(str(stamp)), UTC) if stamp else None
    except (ValueError, OverflowError):
        updated = None
    return HelmRevision(
        release=str(labels.get("name") or ""),
        namespace=str((secret.get("metadata") or {}).get("namespace") or namespace),
        revision=revision,
        status=str(labels.get("status") or "unknown"),
        chart="",
        chart_version="",
        app_version="",
        updated=updated,
    )


def decode_revision(secret: Mapping[str, Any]) -> HelmRevision:
    """One release Secret as a revision; ValueError when its payload is not a Helm release."""
    meta = secret.get("metadata") or {}
    labels = meta.get("labels") or {}
    payload = (secret.get("data") or {}).get("release")
    if not isinstance(payload, str):
        raise ValueError("no data.release")
    try:
        raw = base64.b64decode(base64.b64decode(payload, validate=True), validate=True)
        if raw[:3] == GZIP_MAGIC:
            raw = gzip.decompress(raw)
        release = json.loads(raw)
    except (binascii.Error, OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
        raise ValueError(f"not a Helm release payload: {exc}") from None
    if not isinstance(release, dict):
        raise ValueError("release payload is not an object")
    info = release.get("info") or {}
    chart_meta = (release.get("chart") or {}).get("metadata") or {}
    revision = release.get("version", labels.get("version"))
    try:
        number = int(str(revision))
    except ValueError:
        raise ValueError(f"revision {revision!r} is not a number") from None
    config = release.get("config")
    return HelmRevision(
        release=str(release.get("name") or labels.get("name") or ""),
        namespace=str(release.get("namespace") or meta.get("namespace") or ""),
        revision=number,
        status=str(info.get("status") or labels.get("status") or "unknown"),
        chart=str(chart_meta.get("name") or ""),
        chart_version=str(chart_meta.get("version") or ""),
        app_version=str(chart_meta.get("appVersion") or ""),
        updated=_time(info.get("last_deployed")) or _time(info.get("first_deployed")),
        description=str(info.get("description") or ""),
        values=config if isinstance(config, dict) else {},
    )


def values_drift(
    deployed: Mapping[str, Any], backed_up: Mapping[str, Any]
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(changed, added, removed) dotted key paths between backed-up and deployed values."""
    now = dict(_flatten(deployed))
    then = dict(_flatten(backed_up))
    changed = tuple(sorted(k for k in now.keys() & then.keys() if now[k] != then[k]))
    added = tuple(sorted(now.keys() - then.keys()))
    removed = tuple(sorted(then.keys() - now.keys()))
    return changed, added, removed


def _flatten(values: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield from _flatten(value, f"{path}.")
        else:
            yield path, value


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None
