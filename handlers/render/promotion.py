"""Block Kit for promotion and demotion: the plan, its outcome, the override modal. Pure.

Every message says the answer first (promoted / blocked / demoted), the figures behind it,
and the next step; buttons appear only where a click changes something, and their values
carry the plan id, which the bot looks up.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.ladder import GateResult
from bot.policies import Mode
from bot.promotion.modes import FieldChange
from bot.promotion.plan import Plan
from bot.promotion.readiness import NOT_READY, READY, STILL_READY, TIMEOUT, Readiness
from bot.promotion.service import Applied, Demoted, Superseded
from handlers.render import kit
from handlers.render.warnings import warnings_block

CONFIRM_ACTION = "promote_confirm"
CANCEL_ACTION = "promote_cancel"
OVERRIDE_ACTION = "promote_override"
DEMOTE_CONFIRM_ACTION = "demote_confirm"
DEMOTE_CANCEL_ACTION = "demote_cancel"
OVERRIDE_VIEW = "promote_override_reason"
REASON_BLOCK = "override_reason"
REASON_ACTION = "reason"
ACTIONS_BLOCK = "promotion_actions"
MAX_CHANGE_LINES = 20

Message = tuple[str, list[kit.Block]]


def _gate_line(gate: GateResult) -> str:
    icon = ":white_check_mark:" if gate.passed else ":x:"
    detail = f" — {kit.escape(gate.detail)}" if gate.detail else ""
    return f"{icon} {kit.escape(gate.description)}: {kit.escape(gate.figure)}{detail}"


def _change_lines(changes: Sequence[FieldChange]) -> list[str]:
    return [f"• {_code(c.path)}: {_code(c.before)} → {_code(c.after)}" for c in changes]


def _code(text: str) -> str:
    """Inline code, so globs such as `prod-*` do not turn into bold text."""
    return "`" + kit.escape(text.replace("`", "'")) + "`"


MODE_PATHS = ("spec.validationFailureAction", "spec.validationActions")
RULE_MODE_SUFFIX = ".validate.failureAction"
UNSET = "(unset)"
THREAD_NOTE = " · field-by-field diff in the thread"
BOOKKEEPING_PREFIXES = ("metadata.annotations[", "metadata.labels[")
"""The stage annotations and managed-by label: in the full diff, left out of its summary."""


def _mode_word(value: str) -> str:
    """A mode field's value in the words used everywhere (`[Deny]` is Enforce)."""
    if value.lower() == "enforce" or "Deny" in value:
        return Mode.ENFORCE.value
    if value.lower() == "audit" or "Audit" in value or "Warn" in value:
        return Mode.AUDIT.value
    return value


def change_summary(changes: Sequence[FieldChange], *, rules: int | None = None) -> str:
    """The field-path diff in one line: `mode Audit → Enforce in 2 rules` for a mode switch,
    `3 fields changed` otherwise. The full diff goes in the thread (`diff_reply`).

    `rules` is how many rules the policy has: a switch of the policy-wide field (which the
    bot writes together with every rule's own) switches all of them.
    """
    fields = [c for c in changes if not c.path.startswith(BOOKKEEPING_PREFIXES)]
    policy_wide = [c for c in fields if c.path in MODE_PATHS]
    per_rule = [c for c in fields if c.path.endswith(RULE_MODE_SUFFIX)]
    # A rule without its own mode follows the policy-wide one.
    inherited = {_mode_word(c.before) for c in policy_wide}
    switches = {(_mode_word(c.before), _mode_word(c.after)) for c in policy_wide} | {
        (
            inherited.copy().pop() if c.before == UNSET and len(inherited) == 1 else c.before,
            c.after,
        )
        for c in per_rule
    }
    switches = {(_mode_word(b), _mode_word(a)) for b, a in switches}
    if len(switches) == 1:
        before, after = switches.pop()
        count = rules if policy_wide and rules else len(per_rule)
        where = f" in {count} rule{'s' if count != 1 else ''}" if count else ""
        rest = len(fields) - len(policy_wide) - len(per_rule)
        more = f", and {rest} more field{'s' if rest != 1 else ''}" if rest else ""
        return f"mode {kit.escape(before)} → {kit.escape(after)}{where}{more}"
    if not changes:
        return "no field changes"
    return f"{len(changes)} field{'s' if len(changes) != 1 else ''} changed"


def diff_reply(plan: Plan) -> Message:
    """The thread reply under a plan with every field it changes, path by path."""
    head = (
        f"Field-by-field diff of plan {plan.id} ({change_summary(plan.changes, rules=plan.rules)}):"
    )
    return head, [kit.section(head), _changes_block(plan.changes)]


def _changes_block(changes: Sequence[FieldChange]) -> kit.Block:
    lines = _change_lines(changes)
    if len(lines) > MAX_CHANGE_LINES:
        cut = len(lines) - MAX_CHANGE_LINES
        lines = [*lines[:MAX_CHANGE_LINES], f"… and {cut} more fields"]
    return kit.lines_section(lines or ["No field changes."], more="… (more fields not shown)")


def _what(plan: Plan) -> str:
    target = plan.target
    rules = f"{plan.rules} rule{'s' if plan.rules != 1 else ''}"
    summary = change_summary(plan.changes, rules=plan.rules)
    if not summary.startswith("mode "):
        mode = target.mode.value if target.mode else "unchanged"
        summary = f"mode {mode} ({rules}); {summary}"
    if plan.creates:
        return (
            f"*Change:* {plan.kind} *{kit.escape(plan.policy)}* created on "
            f"*{target.environment}* as a copy of {plan.current.environment}'s: {summary}"
        )
    return f"*Change:* {plan.kind} *{kit.escape(plan.policy)}* on *{target.environment}*: {summary}"


def _title(plan: Plan) -> str:
    return f"Promote {plan.policy}: {plan.current.label()} → {plan.target.label()}"


def plan_message(plan: Plan, *, second_person: bool) -> Message:
    """The plan as posted in the channel: the verdict first, then the gates behind it and
    the change, with Promote/Cancel or Override…/Cancel."""
    icon = "⛔" if plan.blocked else "✅"  # header text is plain text: the emoji itself
    blocks: list[kit.Block] = [kit.header(f"{icon} {_title(plan)}")]
    if plan.blocked:
        failed = len(plan.failed_gates)
        verdict = (
            f"*Blocked.* {failed} of {len(plan.gates)} gates fail. Fix what fails and run the "
            "command again, or ask an admin to override with a reason."
        )
        buttons = [
            kit.button(
                "Override…",
                action_id=OVERRIDE_ACTION,
                value=plan.id,
                style="danger",
                confirm=kit.confirm(
                    "Override failed gates?",
                    f"{plan.policy} goes to {plan.target.label()} although {failed} "
                    f"gate{'s' if failed != 1 else ''} fail. You give a reason next; it is "
                    "audited and announced in the channel.",
                    ok="Give a reason",
                    danger=True,
                ),
            ),
            kit.button("Cancel", action_id=CANCEL_ACTION, value=plan.id),
        ]
    else:
        verdict = "*Every gate passes.*"
        if second_person:
            verdict = (
                f"Every gate passes. Promotions to {plan.target.environment} need a second "
                f"person: someone other than <@{plan.requested_by}> clicks Promote."
            )
        promote_confirm = (
            kit.confirm(
                f"Promote into {plan.target.environment}?",
                f"{plan.kind} {plan.policy} goes to {plan.target.label()} now; Kyverno applies "
                "the new mode to every admission request there.",
                ok="Promote",
            )
            if second_person
            else None
        )
        buttons = [
            kit.button(
                "Promote",
                action_id=CONFIRM_ACTION,
                value=plan.id,
                style="primary",
                confirm=promote_confirm,
            ),
            kit.button("Cancel", action_id=CANCEL_ACTION, value=plan.id),
        ]
    blocks.append(kit.section(verdict))
    blocks.append(
        kit.section("\n".join(_gate_line(g) for g in plan.gates) or "No gates guard this step.")
    )
    blocks.append(kit.section(_what(plan)))
    remarks = [f":warning: {kit.escape(n)}" for n in plan.notes]
    if plan.drift:
        remarks.append(
            f":warning: {plan.target.environment}'s copy differs from "
            f"{plan.current.environment}'s in spec.{', spec.'.join(plan.drift)}; the promotion "
            "changes the mode only. Roll the new version out through your pipeline first if "
            "it should travel too."
        )
    if remarks:
        blocks.append(kit.context(remarks))
    thread = ["Field-by-field diff in the thread"] if plan.changes else []
    blocks.append(kit.context([_provenance(plan), *thread]))
    blocks.append(kit.actions(buttons, block_id=ACTIONS_BLOCK))
    state = "blocked" if plan.blocked else "ready"
    return (
        f"Promotion plan {plan.id} {state}: {_title(plan)}"
        + (f" ({len(plan.failed_gates)} gates fail)" if plan.blocked else ""),
        kit.fit(blocks),
    )


def _provenance(plan: Plan) -> str:
    where = ", ".join(
        v.environment + ("" if v.resource_version is not None else " (not deployed)")
        for v in plan.versions
    )
    return f"Plan {plan.id} · asked by <@{plan.requested_by}> · read from {where}"


READINESS_ICONS = {
    READY: ":white_check_mark:",
    STILL_READY: ":white_check_mark:",
    NOT_READY: ":x:",
    TIMEOUT: ":hourglass:",
}


def _readiness(readiness: Readiness | None, env: str, *, timeout_s: float) -> tuple[str, str]:
    """(emoji, words) for what Kyverno said after a write: Ready, not Ready, silent, waiting."""
    if readiness is None:
        return (
            ":hourglass_flowing_sand:",
            f"waiting for Kyverno to report readiness (up to {timeout_s:g} s)",
        )
    words = readiness.describe(env)
    if readiness.state == NOT_READY:
        words = f"*not Ready* — {words}"
    elif readiness.state == TIMEOUT:
        words = f"*timed out* — {words}"
    return READINESS_ICONS.get(readiness.state, ":grey_question:"), words


def applied_message(applied: Applied, readiness: Readiness | None, *, timeout_s: float) -> Message:
    """The plan message once applied: the outcome first (Ready, not Ready, timed out), who
    promoted what, then the fields that changed."""
    plan, write = applied.plan, applied.write
    env = plan.target.environment
    icon, verdict = _readiness(readiness, env, timeout_s=timeout_s)
    headline = (
        f"{icon} <@{applied.by}> promoted `{plan.policy}` to {plan.target.label()} · {verdict}"
    )
    if applied.override_by:
        gates = (
            f"gates overridden by <@{applied.override_by}>: "
            f"“{kit.escape(applied.override_reason or '')}”"
        )
    else:
        gates = f"{len(plan.gates)} gates passed"
    summary = change_summary(plan.changes, rules=plan.rules)
    blocks = [
        kit.section(headline),
        kit.section(f"*Changed:* {summary}" + (THREAD_NOTE if plan.changes else "")),
        *warnings_block(env, [(w, 1) for w in write.warnings]),
        kit.context(
            [
                f"Plan {plan.id} · asked by <@{plan.requested_by}> · {gates} · "
                f"{plan.kind} {'created' if write.created else 'updated'} on {env}"
            ]
        ),
    ]
    plain = verdict.replace("*", "")
    return f"{plan.policy} promoted to {plan.target.label()}: {plain}", blocks


def override_announcement(applied: Applied) -> Message:
    """Posted in the channel when an admin pushes a promotion past failed gates."""
    plan = applied.plan
    failed = "; ".join(f"{g.description} ({g.figure})" for g in plan.failed_gates)
    text = (
        f":warning: <@{applied.override_by}> overrode failed gates to promote "
        f"*{kit.escape(plan.policy)}* to {plan.target.label()}: "
        f"“{kit.escape(applied.override_reason or '')}”"
    )
    blocks = [
        kit.section(text),
        kit.context(
            [f"Failed: {kit.escape(failed)} · plan {plan.id} · recorded in the audit trail"]
        ),
    ]
    return f"Gates overridden for {plan.policy} → {plan.target.label()}", blocks


def superseded_message(outcome: Superseded) -> Message:
    old = outcome.old
    why = "; ".join(outcome.reasons)
    follow = (
        f" A fresh plan follows: {outcome.fresh.id}."
        if outcome.fresh is not None
        else " There is no next step for it now."
    )
    text = (
        f":arrows_counterclockwise: Plan {old.id} ({kit.escape(_title(old))}) is out of date: "
        f"{kit.escape(why)}. Nothing was changed.{follow}"
    )
    return f"Plan {old.id} is out of date", [kit.section(text)]


def cancelled_message(plan: Plan, *, by: str) -> Message:
    text = (
        f":no_entry_sign: Plan {plan.id} ({kit.escape(_title(plan))}) cancelled by <@{by}>. "
        "Nothing was changed."
    )
    return f"Plan {plan.id} cancelled", [kit.section(text)]


def demote_message(demoted: Demoted, readiness: Readiness | None, *, timeout_s: float) -> Message:
    """The outage lever's announcement in the channel."""
    write = demoted.write
    assert write is not None
    env = demoted.environment
    icon, verdict = _readiness(readiness, env, timeout_s=timeout_s)
    headline = (
        f":arrow_down: <@{demoted.by}> demoted `{demoted.policy}` to Audit in *{env}* "
        f"(was {demoted.mode_before.value}) · {icon} {verdict}"
    )
    gitops = (
        [
            kit.section(
                f":warning: Managed by {kit.escape(demoted.gitops.describe())}: it puts the old "
                "mode back at its next sync. Pause its sync now, and make the change in Git too."
            )
        ]
        if demoted.gitops is not None
        else []
    )
    blocks = [
        kit.section(headline),
        *gitops,
        _changes_block(demoted.changes),
        *warnings_block(env, [(w, 1) for w in write.warnings]),
        kit.context(
            [
                f"{demoted.kind} updated on {env} · no gates, this is the outage lever · "
                f"promote it again with `/policy promote {demoted.policy}` once it is fixed"
            ]
        ),
    ]
    plain = verdict.replace("*", "")
    return f"{demoted.policy} demoted to Audit in {env}: {plain}", blocks


def demote_value(policy: str, environment: str) -> str:
    """What the confirm and cancel buttons of a demotion prompt carry (the service re-checks
    who clicks and what the policy is now)."""
    return f"{policy} {environment}"


def demote_prompt(policy: str, environment: str) -> list[kit.Block]:
    """Asked (ephemerally) before a demotion in production: it drops production's protection."""
    value = demote_value(policy, environment)
    name = kit.escape(policy)
    return [
        kit.section(
            f"*Demote `{name}` to Audit in {environment}?* Kyverno then lets through what the "
            f"policy fails in {environment} and only reports it, until someone promotes it "
            f"again with `/policy promote {name}`. The channel is told."
        ),
        kit.actions(
            [
                kit.button(
                    f"Demote in {environment}",
                    action_id=DEMOTE_CONFIRM_ACTION,
                    value=value,
                    style="danger",
                    confirm=kit.confirm(
                        f"Demote in {environment}?",
                        f"{policy} switches to Audit in {environment} now; no gates apply.",
                        ok="Demote",
                        danger=True,
                    ),
                ),
                kit.button("Cancel", action_id=DEMOTE_CANCEL_ACTION, value=value),
            ],
            block_id="demote_actions",
        ),
    ]


def demote_prompt_settled(policy: str, environment: str, *, confirmed: bool) -> Message:
    """What the prompt becomes after its click."""
    name = kit.escape(policy)
    if confirmed:
        text = f"You confirmed: `{name}` is demoted in {environment}; the channel is told."
    else:
        text = f":no_entry_sign: Not demoted: `{name}` keeps its mode in {environment}."
    return text.replace("`", ""), [kit.context([text])]


def demote_unchanged(demoted: Demoted) -> list[kit.Block]:
    if demoted.recorded_for is not None:
        return [
            kit.section(
                f"*{kit.escape(demoted.policy)}* was demoted to Audit in {demoted.environment} "
                f"by <@{demoted.recorded_for}>, cut off before the bot recorded it; it is "
                "recorded now, and nothing was written again."
            )
        ]
    return [
        kit.section(
            f"*{kit.escape(demoted.policy)}* is already in Audit in {demoted.environment} "
            "(every rule and override); nothing was changed."
        )
    ]


def override_modal(plan: Plan) -> kit.Block:
    failed = "\n".join(_gate_line(g) for g in plan.failed_gates)
    return {
        "type": "modal",
        "callback_id": OVERRIDE_VIEW,
        "private_metadata": plan.id,
        "title": {"type": "plain_text", "text": "Override gates"},
        "submit": {"type": "plain_text", "text": "Override and promote"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            kit.section(
                f"Promote *{kit.escape(plan.policy)}* to *{plan.target.label()}* although these "
                f"gates fail:\n{failed}"
            ),
            {
                "type": "input",
                "block_id": REASON_BLOCK,
                "label": {"type": "plain_text", "text": "Why is this safe now?"},
                "hint": {
                    "type": "plain_text",
                    "text": "Goes into the audit trail and is announced in the channel.",
                },
                "element": {
                    "type": "plain_text_input",
                    "action_id": REASON_ACTION,
                    "multiline": True,
                    "min_length": 10,
                    "max_length": 1000,
                },
            },
        ],
    }
