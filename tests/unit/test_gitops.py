"""Who re-applies a policy from Git: the marks Argo CD and Flux put on what they apply."""

from __future__ import annotations

from typing import Any

import pytest

from bot.promotion.gitops import GitOpsOwner, gitops_gate, gitops_owner


def meta(**metadata: Any) -> dict[str, Any]:
    return {"metadata": {"name": "require-labels", **metadata}}


@pytest.mark.parametrize(
    ("obj", "owner"),
    [
        (
            meta(
                annotations={
                    "argocd.argoproj.io/tracking-id": (
                        "platform-policies:kyverno.io/ClusterPolicy:/require-labels"
                    )
                }
            ),
            GitOpsOwner(
                "Argo CD",
                "Application platform-policies",
                "annotation argocd.argoproj.io/tracking-id",
            ),
        ),
        (
            meta(
                labels={
                    "kustomize.toolkit.fluxcd.io/name": "policies",
                    "kustomize.toolkit.fluxcd.io/namespace": "flux-system",
                }
            ),
            GitOpsOwner(
                "Flux",
                "Kustomization flux-system/policies",
                "label kustomize.toolkit.fluxcd.io/name",
            ),
        ),
        (
            meta(
                labels={
                    "helm.toolkit.fluxcd.io/name": "kyverno-policies",
                    "helm.toolkit.fluxcd.io/namespace": "kyverno",
                }
            ),
            GitOpsOwner(
                "Flux", "HelmRelease kyverno/kyverno-policies", "label helm.toolkit.fluxcd.io/name"
            ),
        ),
        (
            meta(
                labels={"app.kubernetes.io/instance": "platform-policies"},
                managedFields=[{"manager": "argocd-controller", "operation": "Update"}],
            ),
            GitOpsOwner(
                "Argo CD",
                "Application platform-policies",
                "label app.kubernetes.io/instance, written by Argo CD",
            ),
        ),
    ],
)
def test_argo_cd_and_flux_are_recognised_by_their_own_marks(
    obj: dict[str, Any], owner: GitOpsOwner
) -> None:
    assert gitops_owner(obj) == owner


def test_helm_or_kubectl_alone_is_not_gitops() -> None:
    helm = meta(
        labels={"app.kubernetes.io/instance": "kyverno-policies"},
        managedFields=[{"manager": "helm", "operation": "Update"}],
    )
    assert gitops_owner(helm) is None
    assert gitops_owner(meta(labels={"app.kubernetes.io/managed-by": "policy-bot"})) is None
    assert gitops_owner(None) is None


def test_the_gate_fails_and_says_where_to_make_the_change() -> None:
    owner = GitOpsOwner("Flux", "Kustomization flux-system/policies", "label x")
    gate = gitops_gate("production", owner)
    assert not gate.passed and gate.description == "not managed by GitOps in production"
    assert "make it in the Git source of Kustomization flux-system/policies" in gate.figure
