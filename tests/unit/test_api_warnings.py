"""The API server's `Warning` headers (RFC 7234 `299 - "text"`) as texts."""

from __future__ import annotations

from bot.kube.gateway import api_warnings


def test_each_header_value_is_one_warning_unquoted() -> None:
    assert api_warnings(
        [
            '299 - "kyverno.io/v1 ClusterPolicy is deprecated; see https://kyverno.io/x"',
            '299 - "a \\"quoted\\" word and a back\\\\slash"',
        ]
    ) == [
        "kyverno.io/v1 ClusterPolicy is deprecated; see https://kyverno.io/x",
        'a "quoted" word and a back\\slash',
    ]


def test_warnings_folded_into_one_value_are_split() -> None:
    assert api_warnings(['299 - "first, with a comma", 299 - "second"']) == [
        "first, with a comma",
        "second",
    ]


def test_a_value_that_is_not_a_299_warning_is_kept_as_it_is_and_empty_ones_dropped() -> None:
    assert api_warnings(["199 misc something", "", '299 - ""']) == ["199 misc something"]
