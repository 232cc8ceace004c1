"""What the doctor knows about one environment's Kyverno, and what it concluded.

`KyvernoHealth` is read from the cluster (`bot.doctor.reader`); `Finding`s are computed from it
by pure checks (`bot.doctor.checks`). Anything the bot could not read is a `Gap` with the
permission that was missing, so an unreadable piece becomes a finding, never a crash.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from bot.doctor.filters import ResourceFilters
from bot.doctor.migration import PolicyApis
from bot.errors import BotError
from bot.helm import HelmRelease, HelmRevision

VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?")


class Verdict(StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Finding:
    """One check's outcome: what was seen, why it matters, and the Helm values that fix it."""

    check: str
    verdict: Verdict
    summary: str
    why: str = ""
    fix: tuple[str, ...] = ()


@dataclass(frozen=True)
class Container:
    name: str
    image: str
    args: tuple[str, ...]
    requests: Mapping[str, str] = field(default_factory=dict)
    limits: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Deployment:
    """A Kyverno controller Deployment as read from the API."""

    name: str
    role: str | None  # admission | background | cleanup | reports, None when unrecognised
    labels: Mapping[str, str]
    desired: int
    ready: int | None  # None: the Deployment has no status (no controller reported on it)
    updated: int | None
    containers: tuple[Container, ...]

    @property
    def main(self) -> Container | None:
        """The controller's own container (the chart names it `kyverno` or `controller`)."""
        for wanted in ("kyverno", "controller"):
            found = next((c for c in self.containers if c.name == wanted), None)
            if found is not None:
                return found
        return self.containers[0] if self.containers else None

    def flag(self, name: str) -> str | None:
        """The value of command-line flag `--name` of the main container (Go flag syntax:
        `--name=value`, `-name=value`, `--name value`; a bare boolean flag means "true")."""
        container = self.main
        if container is None:
            return None
        args = list(container.args)
        value: str | None = None
        for i, arg in enumerate(args):
            stripped = arg.lstrip("-")
            if not arg.startswith("-") or not stripped:
                continue
            key, eq, rest = stripped.partition("=")
            if key != name:
                continue
            if eq:
                value = rest
            elif i + 1 < len(args) and not args[i + 1].startswith("-"):
                value = args[i + 1]
            else:
                value = "true"
        return value

    @property
    def image_version(self) -> str | None:
        """`1.19.0` from an image like `reg/kyverno/kyverno:v1.19.0[@sha256:…]`."""
        container = self.main
        if container is None:
            return None
        reference = container.image.split("@", 1)[0]
        tag = reference.rsplit(":", 1)[1] if ":" in reference.rsplit("/", 1)[-1] else ""
        match = VERSION.match(tag)
        return tag.removeprefix("v") if match else None


@dataclass(frozen=True)
class Gap:
    """A read RBAC did not allow, and the permission that would allow it."""

    what: str  # "Deployments in namespace kyverno"
    verb: str  # list | get
    resource: str  # deployments
    group: str  # apps ("" for the core group)
    namespace: str  # "" for a read across the cluster

    @property
    def permission(self) -> str:
        resource = f"{self.resource}.{self.group}" if self.group else self.resource
        where = f"in namespace {self.namespace}" if self.namespace else "cluster-wide"
        return f"{self.verb} {resource} {where}"


@dataclass(frozen=True)
class KyvernoHealth:
    """Kyverno on one environment as far as the bot could read it."""

    environment: str
    namespace: str
    located_by: str  # how the namespace was found: labels | configured | default
    deployments: tuple[Deployment, ...] = ()
    deployments_read: bool = True
    filters: ResourceFilters | None = None  # None: no ConfigMap or not readable
    config_map: str = "kyverno"
    config_map_found: bool = False
    releases: tuple[HelmRelease, ...] = ()
    release_lookups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    policy_apis: PolicyApis | None = None  # None: the policy kinds could not be listed
    gaps: tuple[Gap, ...] = ()

    def controller(self, role: str) -> Deployment | None:
        return next((d for d in self.deployments if d.role == role), None)

    def release(self, name: str) -> HelmRelease | None:
        return next((r for r in self.releases if r.name == name and r.revisions), None)

    @property
    def installed(self) -> bool | None:
        """True when any Kyverno piece exists, False when none does, None when unknowable."""
        if self.deployments or self.config_map_found or self.release("kyverno"):
            return True
        if self.gaps:
            return None
        return False

    @property
    def helm(self) -> HelmRevision | None:
        release = self.release("kyverno")
        return release.deployed if release else None

    @property
    def version(self) -> str | None:
        """Kyverno's version: a controller's image tag, else Helm's appVersion, else the
        `app.kubernetes.io/version` label of a Deployment not rendered by Helm (Kyverno's
        chart puts the chart version there; its plain-manifest install the app version)."""
        for role in ("admission", "background", "cleanup", "reports"):
            deployment = self.controller(role)
            if deployment is not None and deployment.image_version:
                return deployment.image_version
        helm = self.helm
        if helm is not None and helm.app_version:
            return helm.app_version.removeprefix("v")
        for deployment in self.deployments:
            if "helm.sh/chart" in deployment.labels:
                continue  # Kyverno's chart puts its own version in that label
            label = deployment.labels.get("app.kubernetes.io/version", "")
            if VERSION.match(label):
                return label.removeprefix("v")
        return None


def version_tuple(version: str | None) -> tuple[int, int, int] | None:
    match = VERSION.match(version or "")
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)


@dataclass(frozen=True)
class DoctorReport:
    """The doctor's answer for one environment."""

    environment: str
    health: KyvernoHealth | None = None
    findings: tuple[Finding, ...] = ()
    error: BotError | None = None  # the environment could not be reached at all
    drift_note: str | None = None  # why values drift was not checked

    def count(self, verdict: Verdict) -> int:
        return sum(1 for f in self.findings if f.verdict is verdict)

    @property
    def warnings(self) -> int:
        return self.count(Verdict.WARN)

    @property
    def failures(self) -> int:
        return self.count(Verdict.FAIL)
