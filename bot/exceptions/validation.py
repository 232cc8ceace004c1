"""Checking what a person typed into the exception modal. Pure; no I/O.

Every problem is reported against the field it concerns, in words that say what to type
instead, so the modal can show it inline (`response_action: errors`). Nothing typed here
reaches a Kubernetes object, a JQL query or a Slack message unchecked: names follow the
Kubernetes rules (with `*` and `?` wildcards where Kyverno accepts them), lists and texts
are bounded, and the JIRA key has the only shape a key can have.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bot.exceptions.model import Draft, PolicyInfo, RequestId, Scope
from bot.policy_ref import BadPolicyRef, parse_policy_ref

MIN_JUSTIFICATION = 20
MAX_JUSTIFICATION = 2000
MAX_ITEMS = 20

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
WILD_LABEL = re.compile(r"^[a-z0-9*?]([-a-z0-9*?]*[a-z0-9*?])?$")
WILD_SUBDOMAIN = re.compile(r"^[a-z0-9*?]([-a-z0-9.*?]*[a-z0-9*?])?$")
RULE = re.compile(r"^[A-Za-z0-9*?]([-A-Za-z0-9_.*?]*[A-Za-z0-9*?])?$")
KIND = re.compile(r"^(([a-z0-9.-]+/)?v[0-9]+[a-z0-9]*/)?[A-Z][A-Za-z0-9]*(/[a-z]+)?$")
JIRA_KEY = re.compile(r"^[A-Z][A-Z0-9_]{1,9}-[1-9][0-9]{0,9}$")
_SPLIT = re.compile(r"[\s,]+")


class Field:
    """Field names, which are also the modal's input block ids."""

    ENVIRONMENT = "environment"
    POLICY = "policy"
    RULES = "rules"
    NAMESPACES = "namespaces"
    KINDS = "kinds"
    NAMES = "names"
    JUSTIFICATION = "justification"
    JIRA_KEY = "jira_key"
    DAYS = "days"


FieldErrors = dict[str, str]


class InputErrors(Exception):
    """Modal input that cannot be accepted; `errors` maps a field to what is wrong."""

    def __init__(self, errors: FieldErrors) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class ModalInput:
    """The modal's values as Slack sent them (strings; None for an empty select)."""

    environment: str | None = None
    policy: str | None = None
    rules: str = ""
    namespaces: str = ""
    kinds: str = ""
    names: str = ""
    justification: str = ""
    jira_key: str = ""
    days: str = ""
    renewal_of: RequestId | None = None


def parse_input(raw: ModalInput, *, environments: Sequence[str], max_days: int) -> Draft:
    """The draft request, or InputErrors naming every field that is wrong."""
    errors: FieldErrors = {}

    environment = (raw.environment or "").strip()
    if not environment:
        errors[Field.ENVIRONMENT] = "Choose the environment the exception is for."
    elif environment not in environments:
        errors[Field.ENVIRONMENT] = (
            f"“{_show(environment)}” is not a configured environment: "
            f"choose one of {', '.join(environments)}."
        )

    policy = (raw.policy or "").strip()
    policy_problem = check_policy_name(policy)
    if policy_problem:
        errors[Field.POLICY] = policy_problem

    rules = _items(raw.rules)
    if rules == ("*",):
        rules = ()
    _check_items(
        errors,
        Field.RULES,
        rules,
        lambda r: len(r) <= 63 and bool(RULE.match(r)),
        "is not a rule name (letters, digits, '-', '_', '.', wildcards * and ?; at most 63)",
    )

    namespaces = _items(raw.namespaces)
    if namespaces == ("*",):
        namespaces = ()
    _check_items(
        errors,
        Field.NAMESPACES,
        namespaces,
        lambda n: len(n) <= 63 and bool(WILD_LABEL.match(n)),
        "is not a namespace name (lower-case letters, digits and '-', wildcards * and ?; "
        "at most 63)",
    )

    kinds = _items(raw.kinds)
    if not kinds:
        errors[Field.KINDS] = "Name at least one resource kind, e.g. Deployment or Pod."
    else:
        _check_items(
            errors,
            Field.KINDS,
            kinds,
            lambda k: k == "*" or (len(k) <= 100 and bool(KIND.match(k))),
            "is not a resource kind (like Deployment, apps/v1/Deployment or Pod/exec)",
        )

    names = _items(raw.names)
    if names == ("*",):
        names = ()
    _check_items(
        errors,
        Field.NAMES,
        names,
        lambda n: len(n) <= 253 and bool(WILD_SUBDOMAIN.match(n)),
        "is not a resource name (lower-case letters, digits, '-' and '.', wildcards * and ?)",
    )

    justification = raw.justification.strip()
    if len(justification) < MIN_JUSTIFICATION:
        errors[Field.JUSTIFICATION] = (
            f"Explain why in at least {MIN_JUSTIFICATION} characters "
            f"(you wrote {len(justification)}): what breaks without it and when it gets fixed."
        )
    elif len(justification) > MAX_JUSTIFICATION:
        errors[Field.JUSTIFICATION] = (
            f"Keep it under {MAX_JUSTIFICATION} characters (you wrote {len(justification)}); "
            "link to a document for more."
        )

    jira_key: str | None = raw.jira_key.strip().upper() or None
    if jira_key is not None and not JIRA_KEY.match(jira_key):
        errors[Field.JIRA_KEY] = (
            f"“{_show(raw.jira_key.strip())}” is not a JIRA issue key (like SEC-1423). "
            "Leave it empty to have a ticket created."
        )

    days = 0
    text = raw.days.strip()
    if not re.fullmatch(r"[0-9]{1,5}", text) or not 1 <= int(text) <= max_days:
        errors[Field.DAYS] = f"Enter a whole number of days from 1 to {max_days}."
    else:
        days = int(text)

    if errors:
        raise InputErrors(errors)
    return Draft(
        environment=environment,
        policy=policy,
        scope=Scope(rules=rules, namespaces=namespaces, kinds=kinds, names=names),
        justification=justification,
        days=days,
        jira_key=jira_key,
        renewal_of=raw.renewal_of,
    )


def check_policy_name(policy: str) -> str | None:
    """What is wrong with a typed policy reference, or None."""
    if not policy:
        return "Choose the policy, or type its name."
    try:
        parse_policy_ref(policy)  # NAME, NAMESPACE/NAME, or with its kind: vpol/NAME, …
        return None
    except BadPolicyRef:
        pass
    namespace, _, name = policy.rpartition("/")
    if namespace and not (len(namespace) <= 63 and DNS_LABEL.match(namespace)):
        return f"“{_show(policy)}” is not a policy: the part before '/' must be a namespace."
    if not (len(name) <= 253 and DNS_SUBDOMAIN.match(name)):
        return (
            f"“{_show(policy)}” is not a policy name: use lower-case letters, digits, '-' and "
            "'.', or NAMESPACE/NAME for a namespaced Policy."
        )
    return None


def check_against_policy(draft: Draft, policy: PolicyInfo) -> None:
    """Problems only the live policy reveals: rule names it does not have."""
    if policy.cel and draft.scope.rules:
        raise InputErrors(
            {
                Field.RULES: (
                    f"{policy.kind} “{_show(policy.ref)}” has no named rules; "
                    "leave Rules empty to except the whole policy."
                )
            }
        )
    known = set(policy.rules)
    unknown = [
        r
        for r in draft.scope.rules
        if "*" not in r
        and "?" not in r
        and r not in known
        and r.removeprefix("autogen-") not in known
        and r.removeprefix("autogen-cronjob-") not in known
    ]
    if unknown:
        listed = ", ".join(f"“{_show(r)}”" for r in policy.rules[:10]) or "none"
        raise InputErrors(
            {
                Field.RULES: (
                    f"“{_show(policy.ref)}” has no rule {', '.join(_show(u) for u in unknown)}. "
                    f"Its rules: {listed}."
                )
            }
        )


def _items(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(p for p in _SPLIT.split(text.strip()) if p))


def _check_items(
    errors: FieldErrors,
    field: str,
    items: tuple[str, ...],
    ok: Callable[[str], bool],
    problem: str,
) -> None:
    if len(items) > MAX_ITEMS:
        errors[field] = f"At most {MAX_ITEMS} entries (you gave {len(items)}); use a wildcard."
        return
    bad = [i for i in items if not ok(i)]
    if bad:
        errors[field] = f"“{_show(bad[0])}” {problem}."


def _show(text: str) -> str:
    """User text echoed in an error: one line, bounded (modal errors are plain text;
    renderers that put them into mrkdwn escape them)."""
    line = " ".join(text.split())
    return line if len(line) <= 60 else line[:59] + "…"
