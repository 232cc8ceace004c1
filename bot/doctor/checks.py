"""The runbook's checks, as pure functions of a `KyvernoHealth`.

Each check yields findings with a verdict, one line on why it matters, and the Helm values
(keys of the Kyverno chart 3.9.0) that would fix it. A piece the bot could not read yields a
warning naming the missing permission, and the checks that need it are skipped rather than
guessed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime

from bot.doctor.migration import MIGRATION_GUIDE
from bot.doctor.model import (
    Deployment,
    Finding,
    Gap,
    KyvernoHealth,
    Verdict,
    version_tuple,
)
from bot.doctor.runbook import (
    ADMISSION_REPLICAS,
    CONTROLLER_BY_ROLE,
    CONTROLLERS,
    EXCEPTIONS_SINCE,
    FILTERED_KINDS,
    FILTERED_NAMESPACES,
    MIN_SCAN_INTERVAL_S,
    FilteredNamespace,
)
from bot.helm import PENDING, HelmRelease, values_drift
from bot.ports.helm_values import BackedUpValues

TRUE = ("true", "t", "1", "yes")
DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
UNIT_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def run_checks(
    health: KyvernoHealth,
    *,
    exceptions_namespace: str,
    backed_up: Mapping[str, BackedUpValues] | None = None,
) -> tuple[Finding, ...]:
    """Every finding for one environment, in the order a reader should see them."""
    gaps = [_gap(g) for g in health.gaps]
    if health.installed is False:
        return (_not_installed(health),)
    findings: list[Finding] = []
    if health.deployments_read:
        findings += [
            *admission_replicas(health),
            *other_controllers(health),
            *resources(health),
            *policy_exceptions(health, exceptions_namespace),
            *background_scans(health),
            *versions(health),
        ]
    findings += [*resource_filters(health), *helm_history(health), *deprecated_api(health)]
    findings += drift(health, backed_up or {})
    return (*findings, *gaps)


# -- controllers -------------------------------------------------------------------------------


def admission_replicas(health: KyvernoHealth) -> Iterator[Finding]:
    spec = CONTROLLER_BY_ROLE["admission"]
    fix = (f"{spec.values_key}.replicas: {ADMISSION_REPLICAS}",)
    deployment = health.controller("admission")
    if deployment is None:
        yield Finding(
            "admission-replicas",
            Verdict.FAIL,
            f"no admission controller Deployment in namespace {health.namespace}",
            f"Without it {spec.purpose}.",
            fix,
        )
        return
    desired, ready = deployment.desired, deployment.ready
    state = _readiness(deployment)
    asks = f" — the runbook asks for {ADMISSION_REPLICAS}"
    if desired <= 1:
        yield Finding(
            "admission-replicas",
            Verdict.FAIL,
            f"admission controller {state}{asks}",
            "One replica: every restart or node drain stops admission, and with failurePolicy "
            "Fail it blocks every matching change.",
            fix,
        )
    elif desired < ADMISSION_REPLICAS:
        yield Finding(
            "admission-replicas",
            Verdict.WARN,
            f"admission controller {state}{asks}",
            "With fewer than three replicas a node drain during an upgrade can leave none.",
            fix,
        )
    elif ready is None:
        yield Finding(
            "admission-replicas",
            Verdict.WARN,
            f"admission controller {state}",
            "No controller has reported on the Deployment, so its readiness is unknown.",
        )
    elif ready == 0:
        yield Finding(
            "admission-replicas",
            Verdict.FAIL,
            f"admission controller {state}",
            "No replica answers admission requests: check its pods and events.",
        )
    elif ready < desired:
        yield Finding(
            "admission-replicas",
            Verdict.WARN,
            f"admission controller {state}",
            "Some replicas are not ready, so admission runs without its redundancy.",
        )
    else:
        yield Finding("admission-replicas", Verdict.PASS, f"admission controller {state}")


def other_controllers(health: KyvernoHealth) -> Iterator[Finding]:
    healthy: list[str] = []
    for spec in CONTROLLERS[1:]:
        deployment = health.controller(spec.role)
        if deployment is None:
            yield Finding(
                f"{spec.role}-controller",
                Verdict.WARN,
                f"no {spec.role} controller Deployment in namespace {health.namespace}",
                f"Without it {spec.purpose}.",
                (f"{spec.values_key}.enabled: true",),
            )
        elif deployment.desired == 0:
            yield Finding(
                f"{spec.role}-controller",
                Verdict.WARN,
                f"{spec.role} controller scaled to 0",
                f"Without it {spec.purpose}.",
                (f"{spec.values_key}.replicas: 1",),
            )
        elif deployment.ready is None or deployment.ready < deployment.desired:
            verdict = Verdict.FAIL if deployment.ready == 0 else Verdict.WARN
            yield Finding(
                f"{spec.role}-controller",
                verdict,
                f"{spec.role} controller {_readiness(deployment)}",
                f"While it is not ready {spec.purpose}.",
            )
        else:
            healthy.append(f"{spec.role} {deployment.ready}/{deployment.desired}")
    if len(healthy) == len(CONTROLLERS) - 1:
        yield Finding("controllers", Verdict.PASS, "controllers ready: " + " · ".join(healthy))


def resources(health: KyvernoHealth) -> Iterator[Finding]:
    unset = 0
    for deployment in health.deployments:
        spec = CONTROLLER_BY_ROLE.get(deployment.role or "")
        container = deployment.main
        if spec is None or container is None:
            continue
        missing: list[str] = []
        why: list[str] = []
        fix: list[str] = []
        if not container.requests:
            missing.append("requests")
            why.append("Without requests the scheduler may place it on a full node.")
            fix += [f"{spec.resources_key}.requests.{k}: {v}" for k, v in spec.requests]
        if "memory" not in container.limits:
            missing.append("memory limit" if container.limits else "limits")
            why.append("Without a memory limit a leak in it can exhaust the node.")
            fix += [f"{spec.resources_key}.limits.{k}: {v}" for k, v in spec.limits]
        if missing:
            unset += 1
            yield Finding(
                f"{spec.role}-resources",
                Verdict.WARN,
                f"{spec.role} controller has no resource {' and no '.join(missing)}",
                " ".join(why),
                tuple(fix),
            )
    if not unset and health.deployments:
        yield Finding(
            "resources", Verdict.PASS, "resource requests and limits set on every controller"
        )


# -- PolicyExceptions and scans ----------------------------------------------------------------


def policy_exceptions(health: KyvernoHealth, expected: str) -> Iterator[Finding]:
    """Whether exceptions are honoured, and from the namespace policy-bot writes them to."""
    deployment = health.controller("admission")
    if deployment is None:
        return
    enabled, namespace = _exception_flags(deployment, health.version)
    fix_ns = f"features.policyExceptions.namespace: {expected}"
    if not enabled:
        yield Finding(
            "exceptions",
            Verdict.FAIL,
            "PolicyExceptions are disabled (no --enablePolicyException)",
            "Every exception approved in Slack would be admitted with a warning and then "
            "ignored by Kyverno.",
            ("features.policyExceptions.enabled: true", fix_ns),
        )
        return
    if not namespace:
        yield Finding(
            "exceptions",
            Verdict.FAIL,
            "PolicyExceptions are enabled but --exceptionNamespace is empty",
            "Since Kyverno 1.13 an empty namespace means every exception is ignored.",
            (fix_ns,),
        )
        return
    if namespace == "*":
        yield Finding(
            "exceptions",
            Verdict.WARN,
            "PolicyExceptions are accepted from every namespace",
            "Anyone who may create a PolicyException anywhere can exempt their own workloads "
            f"without a ticket; policy-bot writes them to {expected} only.",
            (fix_ns,),
        )
    elif namespace != expected:
        yield Finding(
            "exceptions",
            Verdict.FAIL,
            f"PolicyExceptions are accepted from {namespace}, but policy-bot creates them "
            f"in {expected}",
            "Exceptions approved in Slack would be admitted with a warning and then ignored.",
            (fix_ns,),
        )
    else:
        yield Finding(
            "exceptions",
            Verdict.PASS,
            f"PolicyExceptions enabled, accepted from {namespace} (matches policy-bot)",
        )
    others = [
        d.name
        for d in health.deployments
        if d.role in ("background", "reports")
        and _exception_flags(d, health.version) != (enabled, namespace)
    ]
    if others:
        yield Finding(
            "exceptions-consistent",
            Verdict.WARN,
            f"{', '.join(others)} read PolicyExceptions differently from the admission controller",
            "Background scans would then report as failing what admission lets through.",
            ("features.policyExceptions only (no per-controller featuresOverride)",),
        )


def background_scans(health: KyvernoHealth) -> Iterator[Finding]:
    deployment = health.controller("reports")
    if deployment is None:
        return  # reported as a missing controller
    enabled = deployment.flag("backgroundScan")
    if enabled is not None and enabled.lower() not in TRUE:
        yield Finding(
            "background-scan",
            Verdict.WARN,
            "background scans are disabled",
            "Existing resources are never re-checked: reports only cover what was admitted.",
            ("features.backgroundScan.enabled: true",),
        )
        return
    interval = deployment.flag("backgroundScanInterval")
    shown = interval or "1h (default)"
    seconds = go_duration_seconds(interval or "1h")
    if seconds is None:
        yield Finding(
            "background-scan",
            Verdict.WARN,
            f"background scan interval {interval!r} is not a duration",
            "The reports controller would refuse to start or fall back to its default.",
            ("features.backgroundScan.backgroundScanInterval: 1h",),
        )
    elif seconds < MIN_SCAN_INTERVAL_S:
        yield Finding(
            "background-scan",
            Verdict.WARN,
            f"background scan every {shown}",
            "Scanning every resource this often loads the API server for little news.",
            ("features.backgroundScan.backgroundScanInterval: 1h",),
        )
    else:
        yield Finding("background-scan", Verdict.PASS, f"background scan every {shown}")


def versions(health: KyvernoHealth) -> Iterator[Finding]:
    seen = {d.role: d.image_version for d in health.deployments if d.image_version}
    if len(set(seen.values())) > 1:
        yield Finding(
            "versions",
            Verdict.WARN,
            "controllers run different versions: "
            + " · ".join(f"{role} {v}" for role, v in seen.items()),
            "An upgrade did not finish; the controllers may disagree on policy semantics.",
        )
    parsed = version_tuple(health.version)
    if parsed is not None and parsed[:2] < EXCEPTIONS_SINCE:
        yield Finding(
            "versions",
            Verdict.WARN,
            f"Kyverno {health.version} is older than 1.13",
            "Per-rule failureAction and kyverno.io/v2 PolicyExceptions, which policy-bot "
            "writes, need 1.13 or later.",
            ("chart version ≥ 3.3.0",),
        )


# -- deprecated policy APIs --------------------------------------------------------------------

TWINS_LISTED = 5


def deprecated_api(health: KyvernoHealth) -> Iterator[Finding]:
    """Policies on the kyverno.io API that Kyverno 1.19 deprecates, and their twins."""
    apis = health.policy_apis
    if apis is None:
        return  # the listing was forbidden: its gap says so
    if not apis.total:
        yield Finding(
            "deprecated-api",
            Verdict.PASS,
            "no policy uses the deprecated kyverno.io policy API",
        )
        return
    counts = ", ".join(f"{n} {kind}" for kind, n in apis.legacy.items())
    uses = "object uses" if apis.total == 1 else "objects use"
    summary = f"{apis.total} {uses} the deprecated kyverno.io API ({counts})"
    if apis.twins:
        shown = ", ".join(f"{t.kind} {t.ref} → {t.twin_kind}" for t in apis.twins[:TWINS_LISTED])
        more = (
            f" and {len(apis.twins) - TWINS_LISTED} more" if len(apis.twins) > TWINS_LISTED else ""
        )
        has = "has" if len(apis.twins) == 1 else "have"
        summary += (
            f"; {len(apis.twins)} already {has} a policies.kyverno.io twin of the same name "
            f"({shown}{more})"
        )
    yield Finding(
        "deprecated-api",
        Verdict.WARN,
        summary,
        "Kyverno 1.19 deprecates the kyverno.io policy types for the policies.kyverno.io ones "
        "and warns on every write of them; a later release removes them. A twin enforces "
        "the same intent twice until its kyverno.io original is deleted. Migrate each "
        f"({MIGRATION_GUIDE}), then delete the original once its twin reports Ready.",
    )


# -- resource filters --------------------------------------------------------------------------


def resource_filters(health: KyvernoHealth) -> Iterator[Finding]:
    filters = health.filters
    if filters is None:
        if not any(g.resource == "configmaps" for g in health.gaps):
            yield Finding(
                "resource-filters",
                Verdict.WARN,
                f"ConfigMap {health.namespace}/{health.config_map} not found: Kyverno runs "
                "without resource filters",
                "Kyverno then evaluates kube-system, Events, Nodes and its own objects.",
                ("config.create: true",),
            )
        return
    namespaces = [*FILTERED_NAMESPACES, FilteredNamespace(health.namespace, critical=True)]
    missing_ns = [n for n in namespaces if not filters.filters_namespace(n.namespace)]
    missing_kinds = [
        k for k in FILTERED_KINDS if not filters.filters_kind(k.kind, subresource=k.subresource)
    ]
    if not missing_ns and not missing_kinds:
        shown = ", ".join(n.namespace for n in namespaces)
        kinds = ", ".join(f"{k.label}s" for k in FILTERED_KINDS[:2])
        yield Finding(
            "resource-filters",
            Verdict.PASS,
            f"resource filters exclude {shown}, {kinds} and {len(FILTERED_KINDS) - 2} more kinds",
        )
    else:
        fix: list[str] = []
        plain = [n.namespace for n in missing_ns if n.namespace != health.namespace]
        if plain:
            fix.append(f"config.resourceFiltersIncludeNamespaces: [{', '.join(plain)}]")
        if any(n.namespace == health.namespace for n in missing_ns):
            fix.append("config.excludeKyvernoNamespace: true")
        if missing_kinds:
            entries = ", ".join(f"'{k.entry}'" for k in missing_kinds)
            fix.append(f"config.resourceFiltersInclude: [{entries}]")
        why = []
        if missing_ns:
            why.append(
                "An Enforce policy can then block the cluster's own components (check "
                "config.resourceFiltersExcludeNamespaces: despite its name it removes these "
                "filters)."
            )
        if missing_kinds:
            why.append("High-volume kinds cost admission latency for no policy value.")
        missing = [n.namespace for n in missing_ns] + [k.label for k in missing_kinds]
        critical = any(n.critical for n in missing_ns)
        excluded = [n.namespace for n in namespaces if n not in missing_ns]
        also = f" (they do exclude {', '.join(excluded)})" if excluded and missing_ns else ""
        yield Finding(
            "resource-filters",
            Verdict.FAIL if critical else Verdict.WARN,
            f"resource filters do not exclude {', '.join(missing)}{also}",
            " ".join(why),
            tuple(fix),
        )
    if filters.problems:
        yield Finding(
            "resource-filter-entries",
            Verdict.WARN,
            f"{len(filters.problems)} resource filter entries do nothing as written",
            " · ".join(filters.problems[:3]) + (" · …" if len(filters.problems) > 3 else ""),
            ("config.resourceFilters: entries as '[Kind,Namespace,Name]', no spaces",),
        )


# -- Helm ----------------------------------------------------------------------------------------


def helm_history(health: KyvernoHealth) -> Iterator[Finding]:
    kyverno = health.release("kyverno")
    secrets_readable = not any(g.resource == "secrets" for g in health.gaps)
    if kyverno is None and health.installed and secrets_readable:
        looked = ", ".join(health.release_lookups.get("kyverno", ())) or health.namespace
        yield Finding(
            "helm",
            Verdict.WARN,
            f"Kyverno is not installed with Helm (no release Secrets in {looked})",
            "Without a Helm release there is no revision history and no values to back up "
            "or compare.",
        )
    for release in health.releases:
        yield from _release_findings(release)


def _release_findings(release: HelmRelease) -> Iterator[Finding]:
    latest, live = release.latest, release.deployed
    if latest is None:
        return
    prefix = "" if release.name == "kyverno" else f"{release.name}: "
    live_text = f"revision {live.revision} is live" if live else "no revision is live"
    if latest.status == "failed":
        yield Finding(
            f"helm-{release.name}",
            Verdict.FAIL,
            f"{prefix}Helm revision {latest.revision} (chart {latest.chart_version}) failed"
            f"{_on(latest.updated)}; {live_text}",
            "The cluster may run a half-applied upgrade, and the next upgrade starts from it.",
            (
                f"helm rollback {release.name} {live.revision} -n {release.namespace}"
                if live
                else f"helm upgrade {release.name} with corrected values",
            ),
        )
    elif latest.status in PENDING:
        yield Finding(
            f"helm-{release.name}",
            Verdict.WARN,
            f"{prefix}Helm revision {latest.revision} is {latest.status}{_since(latest.updated)}"
            f"; {live_text}",
            "A pending operation blocks every further upgrade (another operation is in progress).",
            (
                (f"helm rollback {release.name} {live.revision} -n {release.namespace}",)
                if live
                else ()
            ),
        )
    elif live is None:
        yield Finding(
            f"helm-{release.name}",
            Verdict.FAIL,
            f"{prefix}no deployed Helm revision (revision {latest.revision} is {latest.status})",
            "Helm no longer tracks what runs in the cluster.",
        )
    else:
        yield Finding(
            f"helm-{release.name}",
            Verdict.PASS,
            f"{prefix}Helm revision {live.revision} (chart {live.chart_version}) deployed"
            f"{_on(live.updated)}",
        )
    if release.undecodable:
        yield Finding(
            f"helm-{release.name}-secrets",
            Verdict.WARN,
            f"{prefix}{len(release.undecodable)} Helm release Secrets could not be decoded",
            "Their revisions are missing from the history: " + ", ".join(release.undecodable[:3]),
        )


def drift(health: KyvernoHealth, backed_up: Mapping[str, BackedUpValues]) -> Iterator[Finding]:
    """Deployed values compared with the last backup's, per release that has both."""
    for release in health.releases:
        live, backup = release.deployed, backed_up.get(release.name)
        if live is None or backup is None:
            continue
        changed, added, removed = values_drift(live.values, backup.values)
        keys = [*changed, *added, *removed]
        if not keys:
            yield Finding(
                f"drift-{release.name}",
                Verdict.PASS,
                f"deployed {release.name} values match backup {backup.backup_id}",
            )
            continue
        shown = ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")
        yield Finding(
            f"drift-{release.name}",
            Verdict.WARN,
            f"deployed {release.name} values differ from backup {backup.backup_id}: {shown}",
            "A change made outside the reviewed values: a restore from the backup would "
            "silently undo it.",
            (
                f"/policy backup {health.environment} to record them, or helm upgrade "
                f"{release.name} with the backed-up values",
            ),
        )


# -- small pieces --------------------------------------------------------------------------------


def _gap(gap: Gap) -> Finding:
    group = f'"{gap.group}"' if gap.group else '""'
    where = f" in {gap.namespace}" if gap.namespace else ""
    role = f"Role in {gap.namespace}" if gap.namespace else "ClusterRole"
    return Finding(
        f"rbac-{gap.resource}",
        Verdict.WARN,
        f"could not read {gap.what}{where}: the bot may not {gap.permission}",
        "The checks that need it were skipped.",
        (f"{role}: apiGroups [{group}], resources [{gap.resource}], verbs [{gap.verb}]",),
    )


def _not_installed(health: KyvernoHealth) -> Finding:
    return Finding(
        "installed",
        Verdict.FAIL,
        "Kyverno is not installed: no Deployments labelled app.kubernetes.io/part-of=kyverno "
        f"and nothing in namespace {health.namespace}",
        "No policy is enforced or audited in this environment.",
        (
            "helm install kyverno kyverno/kyverno -n kyverno --create-namespace "
            f"--set admissionController.replicas={ADMISSION_REPLICAS}",
        ),
    )


def _readiness(deployment: Deployment) -> str:
    if deployment.ready is None:
        return f"{deployment.desired} desired, no status reported"
    return f"{deployment.ready}/{deployment.desired} ready"


def _exception_flags(deployment: Deployment, version: str | None) -> tuple[bool, str]:
    flag = deployment.flag("enablePolicyException")
    namespace = deployment.flag("exceptionNamespace") or ""
    if flag is None:
        parsed = version_tuple(version)
        # 1.11 and 1.12 enabled exceptions by default, from every namespace.
        default_on = parsed is not None and (1, 11) <= parsed[:2] < EXCEPTIONS_SINCE
        return default_on, namespace or ("*" if default_on else "")
    return flag.lower() in TRUE, namespace


def go_duration_seconds(text: str) -> float | None:
    """Seconds in a Go duration (`1h`, `90m`, `1h30m0s`); None when it is not one."""
    text = text.strip()
    if not text:
        return None
    if text == "0":
        return 0.0
    position, total = 0, 0.0
    for match in DURATION.finditer(text):
        if match.start() != position:
            return None
        total += float(match.group(1)) * UNIT_S[match.group(2)]
        position = match.end()
    return total if position == len(text) else None


def _on(when: datetime | None) -> str:
    return f" on {when.astimezone(UTC).date().isoformat()}" if when else ""


def _since(when: datetime | None) -> str:
    return f" since {when.astimezone(UTC).strftime('%Y-%m-%d %H:%M')} UTC" if when else ""
