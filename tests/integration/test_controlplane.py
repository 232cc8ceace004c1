"""The test control plane behaves like a real cluster: CRD schemas, RBAC, apply semantics.

These tests pin down what later adapter tests rely on, so that a failure there points at the
adapter and not at the harness.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from bot.playground import control_plane as controlplane
from bot.playground import seed
from bot.playground.control_plane import ControlPlane, PortInUseError
from tests.kube.fixtures import REPO_ROOT, ControlPlaneFactory

pytestmark = pytest.mark.kube

SAMPLES = REPO_ROOT / "tests" / "data" / "samples"
SAMPLE_FILES = sorted(SAMPLES.glob("*/*.yaml"))


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def is_subset(expected: Any, actual: Any) -> bool:
    """``expected`` is contained in ``actual``; the server may only add (defaulted) map keys."""
    if isinstance(expected, Mapping):
        return isinstance(actual, Mapping) and all(
            key in actual and is_subset(value, actual[key]) for key, value in expected.items()
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(expected) == len(actual)
            and all(is_subset(e, a) for e, a in zip(expected, actual, strict=True))
        )
    return bool(expected == actual)


def get(api: ApiClient, obj: Mapping[str, Any]) -> dict[str, Any]:
    """Read back a custom object seeded from ``obj``."""
    group, _, version = obj["apiVersion"].rpartition("/")
    plural = seed.plural(obj["apiVersion"], obj["kind"])
    name, namespace = obj["metadata"]["name"], obj["metadata"].get("namespace")
    custom = client.CustomObjectsApi(api)
    if namespace is None:
        result = custom.get_cluster_custom_object(group, version, plural, name)
    else:
        result = custom.get_namespaced_custom_object(group, version, namespace, plural, name)
    assert isinstance(result, dict)
    return result


# (1) ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_sample_round_trips_through_server_side_apply(
    path: Path, control_plane: ControlPlane, kube_api: ApiClient, kube_namespace: str
) -> None:
    sample = yaml.safe_load(path.read_text())
    namespaced = path.parent.name != "policies"
    if namespaced:  # the samples name a namespace of their own, or none at all
        sample["metadata"]["namespace"] = kube_namespace
    control_plane.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(sample))

    stored = get(kube_api, sample)

    body = {k: v for k, v in sample.items() if k not in ("apiVersion", "kind", "metadata")}
    assert body, "nothing to compare"
    assert is_subset(body, stored), f"stored object differs from {path.name}"
    assert is_subset(
        sample["metadata"].get("annotations", {}), stored["metadata"].get("annotations", {})
    )
    assert is_subset(sample["metadata"].get("labels", {}), stored["metadata"].get("labels", {}))


# (2) ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("breakage", "fragment"),
    [
        (lambda spec: spec.pop("exceptions"), "spec.exceptions: Required value"),
        (lambda spec: spec.update(exceptions="require-labels"), "spec.exceptions: Invalid value"),
        (lambda spec: spec.update(match="everything"), "spec.match: Invalid value"),
    ],
    ids=["missing-exceptions", "exceptions-not-a-list", "match-not-an-object"],
)
def test_crd_schema_rejects_invalid_policy_exception(
    breakage: Any, fragment: str, kube_api: ApiClient, kube_namespace: str
) -> None:
    exception = seed.kyverno_policy_exception(
        "broken", kube_namespace, policy="require-labels", rules=["check-for-labels"]
    )
    breakage(exception["spec"])

    with pytest.raises(ApiException) as raised:
        client.CustomObjectsApi(kube_api).create_namespaced_custom_object(
            "kyverno.io", "v2", kube_namespace, "policyexceptions", exception
        )

    assert raised.value.status == 422
    status = json.loads(raised.value.body or "{}")
    assert status["reason"] == "Invalid"
    assert fragment in status["message"]


# (3) ------------------------------------------------------------------------------------------


def test_two_control_planes_are_independent(control_plane_factory: ControlPlaneFactory) -> None:
    first, second = control_plane_factory.start(2)
    assert first.url != second.url
    assert first.etcd_url != second.etcd_url
    policy = seed.legacy_cluster_policy(unique("only-in-first"))

    with first.api_client() as api_first, second.api_client() as api_second:
        seed.apply_object(api_first, policy)

        assert get(api_first, policy)["metadata"]["name"] == policy["metadata"]["name"]
        with pytest.raises(ApiException) as raised:
            get(api_second, policy)
        assert raised.value.status == 404


def test_factory_shares_planes_between_requests(
    control_plane_factory: ControlPlaneFactory, control_plane: ControlPlane
) -> None:
    assert control_plane_factory.start(2) == control_plane_factory.start(2)
    assert control_plane_factory.start(1) == [control_plane]


# (4) ------------------------------------------------------------------------------------------


def test_rbac_denies_a_user_without_bindings_and_allows_after_binding(
    control_plane: ControlPlane, kube_api: ApiClient
) -> None:
    user = unique("alice")
    kubeconfig = control_plane.make_user_kubeconfig(user, ["policy-viewers"])

    with control_plane.api_client(kubeconfig) as api:
        listing = client.CustomObjectsApi(api)
        with pytest.raises(ApiException) as raised:
            listing.list_cluster_custom_object("kyverno.io", "v1", "clusterpolicies")
        assert raised.value.status == 403
        message = json.loads(raised.value.body or "{}")["message"]
        assert f'User "{user}" cannot list resource "clusterpolicies"' in message

        rbac = client.RbacAuthorizationV1Api(kube_api)
        rbac.create_cluster_role(
            client.V1ClusterRole(
                metadata=client.V1ObjectMeta(name=user),
                rules=[
                    client.V1PolicyRule(
                        api_groups=["kyverno.io"], resources=["clusterpolicies"], verbs=["list"]
                    )
                ],
            )
        )
        rbac.create_cluster_role_binding(
            client.V1ClusterRoleBinding(
                metadata=client.V1ObjectMeta(name=user),
                role_ref=client.V1RoleRef(
                    api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=user
                ),
                subjects=[
                    client.RbacV1Subject(
                        kind="User", name=user, api_group="rbac.authorization.k8s.io"
                    )
                ],
            )
        )
        deadline = time.monotonic() + 10  # the RBAC authorizer reads bindings from an informer
        while True:
            try:
                listing.list_cluster_custom_object("kyverno.io", "v1", "clusterpolicies")
                break
            except ApiException as exc:
                if exc.status != 403 or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


# (5) ------------------------------------------------------------------------------------------


def test_seeded_objects_read_back_with_the_seeded_counts(
    kube_api: ApiClient, kube_namespace: str
) -> None:
    tag = uuid.uuid4().hex[:6]
    namespaces = [f"{kube_namespace}-{i}" for i in range(3)]
    policies = [
        seed.legacy_cluster_policy(
            f"legacy-{tag}",
            overrides=[seed.failure_action_override("Enforce", namespaces=["prod-*"])],
        ),
        seed.per_rule_cluster_policy(
            f"per-rule-{tag}",
            actions=("Enforce", "Audit"),
            overrides=[
                seed.failure_action_override(
                    "Audit", namespace_selector={"matchLabels": {"kyverno-audit": "true"}}
                )
            ],
        ),
        seed.validating_policy(f"vpol-{tag}", actions=("Deny",)),
        seed.namespaced_policy("team-labels", kube_namespace, action="Enforce"),
    ]
    exceptions = [
        seed.kyverno_policy_exception(
            f"polex-{i}", kube_namespace, policy=f"legacy-{tag}", rules=["autogen-check-for-labels"]
        )
        for i in range(4)
    ] + [seed.cel_policy_exception("celex", kube_namespace, policies=[f"vpol-{tag}"])]
    polr = seed.report_fleet(namespaces, 20, rng_seed=1)
    reps = seed.report_fleet(namespaces, 10, fmt="openreports", rng_seed=2)
    node = seed.ResourceRef("v1", "Node", unique("node"), None, str(uuid.uuid4()))
    cluster_reports = [
        seed.resource_report(
            node, [seed.report_result(f"legacy-{tag}", "check-for-labels", "fail")]
        ),
        seed.resource_report(
            node,
            [seed.report_result(f"legacy-{tag}", "check-for-labels", "pass")],
            fmt="openreports",
        ),
    ]

    seed.apply_objects(
        kube_api,
        [*map(seed.namespace, namespaces), *policies, *exceptions, *polr, *reps, *cluster_reports],
    )

    custom = client.CustomObjectsApi(kube_api)

    def listed(group: str, version: str, plural: str, namespace: str) -> list[Any]:
        found: Any = custom.list_namespaced_custom_object(group, version, namespace, plural)
        return list(found["items"])

    assert len(listed("kyverno.io", "v2", "policyexceptions", kube_namespace)) == 4
    assert len(listed("policies.kyverno.io", "v1", "policyexceptions", kube_namespace)) == 1
    assert len(listed("kyverno.io", "v1", "policies", kube_namespace)) == 1
    for namespace in namespaces:
        assert len(listed("wgpolicyk8s.io", "v1alpha2", "policyreports", namespace)) == 20
        assert len(listed("openreports.io", "v1alpha1", "reports", namespace)) == 10
    stored_polr = [
        r for n in namespaces for r in listed("wgpolicyk8s.io", "v1alpha2", "policyreports", n)
    ]
    assert seed.total_summary(stored_polr) == seed.total_summary(polr)
    assert sum(len(r["results"]) for r in stored_polr) == 60 * len(seed.SAMPLE_RULES)
    assert all(r["metadata"]["name"] == r["scope"]["uid"] for r in stored_polr)
    assert all(r["metadata"]["labels"] == seed.MANAGED_BY_KYVERNO for r in stored_polr)
    cpolr = get(kube_api, cluster_reports[0])
    assert cpolr["kind"] == "ClusterPolicyReport"
    assert cpolr["summary"]["fail"] == 1
    assert get(kube_api, cluster_reports[1])["kind"] == "ClusterReport"

    stored_policies = {p["metadata"]["name"]: get(kube_api, p) for p in policies}
    spec = stored_policies[f"legacy-{tag}"]["spec"]
    assert spec["validationFailureAction"] == "Audit"
    assert spec["validationFailureActionOverrides"][0]["namespaces"] == ["prod-*"]
    rules = stored_policies[f"per-rule-{tag}"]["spec"]["rules"]
    assert [r["validate"]["failureAction"] for r in rules] == ["Enforce", "Audit"]
    # The CRD defaults the deprecated spec-level field even when only per-rule actions are set,
    # so a reader must let validate.failureAction win rather than test for the field's presence.
    assert stored_policies[f"per-rule-{tag}"]["spec"]["validationFailureAction"] == "Audit"
    assert stored_policies[f"vpol-{tag}"]["spec"]["validationActions"] == ["Deny"]


def test_helm_release_secret_decodes_back_to_the_release(
    kube_api: ApiClient, kube_namespace: str
) -> None:
    values = {
        "admissionController": {"replicas": 3},
        "features": {"policyExceptions": {"enabled": True, "namespace": "kyverno-exceptions"}},
    }
    releases = [
        seed.helm_release(namespace=kube_namespace, revision=1, status="superseded"),
        seed.helm_release(namespace=kube_namespace, revision=2, config=values),
    ]

    seed.apply_objects(kube_api, [seed.helm_release_secret(r) for r in releases])

    found: Any = client.CoreV1Api(kube_api).list_namespaced_secret(
        kube_namespace, label_selector="owner=helm,name=kyverno", _preload_content=False
    )
    secrets = json.loads(found.data)["items"]
    assert sorted(s["metadata"]["name"] for s in secrets) == [
        "sh.helm.release.v1.kyverno.v1",
        "sh.helm.release.v1.kyverno.v2",
    ]
    assert {s["type"] for s in secrets} == {"helm.sh/release.v1"}
    latest = max(secrets, key=lambda s: int(s["metadata"]["labels"]["version"]))
    assert latest["metadata"]["labels"]["status"] == "deployed"
    decoded = seed.decode_helm_release_secret(latest)
    assert decoded == releases[1]
    assert decoded["config"] == values
    assert decoded["chart"]["metadata"]["appVersion"] == "v1.19.0"


# (6) ------------------------------------------------------------------------------------------


def test_stale_resource_version_update_is_a_conflict(kube_api: ApiClient) -> None:
    custom = client.CustomObjectsApi(kube_api)
    policy = seed.apply_object(kube_api, seed.legacy_cluster_policy(unique("occ")))
    name = policy["metadata"]["name"]
    stale = json.loads(json.dumps(policy))
    policy["spec"]["validationFailureAction"] = "Enforce"
    custom.replace_cluster_custom_object("kyverno.io", "v1", "clusterpolicies", name, policy)

    stale["spec"]["background"] = False
    with pytest.raises(ApiException) as raised:
        custom.replace_cluster_custom_object("kyverno.io", "v1", "clusterpolicies", name, stale)

    assert raised.value.status == 409
    assert json.loads(raised.value.body or "{}")["reason"] == "Conflict"
    assert get(kube_api, policy)["spec"]["validationFailureAction"] == "Enforce"


def test_server_side_apply_conflicts_between_field_managers(
    control_plane: ControlPlane, kube_api: ApiClient
) -> None:
    policy = seed.legacy_cluster_policy(unique("ssa"), action="Audit")
    seed.apply_object(kube_api, policy, field_manager="gitops")
    policy["spec"]["validationFailureAction"] = "Enforce"

    refused = control_plane.kubectl(
        "apply",
        "--server-side",
        "--field-manager=policy-bot",
        "-f",
        "-",
        input=json.dumps(policy),
        check=False,
    )
    assert refused.returncode != 0
    assert "conflict" in refused.stderr.lower()
    assert 'conflicts with "gitops"' in refused.stderr
    assert ".spec.validationFailureAction" in refused.stderr
    assert get(kube_api, policy)["spec"]["validationFailureAction"] == "Audit"

    seed.apply_object(kube_api, policy, field_manager="policy-bot")  # force=True takes ownership
    assert get(kube_api, policy)["spec"]["validationFailureAction"] == "Enforce"


# orphan protection ----------------------------------------------------------------------------

_HOLD_PLANE = """
import sys, time
from pathlib import Path
from bot.playground.control_plane import Assets, ControlPlane
plane = ControlPlane.start(Assets.from_directory(Path(sys.argv[1])), Path(sys.argv[2]))
print(" ".join(str(c.popen.pid) for c in plane._children), flush=True)
time.sleep(600)
"""


def running(pid: int) -> bool:
    """Whether ``pid`` runs; a zombie waiting for a lazy reaper counts as dead."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_children_die_with_a_killed_test_process(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_PLANE, str(control_plane.assets.directory), str(tmp_path)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        pids = [int(p) for p in holder.stdout.readline().split()]
        assert len(pids) == 2, "expected etcd and kube-apiserver"
        holder.send_signal(signal.SIGKILL)  # no atexit, no signal handler: only the kernel helps
        holder.wait()
        deadline = time.monotonic() + 10
        while any(map(running, pids)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in pids if running(pid)], "orphans left behind"
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()


# start-up robustness ---------------------------------------------------------------------------


def test_lost_port_race_is_retried_with_fresh_ports(
    control_plane: ControlPlane, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    picked: list[list[int]] = []
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))  # bound, not listening: probes are refused at once

        def first_pick_loses(count: int, real: Any = controlplane._free_ports) -> list[int]:
            ports: list[int] = real(count)
            if not picked:
                ports[0] = taken.getsockname()[1]  # etcd's client port
            picked.append(ports)
            return ports

        monkeypatch.setattr(controlplane, "_free_ports", first_pick_loses)
        plane = ControlPlane.start(control_plane.assets, tmp_path)
    try:
        assert len(picked) == 2
        assert plane.etcd_url == f"http://127.0.0.1:{picked[1][0]}"
        assert plane.kubectl("get", "--raw=/readyz").stdout == "ok"
    finally:
        plane.stop()


def test_early_exit_raises_with_the_log_tail(
    control_plane: ControlPlane, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))  # bound, not listening: probes are refused at once
        port = taken.getsockname()[1]
        monkeypatch.setattr(controlplane, "_free_ports", lambda count: [port] * count)

        with pytest.raises(PortInUseError) as raised:
            ControlPlane.start(control_plane.assets, tmp_path)

    assert "etcd exited" in str(raised.value)
    assert "address already in use" in str(raised.value)
    assert str(tmp_path / "etcd.log") in str(raised.value)
