"""The aiohttp application: Slack events, the Alertmanager webhook, health, readiness and
metrics, and the lifecycle that starts the senders and scheduler and, at shutdown, drains
in-flight work before it closes the clients (the order matters).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp

from bot.app import features
from bot.app.bolt import build_bolt
from bot.app.services import Services
from bot.errors import BotError
from bot.kube.gateway import ClusterGateway
from bot.status.service import CacheHealth
from bot.store.errors import StoreUnavailable

log = logging.getLogger(__name__)

SERVICES = web.AppKey("services", Services)
BOLT = web.AppKey("bolt", AsyncApp)
READY_TIMEOUT_S = 5.0


def build_app(services: Services) -> web.Application:
    """The aiohttp application: Slack events, health, readiness and metrics."""
    app = web.Application(middlewares=[_count_requests], client_max_size=1024**2)
    listeners = features.listeners(services)
    for group in listeners:
        for job in group.jobs:
            services.scheduler.add(job)
    app[SERVICES] = services
    app[BOLT] = build_bolt(services, listeners)
    if services.settings.slack.mode == "http":
        app.router.add_post("/slack/events", _slack_events)
    app.router.add_post("/alertmanager", services.relay.webhook_handler)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", _metrics)
    app.cleanup_ctx.append(_lifecycle)
    return app


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
    body: dict[str, object] = {
        "store": results[0],
        "clusters": {g.name: r for g, r in zip(gateways, results[1:], strict=True)},
    }
    # The status cache is reported, not required: without it status lists instead.
    health = _observe_status_cache(services)
    if health is not None:
        body["status_cache"] = {name: one.describe() for name, one in health.items()}
    ready = all(r == "ok" for r in results)
    return web.json_response({"ready": ready, **body}, status=200 if ready else 503)


async def _metrics(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    _observe_status_cache(services)
    own = generate_latest(services.metrics.registry)
    shared = generate_latest(REGISTRY)  # the Slack client's and the alert relay's counters
    return web.Response(body=own + shared, headers={"Content-Type": CONTENT_TYPE_LATEST})


def _observe_status_cache(services: Services) -> Mapping[str, CacheHealth] | None:
    """The status cache's health per environment, set on its gauges; None without a cache."""
    health = services.status.cache_health()
    for name, one in (health or {}).items():
        services.metrics.observe_status_cache(
            name, synced=one.synced, watching=one.watching, broken_at=one.broken_at
        )
    return health
