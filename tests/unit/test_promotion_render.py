"""Promotion messages: golden Block Kit JSON, Slack's limits, escaping.

Set POLICY_BOT_UPDATE_GOLDEN=1 to rewrite the golden files after a deliberate change, then
review the diff like any other code change.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

from bot.kinds import KIND_SPECS, Family, Kind
from bot.ladder import GateResult, Stage
from bot.playground.slack_emulator import validate_blocks, validate_view
from bot.policies import Mode
from bot.promotion.modes import FieldChange
from bot.promotion.plan import EnvVersion, Plan
from bot.promotion.readiness import NOT_READY, READY, TIMEOUT, Readiness
from bot.promotion.service import Applied, Demoted, Superseded, Write
from handlers.render import promotion as render
from tests.goldens import Golden, golden_fixture

NOW = datetime(2026, 11, 28, 9, 14, tzinfo=UTC)
CPOL = Kind(next(s for s in KIND_SPECS if s.kind == "ClusterPolicy"), "v1")


golden = golden_fixture("promotion")


PLAN = Plan(
    id="P-3F9A2C",
    policy="require-labels",
    kind="ClusterPolicy",
    family=Family.LEGACY_POLICY,
    requested_by="U0OWNER1",
    created_at=NOW,
    current=Stage("qac", Mode.AUDIT),
    target=Stage("staging", Mode.ENFORCE),
    since=datetime(2026, 11, 19, 9, 0, tzinfo=UTC),
    since_source="the bot's record",
    gates=(
        GateResult(
            "at least 7 days in qac (Audit)",
            True,
            "9 days (since 2026-11-19, from the bot's record)",
        ),
        GateResult("at most 0 failing results in qac", True, "0 failing"),
    ),
    creates=True,
    changes=(
        FieldChange("spec.validationFailureAction", "Audit", "Enforce"),
        FieldChange("spec.rules[check-team].validate.failureAction", "(unset)", "Enforce"),
        FieldChange(
            "spec.rules[check-team].validate.failureActionOverrides",
            "(unset)",
            "Enforce in payments-*",
        ),
        FieldChange("metadata.annotations[policy-bot.io/stage]", "(unset)", "staging:Enforce"),
        FieldChange(
            "metadata.annotations[policy-bot.io/stage-since]", "(unset)", "2026-11-28T09:14:00Z"
        ),
        FieldChange("metadata.labels[app.kubernetes.io/managed-by]", "(unset)", "policy-bot"),
    ),
    rules=2,
    drift=(),
    notes=(),
    versions=(
        EnvVersion("qac", "48121", 3),
        EnvVersion("staging", None, None),
        EnvVersion("production", None, None),
    ),
)
BLOCKED = replace(
    PLAN,
    id="P-0B1C2D",
    current=Stage("staging", Mode.ENFORCE),
    target=Stage("production", Mode.AUDIT),
    gates=(
        GateResult(
            "at least 7 days in staging (Enforce)",
            False,
            "3 days (since 2026-11-25, from its stage annotation)",
        ),
        GateResult(
            "at most 0 failing results in staging",
            False,
            "3 failing",
            "payments Deployment/ledger ×2, shop Deployment/<!channel> ×1",
        ),
    ),
    creates=False,
    changes=(
        FieldChange("spec.validationFailureAction", "Enforce", "Audit"),
        FieldChange("spec.rules[check-team].validate.failureAction", "Enforce", "Audit"),
        FieldChange(
            "spec.rules[check-team].validate.failureActionOverrides",
            "(unset)",
            "Enforce in prod-*; Audit in team-*",
        ),
        FieldChange(
            "metadata.annotations[policy-bot.io/stage]", "staging:Enforce", "production:Audit"
        ),
    ),
    drift=("background",),
    notes=("staging: mode changed outside policy-bot: the bot set Enforce, it is Audit now",),
)
WRITE = Write(
    environment="staging",
    kind=CPOL,
    name="require-labels",
    namespace=None,
    created=True,
    resource_version_before=None,
    resource_version="1207",
    generation=1,
    written_at=NOW,
    before=None,
)


def test_plan_that_passes(golden: Golden) -> None:
    golden("plan_ready", render.plan_message(PLAN, second_person=False))


def test_plan_into_production_names_the_second_person(golden: Golden) -> None:
    plan = replace(
        PLAN, current=Stage("staging", Mode.ENFORCE), target=Stage("production", Mode.AUDIT)
    )
    text, blocks = render.plan_message(plan, second_person=True)
    assert "someone other than <@U0OWNER1> clicks Promote" in json.dumps(blocks)
    golden("plan_production", (text, blocks))


def test_blocked_plan_offers_override_and_escapes_cluster_text(golden: Golden) -> None:
    text, blocks = render.plan_message(BLOCKED, second_person=True)
    dumped = json.dumps(blocks)
    assert "<!channel>" not in dumped and "&lt;!channel&gt;" in dumped
    actions = [e["action_id"] for e in blocks[-1]["elements"]]
    assert actions == [render.OVERRIDE_ACTION, render.CANCEL_ACTION]
    assert all(e["value"] == "P-0B1C2D" for e in blocks[-1]["elements"])
    golden("plan_blocked", (text, blocks))


def test_applied_while_waiting_and_after(golden: Golden) -> None:
    applied = Applied(PLAN, "U0OWNER2", WRITE)
    golden("applied_waiting", render.applied_message(applied, None, timeout_s=60))
    golden(
        "applied_ready",
        render.applied_message(applied, Readiness(READY, 4.2), timeout_s=60),
    )
    golden(
        "applied_timeout",
        render.applied_message(applied, Readiness(TIMEOUT, 60.1, timeout_s=60), timeout_s=60),
    )


def test_applied_shows_what_the_api_server_warned(golden: Golden) -> None:
    """Kyverno 1.19 warns on every write of a kyverno.io/v1 policy; the message says so."""
    warned = replace(
        WRITE,
        warnings=(
            "kyverno.io/v1 ClusterPolicy is deprecated and will be removed in a future release; "
            "migrate to ValidatingPolicy, MutatingPolicy, GeneratingPolicy or "
            "ImageValidatingPolicy (policies.kyverno.io), see "
            "https://kyverno.io/docs/guides/migration-to-cel/",
            "spec.validationFailureAction: Validation failure actions enforce/audit are "
            "deprecated, use Enforce/Audit instead. <b>",
        ),
    )
    text, blocks = render.applied_message(
        Applied(PLAN, "U0OWNER2", warned), Readiness(READY, 4.2), timeout_s=60
    )
    dumped = json.dumps(blocks)
    assert "The API server of staging warned:" in dumped and "&lt;b&gt;" in dumped
    golden("applied_warned", (text, blocks))


def test_override_outcome_and_announcement(golden: Golden) -> None:
    write = replace(WRITE, created=False, resource_version_before="1190", generation=4)
    applied = Applied(BLOCKED, "U0ADMIN1", write, "U0ADMIN1", "Backfill finished; SEC-1423 <b>")
    golden(
        "applied_override",
        render.applied_message(applied, Readiness(NOT_READY, 2.0, "bad pattern"), timeout_s=60),
    )
    golden("override_announcement", render.override_announcement(applied))


def test_superseded_and_cancelled(golden: Golden) -> None:
    fresh = replace(PLAN, id="P-AAAAAA")
    reasons = ("qac: resourceVersion 48121 → 48200",)
    golden("superseded", render.superseded_message(Superseded(PLAN, fresh, reasons)))
    golden("cancelled", render.cancelled_message(PLAN, by="U0OWNER1"))


def test_demote(golden: Golden) -> None:
    demoted = Demoted(
        policy="require-labels",
        kind="ClusterPolicy",
        environment="production",
        by="U0OWNER1",
        mode_before=Mode.ENFORCE,
        changes=(
            FieldChange("spec.validationFailureAction", "Enforce", "Audit"),
            FieldChange("spec.rules[check-team].validate.failureAction", "Enforce", "Audit"),
            FieldChange(
                "metadata.annotations[policy-bot.io/stage]",
                "production:Enforce",
                "production:Audit",
            ),
        ),
        write=replace(
            WRITE, environment="production", created=False, resource_version_before="900"
        ),
    )
    golden("demote_waiting", render.demote_message(demoted, None, timeout_s=60))
    golden("demote_ready", render.demote_message(demoted, Readiness(READY, 2.4), timeout_s=60))


def test_demote_in_production_asks_first(golden: Golden) -> None:
    blocks = render.demote_prompt("pol/team-a/require-labels", "production")
    golden("demote_prompt", blocks)
    [buttons] = [b["elements"] for b in blocks if b["type"] == "actions"]
    assert [(e["action_id"], e.get("style")) for e in buttons] == [
        ("demote_confirm", "danger"),
        ("demote_cancel", None),
    ]
    assert {e["value"] for e in buttons} == {"pol/team-a/require-labels production"}
    assert buttons[0]["confirm"]["style"] == "danger"
    text, settled = render.demote_prompt_settled("require-labels", "production", confirmed=False)
    assert text == ":no_entry_sign: Not demoted: require-labels keeps its mode in production."
    assert not [b for b in settled if b["type"] == "actions"], "the prompt's buttons go away"


def test_override_modal(golden: Golden) -> None:
    view = render.override_modal(BLOCKED)
    assert not validate_view(view), validate_view(view)
    assert (
        view["callback_id"] == "promote_override_reason" and view["private_metadata"] == "P-0B1C2D"
    )
    golden("override_modal", view)


def test_the_diff_reads_as_one_line_and_in_full_in_the_thread(golden: Golden) -> None:
    golden("plan_diff", render.diff_reply(PLAN))
    cel = [FieldChange("spec.validationActions", "[Audit, Warn]", "[Deny]")]
    assert render.change_summary(cel, rules=1) == "mode Audit → Enforce in 1 rule"
    assert render.change_summary(cel) == "mode Audit → Enforce"
    per_rule = [
        FieldChange(f"spec.rules[{r}].validate.failureAction", "Audit", "Enforce")
        for r in ("a", "b")
    ]
    stage = FieldChange("metadata.annotations[policy-bot.io/stage]", "qac:Audit", "qac:Enforce")
    assert render.change_summary([*per_rule, stage]) == "mode Audit → Enforce in 2 rules"
    # Not one switch (rules go different ways), or not a mode at all: a count.
    mixed = [per_rule[0], FieldChange("spec.rules[c].validate.failureAction", "Enforce", "Audit")]
    assert render.change_summary([*mixed, stage]) == "3 fields changed"
    assert render.change_summary([stage]) == "1 field changed"
    assert render.change_summary([]) == "no field changes"


def test_many_changes_are_cut_with_a_count() -> None:
    many = tuple(
        FieldChange(f"spec.rules[r{i}].validate.failureAction", "Audit", "Enforce")
        for i in range(45)
    )
    _, blocks = render.plan_message(replace(PLAN, changes=many, rules=45), second_person=False)
    assert not validate_blocks(blocks)
    assert "mode Audit → Enforce in 45 rules" in json.dumps(blocks, ensure_ascii=False)
    _, blocks = render.diff_reply(replace(PLAN, changes=many, rules=45))
    assert not validate_blocks(blocks)
    assert "… and 25 more fields" in json.dumps(blocks, ensure_ascii=False)
