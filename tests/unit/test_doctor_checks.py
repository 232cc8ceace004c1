"""The doctor's checks, one by one: pass, warn and fail from hand-built health models."""

from __future__ import annotations

import base64
import dataclasses
import gzip
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.doctor.checks import go_duration_seconds, run_checks
from bot.doctor.filters import parse_resource_filters
from bot.doctor.migration import policy_apis
from bot.doctor.model import Finding, Gap, KyvernoHealth, Verdict
from bot.doctor.reader import deployment_from_object
from bot.helm import decode_releases, decode_revision, values_drift
from bot.playground import seed
from bot.ports.helm_values import BackedUpValues

DATA = Path(__file__).parents[1] / "data" / "doctor"
CHART_FILTERS = (DATA / "resource-filters-chart-3.9.0.txt").read_text()
EXC_NS = "kyverno-exceptions"
RESOURCES = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "384Mi"}}
EXCEPTION_ARGS = ("--enablePolicyException=true", f"--exceptionNamespace={EXC_NS}")


def deployment(
    role: str,
    *,
    replicas: int | None = 1,
    ready: int | None = None,
    args: tuple[str, ...] = (),
    resources: dict[str, Any] | None = None,
    image: str = "reg.kyverno.io/kyverno/kyverno:v1.19.0",
) -> dict[str, Any]:
    """A controller Deployment shaped like the chart's (labels, container names)."""
    component = f"{role}-controller"
    container: dict[str, Any] = {
        "name": "kyverno" if role == "admission" else "controller",
        "image": image,
        "args": list(args),
        "resources": RESOURCES if resources is None else resources,
    }
    obj: dict[str, Any] = {
        "metadata": {
            "name": f"kyverno-{component}",
            "namespace": "kyverno",
            "labels": {
                "app.kubernetes.io/component": component,
                "app.kubernetes.io/instance": "kyverno",
                "app.kubernetes.io/part-of": "kyverno",
                "app.kubernetes.io/version": "3.9.0",
                "helm.sh/chart": "kyverno-3.9.0",
            },
        },
        "spec": {"template": {"spec": {"containers": [container]}}},
    }
    if replicas is not None:
        obj["spec"]["replicas"] = replicas
    if ready is not None:
        obj["status"] = {"replicas": replicas, "readyReplicas": ready}
    return obj


def release(
    *revisions: tuple[int, str], name: str = "kyverno", config: dict[str, Any] | None = None
) -> Any:
    secrets = [
        seed.helm_release_secret(
            seed.helm_release(
                name,
                "kyverno",
                number,
                status=status,
                chart_version=f"3.9.{number - 1}",
                config=config,
                deployed_at=datetime(2026, 11, number, 10, tzinfo=UTC),
            )
        )
        for number, status in revisions
    ]
    return decode_releases(name, "kyverno", secrets)


def healthy(**changes: Any) -> KyvernoHealth:
    """Kyverno as the runbook wants it: every check passes."""
    health = KyvernoHealth(
        environment="production",
        namespace="kyverno",
        located_by="labels",
        deployments=tuple(
            deployment_from_object(d)
            for d in (
                deployment("admission", replicas=3, ready=3, args=EXCEPTION_ARGS),
                deployment("background", ready=1, args=EXCEPTION_ARGS),
                deployment("cleanup", ready=1),
                deployment("reports", ready=1, args=EXCEPTION_ARGS),
            )
        ),
        filters=parse_resource_filters(CHART_FILTERS),
        config_map_found=True,
        releases=(release((1, "superseded"), (2, "deployed")),),
        release_lookups={"kyverno": ("kyverno",), "policy-reporter": ("kyverno",)},
    )
    return dataclasses.replace(health, **changes)


def with_deployment(health: KyvernoHealth, obj: dict[str, Any]) -> KyvernoHealth:
    parsed = deployment_from_object(obj)
    others = [d for d in health.deployments if d.role != parsed.role]
    return dataclasses.replace(health, deployments=(parsed, *others))


def without(health: KyvernoHealth, role: str) -> KyvernoHealth:
    return dataclasses.replace(
        health, deployments=tuple(d for d in health.deployments if d.role != role)
    )


def check(health: KyvernoHealth, name: str, **kwargs: Any) -> Finding:
    findings = [
        f for f in run_checks(health, exceptions_namespace=EXC_NS, **kwargs) if f.check == name
    ]
    assert len(findings) == 1, findings
    return findings[0]


def test_healthy_install_passes_every_check() -> None:
    findings = run_checks(healthy(), exceptions_namespace=EXC_NS)
    assert [(f.check, f.verdict) for f in findings] == [
        ("admission-replicas", Verdict.PASS),
        ("controllers", Verdict.PASS),
        ("resources", Verdict.PASS),
        ("exceptions", Verdict.PASS),
        ("background-scan", Verdict.PASS),
        ("resource-filters", Verdict.PASS),
        ("helm-kyverno", Verdict.PASS),
    ]
    texts = {f.check: f.summary for f in findings}
    assert texts["admission-replicas"] == "admission controller 3/3 ready"
    assert texts["exceptions"] == (
        "PolicyExceptions enabled, accepted from kyverno-exceptions (matches policy-bot)"
    )
    assert texts["background-scan"] == "background scan every 1h (default)"
    assert texts["helm-kyverno"] == "Helm revision 2 (chart 3.9.1) deployed on 2026-11-02"
    assert texts["resource-filters"].startswith(
        "resource filters exclude kube-system, kube-public, kube-node-lease, kyverno, Events"
    )


# -- admission replicas ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("replicas", "ready", "verdict", "summary"),
    [
        (3, 3, Verdict.PASS, "admission controller 3/3 ready"),
        (2, 2, Verdict.WARN, "admission controller 2/2 ready — the runbook asks for 3"),
        (1, 1, Verdict.FAIL, "admission controller 1/1 ready — the runbook asks for 3"),
        (None, 1, Verdict.FAIL, "admission controller 1/1 ready — the runbook asks for 3"),
        (3, 2, Verdict.WARN, "admission controller 2/3 ready"),
        (3, 0, Verdict.FAIL, "admission controller 0/3 ready"),
        (3, None, Verdict.WARN, "admission controller 3 desired, no status reported"),
    ],
)
def test_admission_replicas(
    replicas: int | None, ready: int | None, verdict: Verdict, summary: str
) -> None:
    health = with_deployment(
        healthy(), deployment("admission", replicas=replicas, ready=ready, args=EXCEPTION_ARGS)
    )
    finding = check(health, "admission-replicas")
    assert (finding.verdict, finding.summary) == (verdict, summary)
    if replicas is None or replicas < 3:
        assert finding.fix == ("admissionController.replicas: 3",)
        assert finding.why


def test_missing_admission_controller_fails() -> None:
    finding = check(without(healthy(), "admission"), "admission-replicas")
    assert finding.verdict is Verdict.FAIL
    assert finding.summary == "no admission controller Deployment in namespace kyverno"


# -- other controllers ----------------------------------------------------------------------


def test_missing_scaled_down_and_unready_controllers() -> None:
    health = without(healthy(), "cleanup")
    health = with_deployment(health, deployment("reports", replicas=0, ready=0))
    health = with_deployment(health, deployment("background", replicas=2, ready=1))
    findings = {
        f.check: f
        for f in run_checks(health, exceptions_namespace=EXC_NS)
        if f.check.endswith("-controller")
    }
    cleanup = findings["cleanup-controller"]
    assert cleanup.verdict is Verdict.WARN
    assert cleanup.fix == ("cleanupController.enabled: true",)
    assert "cleanup.kyverno.io/ttl" in cleanup.why
    assert findings["reports-controller"].summary == "reports controller scaled to 0"
    assert findings["reports-controller"].fix == ("reportsController.replicas: 1",)
    assert findings["background-controller"].summary == "background controller 1/2 ready"
    assert findings["background-controller"].verdict is Verdict.WARN


def test_controller_with_no_ready_replica_fails() -> None:
    health = with_deployment(healthy(), deployment("background", replicas=1, ready=0))
    finding = check(health, "background-controller")
    assert finding.verdict is Verdict.FAIL


# -- resources ------------------------------------------------------------------------------


def test_controllers_without_requests_or_limits_warn_with_chart_keys() -> None:
    health = with_deployment(healthy(), deployment("reports", ready=1, resources={}))
    health = with_deployment(
        health,
        deployment(
            "admission",
            replicas=3,
            ready=3,
            args=EXCEPTION_ARGS,
            resources={"requests": {"cpu": "1"}, "limits": {"cpu": "2"}},
        ),
    )
    reports = check(health, "reports-resources")
    assert reports.verdict is Verdict.WARN
    assert reports.summary == "reports controller has no resource requests and no limits"
    assert reports.fix == (
        "reportsController.resources.requests.cpu: 100m",
        "reportsController.resources.requests.memory: 64Mi",
        "reportsController.resources.limits.memory: 128Mi",
    )
    admission = check(health, "admission-resources")
    assert admission.summary == "admission controller has no resource memory limit"
    assert admission.fix == ("admissionController.container.resources.limits.memory: 384Mi",)
    assert not [
        f for f in run_checks(health, exceptions_namespace=EXC_NS) if f.check == "resources"
    ]


# -- PolicyExceptions -----------------------------------------------------------------------


def _admission_with(*args: str, image: str = "reg/kyverno/kyverno:v1.19.0") -> KyvernoHealth:
    return with_deployment(
        healthy(), deployment("admission", replicas=3, ready=3, args=args, image=image)
    )


@pytest.mark.parametrize(
    ("args", "verdict", "summary"),
    [
        (
            (),
            Verdict.FAIL,
            "PolicyExceptions are disabled (no --enablePolicyException)",
        ),
        (
            ("--enablePolicyException=false", f"--exceptionNamespace={EXC_NS}"),
            Verdict.FAIL,
            "PolicyExceptions are disabled (no --enablePolicyException)",
        ),
        (
            ("--enablePolicyException",),
            Verdict.FAIL,
            "PolicyExceptions are enabled but --exceptionNamespace is empty",
        ),
        (
            ("--enablePolicyException", "--exceptionNamespace", "*"),
            Verdict.WARN,
            "PolicyExceptions are accepted from every namespace",
        ),
        (
            ("-enablePolicyException=true", "-exceptionNamespace=kyverno"),
            Verdict.FAIL,
            "PolicyExceptions are accepted from kyverno, but policy-bot creates them in "
            "kyverno-exceptions",
        ),
        (
            ("--enablePolicyException=true", f"--exceptionNamespace={EXC_NS}"),
            Verdict.PASS,
            "PolicyExceptions enabled, accepted from kyverno-exceptions (matches policy-bot)",
        ),
    ],
)
def test_policy_exceptions(args: tuple[str, ...], verdict: Verdict, summary: str) -> None:
    finding = check(_admission_with(*args), "exceptions")
    assert (finding.verdict, finding.summary) == (verdict, summary)
    if verdict is not Verdict.PASS:
        assert "features.policyExceptions.namespace: kyverno-exceptions" in finding.fix


def test_exceptions_were_on_by_default_in_1_11_and_1_12() -> None:
    finding = check(_admission_with(image="reg/kyverno/kyverno:v1.12.5"), "exceptions")
    assert finding.summary == "PolicyExceptions are accepted from every namespace"


def test_controllers_disagreeing_on_exceptions_warn() -> None:
    health = with_deployment(healthy(), deployment("reports", ready=1))
    finding = check(health, "exceptions-consistent")
    assert finding.verdict is Verdict.WARN
    assert finding.summary.startswith("kyverno-reports-controller read PolicyExceptions")


# -- background scans -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "verdict", "summary"),
    [
        ((), Verdict.PASS, "background scan every 1h (default)"),
        (("--backgroundScanInterval=2h",), Verdict.PASS, "background scan every 2h"),
        (("--backgroundScanInterval", "5m"), Verdict.WARN, "background scan every 5m"),
        (("--backgroundScan=false",), Verdict.WARN, "background scans are disabled"),
        (
            ("--backgroundScanInterval=soon",),
            Verdict.WARN,
            "background scan interval 'soon' is not a duration",
        ),
    ],
)
def test_background_scans(args: tuple[str, ...], verdict: Verdict, summary: str) -> None:
    health = with_deployment(
        healthy(), deployment("reports", ready=1, args=(*args, *EXCEPTION_ARGS))
    )
    finding = check(health, "background-scan")
    assert (finding.verdict, finding.summary) == (verdict, summary)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1h", 3600), ("90m", 5400), ("1h30m0s", 5400), ("1.5h", 5400), ("0", 0), ("500ms", 0.5)],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert go_duration_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "1d", "1h 30m", "-1h"])
def test_not_go_durations(text: str) -> None:
    assert go_duration_seconds(text) is None


# -- versions -------------------------------------------------------------------------------


def test_version_prefers_image_tag_then_helm_then_plain_label() -> None:
    assert healthy().version == "1.19.0"
    digest = "reg/kyverno/kyverno@sha256:" + "a" * 64
    health = healthy(
        deployments=tuple(
            deployment_from_object(deployment(r, ready=1, image=digest))
            for r in ("admission", "background", "cleanup", "reports")
        )
    )
    assert health.version == "1.19.0"  # Helm's appVersion v1.19.0
    plain = deployment("admission", ready=1, image=digest)
    plain["metadata"]["labels"] = {"app.kubernetes.io/version": "v1.18.3"}
    assert healthy(deployments=(deployment_from_object(plain),), releases=()).version == "1.18.3"


def test_mixed_and_old_versions_warn() -> None:
    health = with_deployment(
        healthy(), deployment("reports", ready=1, image="reg/kyverno/kyverno:v1.18.2")
    )
    finding = check(health, "versions")
    assert finding.summary == (
        "controllers run different versions: reports 1.18.2 · admission 1.19.0"
        " · background 1.19.0 · cleanup 1.19.0"
    )
    old = _admission_with(*EXCEPTION_ARGS, image="reg/kyverno/kyverno:v1.12.0")
    old = dataclasses.replace(old, deployments=old.deployments[:1])
    findings = [f for f in run_checks(old, exceptions_namespace=EXC_NS) if f.check == "versions"]
    assert findings[-1].summary == "Kyverno 1.12.0 is older than 1.13"


# -- resource filters -----------------------------------------------------------------------


def test_filters_missing_kube_system_fail_and_name_the_misleading_value() -> None:
    text = CHART_FILTERS.replace("[*/*,kube-system,*]", "")
    finding = check(healthy(filters=parse_resource_filters(text)), "resource-filters")
    assert finding.verdict is Verdict.FAIL
    assert finding.summary == (
        "resource filters do not exclude kube-system "
        "(they do exclude kube-public, kube-node-lease, kyverno)"
    )
    assert finding.fix == ("config.resourceFiltersIncludeNamespaces: [kube-system]",)
    assert "resourceFiltersExcludeNamespaces" in finding.why


def test_filters_missing_kinds_and_public_namespace_warn() -> None:
    text = (
        CHART_FILTERS.replace("[*/*,kube-public,*]", "")
        .replace("[Event,*,*]", "")
        .replace("[Node,*,*]", "[Node/*,*,*]")  # still covers Node: `*` matches no subresource
    )
    finding = check(healthy(filters=parse_resource_filters(text)), "resource-filters")
    assert finding.verdict is Verdict.WARN
    assert finding.summary == (
        "resource filters do not exclude kube-public, Event "
        "(they do exclude kube-system, kube-node-lease, kyverno)"
    )
    assert finding.fix == (
        "config.resourceFiltersIncludeNamespaces: [kube-public]",
        "config.resourceFiltersInclude: ['[Event,*,*]']",
    )


def test_filters_missing_kyverno_namespace_point_at_exclude_kyverno_namespace() -> None:
    text = CHART_FILTERS.replace("[*/*,kyverno,*]", "")
    finding = check(healthy(filters=parse_resource_filters(text)), "resource-filters")
    assert finding.verdict is Verdict.FAIL
    assert finding.fix == ("config.excludeKyvernoNamespace: true",)


def test_filter_entries_with_spaces_do_not_count_and_are_reported() -> None:
    text = CHART_FILTERS.replace("[Event,*,*]", "[Event, *, *]")
    health = healthy(filters=parse_resource_filters(text))
    assert check(health, "resource-filters").summary == "resource filters do not exclude Event"
    entries = check(health, "resource-filter-entries")
    assert entries.verdict is Verdict.WARN
    assert "`[Event, *, *]` contains spaces" in entries.why


def test_missing_config_map_warns_and_forbidden_one_is_a_gap() -> None:
    finding = check(healthy(filters=None, config_map_found=False), "resource-filters")
    assert finding.verdict is Verdict.WARN
    assert "without resource filters" in finding.summary
    gap = Gap("ConfigMap kyverno", "get", "configmaps", "", "kyverno")
    health = healthy(filters=None, config_map_found=False, gaps=(gap,))
    findings = run_checks(health, exceptions_namespace=EXC_NS)
    assert not [f for f in findings if f.check == "resource-filters"]
    rbac = next(f for f in findings if f.check == "rbac-configmaps")
    assert rbac.summary == (
        "could not read ConfigMap kyverno in kyverno: the bot may not get configmaps in "
        "namespace kyverno"
    )
    assert rbac.fix == ('Role in kyverno: apiGroups [""], resources [configmaps], verbs [get]',)


# -- Helm -----------------------------------------------------------------------------------


def test_failed_latest_revision_fails_and_names_the_live_one() -> None:
    health = healthy(releases=(release((6, "superseded"), (7, "deployed"), (8, "failed")),))
    finding = check(health, "helm-kyverno")
    assert finding.verdict is Verdict.FAIL
    assert finding.summary == (
        "Helm revision 8 (chart 3.9.7) failed on 2026-11-08; revision 7 is live"
    )
    assert finding.fix == ("helm rollback kyverno 7 -n kyverno",)


def test_pending_revision_warns() -> None:
    health = healthy(releases=(release((1, "deployed"), (2, "pending-upgrade")),))
    finding = check(health, "helm-kyverno")
    assert finding.verdict is Verdict.WARN
    assert finding.summary == (
        "Helm revision 2 is pending-upgrade since 2026-11-02 10:00 UTC; revision 1 is live"
    )


def test_release_without_deployed_revision_fails() -> None:
    health = healthy(releases=(release((1, "superseded"), (2, "uninstalling")),))
    finding = check(health, "helm-kyverno")
    assert finding.verdict is Verdict.FAIL
    assert finding.summary == "no deployed Helm revision (revision 2 is uninstalling)"


def test_policy_reporter_release_is_checked_with_its_name() -> None:
    reporter = release((1, "deployed"), (2, "failed"), name="policy-reporter")
    health = healthy(releases=(*healthy().releases, reporter))
    finding = check(health, "helm-policy-reporter")
    assert finding.summary.startswith("policy-reporter: Helm revision 2 (chart 3.9.1) failed")


def test_installed_without_helm_warns() -> None:
    finding = check(healthy(releases=()), "helm")
    assert finding.verdict is Verdict.WARN
    assert finding.summary == "Kyverno is not installed with Helm (no release Secrets in kyverno)"


# -- values drift ---------------------------------------------------------------------------


def test_drift_against_the_last_backup() -> None:
    values = {"admissionController": {"replicas": 3}, "features": {"policyExceptions": {}}}
    live = healthy(releases=(release((1, "deployed"), config=values),))
    same = {"kyverno": BackedUpValues("b-20261128-020000", values)}
    assert check(live, "drift-kyverno", backed_up=same).verdict is Verdict.PASS
    older = {
        "kyverno": BackedUpValues("b-20261127-020000", {"admissionController": {"replicas": 1}})
    }
    finding = check(live, "drift-kyverno", backed_up=older)
    assert finding.verdict is Verdict.WARN
    assert finding.summary == (
        "deployed kyverno values differ from backup b-20261127-020000: "
        "admissionController.replicas, features.policyExceptions"
    )
    # no backup: no drift finding at all
    assert not [f for f in run_checks(live, exceptions_namespace=EXC_NS) if "drift" in f.check]


def test_values_drift_paths() -> None:
    changed, added, removed = values_drift(
        {"a": {"b": 1, "c": [1]}, "d": 1}, {"a": {"b": 2, "c": [1], "e": 0}}
    )
    assert (changed, added, removed) == (("a.b",), ("d",), ("a.e",))


# -- not installed, RBAC --------------------------------------------------------------------


def test_not_installed_is_one_failure() -> None:
    health = KyvernoHealth(environment="dev", namespace="kyverno", located_by="default")
    assert health.installed is False
    (finding,) = run_checks(health, exceptions_namespace=EXC_NS)
    assert finding.verdict is Verdict.FAIL
    assert finding.summary.startswith("Kyverno is not installed")


def test_forbidden_deployments_skip_their_checks_and_name_the_permission() -> None:
    gap = Gap("Deployments", "list", "deployments", "apps", "kyverno")
    health = healthy(deployments=(), deployments_read=False, gaps=(gap,))
    findings = run_checks(health, exceptions_namespace=EXC_NS)
    assert [f.check for f in findings] == ["resource-filters", "helm-kyverno", "rbac-deployments"]
    assert findings[-1].summary == (
        "could not read Deployments in kyverno: the bot may not list deployments.apps in "
        "namespace kyverno"
    )
    assert health.version == "1.19.0"  # from Helm


# -- Helm decoding --------------------------------------------------------------------------


def test_decode_revision_reads_what_helm_history_shows() -> None:
    secret = seed.helm_release_secret(
        seed.helm_release(
            revision=7,
            config={"admissionController": {"replicas": 3}},
            deployed_at=datetime(2026, 11, 2, tzinfo=UTC),
        )
    )
    revision = decode_revision(secret)
    assert (revision.release, revision.namespace, revision.revision) == ("kyverno", "kyverno", 7)
    assert (revision.chart, revision.chart_version, revision.app_version) == (
        "kyverno",
        "3.9.0",
        "v1.19.0",
    )
    assert revision.status == "deployed"
    assert revision.updated == datetime(2026, 11, 2, tzinfo=UTC)
    assert revision.values == {"admissionController": {"replicas": 3}}


def test_uncompressed_nanosecond_and_broken_payloads() -> None:
    body = seed.helm_release(revision=3)
    body["info"]["last_deployed"] = "2026-11-02T10:11:12.123456789+01:00"
    plain = base64.b64encode(base64.b64encode(json.dumps(body).encode())).decode()
    secret = seed.helm_release_secret(body)
    secret["data"]["release"] = plain
    revision = decode_revision(secret)
    assert revision.updated == datetime(2026, 11, 2, 9, 11, 12, 123456, tzinfo=UTC)
    broken = seed.helm_release_secret(seed.helm_release(revision=4))
    broken["data"]["release"] = base64.b64encode(base64.b64encode(gzip.compress(b"{"))).decode()
    garbage = seed.helm_release_secret(seed.helm_release(revision=5))
    garbage["data"]["release"] = "not base64!"
    other = seed.helm_release_secret(seed.helm_release("policy-reporter", revision=1))
    history = decode_releases("kyverno", "kyverno", [garbage, broken, other, secret])
    assert [r.revision for r in history.revisions] == [3]
    assert history.undecodable == ("sh.helm.release.v1.kyverno.v4", "sh.helm.release.v1.kyverno.v5")


def test_long_histories_decode_only_the_newest_and_the_deployed_revision() -> None:
    statuses = ["superseded", "deployed", "failed", "failed", "failed", "pending-upgrade"]
    secrets = [
        seed.helm_release_secret(
            seed.helm_release(revision=n, status=status), created_at=1_790_000_000 + n
        )
        for n, status in enumerate(statuses, start=1)
    ]
    history = decode_releases("kyverno", "kyverno", secrets[::-1], decode_last=2)
    assert [r.revision for r in history.revisions] == [1, 2, 3, 4, 5, 6]
    decoded = [r.revision for r in history.revisions if r.chart_version]
    assert decoded == [2, 5, 6]
    first = history.revisions[0]
    assert (first.status, first.updated) == (
        "superseded",
        datetime.fromtimestamp(1_790_000_001, UTC),
    )
    assert history.deployed is not None and history.deployed.values == {}
    assert history.latest is not None and history.latest.status == "pending-upgrade"


# -- deprecated policy APIs ---------------------------------------------------------------------


def test_policies_on_the_deprecated_api_are_counted_with_their_twins() -> None:
    apis = policy_apis(
        {
            ("kyverno.io", "ClusterPolicy"): ["disallow-proc-mount", "require-labels", "b"],
            ("kyverno.io", "Policy"): ["team-a/limits", "team-b/limits"],
            ("kyverno.io", "PolicyException"): ["kyverno-exceptions/pe-1"],
            ("policies.kyverno.io", "ValidatingPolicy"): ["disallow-proc-mount", "other"],
            ("policies.kyverno.io", "MutatingPolicy"): ["require-labels"],
            ("policies.kyverno.io", "NamespacedValidatingPolicy"): ["team-b/limits"],
            ("policies.kyverno.io", "PolicyException"): ["elsewhere/pe-1"],
        }
    )
    assert apis.legacy == {"ClusterPolicy": 3, "Policy": 2, "PolicyException": 1}
    assert [(t.kind, t.ref, t.twin_kind) for t in apis.twins] == [
        ("ClusterPolicy", "disallow-proc-mount", "ValidatingPolicy"),
        ("ClusterPolicy", "require-labels", "MutatingPolicy"),
        ("Policy", "team-b/limits", "NamespacedValidatingPolicy"),
    ]
    finding = check(healthy(policy_apis=apis), "deprecated-api")
    assert finding.verdict is Verdict.WARN
    assert finding.summary == (
        "6 objects use the deprecated kyverno.io API (3 ClusterPolicy, 2 Policy, "
        "1 PolicyException); 3 already have a policies.kyverno.io twin of the same name "
        "(ClusterPolicy disallow-proc-mount → ValidatingPolicy, ClusterPolicy require-labels → "
        "MutatingPolicy, Policy team-b/limits → NamespacedValidatingPolicy)"
    )
    assert "https://kyverno.io/docs/guides/migration-to-cel/" in finding.why
    one = check(
        healthy(policy_apis=policy_apis({("kyverno.io", "Policy"): ["a/b"]})), "deprecated-api"
    )
    assert one.summary == "1 object uses the deprecated kyverno.io API (1 Policy)"


def test_only_policies_kyverno_io_passes_and_an_unreadable_listing_says_nothing() -> None:
    clean = policy_apis({("policies.kyverno.io", "ValidatingPolicy"): ["a"]})
    assert check(healthy(policy_apis=clean), "deprecated-api").verdict is Verdict.PASS
    unread = [f for f in run_checks(healthy(), exceptions_namespace=EXC_NS)]
    assert not [f for f in unread if f.check == "deprecated-api"]


def test_a_cluster_wide_gap_names_a_cluster_role() -> None:
    gap = Gap("ClusterPolicy objects", "list", "clusterpolicies", "kyverno.io", "")
    (finding,) = [
        f
        for f in run_checks(healthy(gaps=(gap,)), exceptions_namespace=EXC_NS)
        if f.check == "rbac-clusterpolicies"
    ]
    assert finding.summary == (
        "could not read ClusterPolicy objects: the bot may not list clusterpolicies.kyverno.io "
        "cluster-wide"
    )
    assert finding.fix == (
        'ClusterRole: apiGroups ["kyverno.io"], resources [clusterpolicies], verbs [list]',
    )
