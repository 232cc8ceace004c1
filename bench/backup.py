"""Benchmark of SPEC 4.1: a backup of 1,000 policies + 1,000 exceptions vs the runbook.

The runbook backs up with `kubectl get clusterpolicy -o yaml`, `kubectl get policyexception
-A -o yaml` and the Helm release Secret (`kubectl get secret -l owner=helm ...`); those three
commands, run one after the other as a person would, each written to its file, are timed on
the same API server in the same run as the bot's backup (every kind of SPEC 2.4, cleaned, one
YAML file per object, the MANIFEST, written to a directory target, recorded in the catalog and
the audit trail). The two sides alternate, five times each; the medians count. On a shared
machine, creating 2,000 files can stall on the disk when others write; that noise lands on the
bot's side only (the runbook writes three files).
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bot.backup.service import BackupService
from bot.clock import SYSTEM_CLOCK
from bot.kube.gateway import ClusterGateway
from bot.settings import parse_settings
from bot.store.audit_trail import AuditTrail
from bot.store.database import open_database
from tests.kube import seed
from tests.kube.controlplane import Assets, ControlPlane
from tests.kube.fixtures import TEST_PLANE_CRDS
from tests.kube.kyverno import crd_directory

ROOT = Path(__file__).parent.parent
POLICIES = 1000
EXCEPTIONS = 1000
RUNS = 5
RUNBOOK = (
    ("get", "clusterpolicy", "-o", "yaml"),
    ("get", "policyexception", "-A", "-o", "yaml"),
    (
        "get",
        "secret",
        "-n",
        "kyverno",
        "-l",
        "owner=helm,name=kyverno,status=deployed",
        "-o",
        "yaml",
    ),
)


def assets() -> Assets:
    out = subprocess.run(
        ["bash", str(ROOT / "tools/kubebins/build.sh")], capture_output=True, text=True, check=True
    )
    return Assets.from_directory(Path(out.stdout.strip().splitlines()[-1]))


def objects() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = [seed.namespace("kyverno"), seed.namespace("kyverno-exceptions")]
    for i in range(POLICIES):
        name = f"bench-{i:04d}"
        if i % 2:
            found.append(seed.legacy_cluster_policy(name, action="Audit"))
        else:
            found.append(seed.per_rule_cluster_policy(name, actions=("Enforce", "Audit")))
    for i in range(EXCEPTIONS):
        found.append(
            seed.kyverno_policy_exception(
                f"bench-pe-{i:04d}",
                "kyverno-exceptions",
                policy=f"bench-{i % POLICIES:04d}",
                rules=["check-for-labels", "autogen-check-for-labels"],
                names=[f"app-{i}-*"],
            )
        )
    release = seed.helm_release(revision=3, config={"admissionController": {"replicas": 3}})
    found.append(seed.helm_release_secret(release))
    return found


def runbook(plane: ControlPlane, out: Path) -> float:
    """The runbook's commands, each redirected to its file (`kubectl ... > file.yaml`)."""
    out.mkdir(parents=True, exist_ok=True)
    base = [
        str(plane.assets.kubectl),
        f"--kubeconfig={plane.kubeconfig}",
        f"--cache-dir={plane.workdir / 'kubectl-cache'}",
    ]
    started = time.perf_counter()
    for i, command in enumerate(RUNBOOK):
        with (out / f"{i}.yaml").open("wb") as sink:
            subprocess.run([*base, *command], stdout=sink, check=True, timeout=300)
    return time.perf_counter() - started


async def bot_backup(plane: ControlPlane, work: Path) -> tuple[float, int]:
    settings = parse_settings(
        {
            "slack": {"mode": "http"},
            "environments": [{"name": "bench", "kubeconfig": str(plane.kubeconfig)}],
            "backup": {
                "helm_releases": [{"name": "kyverno", "namespace": "kyverno"}],
                "targets": [{"type": "dir", "path": str(work / "backups"), "keep": RUNS + 1}],
            },
        },
        {"SLACK_BOT_TOKEN": "xoxb-bench", "SLACK_SIGNING_SECRET": "bench"},
    )
    db = await open_database(f"sqlite:///{work}/state-{time.monotonic_ns()}.db")
    await db.migrate(clock=SYSTEM_CLOCK)
    gateway = ClusterGateway(settings.environments[0])
    service = BackupService(
        settings=settings,
        clusters={"bench": gateway},
        database=db,
        audit=AuditTrail(db, clock=SYSTEM_CLOCK),
        clock=SYSTEM_CLOCK,
    )
    try:
        await gateway.kinds()  # connection and discovery warm, as for kubectl's cache
        started = time.perf_counter()
        report = await service.backup(trigger="bench", actor="bench")
        seconds = time.perf_counter() - started
    finally:
        await gateway.close()
        await db.close()
    assert report.ok, [e.error for e in report.environments] + [s.error for s in report.stored]
    return seconds, len(report.bundle.files)


def main() -> list[tuple[str, str, str, str]]:
    with tempfile.TemporaryDirectory(prefix="bench-backup-") as tmp:
        work = Path(tmp)
        plane = ControlPlane.start(
            assets(), work / "plane", crd_dir=[crd_directory() / f for f in TEST_PLANE_CRDS]
        )
        try:
            with plane.api_client() as api:
                seed.apply_objects(api, objects(), workers=8)
            runbook(plane, work / "warm")  # kubectl's discovery cache, as the bot's is warmed
            peer: list[float] = []
            ours: list[float] = []
            files = 0
            for run in range(RUNS):
                peer.append(runbook(plane, work / f"runbook-{run}"))
                seconds, files = asyncio.run(bot_backup(plane, work))
                ours.append(seconds)
        finally:
            plane.stop()
    bot_s, kubectl_s = statistics.median(ours), statistics.median(peer)
    return [
        (
            f"backup {POLICIES:,} policies + {EXCEPTIONS:,} exceptions ({files:,} files)",
            f"{bot_s:.2f} s (median of {RUNS})",
            f"{kubectl_s:.2f} s: 3 runbook kubectl get -o yaml",
            f"no slower than the runbook: {'met' if bot_s <= kubectl_s else 'NOT met'}",
        )
    ]


if __name__ == "__main__":
    for row in main():
        print(" | ".join(row))
