"""Exception requests without I/O: modal validation, PolicyException objects, Kyverno flags."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.exceptions.acceptance import Acceptance, acceptance_of, parse_flags
from bot.exceptions.manifests import (
    exception_name,
    is_ours,
    match_conditions,
    policy_exception,
    ttl_label,
)
from bot.exceptions.model import (
    Draft,
    ExceptionRequest,
    PolicyInfo,
    RequestId,
    Scope,
    State,
    new_request_id,
    parse_request_id,
)
from bot.exceptions.validation import (
    InputErrors,
    ModalInput,
    check_against_policy,
    parse_input,
)
from bot.jira.jql import UnsafeJqlValue, labelled, quote
from bot.kinds import Family

GOOD = ModalInput(
    environment="dev",
    policy="require-labels",
    rules="check-for-labels",
    namespaces="payments, team-*",
    kinds="Deployment StatefulSet",
    names="ledger-*",
    justification="The new chart with labels ships in Q1; until then this one stays.",
    jira_key=" sec-1423 ",
    days="30",
)
EXPIRES = datetime(2026, 12, 28, 9, 0, tzinfo=UTC)


def parse(**changes: Any) -> Draft:
    return parse_input(replace(GOOD, **changes), environments=["dev", "prod"], max_days=90)


def errors(**changes: Any) -> dict[str, str]:
    with pytest.raises(InputErrors) as caught:
        parse(**changes)
    return caught.value.errors


def test_good_input_is_normalised() -> None:
    draft = parse()
    assert draft == parse()  # deterministic
    assert draft.scope == Scope(
        rules=("check-for-labels",),
        namespaces=("payments", "team-*"),
        kinds=("Deployment", "StatefulSet"),
        names=("ledger-*",),
    )
    assert draft.jira_key == "SEC-1423"
    assert draft.days == 30


def test_star_means_all_and_duplicates_collapse() -> None:
    draft = parse(rules="*", namespaces="*", names="*", kinds="Pod, Pod")
    assert draft.scope == Scope(kinds=("Pod",))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"environment": None}, "environment"),
        ({"environment": "qa"}, "environment"),
        ({"policy": ""}, "policy"),
        ({"policy": "Require-Labels"}, "policy"),
        ({"policy": "a/b/c"}, "policy"),
        ({"policy": "x" * 254}, "policy"),
        ({"rules": "a b!"}, "rules"),
        ({"rules": "r" * 64}, "rules"),
        ({"namespaces": "kube_system"}, "namespaces"),
        ({"namespaces": "n" * 64}, "namespaces"),
        ({"kinds": ""}, "kinds"),
        ({"kinds": "apps/Deployment"}, "kinds"),
        ({"kinds": "Deployment;Pod"}, "kinds"),
        ({"names": "-leading"}, "names"),
        ({"names": "UPPER"}, "names"),
        ({"justification": " " * 30}, "justification"),
        ({"justification": "y" * 19}, "justification"),
        ({"jira_key": "SEC"}, "jira_key"),
        ({"jira_key": "S-1"}, "jira_key"),
        ({"jira_key": "SEC-01"}, "jira_key"),
        ({"days": "91"}, "days"),
        ({"days": "00"}, "days"),
        ({"days": "1e3"}, "days"),
    ],
)
def test_bad_input_names_its_field(change: dict[str, str | None], field: str) -> None:
    assert set(errors(**change)) == {field}


def test_kinds_with_group_version_and_subresource_are_accepted() -> None:
    draft = parse(kinds="apps/v1/Deployment, v1/Pod, Pod/exec, *")
    assert draft.scope.kinds == ("apps/v1/Deployment", "v1/Pod", "Pod/exec", "*")


def test_rules_are_checked_against_the_live_policy() -> None:
    legacy = PolicyInfo("dev", "require-labels", "ClusterPolicy", Family.LEGACY_POLICY, ("a", "b"))
    draft = parse(rules="a, autogen-b, autogen-cronjob-a, c*")
    check_against_policy(draft, legacy)
    with pytest.raises(InputErrors) as caught:
        check_against_policy(parse(rules="a, zz"), legacy)
    assert caught.value.errors == {"rules": "“require-labels” has no rule zz. Its rules: “a”, “b”."}
    cel = PolicyInfo("dev", "vpol", "ValidatingPolicy", Family.CEL_POLICY, ())
    check_against_policy(parse(rules=""), cel)
    with pytest.raises(InputErrors):
        check_against_policy(parse(rules="x"), cel)


def test_autogen_rule_names_follow_the_kinds() -> None:
    assert Scope(kinds=("Pod",)).rule_names() == ("*",)
    assert Scope(rules=("r",), kinds=("Pod",)).rule_names() == ("r",)
    assert Scope(rules=("r",), kinds=("apps/v1/Deployment",)).rule_names() == (
        "r",
        "autogen-r",
    )
    assert Scope(rules=("r", "autogen-x", "s*"), kinds=("CronJob", "Job")).rule_names() == (
        "r",
        "autogen-x",
        "s*",
        "autogen-r",
        "autogen-cronjob-r",
    )


def test_request_ids() -> None:
    rid = new_request_id()
    assert parse_request_id(rid) == rid
    for forged in ("", "R-1", "R-XYZXYZXY", "R-0123abcd; drop", "../R-0123abcd"):
        assert parse_request_id(forged) is None


REQUEST = ExceptionRequest(
    id=RequestId("R-0123abcd"),
    state=State.APPROVING,
    environment="dev",
    policy="team-a/Team_Policy.v2-with-a-very-long-name-that-goes-on-and-on",
    policy_kind="Policy",
    scope=Scope(rules=("check-team",), kinds=("Deployment",)),
    justification="j" * 30,
    days=30,
    requester="U0SAM",
    created_at=EXPIRES,
)


def test_exception_name_is_a_valid_unique_object_name() -> None:
    name = exception_name(REQUEST)
    assert name == "pe-team-policy-v2-with-a-very-long-name-tha-0123abcd"
    assert ttl_label(EXPIRES) == "2026-12-28T090000Z"


def test_legacy_exception_for_a_namespaced_policy() -> None:
    group, obj = policy_exception(
        REQUEST,
        namespace="kyverno-exceptions",
        ticket="SEC-1",
        approver="U0LEE",
        expires_at=EXPIRES,
    )
    assert group == "kyverno.io"
    assert obj["spec"] == {
        "background": True,
        "exceptions": [
            {"policyName": REQUEST.policy, "ruleNames": ["check-team", "autogen-check-team"]}
        ],
        "match": {"any": [{"resources": {"kinds": ["Deployment"]}}]},
    }
    assert is_ours(obj, REQUEST)
    assert not is_ours(obj, replace(REQUEST, id=RequestId("R-ffffffff")))
    assert not is_ours({"metadata": {"labels": {"policy-bot.io/request-id": REQUEST.id}}}, REQUEST)


def test_cel_exception_scope_becomes_match_conditions() -> None:
    cel = replace(
        REQUEST,
        policy="vpol",
        policy_kind="ValidatingPolicy",
        scope=Scope(kinds=("apps/v1/Deployment", "Pod/exec"), namespaces=("a?c",), names=("x.y*",)),
    )
    group, obj = policy_exception(
        cel, namespace="kyverno-exceptions", ticket="SEC-1", approver="U0LEE", expires_at=EXPIRES
    )
    assert group == "policies.kyverno.io"
    assert obj["spec"]["policyRefs"] == [{"name": "vpol", "kind": "ValidatingPolicy"}]
    assert obj["spec"]["expiresAt"] == "2026-12-28T09:00:00Z"
    assert [c["expression"] for c in obj["spec"]["matchConditions"]] == [
        "object != null && (object.kind == 'Deployment' || object.kind == 'Pod')",
        "object != null && has(object.metadata.namespace) && "
        "(object.metadata.namespace.matches('^a.c$'))",
        "object != null && (object.metadata.name.matches('^x\\\\.y.*$'))",
    ]
    assert match_conditions(Scope(kinds=("*",))) == []


def test_kyverno_flags() -> None:
    assert parse_flags(
        ["--enablePolicyException", "--exceptionNamespace", "exc", "-v=2", "pos", "--x=1"]
    ) == {"enablePolicyException": "true", "exceptionNamespace": "exc", "v": "2", "x": "1"}

    def deployment(*args: str, image: str = "ghcr.io/kyverno/kyverno:v1.19.0") -> dict[str, object]:
        return {
            "metadata": {"name": "kyverno-admission-controller", "namespace": "kyverno"},
            "spec": {"template": {"spec": {"containers": [{"image": image, "args": list(args)}]}}},
        }

    found = acceptance_of(deployment("--enablePolicyException=true", "--exceptionNamespace=exc"))
    assert found == Acceptance(
        known=True,
        enabled=True,
        namespace="exc",
        source="Deployment kyverno/kyverno-admission-controller",
    )
    assert found.accepts("exc") and not found.accepts("other")
    everywhere = acceptance_of(deployment("--enablePolicyException", "--exceptionNamespace=*"))
    assert everywhere is not None and everywhere.accepts("anything")
    # 1.13+: enabled but no namespace means exceptions are ignored entirely.
    empty = acceptance_of(deployment("--enablePolicyException=true"))
    assert empty is not None and not empty.enabled and empty.accepts("exc") is False
    off = acceptance_of(deployment("--exceptionNamespace=exc"))
    assert off is not None and not off.enabled
    assert acceptance_of(deployment("--port=80", image="nginx")) is None
    assert Acceptance(known=False).accepts("exc") is None


def test_jql_values_are_quoted() -> None:
    assert quote('a"b\\c') == '"a\\"b\\\\c"'
    assert labelled("SEC", 'x" OR project = "OPS') == (
        'project = "SEC" AND labels = "x\\" OR project = \\"OPS" ORDER BY created ASC'
    )
    with pytest.raises(UnsafeJqlValue):
        quote("a\nb")
