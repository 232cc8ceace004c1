"""A backup bundle: one YAML file per object, Helm values, and a MANIFEST. Pure (no I/O).

Layout, chosen so that `kubectl apply --server-side -f DIR/<env> -R` (or `-f DIR` for a
one-environment bundle) re-creates every object:

    MANIFEST                                   JSON: id, time, version, counts, sha256 per file
    <env>/00-namespaces/<namespace>.yaml       the namespaces the objects below live in
    <env>/<plural>.<group>/<name>.yaml         cluster-scoped objects (clusterpolicies.kyverno.io)
    <env>/<plural>.<group>/<namespace>/<name>.yaml   namespaced objects
    <env>/helm/<namespace>/<release>.values    `helm get values` of the deployed revision

One file per object keeps git diffs to the policy that changed and gives every object its
own sha256. kubectl reads only `.yaml`/`.yml`/`.json` files when it walks a directory, so
MANIFEST and the Helm values (use them with `helm upgrade -f`) are skipped by it, and it walks
in byte order, so `00-namespaces` is applied before the objects that need it.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import tarfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bot.kinds import KIND_SPECS, KindSpec

FORMAT = "policy-bot-backup/1"
MANIFEST = "MANIFEST"
NAMESPACES_DIR = "00-namespaces"
HELM_DIR = "helm"
VALUES_SUFFIX = ".values"
ID_PATTERN = re.compile(r"^b-\d{8}-\d{6}(-\d{1,3})?$")

SPEC_BY_DIR: dict[str, KindSpec] = {f"{s.plural}.{s.group}": s for s in KIND_SPECS}


class BundleError(Exception):
    """A bundle cannot be read: no MANIFEST, a file whose sha256 does not match, bad YAML."""


def backup_id(at: datetime) -> str:
    return at.astimezone(UTC).strftime("b-%Y%m%d-%H%M%S")


def kind_dir(spec: KindSpec) -> str:
    return f"{spec.plural}.{spec.group}"


def object_path(environment: str, spec: KindSpec, name: str, namespace: str | None) -> str:
    if spec.namespaced and namespace:
        return f"{environment}/{kind_dir(spec)}/{namespace}/{name}.yaml"
    return f"{environment}/{kind_dir(spec)}/{name}.yaml"


def namespace_path(environment: str, namespace: str) -> str:
    return f"{environment}/{NAMESPACES_DIR}/{namespace}.yaml"


def helm_path(environment: str, namespace: str, release: str) -> str:
    return f"{environment}/{HELM_DIR}/{namespace}/{release}{VALUES_SUFFIX}"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class ObjectKey:
    """Which object a file holds, read back from its path."""

    environment: str
    kind: str  # "ClusterPolicy", "Namespace", ...
    group: str  # "" for Namespace
    namespace: str | None
    name: str

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name

    def describe(self) -> str:
        return f"{self.kind} {self.ref}"


def key_of(path: str) -> ObjectKey | None:
    """The object behind a bundle path; None for MANIFEST and Helm values."""
    parts = path.split("/")
    if len(parts) < 3 or not parts[-1].endswith(".yaml"):
        return None
    environment, directory, rest = parts[0], parts[1], parts[2:]
    name = rest[-1].removesuffix(".yaml")
    if directory == NAMESPACES_DIR and len(rest) == 1:
        return ObjectKey(environment, "Namespace", "", None, name)
    spec = SPEC_BY_DIR.get(directory)
    if spec is None:
        return None
    namespace = rest[0] if spec.namespaced and len(rest) == 2 else None
    return ObjectKey(environment, spec.kind, spec.group, namespace, name)


@dataclass(frozen=True)
class HelmValues:
    """The user-supplied values of a release's deployed revision (`helm get values`)."""

    release: str
    namespace: str
    revision: int | None = None
    chart: str = ""
    app_version: str = ""
    error: str | None = None  # not found, forbidden, undecodable

    def manifest(self, environment: str) -> dict[str, Any]:
        entry: dict[str, Any] = {"release": self.release, "namespace": self.namespace}
        if self.error is not None:
            entry["error"] = self.error
        else:
            entry.update(
                revision=self.revision,
                chart=self.chart,
                app_version=self.app_version,
                file=helm_path(environment, self.namespace, self.release),
            )
        return entry


@dataclass(frozen=True)
class EnvironmentBackup:
    """What was read from one environment (or why nothing was)."""

    environment: str
    files: Mapping[str, bytes] = field(default_factory=dict)
    counts: Mapping[str, int] = field(default_factory=dict)  # kind dir -> objects
    api_versions: Mapping[str, str] = field(default_factory=dict)  # kind dir -> apiVersion
    missing_kinds: tuple[str, ...] = ()  # kind dirs whose CRD the cluster does not serve
    helm: tuple[HelmValues, ...] = ()
    error: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None

    def count(self, *families: str) -> int:
        """Objects of the kind dirs whose KindSpec family is one of `families`."""
        return sum(n for d, n in self.counts.items() if SPEC_BY_DIR[d].family.value in families)

    def manifest(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"status": "ok" if self.ok else "failed"}
        if self.error is not None:
            entry["error"] = self.error
            return entry
        entry["counts"] = {
            d: {"kind": SPEC_BY_DIR[d].kind, "apiVersion": self.api_versions[d], "objects": n}
            for d, n in sorted(self.counts.items())
        }
        entry["missing_kinds"] = sorted(self.missing_kinds)
        entry["namespaces"] = sum(1 for p in self.files if "/00-namespaces/" in p and key_of(p))
        entry["helm"] = [h.manifest(self.environment) for h in self.helm]
        return entry


@dataclass(frozen=True)
class Bundle:
    """A complete backup: every environment's files plus the MANIFEST describing them."""

    id: str
    created_at: datetime
    bot_version: str
    environments: tuple[EnvironmentBackup, ...]

    @property
    def files(self) -> dict[str, bytes]:
        """Every file of the bundle, MANIFEST included, in path order."""
        merged: dict[str, bytes] = {}
        for env in self.environments:
            merged.update(env.files)
        merged[MANIFEST] = self.manifest_bytes()
        return dict(sorted(merged.items()))

    def manifest(self) -> dict[str, Any]:
        hashes = {p: sha256(d) for env in self.environments for p, d in env.files.items()}
        return {
            "format": FORMAT,
            "id": self.id,
            "created_at": self.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "bot_version": self.bot_version,
            "environments": {e.environment: e.manifest() for e in self.environments},
            "files": dict(sorted(hashes.items())),
        }

    def manifest_bytes(self) -> bytes:
        return (json.dumps(self.manifest(), indent=2, sort_keys=True) + "\n").encode()

    def environment(self, name: str) -> EnvironmentBackup | None:
        return next((e for e in self.environments if e.environment == name), None)


@dataclass(frozen=True)
class LoadedBundle:
    """A bundle read back from a target or a path: its MANIFEST and verified files."""

    manifest: Mapping[str, Any]
    files: Mapping[str, bytes]

    @property
    def id(self) -> str:
        return str(self.manifest.get("id", ""))

    @property
    def environments(self) -> list[str]:
        return sorted((self.manifest.get("environments") or {}).keys())

    def environment_status(self, name: str) -> Mapping[str, Any] | None:
        envs = self.manifest.get("environments") or {}
        entry = envs.get(name)
        return entry if isinstance(entry, Mapping) else None

    def objects(self, environment: str) -> list[tuple[ObjectKey, bytes]]:
        """The object files of one environment, namespaces first, then in path order."""
        found = [
            (key, data)
            for path, data in sorted(self.files.items())
            if (key := key_of(path)) is not None and key.environment == environment
        ]
        return sorted(found, key=lambda kd: (kd[0].kind != "Namespace",))


def read_bundle(files: Mapping[str, bytes], *, environment: str | None = None) -> LoadedBundle:
    """Check a bundle's files against its MANIFEST; `environment` limits the check to one.

    Raises BundleError when the MANIFEST is missing or unreadable, or a listed file is
    missing or does not match its sha256 (a truncated download, an edited file).
    """
    raw = files.get(MANIFEST)
    if raw is None:
        raise BundleError("no MANIFEST: this is not a policy-bot backup bundle")
    try:
        manifest = json.loads(raw)
    except ValueError as err:
        raise BundleError(f"MANIFEST is not valid JSON: {err}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError(f"MANIFEST is not a {FORMAT} manifest")
    listed: Mapping[str, str] = manifest.get("files") or {}
    if environment is not None and environment not in (manifest.get("environments") or {}):
        known = ", ".join(sorted(manifest.get("environments") or {})) or "none"
        raise BundleError(f"the bundle has no environment {environment} (it has: {known})")
    checked: dict[str, bytes] = {MANIFEST: raw}
    for path, digest in listed.items():
        if environment is not None and not path.startswith(f"{environment}/"):
            continue
        data = files.get(path)
        if data is None:
            raise BundleError(f"{path} is listed in the MANIFEST but missing")
        if sha256(data) != digest:
            raise BundleError(f"{path} does not match its sha256 in the MANIFEST")
        checked[path] = data
    return LoadedBundle(manifest=manifest, files=checked)


def tarball(files: Mapping[str, bytes], *, root: str, mtime: datetime) -> bytes:
    """A reproducible tar.gz of `files` under directory `root` (sorted, fixed owner/time)."""
    buffer = io.BytesIO()
    stamp = int(mtime.timestamp())
    # gzip's header carries a time too: the bundle's, not the wall clock's, or the same
    # bundle written in two different seconds would differ.
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=6, mtime=stamp) as gz,
        tarfile.open(fileobj=gz, mode="w") as tar,
    ):
        for directory in _directories(files, root):
            info = tarfile.TarInfo(directory)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, stamp
            tar.addfile(info)
        for path, data in sorted(files.items()):
            info = tarfile.TarInfo(f"{root}/{path}")
            info.size, info.mode, info.mtime = len(data), 0o644, stamp
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def untar(data: bytes) -> dict[str, bytes]:
    """The files of a bundle tarball, relative to the directory holding its MANIFEST."""
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            for member in tar.getmembers():
                if not member.isfile():
                    continue
                handle = tar.extractfile(member)
                if handle is not None:
                    files[member.name] = handle.read()
    except (tarfile.TarError, OSError, EOFError) as err:
        raise BundleError(f"not a readable tar.gz bundle: {err}") from None
    manifests = [p for p in files if p == MANIFEST or p.endswith(f"/{MANIFEST}")]
    if not manifests:
        raise BundleError("no MANIFEST in the archive: this is not a policy-bot backup bundle")
    prefix = min(manifests, key=len)[: -len(MANIFEST)]
    return {p[len(prefix) :]: d for p, d in files.items() if p.startswith(prefix)}


def _directories(files: Iterable[str], root: str) -> list[str]:
    found = {root}
    for path in files:
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            found.add("/".join([root, *parts[:i]]))
    return sorted(found)
