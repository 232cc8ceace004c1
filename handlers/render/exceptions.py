"""Block Kit for exceptions: the request modal, the approval message, notices, the register
and the quarterly review. Pure functions of domain objects and the time (golden-tested).

Everything a person typed or a cluster holds is escaped before it goes into mrkdwn, so a
justification cannot page the channel or forge a link. Buttons carry a request id; the
handlers look the request up and never trust anything else from a click.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.alerts.state import AlertGroup
from bot.exceptions.acceptance import Acceptance
from bot.exceptions.model import ExceptionRequest, RequestId, Review, ReviewItem, State
from bot.exceptions.ports import Event
from bot.exceptions.register import ClusterException, EnvironmentRegister, Register
from bot.exceptions.validation import MAX_JUSTIFICATION, MIN_JUSTIFICATION, Field
from handlers.render import kit

REQUEST_CALLBACK = "exception_request"
DENY_CALLBACK = "exception_deny_reason"
APPROVE_ACTION = "exception_approve"
DENY_ACTION = "exception_deny"
RENEW_ACTION = "exception_renew"
KEEP_ACTION = "exception_keep"
REVOKE_ACTION = "exception_revoke"
ALERT_ACTION = "alert_request_exception"
REASON_BLOCK = "reason"

TicketUrl = Callable[[str], str]
View = dict[str, Any]


@dataclass(frozen=True)
class Prefill:
    """Initial values of the request modal (from `/policy exception POLICY`, an alert, a
    renewal)."""

    environment: str | None = None
    policy: str | None = None
    rules: str = ""
    namespaces: str = ""
    kinds: str = ""
    names: str = ""
    justification: str = ""
    jira_key: str = ""
    days: int | None = None


@dataclass(frozen=True)
class Rendered:
    text: str
    blocks: list[kit.Block]


@dataclass(frozen=True)
class JiraView:
    """How the JIRA side reads in messages: the project and a browse-URL builder, or None."""

    project: str
    url: TicketUrl


# -- the request modal ---------------------------------------------------------------------


def request_modal(
    *,
    environments: Sequence[str],
    policies: Sequence[str] | None,
    prefill: Prefill,
    default_days: int,
    max_days: int,
    metadata: str,
    note: str | None = None,
) -> View:
    """The `exception_request` modal. `policies` None means a typed policy name."""
    intro = (
        "Every exception needs a JIRA ticket and an expiry date. Approvers decide in the "
        "approvals channel; you will get a direct message with the outcome."
    )
    blocks: list[kit.Block] = [kit.context([intro])]
    if note:
        blocks.append(kit.context([note]))
    env_options = [_option(e) for e in environments[:100]]
    env_element: kit.Block = {
        "type": "static_select",
        "action_id": Field.ENVIRONMENT,
        "placeholder": _plain("Choose an environment"),
        "options": env_options,
    }
    chosen = prefill.environment if prefill.environment in environments else None
    if chosen is None and len(environments) == 1:
        chosen = environments[0]
    if chosen is not None:
        env_element["initial_option"] = _option(chosen)
    blocks.append(_input(Field.ENVIRONMENT, "Environment", env_element))

    if policies is not None and policies and (prefill.policy is None or prefill.policy in policies):
        policy_element: kit.Block = {
            "type": "static_select",
            "action_id": Field.POLICY,
            "placeholder": _plain("Choose a policy"),
            "options": [_option(p) for p in policies],
        }
        if prefill.policy:
            policy_element["initial_option"] = _option(prefill.policy)
        blocks.append(_input(Field.POLICY, "Policy", policy_element))
    else:
        blocks.append(
            _input(
                Field.POLICY,
                "Policy",
                _text(
                    Field.POLICY, prefill.policy or "", "e.g. require-labels or team-a/my-policy"
                ),
                hint="The policy name, or NAMESPACE/NAME for a namespaced Policy.",
            )
        )
    blocks += [
        _input(
            Field.RULES,
            "Rules",
            _text(Field.RULES, prefill.rules, "empty = every rule"),
            optional=True,
            hint="Comma-separated rule names. The autogen-… names Kyverno uses for pod "
            "controllers are added for you.",
        ),
        _input(
            Field.NAMESPACES,
            "Namespaces",
            _text(Field.NAMESPACES, prefill.namespaces, "e.g. payments, team-*"),
            optional=True,
            hint="Where the resources live; wildcards * and ? allowed. Empty = every namespace.",
        ),
        _input(
            Field.KINDS,
            "Resource kinds",
            _text(Field.KINDS, prefill.kinds, "e.g. Deployment, StatefulSet"),
        ),
        _input(
            Field.NAMES,
            "Resource names",
            _text(Field.NAMES, prefill.names, "e.g. ledger-*"),
            optional=True,
            hint="Wildcards * and ? allowed. Empty = every name.",
        ),
        _input(
            Field.JUSTIFICATION,
            "Justification",
            {
                **_text(
                    Field.JUSTIFICATION,
                    prefill.justification,
                    "What breaks without it, and when will it be fixed?",
                ),
                "multiline": True,
                "min_length": MIN_JUSTIFICATION,
                "max_length": MAX_JUSTIFICATION,
            },
        ),
        _input(
            Field.JIRA_KEY,
            "Existing JIRA ticket",
            {**_text(Field.JIRA_KEY, prefill.jira_key, "e.g. SEC-1423"), "max_length": 32},
            optional=True,
            hint="Leave empty and a ticket is created when the request is approved.",
        ),
        _input(
            Field.DAYS,
            f"Duration in days (1–{max_days})",
            {
                "type": "number_input",
                "action_id": Field.DAYS,
                "is_decimal_allowed": False,
                "min_value": "1",
                "max_value": str(max_days),
                "initial_value": str(min(prefill.days or default_days, max_days)),
            },
        ),
    ]
    return {
        "type": "modal",
        "callback_id": REQUEST_CALLBACK,
        "private_metadata": metadata,
        "title": _plain("Request exception"),
        "submit": _plain("Request"),
        "close": _plain("Cancel"),
        "blocks": blocks,
    }


def request_metadata(*, channel: str | None, renewal_of: RequestId | None = None) -> str:
    return json.dumps({"c": channel or "", "r": renewal_of or ""}, separators=(",", ":"))


def deny_modal(request: ExceptionRequest) -> View:
    return {
        "type": "modal",
        "callback_id": DENY_CALLBACK,
        "private_metadata": request.id,
        "title": _plain("Deny exception"),
        "submit": _plain("Deny"),
        "close": _plain("Cancel"),
        "blocks": [
            kit.section(
                f"Deny *{request.id}* from <@{request.requester}>: "
                f"*{kit.escape(request.policy)}* in *{kit.escape(request.environment)}*?"
            ),
            _input(
                REASON_BLOCK,
                "Reason (the requester sees it)",
                {
                    **_text(REASON_BLOCK, "", "e.g. Fix the chart instead, it is two lines."),
                    "multiline": True,
                    "max_length": 1000,
                },
            ),
        ],
    }


# -- the approval message --------------------------------------------------------------------


def request_message(
    request: ExceptionRequest, *, jira: JiraView | None, acceptance_note: str | None = None
) -> Rendered:
    """The request in the approvals channel, for every state it can be in."""
    state = request.state
    title = f"Exception request {request.id} · {_state_word(state)}"
    blocks: list[kit.Block] = [
        kit.header(title),
        kit.section(f"From <@{request.requester}> · {_what(request)}"),
        kit.fields(_scope_fields(request, jira)),
        kit.section(_quote(request.justification)),
    ]
    if request.renewal_of:
        blocks.append(kit.context([f"Renewal of {request.renewal_of}."]))
    if acceptance_note:
        blocks.append(kit.context([acceptance_note]))
    outcome = _outcome(request, jira)
    if outcome:
        blocks.append(kit.section(outcome))
    if state is State.PENDING:
        if request.error:
            blocks.append(kit.context([f":warning: Last approval attempt failed: {request.error}"]))
        if jira is None:
            blocks.append(
                kit.context(
                    [
                        ":no_entry: JIRA is not configured, so this request cannot be approved "
                        "yet: the runbook requires a ticket for every exception."
                    ]
                )
            )
        blocks.append(
            kit.actions(
                [
                    kit.button(
                        "Approve", action_id=APPROVE_ACTION, value=request.id, style="primary"
                    ),
                    # Denying destroys nothing (it asks for a reason): no red.
                    kit.button("Deny", action_id=DENY_ACTION, value=request.id),
                ],
                block_id=f"decide:{request.id}",
            )
        )
    text = f"{title}: {request.policy} in {request.environment} from <@{request.requester}>"
    return Rendered(kit.clip(text, kit.MAX_FALLBACK_TEXT), kit.fit(blocks))


def _state_word(state: State) -> str:
    return {
        State.PENDING: "pending",
        State.APPROVING: "being approved",
        State.ACTIVE: "approved",
        State.DENIED: "denied",
        State.FAILED: "failed",
        State.EXPIRED: "expired",
        State.REVOKED: "revoked",
    }[state]


def _what(request: ExceptionRequest) -> str:
    rules = ", ".join(kit.escape(r) for r in request.scope.rules) or "all rules"
    return (
        f"*{kit.escape(request.policy)}* ({kit.escape(request.policy_kind)}) / {rules} · "
        f"*{kit.escape(request.environment)}*"
    )


def _scope_fields(request: ExceptionRequest, jira: JiraView | None) -> list[str]:
    scope = request.scope
    fields = [
        f"*Namespaces*\n{_list(scope.namespaces, 'every namespace')}",
        f"*Kinds*\n{_list(scope.kinds, 'any kind')}",
        f"*Names*\n{_list(scope.names, 'every name')}",
        f"*Duration*\n{_duration(request)}",
        f"*JIRA*\n{_jira_line(request, jira)}",
    ]
    return fields


def _duration(request: ExceptionRequest) -> str:
    if request.expires_at is not None:
        return f"{request.days} days (until {request.expires_at:%Y-%m-%d})"
    return f"{request.days} days from approval"


def _jira_line(request: ExceptionRequest, jira: JiraView | None) -> str:
    key = request.ticket or request.jira_key
    if key:
        return _ticket(key, jira)
    if jira is None:
        return "not configured"
    return f"will be created in {kit.escape(jira.project)}"


def _ticket(key: str, jira: JiraView | None) -> str:
    return f"<{jira.url(key)}|{key}>" if jira is not None else key


def _outcome(request: ExceptionRequest, jira: JiraView | None) -> str | None:
    by = f"<@{request.approver}>" if request.approver else "someone"
    state = request.state
    if state is State.APPROVING:
        return f":hourglass_flowing_sand: Being approved by {by}…"
    if state is State.ACTIVE or (
        state in (State.EXPIRED, State.REVOKED) and request.exception_name
    ):
        parts = [f"✅ Approved by {by}"]
        key = request.ticket or request.jira_key
        if key:
            parts.append(_ticket(key, jira))
        parts.append(
            f"PolicyException `{kit.escape(request.exception_name or '')}` "
            f"({kit.escape(request.exception_namespace or '')})"
        )
        if request.expires_at is not None:
            parts.append(f"expires {request.expires_at:%Y-%m-%d %H:%M} UTC")
        parts.append("requester notified")
        line = " · ".join(parts)
        if state is State.EXPIRED:
            line += f"\n⌛ Expired {_when(request.ended_at)}: the PolicyException was deleted."
        elif state is State.REVOKED:
            who = f"<@{request.ended_by}>" if request.ended_by else "an approver"
            line += (
                f"\n🗑️ Revoked by {who} {_when(request.ended_at)}: the PolicyException was deleted."
            )
        return line
    if state is State.DENIED:
        reason = _inline_quote(request.deny_reason or "")
        return f"⛔ Denied by {by}: {reason} · requester notified"
    if state is State.FAILED:
        return f"❌ Could not be approved: {request.error or 'unknown error'} · requester notified"
    return None


def _when(moment: datetime | None) -> str:
    return f"on {moment:%Y-%m-%d %H:%M} UTC" if moment is not None else ""


# -- notices to the requester and the channel ---------------------------------------------------


def requester_notice(
    request: ExceptionRequest,
    event: Event,
    *,
    now: datetime,
    jira: JiraView | None,
    approvals_channel: str | None,
) -> Rendered:
    rid = request.id
    what = f"*{kit.escape(request.policy)}* in *{kit.escape(request.environment)}*"
    by = f"<@{request.approver}>" if request.approver else "an approver"
    renew = False
    if event is Event.FILED:
        where = f"<#{approvals_channel}>" if approvals_channel else "the approvals channel"
        text = (
            f"Your exception request *{rid}* for {what} was sent to the approvers in {where}. "
            "You will hear here when someone decides."
        )
    elif event is Event.APPROVED:
        key = request.ticket or request.jira_key
        ticket = f" · ticket {_ticket(key, jira)}" if key else ""
        text = (
            f"✅ Your exception request *{rid}* for {what} was approved by {by}: "
            f"PolicyException `{kit.escape(request.exception_name or '')}` is active until "
            f"{_date(request.expires_at)}{ticket}."
        )
    elif event is Event.DENIED:
        text = (
            f"⛔ Your exception request *{rid}* for {what} was denied by {by}: "
            f"{_inline_quote(request.deny_reason or '')}"
        )
    elif event is Event.FAILED:
        text = (
            f"❌ Your exception request *{rid}* for {what} could not be approved: "
            f"{request.error or 'unknown error'}"
        )
    elif event is Event.EXPIRED:
        text = (
            f"⌛ Your exception *{rid}* for {what} expired and was removed. "
            "If it is still needed, renew it (a renewal is a new request)."
        )
        renew = True
    elif event is Event.REVOKED:
        who = f"<@{request.ended_by}>" if request.ended_by else "an approver"
        text = f"🗑️ Your exception *{rid}* for {what} was revoked by {who} and removed."
    elif event is Event.KEPT:
        who = f"<@{request.reviewed_by}>" if request.reviewed_by else "an approver"
        text = f"Your exception *{rid}* for {what} was kept at the quarterly review by {who}."
    else:
        left = _left(request.expires_at, now)
        text = (
            f"⏰ Your exception *{rid}* for {what} expires {left} ({_date(request.expires_at)}). "
            "Renew it if it is still needed (a renewal is a new request)."
        )
        renew = True
    blocks: list[kit.Block] = [kit.section(text)]
    if renew:
        blocks.append(
            kit.actions(
                [kit.button("Renew", action_id=RENEW_ACTION, value=rid, style="primary")],
                block_id=f"renew:{rid}",
            )
        )
    return Rendered(_fallback(text), blocks)


def announcement(request: ExceptionRequest, event: Event) -> str:
    """A thread note in the approvals channel when an exception ends."""
    name = f"`{kit.escape(request.exception_name or '')}`"
    if event is Event.EXPIRED:
        return (
            f"⌛ {request.id} expired: PolicyException {name} was deleted from "
            f"*{kit.escape(request.environment)}*; <@{request.requester}> was told."
        )
    who = f"<@{request.ended_by}>" if request.ended_by else "an approver"
    return (
        f"🗑️ {request.id} was revoked by {who}: PolicyException {name} was deleted from "
        f"*{kit.escape(request.environment)}*; <@{request.requester}> was told."
    )


# -- the quarterly review --------------------------------------------------------------------


def review_message(review: Review, *, now: datetime, jira: JiraView | None) -> Rendered:
    count = len(review.items)
    title = f"Quarterly exception review · {count} active · {review.created_at:%Y-%m-%d}"
    blocks: list[kit.Block] = [kit.header(title)]
    if not review.items:
        blocks.append(kit.section("No active exceptions: nothing to review."))
        return Rendered(title, blocks)
    blocks.append(
        kit.context(
            [
                "Approvers: keep or revoke each exception. Revoke deletes it from the "
                "cluster now and closes its ticket."
            ]
        )
    )
    for item in review.items:
        blocks.append(kit.section(_review_line(item, now=now, jira=jira)))
        rid = item.request.id
        if item.decision is not None:
            who = f"<@{item.decided_by}>" if item.decided_by else "an approver"
            mark = "✅ Kept" if item.decision == "kept" else "🗑️ Revoked"
            blocks.append(kit.context([f"{mark} by {who}"]))
        elif item.request.state is not State.ACTIVE:
            blocks.append(kit.context([f"Already {_state_word(item.request.state)}."]))
        else:
            blocks.append(
                kit.actions(
                    [
                        kit.button("Keep", action_id=KEEP_ACTION, value=rid),
                        kit.button(
                            "Revoke",
                            action_id=REVOKE_ACTION,
                            value=rid,
                            style="danger",
                            confirm=kit.confirm(
                                "Revoke this exception?",
                                f"The PolicyException for {item.request.policy} in "
                                f"{item.request.environment} is deleted now; what it let "
                                "through is checked by the policy again.",
                                ok="Revoke",
                                danger=True,
                            ),
                        ),
                    ],
                    block_id=f"review:{rid}",
                )
            )
    return Rendered(kit.clip(title, kit.MAX_FALLBACK_TEXT), kit.fit(blocks))


def _review_line(item: ReviewItem, *, now: datetime, jira: JiraView | None) -> str:
    r = item.request
    key = r.ticket or r.jira_key
    ticket = _ticket(key, jira) if key else "no ticket"
    if key and item.ticket_status:
        ticket += f" ({kit.escape(item.ticket_status)})"
    age = (now - (r.decided_at or r.created_at)).days
    return (
        f"*{r.id}* · {_what(r)} · {_scope_short(r)}\n"
        f"owner <@{r.requester}> · approved by <@{r.approver}> · age {age} days · "
        f"expires {_left(r.expires_at, now)} · {ticket}"
    )


# -- the register (`/policy exceptions`) ---------------------------------------------------


def register_blocks(register: Register, *, now: datetime, jira: JiraView | None) -> list[kit.Block]:
    envs = register.environments
    total = sum(len(e.active) for e in envs)
    unmanaged = sum(len(e.unmanaged) for e in envs)
    title = (
        f"Exceptions · {total} active · {unmanaged} unmanaged · "
        f"{len(envs)} environment{'s' if len(envs) != 1 else ''} · {now:%H:%M} UTC"
    )
    blocks: list[kit.Block] = [kit.header(title)]
    for env in envs:
        blocks += _environment_blocks(env, namespace=register.namespace, now=now, jira=jira)
    return kit.fit(blocks)


def _environment_blocks(
    env: EnvironmentRegister, *, namespace: str, now: datetime, jira: JiraView | None
) -> list[kit.Block]:
    name = kit.escape(env.environment)
    head = f"*{name}* · {len(env.active)} active"
    if env.unmanaged:
        head += f" · {len(env.unmanaged)} unmanaged"
    blocks: list[kit.Block] = [kit.divider(), kit.section(head)]
    lines = [_active_line(r, now=now, jira=jira) for r in env.active]
    if env.error is not None:
        lines.append(f":warning: Could not read the cluster: {env.error.user_message}")
    lines += [_found_line(f, "unmanaged: no ticket, no expiry") for f in env.unmanaged]
    lines += [
        _found_line(f, "labelled by policy-bot, but no active request on record")
        for f in env.orphaned
    ]
    if lines:
        blocks.append(
            kit.lines_section(
                lines, more=f"… and more in {name}: narrow with `/policy exceptions {name}`"
            )
        )
    if env.error is None:
        blocks.append(kit.context([acceptance_line(env.acceptance, namespace)]))
    return blocks


def _active_line(r: ExceptionRequest, *, now: datetime, jira: JiraView | None) -> str:
    key = r.ticket or r.jira_key
    ticket = _ticket(key, jira) if key else "no ticket"
    return (
        f"`{kit.escape(r.exception_name or r.id)}` · `{kit.escape(r.policy)}` / "
        f"{', '.join(kit.escape(x) for x in r.scope.rules) or 'all rules'} · {_scope_short(r)} · "
        f"from <@{r.requester}>, approved by <@{r.approver}> · {ticket} · "
        f"expires {_left(r.expires_at, now)}"
    )


def _found_line(item: ClusterException, flag: str) -> str:
    f = item.found
    policies = ", ".join(kit.escape(p) for p in f.policies) or "?"
    return (
        f":warning: `{kit.escape(f.namespace)}/{kit.escape(f.name)}` ({kit.escape(f.api_group)}) "
        f"· {policies} · {flag}"
    )


def acceptance_line(acceptance: Acceptance, namespace: str) -> str:
    ns = kit.escape(namespace)
    if not acceptance.known:
        reason = f" ({kit.escape(acceptance.reason)})" if acceptance.reason else ""
        return (
            f":grey_question: Could not determine where Kyverno accepts PolicyExceptions "
            f"from{reason}; policy-bot writes them to `{ns}`."
        )
    if not acceptance.enabled:
        return (
            ":warning: PolicyExceptions are disabled in Kyverno "
            f"({kit.escape(acceptance.source)}): exceptions in `{ns}` have no effect. Helm: "
            "`features.policyExceptions.enabled: true`, "
            f"`features.policyExceptions.namespace: {ns}`."
        )
    accepted = kit.escape(acceptance.namespace or "")
    if acceptance.namespace in ("*", namespace):
        return (
            f"✅ Kyverno accepts PolicyExceptions from `{accepted}` (matches policy-bot's `{ns}`)."
        )
    return (
        f":warning: Kyverno accepts PolicyExceptions only from `{accepted}`, but policy-bot writes "
        f"them to `{ns}`: they would be ignored. Set `exceptions.namespace: {accepted}` or Helm "
        f"`features.policyExceptions.namespace: {ns}`."
    )


# -- the alert relay's extra button ----------------------------------------------------------


def alert_buttons(group: AlertGroup) -> list[kit.Block]:
    """`ExtraActions` for the alert relay: a Request exception button on firing alerts."""
    return [kit.button("Request exception", action_id=ALERT_ACTION, value=str(group.id))]


# -- plumbing ------------------------------------------------------------------------------------


def _scope_short(r: ExceptionRequest) -> str:
    scope = r.scope
    ns = ", ".join(kit.escape(n) for n in scope.namespaces) or "every namespace"
    kinds = ", ".join(kit.escape(k) for k in scope.kinds)
    names = ", ".join(kit.escape(n) for n in scope.names) or "*"
    return f"{ns} · {kinds} {names}"


def _list(items: Sequence[str], empty: str) -> str:
    return ", ".join(f"`{kit.escape(i)}`" for i in items) if items else f"_{empty}_"


def _quote(text: str) -> str:
    lines = kit.clip(text, 2500).splitlines() or [""]
    return "\n".join(f"> {kit.escape(line)}" for line in lines)


def _inline_quote(text: str) -> str:
    return f"“{kit.escape(' '.join(text.split()))}”"


def _date(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d}" if moment is not None else "?"


def _left(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "never"
    delta = moment - now
    if delta <= timedelta(0):
        return "now"
    if delta < timedelta(days=1):
        hours = max(1, int(delta.total_seconds() // 3600))
        return f"in {hours} hour{'s' if hours != 1 else ''}"
    days = delta.days
    return f"in {days} day{'s' if days != 1 else ''}"


def _fallback(text: str) -> str:
    return kit.clip(text, kit.MAX_FALLBACK_TEXT)


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text}


def _option(value: str) -> dict[str, Any]:
    return {"text": _plain(kit.clip(value, 75)), "value": value}


def _text(action_id: str, initial: str, placeholder: str) -> kit.Block:
    element: kit.Block = {
        "type": "plain_text_input",
        "action_id": action_id,
        "placeholder": _plain(placeholder),
    }
    if initial:
        element["initial_value"] = initial
    return element


def _input(
    block_id: str,
    label: str,
    element: kit.Block,
    *,
    optional: bool = False,
    hint: str | None = None,
) -> kit.Block:
    block: kit.Block = {
        "type": "input",
        "block_id": block_id,
        "label": _plain(label),
        "element": element,
        "optional": optional,
    }
    if hint:
        block["hint"] = _plain(hint)
    return block
