"""Switching the mode of each policy style, with namespace overrides kept in force."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from bot.kinds import KIND_SPECS, Family, Kind
from bot.ladder import STAGE, STAGE_SINCE
from bot.playground import seed
from bot.policies import Mode, policy_from_object
from bot.promotion.modes import (
    changes,
    clean_copy,
    mode_write,
    spec_drift,
    with_mode,
    with_stage,
)

CPOL = Kind(next(s for s in KIND_SPECS if s.kind == "ClusterPolicy"), "v1")
VPOL = Kind(next(s for s in KIND_SPECS if s.kind == "ValidatingPolicy"), "v1")
LEGACY, CEL = Family.LEGACY_POLICY, Family.CEL_POLICY
PROD = seed.failure_action_override("Enforce", namespaces=["prod-*"])
TEAM = seed.failure_action_override("Audit", namespaces=["team-*"])


def effective(kind: Kind, obj: dict[str, Any]) -> list[tuple[str, str, tuple[Any, ...]]]:
    policy = policy_from_object(kind, obj)
    return [(r.rule, r.action.value, r.overrides) for r in policy.rules]


def test_legacy_spec_level_policy_gets_rule_modes_and_keeps_its_overrides():
    before = seed.legacy_cluster_policy("require-labels", action="Audit", overrides=[PROD])
    after = with_mode(LEGACY, before, Mode.ENFORCE)
    spec = after["spec"]
    assert spec["validationFailureAction"] == "Enforce"
    assert spec["validationFailureActionOverrides"] == [PROD]  # the spec-level list stays
    rule = spec["rules"][0]["validate"]
    assert rule["failureAction"] == "Enforce"
    # Kyverno stops reading the spec-level list once the rule has a failureAction: copied.
    assert rule["failureActionOverrides"] == [PROD]
    assert [o for _, _, o in effective(CPOL, after)] == [o for _, _, o in effective(CPOL, before)]
    assert policy_from_object(CPOL, after).base_mode is Mode.ENFORCE
    assert before == seed.legacy_cluster_policy(
        "require-labels", action="Audit", overrides=[PROD]
    ), "the input is not modified"


def test_rule_overrides_come_before_the_copied_spec_level_ones():
    rule = seed.require_label_rule("r", failure_action_overrides=[TEAM])
    before = seed.legacy_cluster_policy("p", overrides=[PROD], rules=[rule])
    after = with_mode(LEGACY, before, Mode.ENFORCE)
    assert after["spec"]["rules"][0]["validate"]["failureActionOverrides"] == [TEAM, PROD]


def test_per_rule_policy_switches_every_rule_and_aligns_the_spec_level_field():
    before = seed.per_rule_cluster_policy("p", actions=("Enforce", "Audit"), overrides=[TEAM])
    after = with_mode(LEGACY, before, Mode.ENFORCE)
    assert [r["validate"]["failureAction"] for r in after["spec"]["rules"]] == [
        "Enforce",
        "Enforce",
    ]
    assert [r["validate"]["failureActionOverrides"] for r in after["spec"]["rules"]] == [
        [TEAM],
        [TEAM],
    ]
    # The CRD defaults the spec-level field to Audit: left unset it would contradict the rules.
    assert after["spec"]["validationFailureAction"] == "Enforce"
    assert "validationFailureActionOverrides" not in after["spec"]


def test_lowercase_legacy_values_are_written_in_the_current_spelling():
    before = seed.legacy_cluster_policy("p", action="enforce")
    after = with_mode(LEGACY, before, Mode.AUDIT)
    assert after["spec"]["validationFailureAction"] == "Audit"
    assert after["spec"]["rules"][0]["validate"]["failureAction"] == "Audit"


def test_rules_without_validate_are_left_alone():
    mutate = {"name": "add-label", "match": {}, "mutate": {"patchStrategicMerge": {}}}
    before = seed.legacy_cluster_policy("p", rules=[mutate, seed.require_label_rule("r")])
    after = with_mode(LEGACY, before, Mode.ENFORCE)
    assert after["spec"]["rules"][0] == mutate


def test_cel_validation_actions():
    deny = with_mode(CEL, seed.validating_policy("v", actions=("Audit", "Warn")), Mode.ENFORCE)
    assert deny["spec"]["validationActions"] == ["Deny"]  # Deny and Warn may not be combined
    audit_warn = with_mode(CEL, seed.validating_policy("v", actions=("Warn",)), Mode.AUDIT)
    assert audit_warn["spec"]["validationActions"] == ["Audit", "Warn"]  # warnings kept
    audit = with_mode(CEL, seed.validating_policy("v", actions=("Deny",)), Mode.AUDIT)
    assert audit["spec"]["validationActions"] == ["Audit"]
    assert policy_from_object(VPOL, deny).mode is Mode.ENFORCE
    assert policy_from_object(VPOL, audit).mode is Mode.AUDIT


def test_demote_turns_enforce_overrides_into_audit_so_nothing_denies_any_more():
    rule = seed.require_label_rule("r", failure_action="Enforce", failure_action_overrides=[PROD])
    before = seed.legacy_cluster_policy(
        "p", action="Enforce", overrides=[PROD], rules=[rule, seed.require_label_rule("legacy")]
    )
    promoted = with_mode(LEGACY, before, Mode.AUDIT)
    assert policy_from_object(CPOL, promoted).mode is Mode.MIXED  # promotion keeps overrides
    demoted = with_mode(LEGACY, before, Mode.AUDIT, demote=True)
    assert policy_from_object(CPOL, demoted).mode is Mode.AUDIT
    audit_prod = {**PROD, "action": "Audit"}
    assert demoted["spec"]["validationFailureActionOverrides"] == [audit_prod]
    assert [r["validate"]["failureActionOverrides"] for r in demoted["spec"]["rules"]] == [
        [audit_prod],
        [audit_prod],
    ]


def test_changes_name_exactly_the_fields_that_differ():
    before = seed.legacy_cluster_policy("p", action="Audit", overrides=[PROD])
    after = with_stage(
        with_mode(LEGACY, before, Mode.ENFORCE),
        stage="staging:Enforce",
        since=datetime(2026, 11, 28, 9, 14, tzinfo=UTC),
        created=False,
    )
    assert [c.describe() for c in changes(LEGACY, before, after)] == [
        "spec.validationFailureAction: Audit → Enforce",
        "spec.rules[check-for-labels].validate.failureAction: (unset) → Enforce",
        "spec.rules[check-for-labels].validate.failureActionOverrides: (unset) → Enforce in prod-*",
        f"metadata.annotations[{STAGE}]: (unset) → staging:Enforce",
        f"metadata.annotations[{STAGE_SINCE}]: (unset) → 2026-11-28T09:14:00Z",
    ]
    created = with_stage(
        with_mode(CEL, seed.validating_policy("v"), Mode.AUDIT),
        stage="qac:Audit",
        since=datetime(2026, 11, 28, tzinfo=UTC),
        created=True,
    )
    assert [c.path for c in changes(CEL, None, created)] == [
        "spec.validationActions",
        f"metadata.annotations[{STAGE}]",
        f"metadata.annotations[{STAGE_SINCE}]",
        "metadata.labels[app.kubernetes.io/managed-by]",
    ]


def test_clean_copy_drops_what_the_server_sets():
    stored = seed.legacy_cluster_policy("p")
    stored["metadata"] |= {
        "uid": "u",
        "resourceVersion": "7",
        "generation": 2,
        "creationTimestamp": "2026-11-01T00:00:00Z",
        "managedFields": [{"manager": "kubectl"}],
        "annotations": {
            **stored["metadata"]["annotations"],
            "kubectl.kubernetes.io/last-applied-configuration": "{}",
        },
    }
    stored["status"] = {"conditions": []}
    assert clean_copy(stored) == seed.legacy_cluster_policy("p")


def test_mode_write_is_the_latest_manager_owning_a_mode_field():
    obj = copy.deepcopy(seed.legacy_cluster_policy("p"))
    obj["metadata"]["managedFields"] = [
        {
            "manager": "argocd",
            "operation": "Apply",
            "time": "2026-11-01T00:00:00Z",
            "fieldsV1": {"f:spec": {"f:rules": {}, "f:background": {}}},
        },
        {
            "manager": "kubectl-edit",
            "operation": "Update",
            "time": "2026-11-20T10:00:00Z",
            "fieldsV1": {"f:spec": {"f:validationFailureAction": {}}},
        },
        {
            "manager": "kyverno",
            "operation": "Update",
            "subresource": "status",
            "time": "2026-11-27T00:00:00Z",
            "fieldsV1": {"f:status": {}},
        },
        {
            "manager": "labeller",
            "operation": "Update",
            "time": "2026-11-26T00:00:00Z",
            "fieldsV1": {"f:metadata": {"f:labels": {}}},
        },
    ]
    write = mode_write(LEGACY, obj)
    assert write is not None and write.manager == "kubectl-edit"
    assert write.at == datetime(2026, 11, 20, 10, tzinfo=UTC)
    assert mode_write(CEL, obj) is None
    assert mode_write(LEGACY, seed.legacy_cluster_policy("p")) is None


def test_spec_drift_ignores_the_mode():
    a = seed.legacy_cluster_policy("p", action="Audit")
    b = seed.legacy_cluster_policy("p", action="Enforce")
    assert spec_drift(LEGACY, a, b) == []
    c = seed.legacy_cluster_policy("p", action="Enforce", background=False)
    assert spec_drift(LEGACY, a, c) == ["background"]
