"""Prometheus metrics, on a registry owned by one application instance.

A registry per instance (not the process-global default) lets tests build several apps in
one process and read exact figures from each.
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
        self.slack_calls = Counter(
            "policy_bot_slack_api_calls", "Slack Web API calls", ["method", "outcome"], registry=r
        )
        self.slack_rate_limited = Counter(
            "policy_bot_slack_rate_limited", "Slack Web API answers 429", ["method"], registry=r
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
        self.webhooks = Counter(
            "policy_bot_alertmanager_webhooks",
            "Alertmanager webhook requests by outcome",
            ["outcome"],
            registry=r,
        )
        self.outbox_depth = Gauge(
            "policy_bot_outbox_depth", "Slack messages waiting to be sent", registry=r
        )
        self.outbox_oldest_seconds = Gauge(
            "policy_bot_outbox_oldest_seconds", "Age of the oldest waiting message", registry=r
        )
