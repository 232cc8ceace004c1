"""Time in stage (record, annotation, managedFields, creation), gates, outside changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bot.kinds import KIND_SPECS, Kind
from bot.ladder import (
    STAGE,
    STAGE_SINCE,
    Ladder,
    MaxFailures,
    MinDays,
    ModeWrite,
    ReadyInCurrent,
    Stage,
    StageEvidence,
    StageRecord,
    stage_since,
)
from bot.policies import Mode, Policy, policy_from_object

CPOL = Kind(next(s for s in KIND_SPECS if s.kind == "ClusterPolicy"), "v1")
NOW = datetime(2026, 11, 28, 9, 14, tzinfo=UTC)
CREATED = "2026-11-01T00:00:00Z"
STAGING_ENFORCE = Stage("staging", Mode.ENFORCE)


def policy(action: str, *, annotations: dict[str, str] | None = None, status: Any = None) -> Policy:
    obj: dict[str, Any] = {
        "metadata": {"name": "p", "creationTimestamp": CREATED, "annotations": annotations or {}},
        "spec": {"validationFailureAction": action, "rules": [{"name": "r", "validate": {}}]},
    }
    if status is not None:
        obj["status"] = status
    return policy_from_object(CPOL, obj)


class Env:
    def __init__(self, p: Policy | None = None, failures: int = 0, failing: Any = ()) -> None:
        self._p, self._f, self._failing = p, failures, failing

    def policy(self, name: str) -> Policy | None:
        return self._p

    def failures(self, policy: Policy) -> int:
        return self._f

    def failing_resources(self, policy: Policy) -> Any:
        return self._failing


RECORD = StageRecord("staging:Enforce", NOW - timedelta(days=9), "U0OWNER1", "promote")
WRITE = ModeWrite(NOW - timedelta(days=2), "kubectl-edit")


def test_the_bots_record_comes_first():
    since, source = stage_since(
        policy("Enforce"), stage=STAGING_ENFORCE, evidence=StageEvidence(RECORD, WRITE)
    )
    assert (since, source) == (RECORD.at, "the bot's record")


def test_a_record_of_another_stage_is_skipped():
    record = StageRecord("staging:Audit", NOW - timedelta(days=20), "U0OWNER1", "promote")
    since, source = stage_since(
        policy("Enforce"), stage=STAGING_ENFORCE, evidence=StageEvidence(record, WRITE)
    )
    assert source == "the managedFields time of its mode field (kubectl-edit)"
    assert since == WRITE.at


def test_annotation_counts_only_for_the_stage_it_names():
    since_text = (NOW - timedelta(days=4)).strftime("%Y-%m-%dT%H:%M:%SZ")
    matching = policy("Enforce", annotations={STAGE: "staging:Enforce", STAGE_SINCE: since_text})
    assert stage_since(matching, stage=STAGING_ENFORCE)[1] == "its stage annotation"
    other = policy("Enforce", annotations={STAGE: "qac:Audit", STAGE_SINCE: since_text})
    assert stage_since(other, stage=STAGING_ENFORCE) == (
        datetime(2026, 11, 1, tzinfo=UTC),
        "its creation time",
    )
    # A record contradicted by the annotation (someone re-staged it) is not trusted either.
    assert stage_since(other, stage=STAGING_ENFORCE, evidence=StageEvidence(RECORD))[1] == (
        "its creation time"
    )


def test_managed_fields_do_not_count_for_an_any_mode_stage():
    any_mode = Stage("dev", None)
    assert stage_since(policy("Audit"), stage=any_mode, evidence=StageEvidence(None, WRITE))[1] == (
        "its creation time"
    )


def ladder() -> Ladder:
    return Ladder(
        (Stage("staging", Mode.AUDIT), STAGING_ENFORCE, Stage("production", Mode.AUDIT)),
        (
            MinDays(7),
            MaxFailures(0),
            MaxFailures(0, environment="staging", to="production"),
            ReadyInCurrent(to="production:Audit"),
        ),
    )


def test_gates_apply_to_the_steps_they_name_and_show_their_figures():
    envs = {
        "staging": Env(
            policy("Audit"), failures=3, failing=[("shop Deployment/app", 2), ("and 1 more", 0)]
        ),
        "production": Env(),
    }
    view = ladder().view(envs, "p", now=NOW)
    assert view is not None and view.current == Stage("staging", Mode.AUDIT)
    assert [(g.description, g.passed, g.figure, g.detail) for g in view.gates] == [
        (
            "at least 7 days in staging (Audit)",
            True,
            "27 days (since 2026-11-01, from its creation time)",
            "",
        ),
        (
            "at most 0 failing results in staging",
            False,
            "3 failing",
            "shop Deployment/app ×2, and 1 more",
        ),
    ]


def test_gates_into_production_check_another_environment_and_readiness():
    ready = {"conditions": [{"type": "Ready", "status": "True"}]}
    envs = {
        "staging": Env(policy("Enforce", status=ready), failures=2),
        "production": Env(),
    }
    view = ladder().view(envs, "p", now=NOW, evidence={"staging": StageEvidence(RECORD)})
    assert view is not None and view.next == Stage("production", Mode.AUDIT)
    assert [(g.description, g.passed, g.figure) for g in view.gates] == [
        (
            "at least 7 days in staging (Enforce)",
            True,
            "9 days (since 2026-11-19, from the bot's record)",
        ),
        ("at most 0 failing results in staging", False, "2 failing"),
        ("at most 0 failing results in staging", False, "2 failing"),
        ("Ready in staging", True, "Ready"),
    ]
    not_ready = {"conditions": [{"type": "Ready", "status": "False", "message": "no webhook"}]}
    envs["staging"] = Env(policy("Enforce", status=not_ready))
    gates = ladder().view(envs, "p", now=NOW).gates  # type: ignore[union-attr]
    assert gates[-1].figure == "not Ready: no webhook" and not gates[-1].passed
    envs["staging"] = Env(policy("Enforce"))
    gates = ladder().view(envs, "p", now=NOW).gates  # type: ignore[union-attr]
    assert gates[-1].figure == "Kyverno has not reported readiness"


def test_mode_changed_outside_the_bot_is_noted_and_the_real_mode_counts():
    changed = policy(
        "Audit",
        annotations={STAGE: "staging:Enforce", STAGE_SINCE: "2026-11-19T09:14:00Z"},
    )
    envs = {"staging": Env(changed), "production": Env()}
    view = ladder().view(envs, "p", now=NOW, evidence={"staging": StageEvidence(RECORD, WRITE)})
    assert view is not None
    assert view.notes == (
        "staging: mode changed outside policy-bot by kubectl-edit at 2026-11-26 09:14 UTC: "
        "the bot set Enforce, it is Audit now",
    )
    assert view.current == Stage("staging", Mode.AUDIT)
    assert view.since_source == "the managedFields time of its mode field (kubectl-edit)"
    assert not view.gates[0].passed and view.gates[0].figure.startswith("2 days")
