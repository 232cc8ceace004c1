"""Realistic Kyverno objects for the real API server: what the playground's clusters and the
tests' hold.

Builders are pure functions returning plain dicts, so a test knows exactly what it seeded and can
assert counts without reading anything back. ``apply_objects`` writes them with server-side apply
(idempotent, and the same code path a GitOps tool would use), in parallel for bulk seeding.

Shapes follow Kyverno v1.19 (see ``tests/data/samples``; the CRDs are the Kyverno module's, see
``tools/kyverno/README.md``):

- ClusterPolicy in the three mode styles the bot must read: the legacy spec-level
  ``validationFailureAction`` (+ ``validationFailureActionOverrides``), the per-rule
  ``validate.failureAction`` (+ ``failureActionOverrides``), and the CEL ``ValidatingPolicy`` with
  ``spec.validationActions``; plus a namespaced ``Policy``.
- Reports in Kyverno's per-resource layout: one report per resource, named by the resource UID,
  ``scope`` and owner reference pointing at it, label ``app.kubernetes.io/managed-by: kyverno``,
  in both ``wgpolicyk8s.io/v1alpha2`` and ``openreports.io/v1alpha1`` form.
- PolicyExceptions of both APIs and a Helm release Secret in Helm 3's storage format.

What a running Kyverno 1.19.1 writes (``tests/integration/test_kyverno_admission.py``) differs
from the defaults here (the bot keys results by source and policy, never by message): messages
are ``validation error: <rule message> rule <rule> failed at path <path>`` / ``validation rule
'<rule>' passed.`` / ``rule is skipped due to policy exceptions<namespace>/<name>`` (no space,
Kyverno's own concatenation); timestamps are the scan time. ValidatingPolicy results carry no
``rule``, the bare validation message, ``properties["cel.validationIndex"]`` and ``source:
KyvernoValidatingPolicy`` -- seed them with ``source=VALIDATING_POLICY_SOURCE`` (which gives
that shape), never ``kyverno``.
"""

from __future__ import annotations

import base64
import datetime
import gzip
import json
import random
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

Obj = dict[str, Any]
Result = Literal["pass", "fail", "warn", "error", "skip"]
RESULTS: tuple[Result, ...] = ("pass", "fail", "warn", "error", "skip")
MANAGED_BY_KYVERNO = {"app.kubernetes.io/managed-by": "kyverno"}
KYVERNO_SOURCE = "kyverno"
"""``source`` of the results of kyverno.io ClusterPolicies and Policies."""
VALIDATING_POLICY_SOURCE = "KyvernoValidatingPolicy"
"""``source`` Kyverno 1.19 writes on ValidatingPolicy results (``pkg/utils/report/source.go``)."""
FIELD_MANAGER = "policy-bot-tests"

# --- policies ------------------------------------------------------------------------------------


def failure_action_override(
    action: str,
    *,
    namespaces: Sequence[str] = (),
    namespace_selector: Mapping[str, Any] | None = None,
) -> Obj:
    """One entry of ``validationFailureActionOverrides`` / ``failureActionOverrides``."""
    entry: Obj = {"action": action}
    if namespaces:
        entry["namespaces"] = list(namespaces)
    if namespace_selector is not None:
        entry["namespaceSelector"] = dict(namespace_selector)
    return entry


def require_label_rule(
    name: str,
    *,
    label: str = "app.kubernetes.io/name",
    kinds: Sequence[str] = ("Pod",),
    failure_action: str | None = None,
    failure_action_overrides: Sequence[Obj] = (),
) -> Obj:
    """A validate rule requiring ``label``, the most common shape in the Kyverno library.

    ``failure_action`` set means the per-rule mode style; leave it ``None`` for the legacy one.
    """
    validate: Obj = {
        "message": f"The label `{label}` is required.",
        "pattern": {"metadata": {"labels": {label: "?*"}}},
    }
    if failure_action is not None:
        validate["failureAction"] = failure_action
    if failure_action_overrides:
        validate["failureActionOverrides"] = list(failure_action_overrides)
    return {
        "name": name,
        "match": {"any": [{"resources": {"kinds": list(kinds)}}]},
        "validate": validate,
    }


def _policy_metadata(
    name: str, namespace: str | None, severity: str, category: str, title: str | None
) -> Obj:
    metadata: Obj = {
        "name": name,
        "annotations": {
            "policies.kyverno.io/title": title or name.replace("-", " ").title(),
            "policies.kyverno.io/category": category,
            "policies.kyverno.io/severity": severity,
            "policies.kyverno.io/subject": "Pod",
        },
    }
    if namespace is not None:
        metadata["namespace"] = namespace
    return metadata


def legacy_cluster_policy(
    name: str,
    *,
    action: str = "Audit",
    overrides: Sequence[Obj] = (),
    rules: Sequence[Obj] | None = None,
    severity: str = "medium",
    category: str = "Best Practices",
    background: bool = True,
) -> Obj:
    """ClusterPolicy with the deprecated spec-level ``validationFailureAction`` (+ overrides).

    This is still what the kyverno/policies library ships.
    """
    spec: Obj = {
        "validationFailureAction": action,
        "background": background,
        "rules": list(rules) if rules is not None else [require_label_rule("check-for-labels")],
    }
    if overrides:
        spec["validationFailureActionOverrides"] = list(overrides)
    return {
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": _policy_metadata(name, None, severity, category, None),
        "spec": spec,
    }


def per_rule_cluster_policy(
    name: str,
    *,
    actions: Sequence[str] = ("Enforce",),
    overrides: Sequence[Obj] = (),
    severity: str = "high",
    category: str = "Best Practices",
) -> Obj:
    """ClusterPolicy in the current style: one rule per entry of ``actions``, each with its own
    ``validate.failureAction`` and the same ``failureActionOverrides``; nothing at spec level.

    ``actions=("Enforce", "Audit")`` gives a policy whose rules disagree ("mixed").
    """
    rules = [
        require_label_rule(
            f"check-label-{i}",
            label=f"example.com/label-{i}",
            failure_action=action,
            failure_action_overrides=overrides,
        )
        for i, action in enumerate(actions)
    ]
    return {
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": _policy_metadata(name, None, severity, category, None),
        "spec": {"background": True, "rules": rules},
    }


def namespaced_policy(
    name: str,
    namespace: str,
    *,
    action: str = "Audit",
    severity: str = "low",
    category: str = "Best Practices",
) -> Obj:
    """``kyverno.io/v1`` Policy; its report results name it ``<namespace>/<name>``."""
    return {
        "apiVersion": "kyverno.io/v1",
        "kind": "Policy",
        "metadata": _policy_metadata(name, namespace, severity, category, None),
        "spec": {
            "background": True,
            "rules": [require_label_rule("check-team", label="team", failure_action=action)],
        },
    }


def validating_policy(
    name: str,
    *,
    actions: Sequence[str] = ("Audit",),
    expression: str = "has(object.metadata.labels) && 'team' in object.metadata.labels",
    message: str = "The label `team` is required.",
) -> Obj:
    """``policies.kyverno.io/v1`` ValidatingPolicy; its mode is ``spec.validationActions``
    (``Deny`` means enforce; ``Deny`` and ``Warn`` may not be combined)."""
    return {
        "apiVersion": "policies.kyverno.io/v1",
        "kind": "ValidatingPolicy",
        "metadata": {
            "name": name,
            "annotations": {
                "policies.kyverno.io/severity": "medium",
                "policies.kyverno.io/category": "Best Practices",
            },
        },
        "spec": {
            "validationActions": list(actions),
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": ["apps"],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["deployments"],
                    }
                ]
            },
            "validations": [{"expression": expression, "message": message}],
        },
    }


# --- exceptions ----------------------------------------------------------------------------------


def kyverno_policy_exception(
    name: str,
    namespace: str,
    *,
    policy: str,
    rules: Sequence[str],
    kinds: Sequence[str] = ("Deployment",),
    names: Sequence[str] = (),
    namespaces: Sequence[str] = (),
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> Obj:
    """``kyverno.io/v2`` PolicyException for a ClusterPolicy or Policy.

    Rule names of pod-controller matches need the ``autogen-`` prefix (see Kyverno's autogen).
    """
    resources: Obj = {"kinds": list(kinds)}
    if names:
        resources["names"] = list(names)
    if namespaces:
        resources["namespaces"] = list(namespaces)
    metadata: Obj = {"name": name, "namespace": namespace}
    if labels:
        metadata["labels"] = dict(labels)
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {
        "apiVersion": "kyverno.io/v2",
        "kind": "PolicyException",
        "metadata": metadata,
        "spec": {
            "exceptions": [{"policyName": policy, "ruleNames": list(rules)}],
            "match": {"any": [{"resources": resources}]},
        },
    }


def cel_policy_exception(
    name: str,
    namespace: str,
    *,
    policies: Sequence[str],
    policy_kind: str = "ValidatingPolicy",
    match_expression: str | None = None,
    expires_at: datetime.datetime | None = None,
    properties: Mapping[str, str] | None = None,
) -> Obj:
    """``policies.kyverno.io/v1`` PolicyException for CEL policies (has ``expiresAt`` in 1.19)."""
    spec: Obj = {"policyRefs": [{"name": p, "kind": policy_kind} for p in policies]}
    if match_expression is not None:
        spec["matchConditions"] = [{"name": "match", "expression": match_expression}]
    if expires_at is not None:
        spec["expiresAt"] = expires_at.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if properties:
        spec["properties"] = dict(properties)
    return {
        "apiVersion": "policies.kyverno.io/v1",
        "kind": "PolicyException",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


# --- reports -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResourceRef:
    """The subject of a per-resource report (its ``scope`` and owner)."""

    api_version: str
    kind: str
    name: str
    namespace: str | None
    uid: str

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> ResourceRef:
        """Reference an object as returned by the API server (so it has a real UID)."""
        metadata = obj["metadata"]
        return cls(
            obj["apiVersion"],
            obj["kind"],
            metadata["name"],
            metadata.get("namespace"),
            metadata["uid"],
        )

    def scope(self) -> Obj:
        scope = {"apiVersion": self.api_version, "kind": self.kind, "name": self.name}
        if self.namespace is not None:
            scope["namespace"] = self.namespace
        scope["uid"] = self.uid
        return scope


def report_result(
    policy: str,
    rule: str,
    result: Result,
    *,
    severity: str = "medium",
    category: str = "Best Practices",
    message: str | None = None,
    seconds: int = 1_755_590_400,
    exceptions: Sequence[str] = (),
    source: str = KYVERNO_SOURCE,
    process: str = "background scan",
) -> Obj:
    """One ``results[]`` entry with Kyverno's messages and ``{seconds, nanos}`` timestamp.

    ``exceptions`` are ``<namespace>/<name>`` of PolicyExceptions; they make a ``skip`` result.
    ``warn`` is written unscored, as Kyverno turns ``fail`` into ``warn`` for policies annotated
    ``policies.kyverno.io/scored: "false"``.

    With ``source=VALIDATING_POLICY_SOURCE`` the result has a ValidatingPolicy's shape as
    Kyverno 1.19 writes it (``pkg/cel/policies/vpol/engine``): no ``rule`` unless one is given
    (pass ``""``), the validation's own message on a fail (that of :func:`validating_policy`),
    ``success`` for a pass, ``cel.validationIndex`` on a fail or error, and ``exception`` as the
    rule of a result an exception skipped.
    """
    cel = source == VALIDATING_POLICY_SOURCE
    if message is None:
        message = (
            {
                "pass": "success",
                "fail": "The label `team` is required.",  # validating_policy's message
                "warn": "The label `team` is required.",
                "error": "error",
                "skip": f"rule is skipped due to policy exception: {', '.join(exceptions)}",
            }
            if cel
            else {
                "pass": "rule passed",
                "fail": f"validation error: rule {rule} failed at path /metadata/labels/",
                "warn": f"validation error: rule {rule} failed at path /metadata/labels/",
                "error": f"failed to substitute variables in rule {rule}",
                "skip": (
                    f"rule is skipped due to policy exception {exceptions[0]}"
                    if exceptions
                    else "rule skipped due to preconditions"
                ),
            }
        )[result]
    properties = {"process": process}
    if cel and result in ("fail", "warn", "error"):
        properties["cel.validationIndex"] = "0"
    if exceptions:
        properties["exceptions"] = ",".join(e.rpartition("/")[2] for e in exceptions)
        if cel:
            rule = "exception"
    entry: Obj = {"source": source, "policy": policy}
    if rule:
        entry["rule"] = rule
    entry.update(
        {
            "result": result,
            "scored": result != "warn",
            "severity": severity,
            "category": category,
            "message": message,
            "properties": properties,
            "timestamp": {"seconds": seconds, "nanos": 0},
        }
    )
    return entry


def summarize(results: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """The ``summary`` block: a count for each of the five results."""
    counts = Counter(r["result"] for r in results)
    return {result: counts.get(result, 0) for result in RESULTS}


ReportFormat = Literal["wgpolicyk8s", "openreports"]
_REPORT_KINDS: dict[ReportFormat, tuple[str, str, str]] = {
    "wgpolicyk8s": ("wgpolicyk8s.io/v1alpha2", "PolicyReport", "ClusterPolicyReport"),
    "openreports": ("openreports.io/v1alpha1", "Report", "ClusterReport"),
}


def resource_report(
    subject: ResourceRef, results: Sequence[Obj], *, fmt: ReportFormat = "wgpolicyk8s"
) -> Obj:
    """Kyverno's per-resource report on ``subject``.

    Named by the subject's UID, in its namespace (cluster-scoped subjects get the Cluster kind),
    with ``scope`` and an owner reference to it. ``openreports`` gives the ``openreports.io``
    Report that Kyverno writes instead when ``--openreportsEnabled`` is set.
    """
    api_version, kind, cluster_kind = _REPORT_KINDS[fmt]
    metadata: Obj = {
        "name": subject.uid,
        "labels": dict(MANAGED_BY_KYVERNO),
        "ownerReferences": [
            {
                "apiVersion": subject.api_version,
                "kind": subject.kind,
                "name": subject.name,
                "uid": subject.uid,
            }
        ],
    }
    if subject.namespace is not None:
        metadata["namespace"] = subject.namespace
    return {
        "apiVersion": api_version,
        "kind": kind if subject.namespace is not None else cluster_kind,
        "metadata": metadata,
        "scope": subject.scope(),
        "summary": summarize(results),
        "results": list(results),
    }


@dataclass(frozen=True)
class PolicyRule:
    """A policy/rule pair as it appears in report results, with its report metadata.

    A ValidatingPolicy has no rules: give it ``rule=""`` and
    ``source=VALIDATING_POLICY_SOURCE``, as Kyverno reports it.
    """

    policy: str
    rule: str
    severity: str = "medium"
    category: str = "Best Practices"
    source: str = KYVERNO_SOURCE


SAMPLE_RULES: tuple[PolicyRule, ...] = (
    PolicyRule("require-labels", "autogen-check-for-labels"),
    PolicyRule("disallow-latest-tag", "autogen-require-image-tag"),
    PolicyRule("disallow-latest-tag", "autogen-validate-image-tag"),
    PolicyRule(
        "require-requests-limits",
        "autogen-validate-resources",
        category="Best Practices, EKS Best Practices",
    ),
    PolicyRule(
        "disallow-privileged-containers",
        "autogen-privileged-containers",
        category="Pod Security Standards (Baseline)",
    ),
)
"""Rules of the sample policies as Kyverno reports them on a Deployment (autogen names)."""


def report_fleet(
    namespaces: Sequence[str],
    per_namespace: int,
    *,
    rules: Sequence[PolicyRule] = SAMPLE_RULES,
    weights: Mapping[Result, int] | None = None,
    fmt: ReportFormat = "wgpolicyk8s",
    rng_seed: int = 0,
) -> list[Obj]:
    """Per-resource reports for ``per_namespace`` Deployments in each namespace.

    Deterministic for a given ``rng_seed`` (UIDs included); the Deployments need not exist, as
    nothing garbage-collects in the test control plane. Sum ``summary`` blocks to know what
    was seeded.
    """
    rng = random.Random(rng_seed)
    weights = weights or {"pass": 6, "fail": 3, "warn": 0, "error": 0, "skip": 1}
    outcomes, odds = list(weights), list(weights.values())
    reports = []
    for namespace in namespaces:
        for i in range(per_namespace):
            uid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            subject = ResourceRef("apps/v1", "Deployment", f"app-{i}", namespace, uid)
            results = []
            for r in rules:
                outcome = rng.choices(outcomes, weights=odds)[0]
                exceptions = [f"{namespace}/{r.policy}-exception"] if outcome == "skip" else []
                results.append(
                    report_result(
                        r.policy,
                        r.rule,
                        outcome,
                        severity=r.severity,
                        category=r.category,
                        exceptions=exceptions,
                        source=r.source,
                    )
                )
            reports.append(resource_report(subject, results, fmt=fmt))
    return reports


def total_summary(reports: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Sum of the ``summary`` blocks of ``reports``."""
    total = Counter[str]()
    for report in reports:
        total.update(report.get("summary") or {})
    return {result: total.get(result, 0) for result in RESULTS}


# --- Helm ----------------------------------------------------------------------------------------


def helm_release(
    name: str = "kyverno",
    namespace: str = "kyverno",
    revision: int = 1,
    *,
    status: str = "deployed",
    chart_version: str = "3.9.0",
    app_version: str = "v1.19.0",
    config: Mapping[str, Any] | None = None,
    chart_values: Mapping[str, Any] | None = None,
    deployed_at: datetime.datetime | None = None,
) -> Obj:
    """The release JSON Helm 3 stores (``release.Release``); ``config`` is the user values
    (what ``helm get values`` prints), ``chart.values`` the chart defaults."""
    when = (deployed_at or datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)).isoformat()
    return {
        "name": name,
        "info": {
            "first_deployed": when,
            "last_deployed": when,
            "deleted": "",
            "description": "Install complete" if revision == 1 else "Upgrade complete",
            "status": status,
            "notes": "Thank you for installing kyverno!",
        },
        "chart": {
            "metadata": {
                "name": "kyverno",
                "version": chart_version,
                "appVersion": app_version,
                "apiVersion": "v2",
                "description": "Kubernetes Native Policy Management",
                "type": "application",
            },
            "lock": None,
            "templates": [],
            "values": dict(chart_values or {}),
            "schema": None,
            "files": [],
        },
        "config": dict(config or {}),
        "manifest": "---\n# Source: kyverno/templates/namespace.yaml\n",
        "hooks": [],
        "version": revision,
        "namespace": namespace,
    }


def helm_release_secret(release: Mapping[str, Any], *, created_at: int = 1_767_225_600) -> Obj:
    """The Secret Helm's ``secrets`` storage driver writes for ``release``.

    Helm stores ``base64(gzip(json))`` in ``data.release``; Secret ``data`` is base64 again on
    the wire, so the dict carries the string encoded twice.
    """
    encoded = base64.b64encode(gzip.compress(json.dumps(release).encode(), compresslevel=9))
    name, revision = release["name"], release["version"]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "helm.sh/release.v1",
        "metadata": {
            "name": f"sh.helm.release.v1.{name}.v{revision}",
            "namespace": release["namespace"],
            "labels": {
                "owner": "helm",
                "name": name,
                "status": release["info"]["status"],
                "version": str(revision),
                "createdAt": str(created_at),
            },
        },
        "data": {"release": base64.b64encode(encoded).decode()},
    }


def decode_helm_release_secret(secret: Mapping[str, Any]) -> Obj:
    """Inverse of :func:`helm_release_secret`, as Helm reads it (old releases are not gzipped)."""
    raw = base64.b64decode(base64.b64decode(secret["data"]["release"]))
    if raw[:3] == b"\x1f\x8b\x08":
        raw = gzip.decompress(raw)
    result: Obj = json.loads(raw)
    return result


# --- other objects -------------------------------------------------------------------------------


def namespace(name: str, *, labels: Mapping[str, str] | None = None) -> Obj:
    """A Namespace (for example labelled to match a ``namespaceSelector`` override)."""
    metadata: Obj = {"name": name}
    if labels:
        metadata["labels"] = dict(labels)
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata}


def deployment(
    name: str,
    namespace_: str,
    *,
    image: str = "nginx:1.27",
    labels: Mapping[str, str] | None = None,
) -> Obj:
    """A Deployment (no controllers run, so it never gets Pods; its UID is what reports need)."""
    selector = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace_, "labels": dict(labels or {})},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": {**selector, **(labels or {})}},
                "spec": {"containers": [{"name": name, "image": image}]},
            },
        },
    }


# --- writing to the API server -------------------------------------------------------------------

_CUSTOM_PLURALS: dict[tuple[str, str], str] = {
    ("kyverno.io", "ClusterPolicy"): "clusterpolicies",
    ("kyverno.io", "Policy"): "policies",
    ("kyverno.io", "PolicyException"): "policyexceptions",
    ("policies.kyverno.io", "ValidatingPolicy"): "validatingpolicies",
    ("policies.kyverno.io", "NamespacedValidatingPolicy"): "namespacedvalidatingpolicies",
    ("policies.kyverno.io", "PolicyException"): "policyexceptions",
    ("wgpolicyk8s.io", "PolicyReport"): "policyreports",
    ("wgpolicyk8s.io", "ClusterPolicyReport"): "clusterpolicyreports",
    ("openreports.io", "Report"): "reports",
    ("openreports.io", "ClusterReport"): "clusterreports",
}
"""Kinds of the CRDs the test planes install (``TEST_PLANE_CRDS`` in ``tests/kube/fixtures.py``)."""


def plural(api_version: str, kind: str) -> str:
    """Resource name of a custom kind seeded here, for ``CustomObjectsApi`` calls."""
    return _CUSTOM_PLURALS[(api_version.rpartition("/")[0], kind)]


def _builtin_patch(api: ApiClient, kind: str) -> Callable[..., Any]:
    """The typed client's patch method for a built-in kind, as ``(name, namespace, body, ...)``."""
    from kubernetes import client

    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    patches: dict[str, Callable[..., Any]] = {
        "Namespace": lambda name, _namespace, body, **kw: core.patch_namespace(name, body, **kw),
        "Secret": core.patch_namespaced_secret,
        "ConfigMap": core.patch_namespaced_config_map,
        "Deployment": apps.patch_namespaced_deployment,
    }
    return patches[kind]


def apply_object(
    api: ApiClient, obj: Mapping[str, Any], *, field_manager: str = FIELD_MANAGER
) -> Obj:
    """Server-side apply ``obj`` (create or update) and return the object the server stored.

    Responses are parsed here rather than by the generated client, which drops the body of a
    201 (created) answer to an apply PATCH.
    """
    from kubernetes import client

    group, _, version = obj["apiVersion"].rpartition("/")
    name, ns = obj["metadata"]["name"], obj["metadata"].get("namespace")
    options: Obj = {
        "field_manager": field_manager,
        "force": True,
        "_content_type": "application/apply-patch+yaml",
        "_preload_content": False,
    }
    body = dict(obj)
    response: Any
    if (group, obj["kind"]) in _CUSTOM_PLURALS:
        custom = client.CustomObjectsApi(api)
        resource = plural(obj["apiVersion"], obj["kind"])
        if ns is None:
            response = custom.patch_cluster_custom_object(
                group, version, resource, name, body, **options
            )
        else:
            response = custom.patch_namespaced_custom_object(
                group, version, ns, resource, name, body, **options
            )
    else:
        response = _builtin_patch(api, obj["kind"])(name, ns, body, **options)
    stored: Obj = json.loads(response.data)
    return stored


def apply_objects(
    api: ApiClient,
    objects: Iterable[Mapping[str, Any]],
    *,
    workers: int = 8,
    field_manager: str = FIELD_MANAGER,
) -> list[Obj]:
    """Server-side apply many objects in parallel; Namespaces first, results in input order."""
    objects = list(objects)
    stored: list[Obj] = [{} for _ in objects]
    namespaces = [i for i, obj in enumerate(objects) if obj["kind"] == "Namespace"]
    others = [i for i, obj in enumerate(objects) if obj["kind"] != "Namespace"]

    def apply(i: int) -> None:
        stored[i] = apply_object(api, objects[i], field_manager=field_manager)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for batch in (namespaces, others):  # namespaced objects need their Namespace first
            list(pool.map(apply, batch))
    return stored
