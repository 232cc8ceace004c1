"""Prometheus metrics of the alert relay (served by the app's `/metrics`).

Declared once per process, as prometheus_client expects; Slack call counts and 429s live in
`bot.slack_api` because every Slack caller shares them.
"""

from prometheus_client import Counter, Gauge, Histogram

WEBHOOKS = Counter(
    "policy_bot_alert_webhooks_total",
    "Alertmanager webhook requests by outcome (stored, duplicate, rejected).",
    ["outcome"],
)
WEBHOOKS_REJECTED = Counter(
    "policy_bot_alert_webhooks_rejected_total",
    "Alertmanager webhook requests refused, by reason.",
    ["reason"],
)
WEBHOOK_SECONDS = Histogram(
    "policy_bot_alert_webhook_seconds",
    "Time to answer an Alertmanager webhook request.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
OUTBOX_DEPTH = Gauge(
    "policy_bot_alert_outbox_depth",
    "Alert messages with changes Slack has not been shown yet.",
)
OUTBOX_OLDEST_AGE = Gauge(
    "policy_bot_alert_outbox_oldest_age_seconds",
    "Age of the oldest change Slack has not been shown yet (0 when none).",
)
DELIVERIES = Counter(
    "policy_bot_alert_deliveries_total",
    "Slack messages sent by the relay, by step (parent, update, reply).",
    ["step"],
)
DELIVERY_FAILURES = Counter(
    "policy_bot_alert_delivery_failures_total",
    "Deliveries put back for a later attempt, by reason.",
    ["reason"],
)
SILENCES = Counter(
    "policy_bot_alert_silences_total",
    "Silence and Unsilence button clicks by outcome (unsilence outcomes start `lift`).",
    ["outcome"],
)
