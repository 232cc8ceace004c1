"""Prometheus metrics of the bot's own requests, commands and dependencies.

These live on a registry owned by one application instance, so tests can build several apps
in one process and read exact figures from each. Counters that belong to a shared client
(Slack calls and 429s in `bot.slack_api`) or to the alert relay (`bot.alerts.metrics`) are
process-wide on prometheus_client's default registry; `/metrics` serves both.
"""

from __future__ import annotations

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
