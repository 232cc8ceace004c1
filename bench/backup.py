"""Benchmark of SPEC 4.1: a backup of 1,000 policies + 1,000 exceptions vs the runbook.

The runbook backs up with `kubectl get clusterpolicy -o yaml`, `kubectl get policyexception
-A -o yaml` and the Helm release Secret (`kubectl get secret -l owner=helm ...`), each
redirected to its file; `-o json > /dev/null` is timed too, as kubectl's cheapest form. Both
sides run cold and warm, interleaved run by run (five each; median and min–max printed):

- cold: kubectl with an empty discovery cache; the bot as a fresh `python -m bot backup`
  process, timed from its start (interpreter, imports, connection, discovery inside);
- warm: kubectl with its discovery cache filled; the bot's backup service in a running
  process whose connection and discovery are warm (every kind of SPEC 2.4, cleaned, one YAML
  file per object, the MANIFEST, a directory target, the catalog and the audit trail).

On a shared machine, creating 2,000 files can stall on the disk when others write; that noise
lands on the bot's side only (the runbook writes three files).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from bench import profiling, versions
from bench.figures import Runs, Target
from bot.backup.service import BackupService
from bot.clock import SYSTEM_CLOCK
from bot.kube.gateway import ClusterGateway
from bot.playground import seed
from bot.playground.control_plane import Assets, ControlPlane
from bot.playground.kyverno import crd_directory
from bot.settings import parse_settings
from bot.store.audit_trail import AuditTrail
from bot.store.database import open_database
from tests.kube.fixtures import TEST_PLANE_CRDS

ROOT = Path(__file__).parent.parent
BOT_CLI = (sys.executable, "-m", "bot", "backup")
POLICIES = 1000
EXCEPTIONS = 1000
RUNS = max(5, int(os.environ.get("BENCH_RUNS", "5")))
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


def kubectl_base(plane: ControlPlane, cache_dir: Path) -> list[str]:
    return [
        str(plane.assets.kubectl),
        f"--kubeconfig={plane.kubeconfig}",
        f"--cache-dir={cache_dir}",
    ]


def runbook(plane: ControlPlane, out: Path, *, cache_dir: Path, output: str = "yaml") -> float:
    """The runbook's three commands, one after the other, as a person runs them.

    `output="yaml"`: each redirected to its file (`kubectl get … -o yaml > file.yaml`), as the
    runbook says; `output="json"`: `-o json > /dev/null`, kubectl's cheapest honest form.
    A fresh `cache_dir` makes kubectl discover the API again (cold); a shared one is warm.
    """
    out.mkdir(parents=True, exist_ok=True)
    base = kubectl_base(plane, cache_dir)
    started = time.perf_counter()
    for i, command in enumerate(RUNBOOK):
        args = [*base, *command[:-1], output]
        if output == "yaml":
            with (out / f"{i}.yaml").open("wb") as sink:
                subprocess.run(
                    args, stdout=sink, stderr=subprocess.DEVNULL, check=True, timeout=300
                )
        else:
            subprocess.run(
                args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, timeout=300
            )
    return time.perf_counter() - started


def bot_cold(plane: ControlPlane, work: Path, run: int) -> float:
    """`python -m bot backup --env bench --to DIR`: a fresh process, timed from its start.

    The timer holds everything a person waits for: the interpreter, the imports, the
    connection, discovery, the collection and the files (the command-line backup writes the
    bundle to a directory; it has no catalog or audit trail, which the warm figure includes).
    """
    config = work / "cli-config.yaml"
    if not config.exists():
        config.write_text(
            yaml.safe_dump(
                {
                    "slack": {"mode": "http"},
                    "store": {"url": f"sqlite:///{work}/cli-state.db"},
                    "environments": [{"name": "bench", "kubeconfig": str(plane.kubeconfig)}],
                    "backup": {"helm_releases": [{"name": "kyverno", "namespace": "kyverno"}]},
                }
            )
        )
    started = time.perf_counter()
    subprocess.run(
        [*BOT_CLI, "--config", str(config), "--env", "bench", "--to", str(work / f"cli-{run}")],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        check=True,
        timeout=300,
    )
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


def _profile_cold(plane: ControlPlane, work: Path) -> None:
    """`PROFILE=1`: one more cold CLI run under py-spy (every thread, imports included)."""
    config = work / "cli-config.yaml"  # written by the timed runs
    argv = [*BOT_CLI, "--config", str(config), "--env", "bench", "--to", str(work / "cli-spy")]
    frames = profiling.sampled(argv, cwd=ROOT)
    if frames is None:
        frames = "  py-spy is not installed (pip install py-spy): no profile"
    PROFILES.append(("cold `python -m bot backup` (py-spy, all threads)", frames))


def main() -> list[tuple[str, str, str, str]]:
    with tempfile.TemporaryDirectory(prefix="bench-backup-") as tmp:
        work = Path(tmp)
        plane = ControlPlane.start(
            assets(), work / "plane", crd_dir=[crd_directory() / f for f in TEST_PLANE_CRDS]
        )
        try:
            with plane.api_client() as api:
                seed.apply_objects(api, objects(), workers=8)
            shared = work / "kubectl-cache"
            runbook(plane, work / "warm-up", cache_dir=shared)  # kubectl's discovery cache
            figures: dict[str, list[float]] = {k: [] for k in _ROWS}
            files = 0
            for run in range(RUNS):
                # Interleaved, so a noisy neighbour lands on every side alike.
                cold_cache = work / f"kubectl-cache-cold-{run}"
                figures["kubectl_yaml_cold"].append(
                    runbook(plane, work / f"yc-{run}", cache_dir=cold_cache)
                )
                figures["bot_cold"].append(bot_cold(plane, work, run))
                figures["kubectl_json_cold"].append(
                    runbook(
                        plane,
                        work / f"jc-{run}",
                        cache_dir=cold_cache.with_name(f"jc{run}"),
                        output="json",
                    )
                )
                figures["kubectl_yaml_warm"].append(
                    runbook(plane, work / f"yw-{run}", cache_dir=shared)
                )
                seconds, files = asyncio.run(bot_backup(plane, work))
                figures["bot_warm"].append(seconds)
                figures["kubectl_json_warm"].append(
                    runbook(plane, work / f"jw-{run}", cache_dir=shared, output="json")
                )
            if profiling.ENABLED:
                _profile_cold(plane, work)
        finally:
            plane.stop()
        kubectl = versions.read("kubectl", plane.assets.kubectl)
    runs = {k: Runs.of(v) for k, v in figures.items()}
    what = f"backup of {POLICIES:,} policies + {EXCEPTIONS:,} exceptions + Helm release"
    rows = [
        (
            f"{what}, cold: fresh process",
            f"{runs['bot_cold'].show()} `python -m bot backup` (start, imports, connection, "
            "discovery inside the timer)",
            f"runbook -o yaml > file: {runs['kubectl_yaml_cold'].show()}; "
            f"-o json > /dev/null: {runs['kubectl_json_cold'].show()} (3 kubectl, empty "
            "discovery cache)",
            "≤ 0.5× runbook",
        ),
        (
            f"{what}, warm: running process",
            f"{runs['bot_warm'].show()} /policy backup's service ({files:,} files, catalog, "
            "audit; connection and discovery warm)",
            f"runbook -o yaml > file: {runs['kubectl_yaml_warm'].show()}; "
            f"-o json > /dev/null: {runs['kubectl_json_warm'].show()} (3 kubectl, warm "
            "discovery cache)",
            "≤ 0.5× runbook",
        ),
    ]
    TARGETS.extend(
        [
            Target(
                "backup cold (bot CLI / runbook -o yaml, empty kubectl cache)",
                runs["bot_cold"].median,
                runs["kubectl_yaml_cold"].median,
                0.5,
            ),
            Target(
                "backup warm (bot service / runbook -o yaml, warm kubectl cache)",
                runs["bot_warm"].median,
                runs["kubectl_yaml_warm"].median,
                0.5,
            ),
        ]
    )
    VERSIONS.append(kubectl)
    return rows


_ROWS = (
    "kubectl_yaml_cold",
    "bot_cold",
    "kubectl_json_cold",
    "kubectl_yaml_warm",
    "bot_warm",
    "kubectl_json_warm",
)

#: Filled by `main()` for `python -m bench`: the targets and the versions this suite ran.
TARGETS: list[Target] = []
VERSIONS: list[str] = []
PROFILES: list[tuple[str, str]] = []


if __name__ == "__main__":
    for row in main():
        print(" | ".join(row))
    for target in TARGETS:
        print(target.line())
    for title, text in PROFILES:
        print(f"\n{title}:\n{text}")
    print("\n".join(VERSIONS))
