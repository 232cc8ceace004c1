"""Prometheus metrics of the bot's own requests, commands and dependencies.

These live on a registry owned by one application instance, so tests can build several apps
in one process and read exact figures from each. Counters that belong to a shared client
(Slack calls and 429s in `bot.slack_api`) or to the alert relay (`bot.alerts.metrics`) are
process-wide on prometheus_client's default registry; `/metrics` serves both.
"""

from __future__ import annotations

from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.http_requests = Counter(
            "policy_bot_http_requests", "HTTP requests served", ["route", "status"], registry=r
        )
        self.commands = Counter(
            "policy_bot_commands", "Slash commands handled", ["subcommand", "outcome"], registry=r
        )
        self.command_seconds = Histogram(
            "policy_bot_command_seconds",
            "Time from acknowledgement to answer of a slash command",
            ["subcommand"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
            registry=r,
        )
        self.cluster_up = Gauge(
            "policy_bot_cluster_reachable",
            "1 when the environment's API server answered the last probe",
            ["environment"],
            registry=r,
        )
        self.store_up = Gauge(
            "policy_bot_store_reachable", "1 when the store answered the last probe", registry=r
        )
        self.status_cache_synced = Gauge(
            "policy_bot_status_cache_synced",
            "1 when the environment's status cache has listed every kind (status answers "
            "from memory)",
            ["environment"],
            registry=r,
        )
        self.status_cache_watching = Gauge(
            "policy_bot_status_cache_watching",
            "1 when every watch of the environment's status cache is established",
            ["environment"],
            registry=r,
        )
        self.status_cache_broken = Gauge(
            "policy_bot_status_cache_broken_since_seconds",
            "Unix time since which a watch of the environment's status cache has been "
            "failing; 0 when none is",
            ["environment"],
            registry=r,
        )

    def observe_status_cache(
        self, environment: str, *, synced: bool, watching: bool, broken_at: datetime | None
    ) -> None:
        """Set one environment's status cache gauges."""
        self.status_cache_synced.labels(environment).set(1 if synced else 0)
        self.status_cache_watching.labels(environment).set(1 if watching else 0)
        broken = broken_at.timestamp() if broken_at is not None else 0
        self.status_cache_broken.labels(environment).set(broken)
