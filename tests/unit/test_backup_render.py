"""Block Kit of backups, restores and evidence packs: golden JSON and Slack's limits.

Set POLICY_BOT_UPDATE_GOLDEN=1 to rewrite tests/golden/backup/ after a deliberate change.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from bot.audit import VerifyReport
from bot.backup.bundle import Bundle, EnvironmentBackup, HelmValues, ObjectKey
from bot.backup.catalog import CatalogEntry, PlanRecord
from bot.backup.diff import EnvironmentDiff
from bot.backup.evidence import EvidencePack
from bot.backup.restore import PlanItem, RestorePlan, RestoreResult
from bot.backup.service import BackupReport, EvidenceReport, PlanView, RestoreOutcome
from bot.backup.targets import Stored
from bot.playground.slack_emulator import validate_blocks
from handlers.render import backup as render
from tests.goldens import Golden, golden_fixture, without_text

AT = datetime(2026, 11, 28, 2, tzinfo=UTC)


golden = golden_fixture("backup", lone_blocks=without_text)


def _dev() -> EnvironmentBackup:
    return EnvironmentBackup(
        "dev",
        counts={
            "clusterpolicies.kyverno.io": 30,
            "validatingpolicies.policies.kyverno.io": 8,
            "policyexceptions.kyverno.io": 6,
            "clustercleanuppolicies.kyverno.io": 1,
        },
        missing_kinds=("mutatingpolicies.policies.kyverno.io",),
        helm=(
            HelmValues("kyverno", "kyverno", 7, "kyverno-3.9.0", "v1.19.0"),
            HelmValues("policy-reporter", "policy-reporter", error="no deployed revision"),
        ),
        seconds=1.2,
    )


def _report() -> BackupReport:
    down = EnvironmentBackup("staging", error="Environment *staging* is unreachable <!channel>")
    prod = EnvironmentBackup("production", counts={"clusterpolicies.kyverno.io": 30}, seconds=0.8)
    bundle = Bundle("b-20261128-020000", AT, "0.1.0", (_dev(), down, prod))
    key = ObjectKey("dev", "ClusterPolicy", "kyverno.io", None, "restrict-image-registries")
    changed = ObjectKey("dev", "Policy", "kyverno.io", "team-a", "require-team")
    return BackupReport(
        bundle,
        AT,
        AT + timedelta(seconds=1.9),
        (
            EnvironmentDiff("dev", "b-20261127-020000", added=(key,), changed=(changed,)),
            EnvironmentDiff("production", None),
        ),
        (
            Stored("git", "4e1c2a9f", "git policy-backups@4e1c2a9"),
            Stored("dir", "/b", "dir /b/b-20261128-020000", changed=True),
            Stored("s3", "", "s3://policy-backups/", error="S3 did not answer"),
        ),
    )


def test_summary(golden: Golden) -> None:
    golden("summary", render.summary(_report(), by="<@U0ADMIN1>"))


def test_progress_and_answer(golden: Golden) -> None:
    states = {"dev": _dev(), "staging": None, "production": None}
    golden("progress", render.progress(states, by="the nightly schedule"))
    golden("answer", render.answer(_report(), channel="C0REPORTS"))


def _plan(production: bool, actions: tuple[str, ...]) -> PlanView:
    items = tuple(
        PlanItem("ClusterPolicy", "kyverno.io", None, f"policy-{i}", action, detail)
        for i, (action, detail) in enumerate(
            (a, {"changed": "spec.rules", "invalid": "spec.rules: Required value"}.get(a, ""))
            for a in actions
        )
    )
    record = PlanRecord(
        "rp-0123456789ab", "b-20261128-020000", "production" if production else "dev",
        "dir /b/b-20261128-020000", "U0ADMIN1", AT, "pending", tuple(i.to_json() for i in items),
        None, None, None,
    )  # fmt: skip
    return PlanView(record, RestorePlan(record.environment, items), production)


def test_restore_plans(golden: Golden) -> None:
    golden("plan_production", render.plan(_plan(True, ("created", "changed", "unchanged"))))
    golden("plan_invalid", render.plan(_plan(False, ("created", "invalid", "skipped"))))
    golden("plan_nothing", render.plan(_plan(False, ("unchanged", "unchanged"))))
    many = render.plan(_plan(False, ("created",) * 120))
    assert not validate_blocks(many)
    assert "… and 80 more" in json.dumps(many, ensure_ascii=False)


DEPRECATED = (
    "kyverno.io/v1 ClusterPolicy is deprecated and will be removed in a future release; migrate "
    "to ValidatingPolicy, MutatingPolicy, GeneratingPolicy or ImageValidatingPolicy "
    "(policies.kyverno.io), see https://kyverno.io/docs/guides/migration-to-cel/"
)


def test_restore_plan_and_outcome_show_the_api_servers_warnings(golden: Golden) -> None:
    view = _plan(False, ("created", "changed", "unchanged"))
    warned = replace(view, plan=replace(view.plan, warnings=((DEPRECATED, 3),)))
    golden("plan_warned", render.plan(warned))
    result = RestoreResult("dev", applied=view.plan.items, warnings=((DEPRECATED, 1),))
    blocks = render.restored(RestoreOutcome(view.record, result), user="U0ADMIN2")
    text = json.dumps(blocks, ensure_ascii=False)
    assert "The API server of dev warned:" in text and "(1 objects)" not in text


def test_restore_outcomes(golden: Golden) -> None:
    view = _plan(True, ("created",))
    failed = PlanItem("ClusterPolicy", "kyverno.io", None, "bad", "failed", "denied by webhook")
    result = RestoreResult("production", applied=view.plan.items, failed=(failed,))
    golden("restored", render.restored(RestoreOutcome(view.record, result), user="U0ADMIN2"))
    applied = PlanRecord(**{**view.record.__dict__, "state": "applied", "decided_by": "U0ADMIN2"})
    golden("restored_already", render.restored(RestoreOutcome(applied, None, True), user="U0X"))


def test_evidence_verify_and_list(golden: Golden) -> None:
    summary = {
        "month": "2026-11", "environments": 4, "policies": 134, "exceptions": 14,
        "audit_entries": 1520, "chain_ok": True, "head_id": 4211, "head_hash": "ab" * 32,
    }  # fmt: skip
    report = EvidenceReport(
        EvidencePack("2026-11", {}, summary),
        (Stored("git", "1", "git policy-backups@1a2b3c4"),),
    )
    golden("evidence", render.evidence(report, by="the monthly schedule"))
    broken = VerifyReport(False, 41, 42, "entry 42: hash does not match its content", 41, "c" * 64)
    golden("verify_broken", render.verify(broken, anchors=3))
    entry = CatalogEntry(
        "b-20261128-020000", AT, AT + timedelta(seconds=2), "nightly", "scheduler",
        {"environments": {"dev": {"ok": True, "objects": 44}, "qa": {"ok": False}}}, (),
    )  # fmt: skip
    golden("list", render.backups_list([entry], now=AT + timedelta(hours=7)))
