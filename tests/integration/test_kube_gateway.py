"""The Kubernetes adapter against a real kube-apiserver: discovery, paging, writes, errors."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bot.errors import ClusterForbidden, ClusterUnavailable
from bot.kinds import Family, Kind
from bot.kube.errors import Conflict, Invalid
from bot.kube.gateway import ClusterGateway
from bot.playground import seed
from bot.playground.control_plane import ControlPlane
from bot.settings import Environment

pytestmark = pytest.mark.kube


def gateway(kubeconfig: Path | str, **options: object) -> ClusterGateway:
    return ClusterGateway(Environment(name="dev", kubeconfig=Path(kubeconfig), **options))  # type: ignore[arg-type]


def kind(kinds: tuple[Kind, ...], group: str, name: str) -> Kind:
    return next(k for k in kinds if k.spec.group == group and k.spec.kind == name)


async def test_discovery_finds_every_installed_kind_at_its_preferred_version(
    control_plane: ControlPlane,
) -> None:
    gw = gateway(control_plane.kubeconfig)
    try:
        kinds = await gw.kinds()
        found = {(k.spec.group, k.spec.kind): k.version for k in kinds}
        assert found[("kyverno.io", "ClusterPolicy")] == "v1"
        assert found[("kyverno.io", "PolicyException")] == "v2"
        assert found[("policies.kyverno.io", "ValidatingPolicy")] == "v1"
        assert found[("policies.kyverno.io", "PolicyException")] == "v1"
        assert found[("wgpolicyk8s.io", "PolicyReport")] == "v1alpha2"
        assert found[("openreports.io", "ClusterReport")] == "v1alpha1"
        # No CRD for these on the test cluster: skipped, not an error.
        assert ("policies.kyverno.io", "MutatingPolicy") not in found
        assert {k.spec.family for k in kinds} >= {
            Family.LEGACY_POLICY,
            Family.REPORT,
            Family.EXCEPTION,
        }
        assert (await gw.ping()).startswith("v1.35")
    finally:
        await gw.close()


async def test_lists_are_paged_and_complete(
    control_plane: ControlPlane, kube_namespace: str
) -> None:
    reports = seed.report_fleet([kube_namespace], 35, rng_seed=7)
    with control_plane.api_client() as api:
        seed.apply_objects(api, reports)
    gw = gateway(control_plane.kubeconfig, page_size=10)
    try:
        polr = kind(await gw.kinds(), "wgpolicyk8s.io", "PolicyReport")
        pages = await gw.scan(polr, len, namespace=kube_namespace)
        assert pages == [10, 10, 10, 5]
        names = {o["metadata"]["name"] for o in await gw.list_all(polr, namespace=kube_namespace)}
        assert names == {r["metadata"]["name"] for r in reports}
    finally:
        await gw.close()


async def test_a_fold_that_fails_ends_the_list_while_its_next_page_is_on_the_way(
    control_plane: ControlPlane, kube_namespace: str
) -> None:
    reports = seed.report_fleet([kube_namespace], 25, rng_seed=11)
    with control_plane.api_client() as api:
        seed.apply_objects(api, reports)
    gw = gateway(control_plane.kubeconfig, page_size=10)
    folded: list[int] = []

    def fold(items: list[dict[str, object]]) -> int:
        folded.append(len(items))
        if len(folded) == 2:
            raise ValueError("the fold broke")
        return len(items)

    try:
        polr = kind(await gw.kinds(), "wgpolicyk8s.io", "PolicyReport")
        with pytest.raises(ValueError, match="the fold broke"):
            await gw.scan(polr, fold, namespace=kube_namespace)
        assert folded == [10, 10]  # the third page, asked for early, was never folded
        assert await gw.scan(polr, len, namespace=kube_namespace) == [10, 10, 5]
    finally:
        await gw.close()


async def test_create_conflict_invalid_apply_delete(
    control_plane: ControlPlane, kube_namespace: str
) -> None:
    gw = gateway(control_plane.kubeconfig)
    try:
        polex = kind(await gw.kinds(), "kyverno.io", "PolicyException")
        obj = seed.kyverno_policy_exception(
            "pe-gw", kube_namespace, policy="require-labels", rules=["check-for-labels"]
        )
        created = await gw.create(polex, obj)
        assert created["metadata"]["uid"]
        with pytest.raises(Conflict):
            await gw.create(polex, obj)
        broken = {
            **obj,
            "metadata": {"name": "pe-broken", "namespace": kube_namespace},
            "spec": {"match": {}},
        }
        with pytest.raises(Invalid, match="exceptions"):
            await gw.create(polex, broken)
        obj["metadata"]["labels"] = {"app.kubernetes.io/managed-by": "policy-bot"}
        dry = await gw.apply(polex, obj, dry_run=True)
        assert dry["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "policy-bot"}
        stored = await gw.get(polex, "pe-gw", namespace=kube_namespace)
        assert stored is not None and "labels" not in stored["metadata"]  # dry run wrote nothing
        applied = await gw.apply(polex, obj, force=True)
        assert applied["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "policy-bot"
        assert await gw.delete(polex, "pe-gw", namespace=kube_namespace) is True
        assert await gw.delete(polex, "pe-gw", namespace=kube_namespace) is False
        assert await gw.get(polex, "pe-gw", namespace=kube_namespace) is None
    finally:
        await gw.close()


async def test_rbac_refusal_names_the_permission(control_plane: ControlPlane) -> None:
    gw = gateway(control_plane.make_user_kubeconfig("nobody"))
    try:
        kinds = await gw.kinds()  # discovery is open to every authenticated user
        with pytest.raises(ClusterForbidden) as info:
            await gw.list_all(kind(kinds, "kyverno.io", "ClusterPolicy"))
        assert "may not list /apis/kyverno.io/v1/clusterpolicies" in info.value.user_message
    finally:
        await gw.close()


async def test_unreachable_cluster_fails_fast(tmp_path: Path, control_plane: ControlPlane) -> None:
    config = tmp_path / "dead.kubeconfig"
    config.write_text(
        control_plane.kubeconfig.read_text().replace(control_plane.url, "https://127.0.0.1:9")
    )
    gw = gateway(config, timeout_s=2)
    try:
        started = time.monotonic()
        with pytest.raises(ClusterUnavailable, match="unreachable"):
            await gw.kinds()
        assert time.monotonic() - started < 5
        assert gw.reachable is False
    finally:
        await gw.close()
