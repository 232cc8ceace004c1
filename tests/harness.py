"""Starts the real bot, the alert relay and loopback servers in-process on 127.0.0.1.

The bot is built by the same composition root as in production (`build_services` +
`build_app`); only the settings differ: Slack's API URL points at the emulator, the
environments at the test control planes, the store at a temporary database.

`running_relay` serves the alert relay's real webhook handler (OS-assigned port) in front of
a migrated store, with the sender posting to the Slack emulator through the real `SlackApi`
adapter: what Alertmanager and Slack see is exactly what production does.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp

from bot.alerts.ports import ViolationChecker
from bot.app import Services, build_app, build_services
from bot.clock import SYSTEM_CLOCK, Clock
from bot.playground.slack_emulator import SlackEmulator
from bot.playground.slack_signed_client import SignedSlackClient
from bot.settings import Settings, parse_settings
from bot.slack_api import SlackApi
from bot.store import AuditTrail, Database, open_database
from handlers.alert_relay import AlertRelay
from tests.emulators.fixtures import APP_TOKEN, BOT_TOKEN, SIGNING_SECRET

CHANNELS = {"alerts": "C0ALERTS", "approvals": "C0APPROVALS", "reports": "C0REPORTS"}
ALERTS_CHANNEL = CHANNELS["alerts"]
WEBHOOK_TOKEN = "am-webhook-token-0123456789"


def slack_env(emulator: SlackEmulator, **secrets: str) -> dict[str, str]:
    """The bot's Slack secrets for the emulator, plus `secrets`."""
    return {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": emulator.base_url,
        **secrets,
    }


def bot_settings(
    emulator: SlackEmulator,
    *,
    environments: list[dict[str, Any]],
    store_url: str,
    mode: str = "http",
    extra: Mapping[str, Any] | None = None,
    secrets: Mapping[str, str] | None = None,
) -> Settings:
    document: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": 3000, "shutdown_timeout_s": 5},
        "store": {"url": store_url},
        "slack": {"mode": mode, "channels": CHANNELS},
        "environments": environments,
        **(extra or {}),
    }
    return parse_settings(
        document, slack_env(emulator, SLACK_APP_TOKEN=APP_TOKEN, **(secrets or {}))
    )


@dataclass
class RunningBot:
    url: str
    services: Services
    slack: SignedSlackClient
    runner: web.AppRunner

    async def get(self, path: str) -> tuple[int, Any]:
        timeout = aiohttp.ClientTimeout(total=15)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(self.url + path) as r,
        ):
            body = await r.json() if r.content_type == "application/json" else await r.text()
            return r.status, body


@contextlib.asynccontextmanager
async def running_bot(
    settings: Settings, emulator: SlackEmulator, *, clock: Clock
) -> AsyncIterator[RunningBot]:
    services = await build_services(settings, clock=clock)
    app = build_app(services)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    url = f"http://127.0.0.1:{port}"
    client = SignedSlackClient(url, SIGNING_SECRET, emulator)
    try:
        yield RunningBot(url=url, services=services, slack=client, runner=runner)
    finally:
        await client.close()
        await runner.cleanup()


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
    env = slack_env(emulator, **({"ALERTMANAGER_WEBHOOK_TOKEN": token} if token else {}))
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

    async def wait_applied(self, *, timeout: float = 10.0) -> None:
        """Until every answered notification was applied to its message rows."""
        async with asyncio.timeout(timeout):
            while True:
                if not await self.relay.intake.applier.unapplied():
                    return
                await asyncio.sleep(0.05)

    async def wait_idle(self, *, timeout: float = 10.0) -> None:
        """Until Slack was shown every stored change (the outbox has no event to wait on)."""
        async with asyncio.timeout(timeout):
            while True:
                if (
                    not await self.relay.intake.applier.unapplied()
                    and not (await self.relay.outbox.backlog()).depth
                ):
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
    slack_timeout_s: float = 5.0,
) -> AsyncIterator[RunningRelay]:
    """The relay on 127.0.0.1:0 with its own store connection; stopped (drained) on exit.

    With `bolt`, the relay's buttons are registered on it and it serves `/slack/events`.
    """
    settings = settings or relay_settings(emulator)
    database = await open_database(store_url, timeout_s=2.0)
    await database.migrate(clock=SYSTEM_CLOCK)
    slack = SlackApi.open(token=BOT_TOKEN, base_url=emulator.base_url, timeout_s=slack_timeout_s)
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


class TcpProxy:
    """A loopback TCP proxy that can be cut and restored, to take a cluster "down", and can
    hold every answer of the target back by `delay` s, to make it slow."""

    def __init__(self, target_host: str, target_port: int, *, delay: float = 0.0) -> None:
        self._target = (target_host, target_port)
        self.delay = delay
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._pipes: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self) -> None:
        """Listen (again, on the same port after a `stop`)."""
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and cut every connection; returns once their sockets are closed
        (a socket left to the garbage collector is a ResourceWarning, an error in the suite).

        Only the pipes are cancelled, never a connection's own task: asyncio's stream server
        closes the transport of a cancelled connection task only on newer Pythons, and on
        3.11 its done-callback raises instead, leaving the socket to the collector."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        # Python 3.11's `wait_closed` does not wait for the server's connections (3.12 does),
        # so wait for them here: one accepted just before the close becomes a transport on
        # the next loop turn and its handler, seeing no server, closes it soon after.
        await asyncio.sleep(0)
        deadline = asyncio.get_running_loop().time() + 10.0
        while True:
            for pipe in list(self._pipes):
                pipe.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            if not getattr(server, "_active_count", 0):
                break
            assert asyncio.get_running_loop().time() < deadline, "proxy connections linger"
            await asyncio.sleep(0.01)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        up_writer: asyncio.StreamWriter | None = None
        try:
            if self._server is None:
                return  # accepted just before `stop`
            try:
                up_reader, up_writer = await asyncio.open_connection(*self._target)
            except OSError:
                return
            if self._server is None:
                return  # stopped while connecting
            pipes = (
                asyncio.create_task(self._pipe(reader, up_writer, slow=False)),
                asyncio.create_task(self._pipe(up_reader, writer, slow=True)),
            )
            self._pipes.update(pipes)
            try:
                await asyncio.gather(*pipes, return_exceptions=True)
            finally:
                self._pipes.difference_update(pipes)
        finally:
            self._tasks.discard(task)
            for end in (writer, up_writer):
                if end is not None:
                    end.close()
                    with contextlib.suppress(Exception):
                        await end.wait_closed()

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, slow: bool
    ) -> None:
        try:
            while data := await reader.read(65536):
                if slow and self.delay:
                    await asyncio.sleep(self.delay)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()  # the other side sees the end, and its pipe ends too


class SlowProxy(TcpProxy):
    """A proxy in front of an API server on a loopback port, whose answers `delay` holds back."""

    def __init__(self, target_port: int) -> None:
        super().__init__("127.0.0.1", target_port)


def kubeconfig_via(original: Path, port: int, target: Path) -> Path:
    """A copy of `original` whose server URL goes through a proxy on `port`."""
    import yaml

    config = yaml.safe_load(original.read_text())
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = f"https://127.0.0.1:{port}"
    target.write_text(yaml.safe_dump(config))
    return target


class HungServer:
    """A loopback port that accepts connections and never answers: a hung API server."""

    def __init__(self) -> None:
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._hold, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)  # read nothing, answer nothing, keep it open

    async def stop(self) -> None:
        for writer in self._writers:
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


def blocks_text(blocks: list[dict[str, Any]]) -> str:
    """The words of a Block Kit message, one text object a line, as a reader would see them."""
    parts = []
    for block in blocks:
        if isinstance(block.get("text"), dict):
            parts.append(block["text"]["text"])
        for element in block.get("elements", []) + block.get("fields", []):
            if isinstance(element.get("text"), str):
                parts.append(element["text"])
            elif isinstance(element.get("text"), dict):
                parts.append(element["text"].get("text", ""))
    return "\n".join(parts)
