"""Backups and restores against real kube-apiservers, through the Slack emulator over HTTP.

Three planes of this module's own, each with the shared CRDs plus the cleanup-policy CRDs:

- `source`: every sample policy, 200 generated policies of four kinds, exceptions of both
  APIs, cleanup policies, and a Helm release (two revisions) in Helm's Secret format;
- `target`: empty; the round trip restores into it;
- `spare`: empty; the bundle is applied there with the plane's own kubectl, and later one
  CRD is deleted from it.

Slack, git (a bare repository on disk as the remote) and the store are real or emulated
over the wire; nothing is patched.
"""

from __future__ import annotations

import asyncio
import io
import json
import socket
import subprocess
import tarfile
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml

from bot.app import build_backups
from bot.backup.bundle import MANIFEST, read_bundle
from bot.backup.service import BackupService
from bot.clock import SYSTEM_CLOCK
from bot.kube.gateway import ClusterGateway
from bot.playground import seed
from bot.playground.control_plane import ControlPlane
from bot.playground.slack_emulator import SlackEmulator
from bot.settings import Settings
from bot.store.audit_trail import AuditTrail
from bot.store.database import Database, open_database
from tests.harness import RunningBot, bot_settings, kubeconfig_via, running_bot
from tests.kube.fixtures import ControlPlaneFactory

pytestmark = pytest.mark.kube

DATA = Path(__file__).resolve().parents[1] / "data"
CLEANUP_CRDS = DATA / "backup" / "crds"
SAMPLES = DATA / "samples"
ADMIN, SECOND_ADMIN, ENGINEER = "U0ADMIN1", "U0ADMIN2", "U0ENGINEER"
CHANNEL, REPORTS = "C0PLATFORM", "C0REPORTS"
HELM_VALUES = {
    "admissionController": {"replicas": 3},
    "features": {"policyExceptions": {"enabled": True, "namespace": "kyverno-exceptions"}},
}
GENERATED = 200


def _sample(path: Path, namespace: str | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = yaml.safe_load(path.read_text())
    if namespace is not None:
        obj["metadata"]["namespace"] = namespace
    return obj


def _objects() -> list[dict[str, Any]]:
    teams = [f"team-{i}" for i in range(3)]
    objects: list[dict[str, Any]] = [
        seed.namespace(n) for n in ("kyverno", "kyverno-exceptions", *teams)
    ]
    objects += [_sample(p) for p in sorted((SAMPLES / "policies").glob("*.yaml"))]
    objects.append(
        _sample(SAMPLES / "exceptions" / "policyexception-v2.yaml", "kyverno-exceptions")
    )
    for i in range(GENERATED):
        name = f"gen-{i:03d}"
        if i % 4 == 0:
            objects.append(seed.legacy_cluster_policy(name, action="Enforce" if i % 8 else "Audit"))
        elif i % 4 == 1:
            objects.append(seed.per_rule_cluster_policy(name, actions=("Enforce", "Audit")))
        elif i % 4 == 2:
            objects.append(seed.validating_policy(name, actions=("Deny",)))
        else:
            objects.append(seed.namespaced_policy(name, teams[i % 3]))
    for i in range(30):
        objects.append(
            seed.kyverno_policy_exception(
                f"pe-{i:02d}",
                "kyverno-exceptions",
                policy=f"gen-{(i * 4) % GENERATED:03d}",
                rules=["check-for-labels", "autogen-check-for-labels"],
                names=[f"app-{i}*"],
                labels={"app.kubernetes.io/managed-by": "policy-bot"},
                annotations={"policy-bot.io/jira": f"SEC-{100 + i}"},
            )
        )
    for i in range(10):
        objects.append(
            seed.cel_policy_exception(
                f"cel-pe-{i:02d}",
                "kyverno-exceptions",
                policies=[f"gen-{(i * 4 + 2) % GENERATED:03d}"],
                match_expression="object.metadata.name.startsWith('legacy-')",
                expires_at=datetime(2027, 1, 1, tzinfo=UTC),
                properties={"ticket": f"SEC-{200 + i}", "reason": "multi-line\nreason"},
            )
        )
    old = seed.helm_release(revision=1, status="superseded", config={"old": True})
    live = seed.helm_release(revision=2, config=HELM_VALUES, chart_version="3.9.0")
    objects += [seed.helm_release_secret(old), seed.helm_release_secret(live)]
    return objects


CLEANUP_POLICIES = [
    {
        "apiVersion": "kyverno.io/v2",
        "kind": "ClusterCleanupPolicy",
        "metadata": {"name": "clean-old-pods"},
        "spec": {
            "schedule": "0 * * * *",
            "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
            "conditions": {
                "all": [
                    {
                        "key": "{{ time_since('', '{{ x }}', '') }}",
                        "operator": "GreaterThan",
                        "value": "24h",
                    }
                ]
            },
        },
    },
    {
        "apiVersion": "kyverno.io/v2",
        "kind": "CleanupPolicy",
        "metadata": {"name": "clean-jobs", "namespace": "team-1"},
        "spec": {"schedule": "*/30 * * * *", "match": {"any": [{"resources": {"kinds": ["Job"]}}]}},
    },
]


@pytest.fixture(scope="module")
def planes(
    kube_assets: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, ControlPlane]]:
    factory = ControlPlaneFactory(kube_assets, tmp_path_factory.mktemp("backup-planes"))
    try:
        source, target, spare = factory.start(3)
        for plane in (source, target, spare):
            plane.install_crds(CLEANUP_CRDS)
        with source.api_client() as api:
            seed.apply_objects(api, _objects())
        # Client-side apply leaves the last-applied annotation the backup must strip.
        source.kubectl(
            "apply", "-f", "-", input="\n---\n".join(json.dumps(o) for o in CLEANUP_POLICIES)
        )
        ready = {"type": "Ready", "status": "True", "reason": "Succeeded", "message": "Ready"}
        ready["lastTransitionTime"] = "2026-11-01T00:00:00Z"
        status = json.dumps({"status": {"conditions": [ready]}})
        source.kubectl(
            "patch", "clusterpolicy", "require-labels", "--subresource=status", "--type=merge",
            "-p", status,
        )  # fmt: skip
        yield {"source": source, "target": target, "spare": spare}
    finally:
        factory.stop_all()


def _environment(name: str, plane: ControlPlane, timeout_s: float = 8) -> dict[str, Any]:
    return {"name": name, "kubeconfig": str(plane.kubeconfig), "timeout_s": timeout_s}


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest_asyncio.fixture
async def store(tmp_path: Path) -> AsyncIterator[Database]:
    db = await open_database(f"sqlite:///{tmp_path}/state.db")
    await db.migrate(clock=SYSTEM_CLOCK)
    try:
        yield db
    finally:
        await db.close()


def _service(settings: Settings, db: Database) -> tuple[BackupService, list[ClusterGateway]]:
    gateways = {e.name: ClusterGateway(e) for e in settings.environments}
    audit = AuditTrail(db, clock=SYSTEM_CLOCK)
    service = BackupService(
        settings=settings, clusters=gateways, database=db, audit=audit, clock=SYSTEM_CLOCK
    )
    return service, list(gateways.values())


def _settings(
    emulator_url: str, environments: list[dict[str, Any]], backup: dict[str, Any], store: str
) -> Settings:
    from bot.settings import parse_settings

    return parse_settings(
        {
            "slack": {"mode": "http", "channels": {"reports": REPORTS}},
            "store": {"url": store},
            "environments": environments,
            "backup": backup,
        },
        {"SLACK_BOT_TOKEN": "xoxb-x", "SLACK_SIGNING_SECRET": "s", "SLACK_API_URL": emulator_url},
    )


def _without_manifest_stamp(manifest: bytes) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(manifest)
    data.pop("created_at")
    data.pop("id")
    return data


async def test_round_trip_restores_into_an_empty_plane_byte_for_byte(
    planes: dict[str, ControlPlane], store: Database, tmp_path: Path
) -> None:
    source, target, spare = planes["source"], planes["target"], planes["spare"]
    backup = {
        "helm_releases": [{"name": "kyverno", "namespace": "kyverno"}],
        "targets": [{"type": "dir", "path": str(tmp_path / "a")}],
    }
    url = f"sqlite:///{tmp_path}/state.db"
    settings_a = _settings("http://127.0.0.1:1/api/", [_environment("prod", source)], backup, url)
    service, gateways = _service(settings_a, store)
    try:
        first = await service.backup(trigger="test", actor="tester")
    finally:
        await asyncio.gather(*(g.close() for g in gateways))
    env = first.environments[0]
    assert env.ok, env.error
    assert env.counts == {
        "cleanuppolicies.kyverno.io": 1,
        "clustercleanuppolicies.kyverno.io": 1,
        "clusterpolicies.kyverno.io": 5 + GENERATED // 2,
        "namespacedvalidatingpolicies.policies.kyverno.io": 0,
        "policies.kyverno.io": GENERATED // 4,
        "policyexceptions.kyverno.io": 31,
        "policyexceptions.policies.kyverno.io": 10,
        "validatingpolicies.policies.kyverno.io": GENERATED // 4,
    }
    assert env.missing_kinds and "mutatingpolicies.policies.kyverno.io" in env.missing_kinds
    assert [(h.release, h.revision, h.error) for h in env.helm] == [("kyverno", 2, None)]
    files = first.bundle.files
    assert yaml.safe_load(files["prod/helm/kyverno/kyverno.values"]) == HELM_VALUES
    polex = yaml.safe_load(files["prod/policyexceptions.kyverno.io/kyverno-exceptions/pe-03.yaml"])
    assert polex["metadata"] == {
        "name": "pe-03",
        "namespace": "kyverno-exceptions",
        "labels": {"app.kubernetes.io/managed-by": "policy-bot"},
        "annotations": {"policy-bot.io/jira": "SEC-103"},
    }
    every = b"".join(files.values())
    for server_field in (b"uid:", b"resourceVersion", b"managedFields", b"creationTimestamp",
                         b"generation:", b"status:", b"last-applied-configuration"):  # fmt: skip
        assert server_field not in every, server_field
    bundle_dir = tmp_path / "a" / first.id
    assert (bundle_dir / MANIFEST).is_file()

    # Restore into the empty plane: dry run says everything is created, then apply.
    settings_b = _settings("http://127.0.0.1:1/api/", [_environment("prod", target)], backup, url)
    service_b, gateways_b = _service(settings_b, store)
    try:
        loaded = read_bundle(files, environment="prod")
        from bot.backup.restore import apply_restore, plan_restore

        plan = await plan_restore(gateways_b[0], loaded, "prod")
        assert plan.counts["created"] == len(loaded.objects("prod")) and not plan.counts["invalid"]
        result = await apply_restore(gateways_b[0], loaded, "prod")
        assert result.ok and not result.skipped, result.failed[:3]
        again = await plan_restore(gateways_b[0], loaded, "prod")
        assert again.counts["unchanged"] == len(loaded.objects("prod")), [
            i for i in again.items if i.action != "unchanged"
        ][:3]
        # Kyverno itself is reinstalled from the backed-up values (helm install -f), which
        # writes its release Secret; then the second backup sees the same release.
        values = yaml.safe_load(files["prod/helm/kyverno/kyverno.values"])
        with target.api_client() as api:
            seed.apply_objects(
                api,
                [
                    seed.namespace("kyverno"),
                    seed.helm_release_secret(seed.helm_release(revision=2, config=values)),
                ],
            )
        second = await service_b.backup(trigger="test", actor="tester")
    finally:
        await asyncio.gather(*(g.close() for g in gateways_b))
    files_b = second.bundle.files
    assert sorted(files_b) == sorted(files)
    differing = [p for p in files if p != MANIFEST and files[p] != files_b[p]]
    assert differing == []
    assert _without_manifest_stamp(files[MANIFEST]) == _without_manifest_stamp(files_b[MANIFEST])
    assert second.diffs[0].empty and second.diffs[0].previous_id == first.id

    # The same directory applies with the real kubectl into the third, empty plane.
    applied = spare.kubectl("apply", "--server-side", "-f", str(bundle_dir / "prod"), "-R")
    assert applied.stdout.count("serverside-applied") == len(loaded.objects("prod"))
    with spare.api_client() as api:
        seed.apply_objects(
            api,
            [
                seed.namespace("kyverno"),
                seed.helm_release_secret(seed.helm_release(revision=2, config=HELM_VALUES)),
            ],
        )
    settings_c = _settings("http://127.0.0.1:1/api/", [_environment("prod", spare)], backup, url)
    service_c, gateways_c = _service(settings_c, store)
    try:
        third = await service_c.backup(trigger="test", actor="tester")
    finally:
        await asyncio.gather(*(g.close() for g in gateways_c))
    files_c = third.bundle.files
    assert [p for p in files if p != MANIFEST and files[p] != files_c.get(p)] == []


async def test_missing_crd_is_recorded_not_an_error(
    planes: dict[str, ControlPlane], store: Database, tmp_path: Path
) -> None:
    spare = planes["spare"]
    spare.kubectl("delete", "crd", "policyexceptions.policies.kyverno.io", "--wait=true")
    backup = {"targets": [{"type": "dir", "path": str(tmp_path / "b")}]}
    settings = _settings(
        "http://127.0.0.1:1/api/", [_environment("spare", spare)], backup, "sqlite:////x.db"
    )
    service, gateways = _service(settings, store)
    try:
        deadline = time.monotonic() + 60
        while True:
            report = await service.backup(trigger="test", actor="tester")
            env = report.environments[0]
            if "policyexceptions.policies.kyverno.io" in env.missing_kinds:
                break
            assert time.monotonic() < deadline, "the deleted CRD is still served"
            await asyncio.sleep(1)
    finally:
        await asyncio.gather(*(g.close() for g in gateways))
    assert env.ok and env.counts["clusterpolicies.kyverno.io"] == 5 + GENERATED // 2
    assert not any("policyexceptions.policies.kyverno.io" in p for p in report.bundle.files)


# -- through Slack -------------------------------------------------------------------------


@pytest_asyncio.fixture
async def bot(
    planes: dict[str, ControlPlane], slack_emulator: SlackEmulator, tmp_path: Path
) -> AsyncIterator[RunningBot]:
    remote = tmp_path / "remote.git"
    _git("init", "-q", "--bare", "-b", "main", str(remote))
    down = kubeconfig_via(planes["source"].kubeconfig, _closed_port(), tmp_path / "down.kubeconfig")
    settings = bot_settings(
        slack_emulator,
        store_url=f"sqlite:///{tmp_path}/state.db",
        environments=[
            _environment("dev", planes["source"]),
            {"name": "staging", "kubeconfig": str(down), "timeout_s": 2},
            _environment("production", planes["target"]),
        ],
        extra={
            "slack": {
                "mode": "http",
                "channels": {"reports": REPORTS},
                "roles": {"admins": {"users": [ADMIN, SECOND_ADMIN]}},
            },
            "backup": {
                "cron": "0 2 * * *",
                "evidence_cron": "0 3 1 * *",
                "helm_releases": [{"name": "kyverno", "namespace": "kyverno"}],
                "targets": [
                    {"type": "dir", "path": str(tmp_path / "backups"), "keep": 2},
                    {"type": "git", "path": str(tmp_path / "clone"), "remote": str(remote)},
                    {
                        "type": "s3",
                        "bucket": "policy-backups",
                        "endpoint_url": f"http://127.0.0.1:{_closed_port()}",
                        "max_attempts": 1,
                    },
                ],
            },
        },
        # Explicit keys: the AWS SDK's default chain (files, metadata) is never consulted.
        secrets={"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"},
    )
    for channel in (CHANNEL, REPORTS):
        slack_emulator.add_channel(channel)
    for user in (ADMIN, SECOND_ADMIN, ENGINEER):
        slack_emulator.add_user(user, user.lower())
    async with running_bot(settings, slack_emulator, clock=SYSTEM_CLOCK) as running:
        yield running


async def _answer(bot: RunningBot, emulator: SlackEmulator, text: str, user: str = ADMIN) -> str:
    before = len(emulator.responses)
    interaction = await bot.slack.command("/policy", text, user=user, channel=CHANNEL)
    assert interaction.response.status == 200, interaction.response.text
    deadline = time.monotonic() + 90
    while len(emulator.responses) == before:
        assert time.monotonic() < deadline, f"no answer to /policy {text}"
        await asyncio.sleep(0.05)
    payload = emulator.responses[before].payload
    await _delivered(bot)
    return _text(payload.get("blocks") or []) or str(payload.get("text"))


async def _delivered(bot: RunningBot) -> None:
    """Wait until the notice outbox owes nothing: the reports channel's messages and files
    go out through it, after the command has answered."""
    deadline = time.monotonic() + 90
    while (await bot.services.notices.states()).get("pending", 0):
        assert time.monotonic() < deadline, await bot.services.notices.states()
        await asyncio.sleep(0.05)


def _text(blocks: list[dict[str, Any]]) -> str:
    parts = []
    for block in blocks:
        if isinstance(block.get("text"), dict):
            parts.append(block["text"]["text"])
        for element in block.get("elements", []) + block.get("fields", []):
            if isinstance(element.get("text"), str):
                parts.append(element["text"])
    return "\n".join(parts)


def _commits(remote: Path) -> list[str]:
    return _git("--git-dir", str(remote), "log", "--format=%s", "main").splitlines()


async def test_backup_command_reports_progress_failures_and_changes(
    bot: RunningBot, slack_emulator: SlackEmulator, planes: dict[str, ControlPlane], tmp_path: Path
) -> None:
    remote = tmp_path / "remote.git"
    answer = await _answer(bot, slack_emulator, "backup")
    assert "Backup b-" in answer and "failed: staging" in answer and "1 target(s) failed" in answer
    posted = slack_emulator.parents(REPORTS)
    assert len(posted) == 1
    summary = posted[0]
    assert summary.edits >= 1  # progress updated in place, then turned into the summary
    text = _text(summary.blocks)
    assert f"*dev* {5 + GENERATED // 2 + GENERATED // 4 * 2} policies · 41 exceptions" in text
    assert "kyverno values (rev 2)" in text and "2 cleanup policies" in text
    assert ":x: *staging* failed: Environment *staging* is unreachable" in text
    assert "First backup of dev, production." in text
    assert "git remote@" in text
    assert ":x: s3://policy-backups/ failed: S3 at http://127.0.0.1:" in text
    assert "did not answer" in text and "check `endpoint_url`" in text
    uploads = [f for f in slack_emulator.files if f.completed]
    assert len(uploads) == 1 and uploads[0].thread_ts == summary.ts
    with tarfile.open(fileobj=io.BytesIO(uploads[0].content or b""), mode="r:gz") as tar:
        names = tar.getnames()
    backup_id = uploads[0].filename.removesuffix(".tar.gz")
    assert f"{backup_id}/{MANIFEST}" in names
    assert f"{backup_id}/dev/helm/kyverno/kyverno.values" in names
    objects = len([n for n in names if n.endswith(".yaml") and "/dev/" in n and "/00-" not in n])
    (subject,) = _commits(remote)
    assert subject.startswith(f"Backup {backup_id}: dev {objects} objects (first backup), ")
    assert "staging failed, production " in subject
    assert await _last_backup(bot, "dev") is not None
    assert await _last_backup(bot, "staging") is None

    # Nothing changed: a backup, but no commit.
    await _answer(bot, slack_emulator, "backup dev")
    assert len(_commits(remote)) == 1
    text = _text(slack_emulator.parents(REPORTS)[-1].blocks)
    assert "Changed since b-" in text and ": nothing" in text and "(no change, no commit)" in text

    # One policy changes, one is added: one commit that says so.
    source = planes["source"]
    with source.api_client() as api:
        seed.apply_objects(
            api,
            [
                seed.legacy_cluster_policy("gen-000", action="Enforce"),
                seed.legacy_cluster_policy("restrict-image-registries"),
            ],
        )
    try:
        await _answer(bot, slack_emulator, "backup dev")
        text = _text(slack_emulator.parents(REPORTS)[-1].blocks)
        assert "+1 (dev: restrict-image-registries)" in text and "~1 (dev: gen-000)" in text
        commits = _commits(remote)
        assert len(commits) == 2 and commits[0].endswith(": dev +1 ~1")
        body = _git("--git-dir", str(remote), "log", "-1", "--format=%b", "main")
        assert "+ dev: ClusterPolicy restrict-image-registries" in body
        assert "~ dev: ClusterPolicy gen-000" in body
    finally:
        source.kubectl("delete", "clusterpolicy", "restrict-image-registries")
        with source.api_client() as api:
            seed.apply_objects(api, [seed.legacy_cluster_policy("gen-000", action="Audit")])
    dirs = sorted(p.name for p in (tmp_path / "backups").iterdir())
    assert len([d for d in dirs if d.startswith("b-")]) == 2  # keep: 2
    listed = await _answer(bot, slack_emulator, "backup list")
    assert "Recent backups" in listed and listed.count("`b-") == 3


async def _last_backup(bot: RunningBot, env: str) -> datetime | None:
    return await build_backups(bot.services).last_backup(env)


async def test_restore_needs_an_admin_and_a_second_one_for_production(
    bot: RunningBot, slack_emulator: SlackEmulator, planes: dict[str, ControlPlane]
) -> None:
    await _answer(bot, slack_emulator, "backup dev")
    backup_id = slack_emulator.files[-1].filename.removesuffix(".tar.gz")
    refused = await _answer(bot, slack_emulator, f"restore {backup_id} production", user=ENGINEER)
    assert "Only admins may restore" in refused
    bad = await _answer(bot, slack_emulator, "restore ../etc production")
    assert "is not a backup id" in bad
    missing = await _answer(bot, slack_emulator, "restore b-20200101-000000 production")
    assert "There is no backup b-20200101-000000" in missing

    no_copy = await _answer(bot, slack_emulator, f"restore {backup_id} production")
    assert "has no environment production (it has: dev)" in no_copy
    # dev has not changed since: the dry run says so, and nothing is offered.
    answer = await _answer(bot, slack_emulator, f"restore {backup_id} dev")
    assert f"Restore {backup_id} into dev · dry run" in answer
    assert "0 created · 0 changed" in answer and "Nothing to restore" in answer


async def test_production_restore_with_two_admins(
    bot: RunningBot, slack_emulator: SlackEmulator, planes: dict[str, ControlPlane]
) -> None:
    target = planes["target"]
    # production (the target plane) holds what the round trip restored; drift one policy.
    with target.api_client() as api:
        seed.apply_objects(api, [seed.legacy_cluster_policy("prod-only-policy")])
    await _answer(bot, slack_emulator, "backup production")
    backup_id = slack_emulator.files[-1].filename.removesuffix(".tar.gz")
    target.kubectl("delete", "clusterpolicy", "prod-only-policy")
    answer = await _answer(bot, slack_emulator, f"restore {backup_id} production")
    assert "1 created" in answer and f"<#{REPORTS}>" in answer
    plan_msg = slack_emulator.parents(REPORTS)[-1]
    assert "another admin must click Restore" in _text(plan_msg.blocks)
    assert ":new: created ClusterPolicy `prod-only-policy`" in _text(plan_msg.blocks)

    same = await bot.slack.block_action(
        "restore_confirm", user=ADMIN, channel=REPORTS, message_ts=plan_msg.ts
    )
    assert same.response.status == 200
    await slack_emulator.wait_until(
        lambda: any(
            "another admin must confirm" in str(r.payload.get("text"))
            for r in slack_emulator.responses
        ),
        timeout=20,
    )
    assert target.kubectl("get", "clusterpolicy", "prod-only-policy", check=False).returncode != 0

    before = len(slack_emulator.responses)
    clicks = await asyncio.gather(
        *(
            bot.slack.block_action(
                "restore_confirm", user=SECOND_ADMIN, channel=REPORTS, message_ts=plan_msg.ts
            )
            for _ in range(2)
        )
    )  # a double click: one restore, one "already"
    assert all(c.response.status == 200 for c in clicks)
    await slack_emulator.wait_until(
        lambda: "restored" in _text(slack_emulator.message(REPORTS, plan_msg.ts).blocks),  # type: ignore[union-attr]
        timeout=60,
    )
    done = _text(slack_emulator.message(REPORTS, plan_msg.ts).blocks)  # type: ignore[union-attr]
    assert f"<@{SECOND_ADMIN}> restored {backup_id} into *production*" in done
    assert f"asked by <@{ADMIN}>" in done
    target.kubectl("get", "clusterpolicy", "prod-only-policy")

    await slack_emulator.wait_until(lambda: len(slack_emulator.responses) > before, timeout=20)
    assert "This restore was already" in _text(
        slack_emulator.responses[-1].payload.get("blocks") or []
    )
    actions = [(e.actor, e.action, e.outcome) for e in await bot.services.audit.entries()]
    assert (ADMIN, "restore.plan", "ok") in actions
    assert (ADMIN, "restore.confirm", "refused") in actions
    assert (SECOND_ADMIN, "restore.apply", "ok") in actions


async def test_evidence_pack_and_chain_check(
    bot: RunningBot, slack_emulator: SlackEmulator, tmp_path: Path
) -> None:
    month = datetime.now(UTC).strftime("%Y-%m")
    first = await _answer(bot, slack_emulator, "audit verify")
    assert "no entries yet" in first and "0 chain heads published" in first
    await bot.slack.command("/policy", "help", user=ENGINEER, channel=CHANNEL)
    answer = await _answer(bot, slack_emulator, f"audit evidence {month}")
    assert f"Evidence pack {month} is in <#{REPORTS}>" in answer
    posted = _text(slack_emulator.parents(REPORTS)[-1].blocks)
    assert "3 environments" in posted and "audit entries" in posted
    report = next(f for f in slack_emulator.files if f.filename == f"evidence-{month}.md")
    text = (report.content or b"").decode()
    assert f"# Kyverno policy evidence · {month}" in text and "## Exception register" in text
    assert "| dev | kyverno-exceptions/pe-03 |" in text and "SEC-103" in text
    stored = tmp_path / "backups" / "evidence" / month
    assert sorted(p.name for p in stored.iterdir()) == [
        "MANIFEST", "audit-chain.json", "audit.jsonl", "exceptions.json", "policies.json",
        "report.md", "violations.json",
    ]  # fmt: skip
    # The register comes from the bot's own records (the exceptions feature), not only clusters.
    assert json.loads((stored / "exceptions.json").read_text())["source"] == "store"
    chain = json.loads((stored / "audit-chain.json").read_text())
    assert chain["verify"]["ok"] is True
    verified = await _answer(bot, slack_emulator, "audit verify")
    assert "audit trail intact" in verified and "1 chain heads published" in verified
    bad = await _answer(bot, slack_emulator, "audit evidence 2026-13")
    assert "is not a month" in bad


async def test_nightly_job_backs_up_every_environment(
    bot: RunningBot, slack_emulator: SlackEmulator
) -> None:
    jobs = {j.name: j.cron for j in bot.services.scheduler.jobs}
    assert jobs["backup.nightly"] == "0 2 * * *" and jobs["evidence.monthly"] == "0 3 1 * *"
    assert await bot.services.scheduler.fire(
        "backup.nightly", datetime(2026, 11, 28, 2, tzinfo=UTC)
    )
    await _delivered(bot)
    text = _text(slack_emulator.parents(REPORTS)[-1].blocks)
    assert "3 environments" in text and "started by the nightly schedule" in text
    assert text.startswith("⚠️ Backup b-") and "incomplete: staging failed" in text.splitlines()[0]
    # Another replica firing the same slot does nothing.
    assert not await bot.services.scheduler.fire(
        "backup.nightly", datetime(2026, 11, 28, 2, tzinfo=UTC)
    )
    assert len(slack_emulator.parents(REPORTS)) == 1
    backups = build_backups(bot.services)
    entries = await backups.catalog.recent(5)
    assert [(e.trigger, e.actor) for e in entries] == [("nightly", "scheduler")]
    # The doctor's drift check reads the values of the last good backup.
    values = await backups.helm_values("dev", "kyverno")
    assert values is not None and values.backup_id == entries[0].id
    assert values.values == HELM_VALUES
    assert await backups.helm_values("staging", "kyverno") is None
