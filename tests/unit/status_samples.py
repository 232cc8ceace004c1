"""Sample status data shaped like UX.md's sketch: four environments, a policy across them.

Shared by the status golden tests; every figure is fixed so the goldens are stable.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from bot.found_exceptions import FoundException
from bot.kinds import Family
from bot.ladder import GateResult, Stage, StageView
from bot.policies import Mode, Override, Policy, RuleMode
from bot.ports.snapshot import HealthSummary, Snapshot
from bot.reports import Tally
from bot.status.service import PolicyInEnvironment, PolicyReportView

NOW = datetime(2026, 11, 28, 9, 14, tzinfo=UTC)
BACKUP = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)

NAMES = [
    "block-stale-images",
    "disallow-capabilities",
    "disallow-cri-sock-mount",
    "disallow-default-namespace",
    "disallow-empty-ingress-host",
    "disallow-host-namespaces",
    "disallow-host-path",
    "disallow-host-ports",
    "disallow-nodeport",
    "disallow-privileged-containers",
    "disallow-proc-mount",
    "disallow-secrets-in-env",
    "disallow-selinux",
    "require-cost-center",
    "require-drop-all",
    "require-image-digest",
    "require-network-policy",
    "require-pdb",
    "require-pod-priorityclass",
    "require-ro-rootfs",
    "require-run-as-nonroot",
    "require-storageclass",
    "require-team-annotation",
    "restrict-apparmor",
    "restrict-automount-sa-token",
    "restrict-image-registries",
    "restrict-ingress-classes",
    "restrict-loadbalancer",
    "restrict-node-selection",
    "restrict-seccomp",
    "restrict-service-external-ips",
    "restrict-sysctls",
    "restrict-volume-types",
    "restrict-wildcard-verbs",
]
FAILING = ("require-requests-limits", "disallow-latest-tag", "require-labels", "require-probes")


def policy(
    name: str,
    mode: Mode,
    *,
    ready: bool | None = True,
    kind: str = "ClusterPolicy",
    namespace: str | None = None,
    overrides: tuple[Override, ...] = (),
) -> Policy:
    family = Family.CEL_POLICY if kind.endswith("ValidatingPolicy") else Family.LEGACY_POLICY
    return Policy(
        kind=kind,
        family=family,
        name=name,
        namespace=namespace,
        rules=(RuleMode("check", mode, overrides),)
        if mode is not Mode.MIXED
        else (
            RuleMode("check-a", Mode.AUDIT),
            RuleMode("check-b", Mode.ENFORCE),
        ),
        ready=ready,
        ready_message="" if ready else "webhook not ready",
        annotations={},
        created=None,
        resource_version="1",
    )


def tally(fails: dict[str, int], *, warn: int, passed: int, reports: int) -> Tally:
    t = Tally()
    t.reports = reports
    t.totals = Counter({"fail": sum(fails.values()), "warn": warn, "pass": passed, "error": 0})
    for name, n in fails.items():
        t.by_policy[(True, name)] = Counter({"fail": n})
        t.failing_namespaces[(True, name)] = Counter({"payments": n // 2 + n % 2, "team-a": n // 2})
    return t


def exceptions(active: int, soon: int) -> tuple[FoundException, ...]:
    found = []
    for i in range(active):
        days = 3 if i < soon else 40
        found.append(
            FoundException(
                name=f"pe-{i}",
                namespace="kyverno-exceptions",
                api_group="kyverno.io",
                policies=("require-labels",),
                managed=True,
                expires_at=NOW + timedelta(days=days),
                ticket=f"SEC-{1400 + i}",
            )
        )
    return tuple(found)


def snapshot(
    env: str,
    *,
    enforce: int,
    audit: int,
    mixed: int,
    fails: dict[str, int],
    warn: int,
    not_ready: int = 0,
    health: HealthSummary | None = None,
    active: int = 0,
    soon: int = 0,
) -> Snapshot:
    modes = [Mode.MIXED] * mixed + [Mode.ENFORCE] * enforce + [Mode.AUDIT] * audit
    names = [*FAILING, *NAMES][: len(modes)]
    policies = tuple(
        policy(n, m, ready=not (i >= len(modes) - not_ready))
        for i, (n, m) in enumerate(zip(names, modes, strict=True))
    )
    return Snapshot(
        environment=env,
        policies=tuple(sorted(policies, key=lambda p: p.name)),
        tally=tally(fails, warn=warn, passed=3000, reports=800),
        exceptions=exceptions(active, soon),
        kinds=("ClusterPolicy (kyverno.io/v1)", "PolicyReport (wgpolicyk8s.io/v1alpha2)"),
        health=health,
        backups_known=True,
        last_backup=BACKUP,
    )


def four_environments() -> list[Snapshot]:
    """UX.md's overview: dev and qac failing in Audit, staging with one policy not ready,
    production with 4 failures and an admission controller short of a replica."""
    return [
        snapshot(
            "dev",
            enforce=12,
            audit=23,
            mixed=3,
            fails={
                "require-requests-limits": 180,
                "disallow-latest-tag": 77,
                "require-labels": 41,
                "require-probes": 13,
            },
            warn=40,
            health=HealthSummary(version="1.19.0", admission=(3, 3)),
            active=4,
            soon=1,
        ),
        snapshot(
            "qac",
            enforce=10,
            audit=25,
            mixed=0,
            fails={"require-requests-limits": 61, "disallow-latest-tag": 33, "require-labels": 3},
            warn=12,
            health=HealthSummary(version="1.19.0", admission=(3, 3), warnings=1),
            active=1,
            soon=1,
        ),
        snapshot(
            "staging",
            enforce=29,
            audit=2,
            mixed=0,
            fails={},
            warn=3,
            not_ready=1,
            health=HealthSummary(version="1.19.0", admission=(3, 3)),
            active=2,
        ),
        snapshot(
            "production",
            enforce=28,
            audit=2,
            mixed=0,
            fails={"disallow-latest-tag": 4},
            warn=0,
            health=HealthSummary(version="1.19.0", admission=(2, 3), failures=1, warnings=2),
            active=3,
            soon=1,
        ),
    ]


def require_labels(*, blocked: bool = True) -> PolicyReportView:
    """UX.md's policy view: Audit in dev and qac, not deployed further; the next gate fails."""
    overrides = (Override(Mode.ENFORCE, ("payments-*",), False),)
    dev = policy("require-labels", Mode.AUDIT, overrides=overrides)
    qac = policy("require-labels", Mode.AUDIT)
    gates = (
        GateResult(
            "at least 7 days in qac (Audit)",
            True,
            "8 days (since 2026-11-20, from the bot's record)",
        ),
        GateResult(
            "at most 0 failing results in qac",
            not blocked,
            "3 failing" if blocked else "0 failing",
            "payments Deployment/ledger ×3" if blocked else "",
        ),
    )
    stage = StageView(
        current=Stage("qac", Mode.AUDIT),
        next=Stage("staging", Mode.ENFORCE),
        since=NOW - timedelta(days=8),
        since_source="the bot's record",
        gates=gates,
    )
    pe = FoundException(
        name="pe-require-labels-7f3a",
        namespace="kyverno-exceptions",
        api_group="kyverno.io",
        policies=("require-labels",),
        managed=True,
        expires_at=NOW + timedelta(days=12),
        ticket="SEC-1423",
    )
    return PolicyReportView(
        name="require-labels",
        environments=(
            PolicyInEnvironment(
                "dev", dev, 41, 0, (("team-a", 20), ("team-b", 12), ("payments", 9)), (pe,)
            ),
            PolicyInEnvironment("qac", qac, 3 if blocked else 0, 0, (("payments", 3),), ()),
            PolicyInEnvironment("staging", None, 0, 0, (), ()),
            PolicyInEnvironment("production", None, 0, 0, (), ()),
        ),
        stage=stage,
    )
