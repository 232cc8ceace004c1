"""How a policy is named in a command: bare, `NAMESPACE/NAME`, or qualified by its kind."""

from __future__ import annotations

import pytest

from bot.policy_ref import BadPolicyRef, PolicyRef, parse_policy_ref, qualified


@pytest.mark.parametrize(
    ("text", "ref"),
    [
        ("require-labels", PolicyRef("require-labels")),
        ("team-a/limits", PolicyRef("limits", "team-a")),
        ("cpol/require-labels", PolicyRef("require-labels", None, "ClusterPolicy")),
        ("ClusterPolicy/require-labels", PolicyRef("require-labels", None, "ClusterPolicy")),
        ("validatingpolicy/x.y", PolicyRef("x.y", None, "ValidatingPolicy")),
        ("vpol/x", PolicyRef("x", None, "ValidatingPolicy")),
        ("pol/team-a/limits", PolicyRef("limits", "team-a", "Policy")),
        ("nvpol/team-a/limits", PolicyRef("limits", "team-a", "NamespacedValidatingPolicy")),
        ("ivpol/signed", PolicyRef("signed", None, "ImageValidatingPolicy")),
    ],
)
def test_each_form_parses(text: str, ref: PolicyRef) -> None:
    assert parse_policy_ref(text) == ref


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Require-Labels", "`Require-Labels` is not a policy name"),
        ("<!channel>", "`&lt;!channel&gt;` is not a policy name"),
        ("a/b/c", "`a/b/c` does not start with a policy kind"),
        ("pol/limits", "Policy is namespaced: write `pol/NAMESPACE/NAME`."),
        ("cpol/ns/x", "ClusterPolicy is cluster-wide: write `cpol/NAME`."),
        ("vpol/", "`vpol/` is not a policy name"),
        ("x" * 254, "is not a policy name"),
        ("a`b", "`a'b` is not a policy name"),
    ],
)
def test_what_is_not_a_policy_reference_says_how_to_write_one(text: str, message: str) -> None:
    with pytest.raises(BadPolicyRef) as caught:
        parse_policy_ref(text)
    assert message in caught.value.user_message


def test_the_qualified_form_is_the_short_one_and_round_trips() -> None:
    assert qualified("ValidatingPolicy", "x") == "vpol/x"
    assert qualified("Policy", "team-a/limits") == "pol/team-a/limits"
    ref = PolicyRef("limits", "team-a", "Policy")
    assert str(ref) == "pol/team-a/limits" and parse_policy_ref(str(ref)) == ref
    assert str(PolicyRef("x")) == "x" and PolicyRef("x").accepts("ValidatingPolicy")
    assert not ref.accepts("NamespacedValidatingPolicy")
