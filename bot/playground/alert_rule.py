"""The chart's Kyverno alert rule, rendered by helm for the playground's Prometheus.

The rule the playground's Prometheus evaluates is the one ``deploy/chart`` ships
(``prometheusRule.source: kyverno``), so the demo shows the documented rule at work. Only its
values differ: ``for`` is 0 s and the window short (a violation alerts within seconds and the
alert resolves a few minutes after the last one), and the alert is aggregated by
``environment`` too, a label the playground's single Prometheus puts on each cluster's Kyverno
target, where a Prometheus per cluster would set the chart's ``environment`` value instead.

helm comes from ``tools/helmbin/build.sh`` (``make helm``), cached after the first build.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART = REPO_ROOT / "deploy" / "chart" / "policy-bot"
BUILD_SCRIPT = REPO_ROOT / "tools" / "helmbin" / "build.sh"
TEMPLATE = "templates/prometheusrule.yaml"
WINDOW = "2m"
"""How long a failing evaluation keeps the alert firing (the chart's default is 90m)."""
BY = ("namespace", "policy", "rule", "kind", "environment")
HELM_TIMEOUT_S = 120.0


class RuleUnavailable(Exception):
    """helm could not be built or could not render the chart's rule; the message says why."""


def _helm() -> Path:
    try:
        built = subprocess.run(
            ["bash", str(BUILD_SCRIPT)],
            capture_output=True,
            text=True,
            check=False,
            timeout=HELM_TIMEOUT_S * 10,  # a first build compiles helm
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuleUnavailable(f"cannot run {BUILD_SCRIPT}: {exc}") from exc
    lines = built.stdout.strip().splitlines()
    if built.returncode != 0 or not lines:
        tail = " ".join(built.stderr.strip().splitlines()[-3:])
        raise RuleUnavailable(f"no helm ({BUILD_SCRIPT} failed; run `make helm`): {tail}")
    return Path(lines[-1])


def values() -> dict[str, Any]:
    return {
        "prometheusRule": {
            "enabled": True,
            "source": "kyverno",
            "for": "0s",
            "kyverno": {"window": WINDOW, "by": list(BY)},
        }
    }


def render(workdir: Path) -> dict[str, Any]:
    """The rule file (``{"groups": [...]}``) of the chart's PrometheusRule (blocking)."""
    helm = _helm()
    workdir.mkdir(parents=True, exist_ok=True)
    values_file = workdir / "values.yaml"
    values_file.write_text(yaml.safe_dump(values(), sort_keys=False))
    # helm keeps its caches and configuration under these: all of it in the world's directory
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(workdir),
        "HELM_CACHE_HOME": str(workdir / "cache"),
        "HELM_CONFIG_HOME": str(workdir / "config"),
        "HELM_DATA_HOME": str(workdir / "data"),
    }
    args = ["template", "policy-bot", str(CHART), "-f", str(values_file), "--show-only", TEMPLATE]
    try:
        done = subprocess.run(
            [str(helm), *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=workdir,
            timeout=HELM_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuleUnavailable(f"helm template failed: {exc}") from exc
    if done.returncode != 0:
        raise RuleUnavailable(f"helm template failed: {done.stderr.strip() or done.stdout}")
    rendered = [d for d in yaml.safe_load_all(done.stdout) if d]
    rules = [d for d in rendered if d.get("kind") == "PrometheusRule"]
    if len(rules) != 1:
        raise RuleUnavailable(f"{TEMPLATE} rendered {len(rules)} PrometheusRules, not one")
    return {"groups": rules[0]["spec"]["groups"]}
