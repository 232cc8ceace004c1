"""`python -m bot backup` and `python -m bot restore` as an operator runs them in a disaster:
a real process, no Slack secrets in its environment, against the real API server."""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from bot.backup.bundle import MANIFEST, tarball
from bot.backup.targets import read_directory
from bot.clock import SYSTEM_CLOCK
from bot.playground import seed
from bot.playground.control_plane import ControlPlane
from bot.store.audit_trail import AuditTrail
from bot.store.database import open_database
from tests.harness import kubeconfig_via

pytestmark = pytest.mark.kube
ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/")}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_backup_and_restore_from_the_command_line(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    tag = secrets.token_hex(3)
    namespace, release_ns = f"cli-{tag}", f"helm-{tag}"
    names = [f"cli-{tag}-{i}" for i in range(3)]
    objects = [seed.namespace(namespace), seed.namespace(release_ns)]
    objects += [seed.legacy_cluster_policy(n) for n in names]
    objects.append(
        seed.kyverno_policy_exception(f"pe-{tag}", namespace, policy=names[0], rules=["*"])
    )
    release = seed.helm_release("kyverno", release_ns, revision=4, config={"replicas": 3})
    objects.append(seed.helm_release_secret(release))
    with control_plane.api_client() as api:
        seed.apply_objects(api, objects)

    store = f"sqlite:///{tmp_path}/state.db"
    async with await open_database(store) as db:
        await db.migrate(clock=SYSTEM_CLOCK)
    down = kubeconfig_via(control_plane.kubeconfig, _closed_port(), tmp_path / "down.kubeconfig")
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "store": {"url": store},
                "slack": {"mode": "socket"},
                "environments": [
                    {"name": "dev", "kubeconfig": str(control_plane.kubeconfig)},
                    {"name": "down", "kubeconfig": str(down), "timeout_s": 2},
                ],
                "backup": {"helm_releases": [{"name": "kyverno", "namespace": release_ns}]},
            }
        )
    )
    out = tmp_path / "out"
    backup = await asyncio.to_thread(
        _run, "backup", "--config", str(config), "--env", "dev", "--to", str(out)
    )
    assert backup.returncode == 0, backup.stderr
    match = re.search(r"backup (b-\d{8}-\d{6}(-\d+)?) written to (\S+)", backup.stdout)
    assert match is not None, backup.stdout
    bundle_dir = Path(match.group(3))
    assert bundle_dir == out / match.group(1)
    files = read_directory(bundle_dir)
    assert f"dev/clusterpolicies.kyverno.io/{names[1]}.yaml" in files
    assert f"dev/policyexceptions.kyverno.io/{namespace}/pe-{tag}.yaml" in files
    assert yaml.safe_load(files[f"dev/helm/{release_ns}/kyverno.values"]) == {"replicas": 3}

    control_plane.kubectl("delete", "clusterpolicy", names[1])
    dry = await asyncio.to_thread(
        _run, "restore", "--config", str(config), "--env", "dev", "--from", str(bundle_dir),
        "--dry-run",
    )  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    assert "1 created" in dry.stdout and f"created   ClusterPolicy {names[1]}" in dry.stdout
    # The folder given to `backup --to` restores too: its newest bundle, named in the answer.
    again = await asyncio.to_thread(
        _run, "backup", "--config", str(config), "--env", "dev", "--to", str(out)
    )
    newest = re.search(r"backup (b-\d{8}-\d{6}(-\d+)?) written to", again.stdout)
    assert again.returncode == 0 and newest is not None, again.stderr
    from_folder = await asyncio.to_thread(
        _run, "restore", "--config", str(config), "--env", "dev", "--from", str(out), "--dry-run"
    )
    assert from_folder.returncode == 0, from_folder.stderr
    assert (
        f"using {newest.group(1)}, the newest of 2 bundles in {out} (older: {match.group(1)};"
        in from_folder.stdout
    )
    assert f"dry run of {newest.group(1)} into dev" in from_folder.stdout
    assert control_plane.kubectl("get", "clusterpolicy", names[1], check=False).returncode != 0

    # The real restore gets only this test's objects: the plane is shared with other tests,
    # whose objects must keep their own field managers.
    manifest = json.loads(files[MANIFEST])
    manifest["files"] = {p: h for p, h in manifest["files"].items() if tag in p}
    mine = {p: d for p, d in files.items() if p in manifest["files"]}
    mine[MANIFEST] = json.dumps(manifest).encode()
    archive = tmp_path / "bundle.tar.gz"
    archive.write_bytes(tarball(mine, root=match.group(1), mtime=datetime.now(UTC)))
    restore = await asyncio.to_thread(
        _run, "restore", "--config", str(config), "--env", "dev", "--from", str(archive)
    )
    assert restore.returncode == 0, restore.stderr
    applied = len([p for p in mine if p.endswith(".yaml")])
    assert f"{applied} applied, 0 failed" in restore.stdout and applied == 5
    control_plane.kubectl("get", "clusterpolicy", names[1])
    async with await open_database(store) as db:
        entries = await AuditTrail(db, clock=SYSTEM_CLOCK).entries()
    assert [(e.actor, e.action, e.environment, e.target) for e in entries] == [
        ("command-line", "restore.apply", "dev", match.group(1))
    ]


async def test_command_line_errors(control_plane: ControlPlane, tmp_path: Path) -> None:
    down = kubeconfig_via(control_plane.kubeconfig, _closed_port(), tmp_path / "down.kubeconfig")
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "store": {"url": f"sqlite:///{tmp_path}/state.db"},
                "environments": [{"name": "down", "kubeconfig": str(down), "timeout_s": 2}],
            }
        )
    )
    unknown = await asyncio.to_thread(
        _run, "backup", "--config", str(config), "--env", "qa", "--to", str(tmp_path)
    )
    assert unknown.returncode == 2 and "no environment 'qa'" in unknown.stderr
    failed = await asyncio.to_thread(
        _run, "backup", "--config", str(config), "--env", "down", "--to", str(tmp_path / "o")
    )
    assert (
        failed.returncode == 1 and "down: FAILED: Environment down is unreachable" in failed.stderr
    )
    not_a_bundle = await asyncio.to_thread(
        _run, "restore", "--config", str(config), "--env", "down", "--from", str(tmp_path)
    )
    assert not_a_bundle.returncode == 2
    assert f"{tmp_path} holds no backup bundle: found config.yaml" in not_a_bundle.stderr
