"""The playground's alert rule is the chart's, with the playground's values, and Prometheus
takes it; without a prometheus binary the world says why it runs without the chain.

The whole chain at work (a violating workload alerting in #alerts) is driven through the page
in tests/e2e/test_playground.py.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.playground import alert_rule
from bot.playground.world import alert_chain_parts
from tests.servers.child import skip_or_fail
from tests.servers.prometheus import require_promtool

pytestmark = pytest.mark.prometheus

REQUIRE_ENV = "POLICY_BOT_REQUIRE_KUBE"
"""helm is built by the same Go toolchain as the control plane; CI requires both."""


def rendered(workdir: Path) -> dict[str, Any]:
    try:
        return alert_rule.render(workdir)
    except alert_rule.RuleUnavailable as exc:
        skip_or_fail(str(exc), REQUIRE_ENV)


def test_the_rule_is_the_charts_with_the_playgrounds_values(tmp_path: Path) -> None:
    promtool = require_promtool()
    rules = rendered(tmp_path / "helm")
    ((rule,),) = [group["rules"] for group in rules["groups"]]
    assert rule["alert"] == "KyvernoPolicyViolation"
    assert rule["for"] == "0s"
    assert "sum by (namespace, policy, rule, kind, environment)" in rule["expr"], rule["expr"]
    assert f"[{alert_rule.WINDOW}]" in rule["expr"] and "environment" not in rule["labels"]
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(rules, sort_keys=False))
    check = subprocess.run(
        [str(promtool), "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_without_prometheus_the_world_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "no-prometheus-here"
    monkeypatch.setenv("POLICY_BOT_PROMETHEUS_BIN", str(missing))
    reason = alert_chain_parts(tmp_path)
    assert isinstance(reason, str), reason
    assert str(missing) in reason and "not executable" in reason
