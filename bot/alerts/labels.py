"""Which alert labels carry what: Policy Reporter's metric labels and the short forms.

Policy Reporter's `policy_report_result` metric names them `policy`, `rule`, `namespace`,
`kind`, `name`; the PrometheusRules teams write often relabel them `policy_name`,
`resource_namespace` and so on. Every reader of alert labels goes through these lists.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

POLICY_LABELS = ("policy_name", "policy")
RULE_LABELS = ("rule_name", "rule")
NAMESPACE_LABELS = ("resource_namespace", "namespace")
KIND_LABELS = ("resource_kind", "kind")
NAME_LABELS = ("resource_name", "name")


def first(labels: Mapping[str, str], keys: Sequence[str]) -> str | None:
    """The value of the first of `keys` that `labels` has and is not empty."""
    return next((labels[k] for k in keys if labels.get(k)), None)
