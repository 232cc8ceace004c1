"""Kyverno decides: a real Kyverno v1.19 admission controller behind the test API server.

Each test scopes its ClusterPolicy to a namespace of its own, so they share one Kyverno. The
assertions are on the API server's answers (a refused or admitted create) and on what Kyverno
itself wrote (policy status, PolicyReports), never on anything seeded by hand.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from bot.playground import seed
from bot.playground.kyverno import Kyverno

pytestmark = [pytest.mark.kube, pytest.mark.kyverno]

T = TypeVar("T")
RULE = "check-for-labels"
AUTOGEN_RULE = f"autogen-{RULE}"  # Kyverno's name for the rule on pod controllers
LABEL = "app.kubernetes.io/name"


def require_label_policy(name: str, namespace: str, action: str) -> dict[str, Any]:
    """The kyverno/policies library's require-labels, per-rule style, on one namespace.

    It matches Pods, so Kyverno's autogen applies it to Deployments as ``autogen-<rule>``.
    """
    rule = seed.require_label_rule(RULE, label=LABEL, kinds=("Pod",), failure_action=action)
    rule["match"]["any"][0]["resources"]["namespaces"] = [namespace]
    policy = seed.legacy_cluster_policy(name, rules=[rule])
    del policy["spec"]["validationFailureAction"]  # per-rule failureAction only
    return policy


def eventually(check: Callable[[], T | None], *, timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.5)


def create_deployment(
    kyverno: Kyverno, namespace: str, name: str, **kw: Any
) -> tuple[int, dict[str, Any]]:
    """POST a Deployment as admin: the API server's status code and answer."""
    path = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    return kyverno.request("POST", path, seed.deployment(name, namespace, **kw))


def admitted(kyverno: Kyverno, namespace: str, name: str, **kw: Any) -> dict[str, Any]:
    """The stored Deployment of a create the API server admits (fails the test if refused)."""
    code, answer = create_deployment(kyverno, namespace, name, **kw)
    assert code == 201, f"Deployment {namespace}/{name} refused: {answer.get('message')}"
    return answer


def refused(kyverno: Kyverno, namespace: str, name: str) -> dict[str, Any]:
    """The Status of a create the API server refuses (fails the test if admitted)."""
    code, answer = create_deployment(kyverno, namespace, name)
    assert code != 201, f"Deployment {namespace}/{name} was admitted"
    return answer


def test_enforce_refuses_a_violating_deployment_with_kyvernos_message(
    kyverno: Kyverno, namespace: str, policy_name: str
) -> None:
    kyverno.apply(require_label_policy(policy_name, namespace, "Enforce"))
    kyverno.wait_policy_ready(policy_name)

    status = refused(kyverno, namespace, "no-labels")

    assert (status["kind"], status["status"], status["code"]) == ("Status", "Failure", 400)
    message = status["message"]
    assert message.startswith('admission webhook "validate.kyverno.svc-fail" denied the request')
    assert f"resource Deployment/{namespace}/no-labels was blocked due to the following" in message
    assert f"\n{policy_name}:\n" in message
    assert (
        f"  {AUTOGEN_RULE}: 'validation error: The label `{LABEL}` is required. rule "
        f"{AUTOGEN_RULE} failed at path /spec/template/metadata/labels/{LABEL}/'"
    ) in message
    admitted(kyverno, namespace, "labelled", labels={LABEL: "web"})


def policy_reports(kyverno: Kyverno, namespace: str) -> list[dict[str, Any]]:
    found = kyverno.get(f"/apis/wgpolicyk8s.io/v1alpha2/namespaces/{namespace}/policyreports")
    return list(found.get("items") or [])


def report_on(kyverno: Kyverno, namespace: str, uid: str, policy: str) -> dict[str, Any]:
    """Kyverno's PolicyReport on the resource ``uid`` once it has a result for ``policy``."""

    def report() -> dict[str, Any] | None:
        for item in policy_reports(kyverno, namespace):
            if (item.get("scope") or {}).get("uid") == uid and any(
                r.get("policy") == policy for r in item.get("results") or []
            ):
                return item
        return None

    return eventually(report, timeout=120, what=f"Kyverno's PolicyReport on {uid} for {policy}")


def test_audit_admits_and_kyverno_reports_the_failure(
    kyverno: Kyverno, namespace: str, policy_name: str
) -> None:
    kyverno.apply(require_label_policy(policy_name, namespace, "Audit"))
    kyverno.wait_policy_ready(policy_name)

    uid = admitted(kyverno, namespace, "no-labels")["metadata"]["uid"]
    good = admitted(kyverno, namespace, "labelled", labels={LABEL: "web"})["metadata"]["uid"]

    # wgpolicyk8s.io, not openreports.io: Kyverno 1.19 writes the latter only with
    # --openreportsEnabled. One report per resource, named by its UID, owned by it.
    polr = report_on(kyverno, namespace, uid, policy_name)
    assert polr["apiVersion"] == "wgpolicyk8s.io/v1alpha2"
    assert polr["metadata"]["name"] == uid
    assert polr["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "kyverno"}
    owner = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "no-labels", "uid": uid}
    assert polr["metadata"]["ownerReferences"] == [owner]
    assert polr["scope"] == {**owner, "namespace": namespace}
    (result,) = [r for r in polr["results"] if r["policy"] == policy_name]
    assert {k: v for k, v in result.items() if k != "timestamp"} == {
        "source": "kyverno",
        "policy": policy_name,
        "rule": AUTOGEN_RULE,
        "result": "fail",
        "scored": True,
        "severity": "medium",
        "category": "Best Practices",
        "message": f"validation error: The label `{LABEL}` is required. rule {AUTOGEN_RULE} "
        f"failed at path /spec/template/metadata/labels/{LABEL}/",
        "properties": {"process": "background scan"},
    }
    assert polr["summary"] == {"pass": 0, "fail": 1, "warn": 0, "error": 0, "skip": 0}

    passing = report_on(kyverno, namespace, good, policy_name)
    (result,) = [r for r in passing["results"] if r["policy"] == policy_name]
    assert (result["result"], result["message"]) == (
        "pass",
        f"validation rule '{AUTOGEN_RULE}' passed.",
    )


def test_validating_policy_denies_and_reports_under_its_own_source(
    kyverno: Kyverno, namespace: str
) -> None:
    name = f"vpol-team-{secrets.token_hex(3)}"
    policy = seed.validating_policy(name, actions=("Deny",))
    policy["spec"]["matchConstraints"]["namespaceSelector"] = {
        "matchLabels": {"kubernetes.io/metadata.name": namespace}
    }
    kyverno.apply(policy)
    try:
        path = f"/apis/policies.kyverno.io/v1/validatingpolicies/{name}"

        def ready() -> dict[str, Any] | None:
            status = (kyverno.get(path).get("status") or {}).get("conditionStatus") or {}
            return status if status.get("ready") is True else None

        status = eventually(ready, timeout=60, what=f"ValidatingPolicy {name} ready")
        assert {c["type"]: c["status"] for c in status["conditions"]} == {
            "WebhookConfigured": "True",
            "RBACPermissionsGranted": "True",
        }

        def refused_once() -> dict[str, Any] | None:
            code, answer = create_deployment(kyverno, namespace, "no-team")
            assert code in (201, 400), answer
            if code == 201:  # the webhook was not serving this policy yet
                kyverno.request(
                    "DELETE", f"/apis/apps/v1/namespaces/{namespace}/deployments/no-team"
                )
                return None
            return answer

        denial = eventually(refused_once, timeout=60, what="the ValidatingPolicy to deny")
        assert denial["message"].startswith("admission webhook")
        assert f"Policy {name} failed: The label `team` is required." in denial["message"]

        policy["spec"]["validationActions"] = ["Audit"]
        kyverno.apply(policy)
        eventually(ready, timeout=60, what=f"ValidatingPolicy {name} ready in Audit")

        def admitted_once() -> dict[str, Any] | None:
            code, answer = create_deployment(kyverno, namespace, "audited")
            assert code in (201, 400), answer
            return answer if code == 201 else None

        uid = eventually(admitted_once, timeout=60, what="Audit to admit")["metadata"]["uid"]
        polr = report_on(kyverno, namespace, uid, name)
        (result,) = [r for r in polr["results"] if r["policy"] == name]
        # no rule, the bare validation message, and a source of its own (not "kyverno")
        assert {k: v for k, v in result.items() if k != "timestamp"} == {
            "source": "KyvernoValidatingPolicy",
            "policy": name,
            "result": "fail",
            "scored": True,
            "severity": "medium",
            "category": "Best Practices",
            "message": "The label `team` is required.",
            "properties": {"cel.validationIndex": "0", "process": "background scan"},
        }
    finally:
        kyverno.plane.kubectl("delete", "validatingpolicies.policies.kyverno.io", name)


def test_policy_exception_admits_the_violating_create(
    kyverno: Kyverno, namespace: str, policy_name: str
) -> None:
    kyverno.apply(require_label_policy(policy_name, namespace, "Enforce"))
    kyverno.wait_policy_ready(policy_name)
    assert refused(kyverno, namespace, "excepted")["code"] == 400

    exception = seed.kyverno_policy_exception(
        f"{policy_name}-excepted",
        kyverno.exception_namespace,
        policy=policy_name,
        rules=[AUTOGEN_RULE],
        kinds=("Deployment",),
        names=("excepted",),
        namespaces=(namespace,),
    )
    kyverno.apply(exception)
    try:

        def admitted_once() -> dict[str, Any] | None:
            code, answer = create_deployment(kyverno, namespace, "excepted")
            assert code in (201, 400), answer
            return answer if code == 201 else None

        eventually(admitted_once, timeout=60, what="the excepted Deployment to be admitted")
        # the exception is narrow: another violating Deployment is still refused
        assert refused(kyverno, namespace, "not-excepted")["code"] == 400
    finally:
        kyverno.plane.kubectl(
            "delete",
            "policyexceptions.kyverno.io",
            exception["metadata"]["name"],
            "-n",
            kyverno.exception_namespace,
            "--ignore-not-found",
        )


def test_promote_and_demote_take_effect_at_once_while_ready_stays_put(
    kyverno: Kyverno, namespace: str, policy_name: str
) -> None:
    kyverno.apply(require_label_policy(policy_name, namespace, "Audit"))
    first = kyverno.wait_policy_ready(policy_name)
    (ready,) = [c for c in first["status"]["conditions"] if c["type"] == "Ready"]
    admitted(kyverno, namespace, "before-promotion")

    kyverno.apply(require_label_policy(policy_name, namespace, "Enforce"))
    names = iter(range(1000))

    def refused_once() -> dict[str, Any] | None:
        code, answer = create_deployment(kyverno, namespace, f"promoted-{next(names)}")
        return answer if code == 400 else None

    eventually(refused_once, timeout=10, what="Enforce to refuse")
    promoted = kyverno.policy(policy_name)
    assert promoted["metadata"]["generation"] == first["metadata"]["generation"] + 1
    # Kyverno keeps the Ready condition as it was: its lastTransitionTime tells when the policy
    # first became Ready, not when the new mode took effect, and it has no observedGeneration.
    assert [c for c in promoted["status"]["conditions"] if c["type"] == "Ready"] == [ready]
    assert "observedGeneration" not in ready

    kyverno.apply(require_label_policy(policy_name, namespace, "Audit"))

    def admitted_once() -> dict[str, Any] | None:
        code, answer = create_deployment(kyverno, namespace, f"demoted-{next(names)}")
        return answer if code == 201 else None

    eventually(admitted_once, timeout=10, what="Audit to admit again")


def test_cleanup_controller_deletes_an_exception_at_its_ttl(
    kyverno: Kyverno, namespace: str, policy_name: str
) -> None:
    kyverno.apply(require_label_policy(policy_name, namespace, "Enforce"))
    kyverno.wait_policy_ready(policy_name)
    exception = seed.kyverno_policy_exception(
        f"{policy_name}-ttl",
        kyverno.exception_namespace,
        policy=policy_name,
        rules=[AUTOGEN_RULE],
        namespaces=(namespace,),
        labels={"cleanup.kyverno.io/ttl": "10s"},
    )
    kyverno.apply(exception)
    names = iter(range(10_000))

    def outcome(wanted: int) -> dict[str, Any] | None:
        code, answer = create_deployment(kyverno, namespace, f"d-{next(names)}")
        assert code in (201, 400), answer
        return answer if code == wanted else None

    eventually(lambda: outcome(201), timeout=30, what="the exception to admit")
    # The cleanup controller starts watching labelled kinds at its first reconciliation tick
    # (--ttlReconciliationInterval, a minute), then deletes at the TTL: up to ~70 s here.
    eventually(lambda: outcome(400), timeout=150, what="refusal after the exception's TTL")
    path = f"/apis/kyverno.io/v2/namespaces/{kyverno.exception_namespace}/policyexceptions"
    code, _ = kyverno.request("GET", f"{path}/{exception['metadata']['name']}")
    assert code == 404
