"""Shared pieces of the alert relay tests: sample payloads, alert factories, a running relay.

`running_relay` serves the relay's real webhook handler on 127.0.0.1 (OS-assigned port) in
front of a migrated store, with the sender posting to the Slack emulator through the real
`SlackApi` adapter: what Alertmanager and Slack see is exactly what production does.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp

from bot.alerts.ports import ViolationChecker
from bot.alerts.state import AlertGroup, Silence, merge_alerts
from bot.alerts.webhook import Alert, Notification, parse_notification
from bot.clock import SYSTEM_CLOCK, Clock
from bot.settings import Settings, parse_settings
from bot.slack_api import SlackApi
from bot.store import AuditTrail, Database, open_database
from handlers.alert_relay import AlertRelay
from tests.emulators.fixtures import BOT_TOKEN, SIGNING_SECRET
from tests.emulators.slack import SlackEmulator

DATA = Path(__file__).parent / "data" / "alertmanager"
WEBHOOK_TOKEN = "am-webhook-token-0123456789"
ALERTS_CHANNEL = "C0ALERTS"


def sample(name: str) -> bytes:
    return (DATA / name).read_bytes()


def sample_json(name: str) -> Any:
    return json.loads(sample(name))


def notification(name: str) -> Notification:
    return parse_notification(sample(name))


def alert(
    name: str,
    *,
    namespace: str = "payments",
    kind: str = "Deployment",
    policy: str = "require-labels",
    status: str = "firing",
    starts_at: datetime = datetime(2026, 11, 28, 8, 51, tzinfo=UTC),
    ends_at: datetime | None = None,
    severity: str = "warning",
    message: str | None = None,
    extra_labels: Mapping[str, str] | None = None,
    fingerprint: str | None = None,
) -> Alert:
    """An alert as Alertmanager would report it for one Kyverno violation."""
    labels = {
        "alertname": "KyvernoPolicyViolation",
        "policy_name": policy,
        "rule_name": "check-team-label",
        "resource_kind": kind,
        "resource_namespace": namespace,
        "resource_name": name,
        "severity": severity,
        "cluster": "prod-eu-1",
        **(extra_labels or {}),
    }
    identity = f"{policy}/{namespace}/{kind}/{name}".encode()
    fp = fingerprint or hashlib.sha256(identity).hexdigest()[:16]
    return Alert.model_validate(
        {
            "status": status,
            "labels": labels,
            "annotations": {
                "description": message or f"{kind} {namespace}/{name} is missing label 'team'",
                "summary": f"Kyverno policy {policy} failed",
            },
            "startsAt": starts_at.isoformat(),
            "endsAt": (ends_at or datetime(1, 1, 1, tzinfo=UTC)).isoformat(),
            "generatorURL": "http://prometheus.example.invalid/graph",
            "fingerprint": fp,
        }
    )


def group_of(
    *batches: Sequence[Alert],
    group_id: int = 7,
    channel: str = ALERTS_CHANNEL,
    silence: Silence | None = None,
    expired_failing: frozenset[str] = frozenset(),
    truncated: int = 0,
    group_labels: Mapping[str, str] | None = None,
) -> AlertGroup:
    """The stored state after notifications carrying `batches`, in order."""
    alerts: dict[str, Alert] = {}
    for batch in batches:
        alerts = merge_alerts(alerts, batch) or alerts
    first = min(a.starts_at for a in alerts.values())
    any_alert = next(iter(alerts.values()))
    return AlertGroup(
        id=group_id,
        group_key='{}:{alertname="KyvernoPolicyViolation", policy_name="require-labels"}',
        channel=channel,
        alerts=alerts,
        group_labels=dict(
            group_labels
            or {
                "alertname": any_alert.labels["alertname"],
                "policy_name": any_alert.labels.get("policy_name", ""),
            }
        ),
        external_url="http://alertmanager.example.invalid:9093",
        receiver="policy-bot",
        truncated_alerts=truncated,
        first_fired_at=first,
        silence=silence,
        expired_failing=expired_failing,
    )


def payload(
    alerts: Sequence[Alert], *, group_key: str | None = None, receiver: str = "policy-bot"
) -> dict[str, Any]:
    """A webhook body for `alerts`, shaped like Alertmanager's."""
    first = alerts[0]
    group_labels = {
        "alertname": first.labels["alertname"],
        "policy_name": first.labels["policy_name"],
    }
    common = dict(first.labels)
    for a in alerts[1:]:
        common = {k: v for k, v in common.items() if a.labels.get(k) == v}
    key = group_key or "{}:{" + ", ".join(f'{k}="{v}"' for k, v in group_labels.items()) + "}"
    return {
        "receiver": receiver,
        "status": "firing" if any(a.firing for a in alerts) else "resolved",
        "alerts": [a.model_dump(mode="json", by_alias=True) for a in alerts],
        "groupLabels": group_labels,
        "commonLabels": common,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example.invalid:9093",
        "version": "4",
        "groupKey": key,
        "truncatedAlerts": 0,
    }


class FrozenClock:
    """A clock tests move by hand."""

    def __init__(self, now: datetime) -> None:
        self.current = now

    def now(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> None:
        self.current += timedelta(**delta)


def relay_settings(
    emulator: SlackEmulator,
    *,
    routes: Sequence[Mapping[str, Any]] = (),
    default_channel: str | None = ALERTS_CHANNEL,
    alertmanager_url: str | None = None,
    per_channel_rate: float = 1.0,
    burst: int = 3,
    max_body_bytes: int = 5 * 1024 * 1024,
    token: str | None = WEBHOOK_TOKEN,
) -> Settings:
    channels = {"alerts": default_channel} if default_channel else {}
    alertmanager: dict[str, Any] = {
        "routes": list(routes),
        "per_channel_rate": per_channel_rate,
        "burst": burst,
        "max_body_bytes": max_body_bytes,
        "timeout_s": 5,
        "policy_reporter_url": "http://policy-reporter.example.invalid/#/?policies={policy}",
    }
    if alertmanager_url:
        alertmanager["url"] = alertmanager_url
    env = {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": emulator.base_url,
    }
    if token:
        env["ALERTMANAGER_WEBHOOK_TOKEN"] = token
    return parse_settings(
        {
            "slack": {"mode": "http", "channels": channels, "timeout_s": 5},
            "environments": [{"name": "dev"}],
            "alertmanager": alertmanager,
        },
        env,
    )


@dataclass
class RunningRelay:
    relay: AlertRelay
    database: Database
    slack: SlackApi
    url: str
    settings: Settings
    fail_after_store: list[int] = field(default_factory=lambda: [0])
    requests: list[int] = field(default_factory=list)
    """What the webhook handler answered, per request, in order (before a lost answer)."""
    durations: list[float] = field(default_factory=list)
    """Seconds the handler took, per request, in order."""
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def record(self, status: int) -> None:
        self.requests.append(status)
        async with self._changed:
            self._changed.notify_all()

    async def wait_requests(self, count: int, *, timeout: float = 10.0) -> None:
        """Until the webhook has answered at least `count` requests."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: len(self.requests) >= count)

    @property
    def webhook_url(self) -> str:
        return f"{self.url}/alertmanager"

    async def wait_idle(self, *, timeout: float = 10.0) -> None:
        """Until Slack was shown every stored change (the outbox has no event to wait on)."""
        async with asyncio.timeout(timeout):
            while True:
                if not (await self.relay.outbox.backlog()).depth:
                    return
                await asyncio.sleep(0.05)

    def answer_500_after_storing(self, times: int = 1) -> None:
        """The next `times` requests are stored, then answered 500 (a lost answer)."""
        self.fail_after_store[0] = times


@contextlib.asynccontextmanager
async def running_relay(
    emulator: SlackEmulator,
    store_url: str,
    *,
    settings: Settings | None = None,
    clock: Clock = SYSTEM_CLOCK,
    checker: ViolationChecker | None = None,
    start_sender: bool = True,
    poll_interval_s: float = 0.5,
    drain_timeout_s: float = 5.0,
    bolt: AsyncApp | None = None,
) -> AsyncIterator[RunningRelay]:
    """The relay on 127.0.0.1:0 with its own store connection; stopped (drained) on exit.

    With `bolt`, the relay's buttons are registered on it and it serves `/slack/events`.
    """
    settings = settings or relay_settings(emulator)
    database = await open_database(store_url, timeout_s=2.0)
    await database.migrate(clock=SYSTEM_CLOCK)
    slack = SlackApi.open(token=BOT_TOKEN, base_url=emulator.base_url, timeout_s=5.0)
    relay = AlertRelay(
        settings=settings,
        database=database,
        slack=slack,
        audit=AuditTrail(database, clock=clock),
        clock=clock,
        violation_checker=checker,
        poll_interval_s=poll_interval_s,
    )
    state: dict[str, Any] = {}

    @web.middleware
    async def lose_answers(request: web.Request, handler: Any) -> web.StreamResponse:
        started = time.perf_counter()
        response: web.StreamResponse = await handler(request)
        if request.path != "/alertmanager":
            return response
        running: RunningRelay = state["running"]
        running.durations.append(time.perf_counter() - started)
        await running.record(response.status)
        if running.fail_after_store[0] > 0:
            running.fail_after_store[0] -= 1
            return web.Response(status=500, text="answer lost")
        return response

    app = web.Application(middlewares=[lose_answers])
    app.router.add_post("/alertmanager", relay.webhook_handler)
    if bolt is not None:
        relay.register_actions(bolt)
        app_bolt = bolt

        async def slack_events(request: web.Request) -> web.Response:
            return await to_aiohttp_response(
                await app_bolt.async_dispatch(await to_bolt_request(request))
            )

        app.router.add_post("/slack/events", slack_events)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = int(runner.addresses[0][1])
    running = RunningRelay(relay, database, slack, f"http://127.0.0.1:{port}", settings)
    state["running"] = running
    try:
        if start_sender:
            await relay.start()
        yield running
    finally:
        await relay.stop(drain_timeout_s=drain_timeout_s)
        await runner.cleanup()
        await slack.close()
        await database.close()
