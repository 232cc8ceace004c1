"""Policies a GitOps controller owns: a change made in the cluster does not last. Pure.

Argo CD and Flux re-apply what Git says. A promotion (or a demotion) written straight to a
policy they manage is reverted at their next sync, so the plan says who owns it and where
the change has to be made instead, and blocks like a failed gate (an admin may still
override with a reason, e.g. when auto-sync is paused for the rollout).

Ownership is read from the marks the controllers themselves put on what they apply:
- Argo CD: the annotation `argocd.argoproj.io/tracking-id` (`APP:GROUP/KIND:NAMESPACE/NAME`,
  annotation tracking, the default since Argo CD 3.0), or its older label tracking,
  `app.kubernetes.io/instance`, when the object's managedFields show Argo CD's controller
  wrote it (Helm sets the same label, so the label alone proves nothing);
- Flux: the labels `kustomize.toolkit.fluxcd.io/name` + `/namespace` (a Kustomization) or
  `helm.toolkit.fluxcd.io/name` + `/namespace` (a HelmRelease).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.ladder import GateResult

ARGO_TRACKING = "argocd.argoproj.io/tracking-id"
ARGO_INSTANCE = "app.kubernetes.io/instance"
ARGO_MANAGERS = ("argocd-controller", "argocd-application-controller")
FLUX_OWNERS = (
    ("kustomize.toolkit.fluxcd.io", "Kustomization"),
    ("helm.toolkit.fluxcd.io", "HelmRelease"),
)


@dataclass(frozen=True)
class GitOpsOwner:
    tool: str  # Argo CD | Flux
    owner: str  # "Application platform-policies", "Kustomization flux-system/policies"
    evidence: str  # the label or annotation that says so

    def describe(self) -> str:
        return f"{self.tool} ({self.owner}, {self.evidence})"


def gitops_owner(obj: Mapping[str, Any] | None) -> GitOpsOwner | None:
    """Who re-applies `obj` from Git, if anyone says so on the object."""
    if not obj:
        return None
    meta = obj.get("metadata") or {}
    labels: Mapping[str, str] = meta.get("labels") or {}
    annotations: Mapping[str, str] = meta.get("annotations") or {}
    tracking = annotations.get(ARGO_TRACKING)
    if tracking:
        app = tracking.split(":", 1)[0]
        return GitOpsOwner("Argo CD", f"Application {app}", f"annotation {ARGO_TRACKING}")
    for group, kind in FLUX_OWNERS:
        name = labels.get(f"{group}/name")
        if name:
            namespace = labels.get(f"{group}/namespace")
            where = f"{namespace}/{name}" if namespace else name
            return GitOpsOwner("Flux", f"{kind} {where}", f"label {group}/name")
    instance = labels.get(ARGO_INSTANCE)
    managers = {str(m.get("manager", "")) for m in meta.get("managedFields") or ()}
    if instance and managers & set(ARGO_MANAGERS):
        return GitOpsOwner(
            "Argo CD", f"Application {instance}", f"label {ARGO_INSTANCE}, written by Argo CD"
        )
    return None


def gitops_gate(environment: str, owner: GitOpsOwner) -> GateResult:
    """A failing gate saying the change would not last, and where to make it instead."""
    return GateResult(
        description=f"not managed by GitOps in {environment}",
        passed=False,
        figure=(
            f"managed by {owner.describe()}: {owner.tool} reverts a change made in the "
            f"cluster at its next sync; make it in the Git source of {owner.owner}, or "
            "pause its sync and have an admin override"
        ),
    )
