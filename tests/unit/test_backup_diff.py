"""What changed between backups, and the git commit message that says so."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.backup.bundle import Bundle, EnvironmentBackup
from bot.backup.diff import diff_environment, environment_files
from bot.backup.service import commit_message

PREVIOUS = {
    "dev/00-namespaces/team-a.yaml": "n1",
    "dev/clusterpolicies.kyverno.io/keep.yaml": "k1",
    "dev/clusterpolicies.kyverno.io/edit.yaml": "e1",
    "dev/clusterpolicies.kyverno.io/gone.yaml": "g1",
    "dev/helm/kyverno/kyverno.values": "h1",
}
CURRENT = {
    "dev/00-namespaces/team-b.yaml": "n2",
    "dev/clusterpolicies.kyverno.io/keep.yaml": "k1",
    "dev/clusterpolicies.kyverno.io/edit.yaml": "e2",
    "dev/policies.kyverno.io/team-b/new.yaml": "p1",
    "dev/helm/kyverno/kyverno.values": "h2",
}


def test_added_removed_changed_and_helm_values() -> None:
    diff = diff_environment("dev", CURRENT, PREVIOUS, previous_id="b-20261127-020000")
    assert [k.ref for k in diff.added] == ["team-b/new"]
    assert [k.describe() for k in diff.removed] == ["ClusterPolicy gone"]
    assert [k.ref for k in diff.changed] == ["edit"]
    assert diff.helm_changed == ("kyverno/kyverno",)
    assert not diff.empty  # namespaces alone never count


def test_first_backup_and_no_change() -> None:
    assert diff_environment("dev", CURRENT, None, previous_id=None).previous_id is None
    same = diff_environment("dev", CURRENT, dict(CURRENT), previous_id="b-1")
    assert same.empty


def test_environment_files_selects_one_environment() -> None:
    manifest = {"files": {**CURRENT, "qa/x.yaml": "q", "MANIFEST": "m"}}
    assert environment_files(manifest, "dev") == CURRENT


def test_commit_message_summarises_each_environment() -> None:
    at = datetime(2026, 11, 28, 2, tzinfo=UTC)
    bundle = Bundle(
        "b-20261128-020000",
        at,
        "0.1.0",
        (
            EnvironmentBackup("dev", counts={"clusterpolicies.kyverno.io": 3}),
            EnvironmentBackup("qa", counts={"clusterpolicies.kyverno.io": 2}),
            EnvironmentBackup("prod", counts={"clusterpolicies.kyverno.io": 1}),
            EnvironmentBackup("staging", error="down"),
        ),
    )
    diffs = [
        diff_environment("dev", CURRENT, PREVIOUS, previous_id="b-1"),
        diff_environment("qa", {}, {}, previous_id="b-1"),
        diff_environment("prod", {}, None, previous_id=None),
    ]
    assert commit_message(bundle, diffs) == (
        "Backup b-20261128-020000: dev +1 -1 ~1 helm values, qa no change, "
        "prod 1 objects (first backup), staging failed\n"
        "\n"
        "+ dev: Policy team-b/new\n"
        "- dev: ClusterPolicy gone\n"
        "~ dev: ClusterPolicy edit\n"
        "~ dev: helm values kyverno/kyverno\n"
    )
