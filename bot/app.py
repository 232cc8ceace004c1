"""The composition root: the one place that builds every client, service and route.

Nothing is built at import time. `build_app` returns an aiohttp application whose startup
opens the store and Slack session and whose cleanup drains in-flight work and closes them
again; tests call the same function with settings that point at emulators.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.alerts.violations import ClusterViolations
from bot.clock import SYSTEM_CLOCK, Clock
from bot.errors import BotError
from bot.kube.gateway import ClusterGateway
from bot.metrics import Metrics
from bot.notices.outbox import NoticeOutbox
from bot.notices.sender import NoticeSender
from bot.pacing import ChannelPacer
from bot.promotion.config import load_promotion_config
from bot.promotion.history import StageHistory
from bot.promotion.records import PromotionStore
from bot.roles import RoleChecker
from bot.scheduler import Scheduler
from bot.services import Services
from bot.settings import Settings
from bot.slack_api import SlackApi
from bot.status import StatusService
from bot.store.audit_trail import AuditTrail
from bot.store.database import open_database
from bot.store.errors import StoreUnavailable
from bot.tasks import TaskGroup
from handlers.alert_relay import AlertRelay
from handlers.render.exceptions import alert_buttons

log = logging.getLogger(__name__)

SERVICES = web.AppKey("services", Services)
BOLT = web.AppKey("bolt", AsyncApp)
READY_TIMEOUT_S = 5.0


async def build_services(settings: Settings, *, clock: Clock) -> Services:
    """Open the store (migrated), build the cluster gateways and the core services."""
    promotion = load_promotion_config(settings)  # SettingsError naming the key paths
    metrics = Metrics()
    database = await open_database(settings.store.url)
    try:
        await database.migrate(clock=clock)
    except BaseException:
        await database.close()
        raise
    audit = AuditTrail(database, clock=clock)
    clusters = {env.name: ClusterGateway(env) for env in settings.environments}
    budgets = answer_budgets(settings)
    status = StatusService(
        list(clusters.values()),
        clock=clock,
        ladder=promotion.ladder,
        stage_evidence=StageHistory(PromotionStore(database), clusters).evidence,
        answer_within_s=budgets,
    )
    slack = SlackApi.open(
        token=settings.slack.bot_token.get_secret_value(),
        base_url=settings.slack.api_url,
        timeout_s=settings.slack.timeout_s,
    )
    roles = RoleChecker(
        settings.slack.roles,
        members_of=_usergroup_members(slack.web_client),
        cache_s=settings.slack.usergroup_cache_s,
    )
    return Services(
        settings=settings,
        clock=clock,
        metrics=metrics,
        database=database,
        audit=audit,
        clusters=clusters,
        status=status,
        roles=roles,
        tasks=TaskGroup(),
        scheduler=Scheduler(database, clock=clock, replica=_replica_name()),
        notices=NoticeOutbox(database, clock=clock),
        answer_within_s=budgets,
        slack=slack,
    )


ANSWER_BUDGET_FACTOR = 3.0
"""An environment's read for a command may take this many of its per-call timeouts."""


def answer_budgets(settings: Settings) -> dict[str, float]:
    """How long a command waits for each environment before naming it slow."""
    return {e.name: ANSWER_BUDGET_FACTOR * e.timeout_s for e in settings.environments}


def _replica_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _usergroup_members(client: AsyncWebClient) -> Callable[[str], Awaitable[frozenset[str]]]:
    async def members_of(group: str) -> frozenset[str]:
        response = await client.usergroups_users_list(usergroup=group)
        return frozenset(str(u) for u in response.get("users") or ())

    return members_of


def build_bolt(services: Services) -> AsyncApp:
    """The Bolt app with every listener registered."""
    from handlers import commands
    from handlers.features import FEATURES

    settings = services.settings
    http_mode = settings.slack.mode == "http"
    bolt = AsyncApp(
        client=services.slack.web_client,
        signing_secret=(
            settings.slack.signing_secret.get_secret_value()
            if http_mode and settings.slack.signing_secret
            else None
        ),
        request_verification_enabled=http_mode,
        logger=logging.getLogger("slack_bolt"),
    )
    subcommands = [sub for feature in FEATURES for sub in feature(bolt, services)]
    commands.register(bolt, services, subcommands)

    @bolt.error
    async def on_error(error: Exception, body: dict[str, Any]) -> None:
        log.error(
            "unhandled Slack listener error", exc_info=error, extra={"type": body.get("type")}
        )

    return bolt


def build_app(services: Services) -> web.Application:
    """The aiohttp application: Slack events, health, readiness and metrics."""
    app = web.Application(middlewares=[_count_requests], client_max_size=1024**2)
    bolt = build_bolt(services)
    app[SERVICES] = services
    app[BOLT] = bolt
    if services.settings.slack.mode == "http":
        app.router.add_post("/slack/events", _slack_events)
    _notice_sender(services)
    relay = _alert_relay(services)
    relay.register_actions(bolt)
    app.router.add_post("/alertmanager", relay.webhook_handler)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", _metrics)
    app.cleanup_ctx.append(_lifecycle)
    return app


NOTICE_RATE_PER_CHANNEL = 1.0
NOTICE_BURST = 3
"""Slack's posting limit per channel: about one message a second, short bursts allowed."""


def _notice_sender(services: Services) -> NoticeSender:
    """The sender of the notice outbox, started and stopped with the app."""
    sender = NoticeSender(
        services.notices,
        services.slack,
        clock=services.clock,
        pacer=ChannelPacer(rate=NOTICE_RATE_PER_CHANNEL, burst=NOTICE_BURST),
    )
    services.on_start.append(sender.start)
    services.on_close.append(sender.stop)
    return sender


def _alert_relay(services: Services) -> AlertRelay:
    """The Alertmanager relay: webhook, outbox, paced sender and Silence buttons."""
    relay = AlertRelay(
        settings=services.settings,
        database=services.database,
        slack=services.slack,
        audit=services.audit,
        clock=services.clock,
        violation_checker=ClusterViolations(services.clusters),
        extra_actions=alert_buttons,
    )
    services.on_start.append(relay.start)
    services.on_close.append(relay.stop)
    return relay


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    services = app[SERVICES]
    socket_handler = None
    if services.settings.slack.mode == "socket":
        from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler

        token = services.settings.slack.app_token
        assert token is not None  # settings validation requires it in socket mode
        socket_handler = AsyncSocketModeHandler(app[BOLT], token.get_secret_value())
        await socket_handler.connect_async()  # type: ignore[no-untyped-call]
    for hook in services.on_start:
        await hook()
    await services.scheduler.start()
    yield
    await services.scheduler.stop()
    if socket_handler is not None:
        await socket_handler.close_async()  # type: ignore[no-untyped-call]
    await close_services(services)


async def close_services(services: Services) -> None:
    """Finish in-flight work, then close every client (the order matters)."""
    await services.tasks.drain(services.settings.server.shutdown_timeout_s)
    for hook in services.on_close:
        await hook()
    await services.slack.close()
    await asyncio.gather(*(c.close() for c in services.clusters.values()))
    await services.database.close()


@web.middleware
async def _count_requests(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    route = (
        request.match_info.route.resource.canonical if request.match_info.route.resource else "-"
    )
    metrics = request.app[SERVICES].metrics
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        metrics.http_requests.labels(route, str(exc.status)).inc()
        raise
    metrics.http_requests.labels(route, str(response.status)).inc()
    return response


async def _slack_events(request: web.Request) -> web.Response:
    bolt_request = await to_bolt_request(request)
    bolt_response = await request.app[BOLT].async_dispatch(bolt_request)
    return await to_aiohttp_response(bolt_response)


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _readyz(request: web.Request) -> web.Response:
    """Ready when the store and every environment's API server answer (SPEC 3.3)."""
    services = request.app[SERVICES]
    metrics = services.metrics

    async def store() -> str:
        try:
            await asyncio.wait_for(services.database.ping(), READY_TIMEOUT_S)
        except (StoreUnavailable, TimeoutError) as err:
            metrics.store_up.set(0)
            return f"unavailable: {str(err) or 'timeout'}"
        metrics.store_up.set(1)
        return "ok"

    async def cluster(gateway: ClusterGateway) -> str:
        try:
            await gateway.ping()
        except BotError as err:
            metrics.cluster_up.labels(gateway.name).set(0)
            return f"unavailable: {getattr(err, 'reason', err.user_message)}"
        metrics.cluster_up.labels(gateway.name).set(1)
        return "ok"

    gateways = list(services.clusters.values())
    results = await asyncio.gather(store(), *(cluster(g) for g in gateways))
    body = {
        "store": results[0],
        "clusters": {g.name: r for g, r in zip(gateways, results[1:], strict=True)},
    }
    ready = all(r == "ok" for r in results)
    return web.json_response({"ready": ready, **body}, status=200 if ready else 503)


async def _metrics(request: web.Request) -> web.Response:
    own = generate_latest(request.app[SERVICES].metrics.registry)
    shared = generate_latest(REGISTRY)  # the Slack client's and the alert relay's counters
    return web.Response(body=own + shared, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def serve(settings: Settings) -> None:
    """Run until SIGTERM/SIGINT, then shut down cleanly."""
    services = await build_services(settings, clock=SYSTEM_CLOCK)
    app = build_app(services)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.server.host, settings.server.port)
    await site.start()
    # Start-up allocated most long-lived objects; freezing them keeps full collections,
    # which otherwise take 100+ ms mid-storm, off the webhook's answer time.
    gc.collect()
    gc.freeze()
    log.info(
        "policy-bot listening", extra={"port": settings.server.port, "mode": settings.slack.mode}
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    await runner.cleanup()
