"""Mode folding follows Kyverno's precedence for all three styles."""

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from bot.kinds import KIND_SPECS, Kind
from bot.policies import Mode, policy_from_object

SAMPLES = Path(__file__).parent.parent / "data" / "samples" / "policies"
CPOL = Kind(next(k for k in KIND_SPECS if k.kind == "ClusterPolicy"), "v1")
POL = Kind(next(k for k in KIND_SPECS if k.kind == "Policy"), "v1")
VPOL = Kind(next(k for k in KIND_SPECS if k.kind == "ValidatingPolicy"), "v1")
MPOL = Kind(next(k for k in KIND_SPECS if k.kind == "MutatingPolicy"), "v1")


def rule(name, **validate):
    return {"name": name, "match": {}, "validate": validate}


def test_spec_level_action_applies_to_every_rule_without_its_own():
    policy = policy_from_object(
        CPOL,
        {
            "metadata": {"name": "p"},
            "spec": {"validationFailureAction": "enforce", "rules": [rule("a"), rule("b")]},
        },
    )
    assert [(r.rule, r.action, r.source) for r in policy.rules] == [
        ("a", Mode.ENFORCE, "spec"),
        ("b", Mode.ENFORCE, "spec"),
    ]
    assert policy.mode is Mode.ENFORCE


def test_rule_action_wins_over_spec_and_hides_spec_overrides():
    spec = {
        "validationFailureAction": "Audit",
        "validationFailureActionOverrides": [{"action": "Enforce", "namespaces": ["prod-*"]}],
        "rules": [rule("own", failureAction="Audit"), rule("inherits")],
    }
    policy = policy_from_object(CPOL, {"metadata": {"name": "p"}, "spec": spec})
    own, inherits = policy.rules
    assert own.overrides == ()  # a rule-level action stops the spec-level overrides
    assert inherits.overrides[0].namespaces == ("prod-*",)
    assert policy.base_mode is Mode.AUDIT
    assert policy.mode is Mode.MIXED
    assert inherits.describe() == "inherits (Audit; Enforce in prod-*)"


def test_default_is_audit_and_non_validate_rules_have_no_mode():
    policy = policy_from_object(
        CPOL,
        {"metadata": {"name": "p"}, "spec": {"rules": [rule("v"), {"name": "m", "mutate": {}}]}},
    )
    assert [r.rule for r in policy.rules] == ["v"]
    assert policy.mode is Mode.AUDIT
    none = policy_from_object(
        CPOL, {"metadata": {"name": "g"}, "spec": {"rules": [{"name": "g", "generate": {}}]}}
    )
    assert none.mode is Mode.NONE


def test_per_rule_sample_with_selector_override():
    obj = yaml.safe_load((SAMPLES / "check-labels-per-rule-failureaction.yaml").read_text())
    policy = policy_from_object(CPOL, obj)
    (only,) = policy.rules
    assert only.action is Mode.ENFORCE
    assert only.overrides[0].action is Mode.AUDIT and only.overrides[0].selector
    assert policy.base_mode is Mode.ENFORCE and policy.mode is Mode.MIXED


@pytest.mark.parametrize("path", sorted(SAMPLES.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_sample_has_a_mode(path):
    policy = policy_from_object(CPOL, yaml.safe_load(path.read_text()))
    assert policy.rules and policy.mode in (Mode.AUDIT, Mode.ENFORCE, Mode.MIXED)


def test_cel_validation_actions():
    deny = policy_from_object(
        VPOL, {"metadata": {"name": "v"}, "spec": {"validationActions": ["Deny"]}}
    )
    audit = policy_from_object(
        VPOL, {"metadata": {"name": "v"}, "spec": {"validationActions": ["Audit", "Warn"]}}
    )
    assert deny.mode is Mode.ENFORCE and audit.mode is Mode.AUDIT
    assert policy_from_object(MPOL, {"metadata": {"name": "m"}, "spec": {}}).mode is Mode.NONE


def test_readiness_and_identity():
    ready = policy_from_object(
        POL,
        {
            "metadata": {
                "name": "p",
                "namespace": "team-a",
                "creationTimestamp": "2026-11-01T10:00:00Z",
            },
            "spec": {"rules": [rule("r")]},
            "status": {"conditions": [{"type": "Ready", "status": "False", "message": "bad"}]},
        },
    )
    assert ready.ready is False and ready.ready_message == "bad"
    assert ready.ref == "team-a/p" and ready.key == (True, "team-a/p")
    assert ready.created == datetime(2026, 11, 1, 10, tzinfo=UTC)
    cel = policy_from_object(
        VPOL,
        {"metadata": {"name": "v"}, "spec": {}, "status": {"conditionStatus": {"ready": True}}},
    )
    assert cel.ready is True and cel.key == (False, "v")
    assert policy_from_object(CPOL, {"metadata": {"name": "x"}, "spec": {}}).ready is None
