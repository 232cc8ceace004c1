"""Runs the real bot in-process on 127.0.0.1 with an OS-assigned port.

The bot is built by the same composition root as in production (`build_services` +
`build_app`); only the settings differ: Slack's API URL points at the emulator, the
environments at the test control planes, the store at a temporary database.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bot.app import build_app, build_services
from bot.clock import Clock
from bot.services import Services
from bot.settings import Settings, parse_settings
from tests.emulators.fixtures import APP_TOKEN, BOT_TOKEN, SIGNING_SECRET
from tests.emulators.slack import SlackEmulator
from tests.emulators.slack_client import SignedSlackClient

CHANNELS = {"alerts": "C0ALERTS", "approvals": "C0APPROVALS", "reports": "C0REPORTS"}


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
    env = {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_APP_TOKEN": APP_TOKEN,
        "SLACK_API_URL": emulator.base_url,
        **(secrets or {}),
    }
    return parse_settings(document, env)


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


class TcpProxy:
    """A loopback TCP proxy that can be cut and restored, to take a cluster "down"."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            await self._server.wait_closed()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        pipes = [
            asyncio.create_task(self._pipe(reader, up_writer)),
            asyncio.create_task(self._pipe(up_reader, writer)),
        ]
        self._tasks.update(pipes)
        await asyncio.gather(*pipes, return_exceptions=True)
        self._tasks.difference_update(pipes)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()


def kubeconfig_via(original: Path, port: int, target: Path) -> Path:
    """A copy of `original` whose server URL goes through a proxy on `port`."""
    import yaml

    config = yaml.safe_load(original.read_text())
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = f"https://127.0.0.1:{port}"
    target.write_text(yaml.safe_dump(config))
    return target


class SlowProxy:
    """A loopback TCP proxy that holds every answer of the API server back by `delay` s."""

    def __init__(self, target_port: int) -> None:
        self._target = target_port
        self.delay = 0.0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target)
        pipes = [
            asyncio.create_task(self._pipe(reader, up_writer, slow=False)),
            asyncio.create_task(self._pipe(up_reader, writer, slow=True)),
        ]
        self._tasks.update(pipes)
        try:
            await asyncio.gather(*pipes, return_exceptions=True)
        finally:
            self._tasks.difference_update(pipes)

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
            writer.close()


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
