"""A real Prometheus server (the Debian package's 2.42 binary): the alert chain's, in the
playground and in the tests.

What turns a Kyverno counter into an alert is Prometheus: its scrapes, its PromQL (counter
resets, `increase` on a series that has just appeared, staleness), its rule evaluation and
its Alertmanager client. A test that pushes alerts by hand skips all of that, so the alert
chain runs the real binary: one process per test on a free loopback port, a fresh TSDB in the
test's directory, the scrape and rule configuration written by the test, scrape and
evaluation intervals of a second so a rule fires within seconds.

Binary: `POLICY_BOT_PROMETHEUS_BIN`, else `prometheus` on PATH. Missing, the tests are skipped
with the reason, unless POLICY_BOT_REQUIRE_PROMETHEUS=1 (CI), where they fail instead
(``tests/servers/prometheus.py``); the playground runs without the chain and says so.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bot.playground.child import ServerProcess, serving, write_yaml
from bot.playground.child import find_binary as find

BINARY_ENV = "POLICY_BOT_PROMETHEUS_BIN"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
INTERVAL = "1s"
"""Scrape and rule evaluation interval: the tests wait on what one rule does, not on load."""


def find_binary() -> Path:
    return find(BINARY_ENV, ("prometheus",), "apt-get install prometheus")


def scrape_config(job: str, url: str) -> dict[str, Any]:
    """A static scrape job for one `http://host:port/path` metrics endpoint."""
    scheme, rest = url.split("://", 1)
    target, _, path = rest.partition("/")
    return {
        "job_name": job,
        "scheme": scheme,
        "metrics_path": f"/{path}",
        "static_configs": [{"targets": [target]}],
    }


def server_config(
    scrapes: Sequence[Mapping[str, Any]],
    *,
    alertmanager_url: str | None = None,
    interval: str = INTERVAL,
) -> dict[str, Any]:
    """`prometheus.yml`: the scrape jobs, `rules.yml` beside it, the Alertmanager to notify."""
    config: dict[str, Any] = {
        "global": {
            "scrape_interval": interval,
            "scrape_timeout": interval,
            "evaluation_interval": interval,
        },
        "rule_files": ["rules.yml"],
        "scrape_configs": [dict(s) for s in scrapes],
    }
    if alertmanager_url is not None:
        target = alertmanager_url.split("://", 1)[1].rstrip("/")
        config["alerting"] = {
            "alertmanagers": [{"api_version": "v2", "static_configs": [{"targets": [target]}]}]
        }
    return config


@dataclass
class Prometheus(ServerProcess):
    """One running Prometheus; the HTTP API answers what it scraped and evaluated."""

    async def _get(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        timeout = aiohttp.ClientTimeout(total=10)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(f"{self.url}{path}", params=params) as response,
        ):
            body = await response.json(content_type=None)
            if response.status != 200 or body.get("status") != "success":
                raise AssertionError(f"GET {path}: {response.status} {body}")
            return body["data"]

    async def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query: the vector's samples (`metric` labels and `value`)."""
        data = await self._get("/api/v1/query", {"query": expr})
        return list(data["result"])

    async def alerts(self) -> list[dict[str, Any]]:
        """Alerts of the loaded rules, pending or firing (`GET /api/v1/alerts`)."""
        data = await self._get("/api/v1/alerts")
        return list(data["alerts"])

    async def targets(self) -> list[dict[str, Any]]:
        """Active scrape targets with `health` and `lastError`."""
        data = await self._get("/api/v1/targets", {"state": "active"})
        return list(data["activeTargets"])

    async def rule_groups(self) -> list[dict[str, Any]]:
        """Loaded rule groups with each rule's `health`, `lastError` and `state`."""
        data = await self._get("/api/v1/rules")
        return list(data["groups"])


@contextlib.asynccontextmanager
async def running_prometheus(
    config: Mapping[str, Any],
    rules: Mapping[str, Any],
    workdir: Path,
    *,
    binary: Path | None = None,
    log_level: str = "info",
) -> AsyncIterator[Prometheus]:
    """Start Prometheus with `config` and the rule file `rules` (`{"groups": [...]}`) in
    `workdir`; stopped (and waited for) on exit. Ready once `/-/ready` answers 200."""
    binary = binary or find_binary()
    config_path = workdir / "prometheus.yml"
    await asyncio.to_thread(write_yaml, config_path, config)
    await asyncio.to_thread(write_yaml, workdir / "rules.yml", rules)

    def args(url: str, port: int) -> list[str]:
        return [
            f"--config.file={config_path}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--web.external-url={url}",
            f"--log.level={log_level}",
        ]

    async with serving(
        "Prometheus",
        Prometheus,
        binary,
        args,
        workdir / "prometheus.log",
        start_timeout_s=START_TIMEOUT_S,
        stop_timeout_s=STOP_TIMEOUT_S,
    ) as server:
        yield server
