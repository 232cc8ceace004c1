"""A real Prometheus Alertmanager (the Debian package's 0.25 binary) for the relay's tests.

Alertmanager's grouping, timers, retries and HA behaviour are what the relay must cope with,
and no fake reproduces them faithfully, so tests run the real binary: one process per test on
a free loopback port, gossip off (`--cluster.listen-address=` empty), a fresh `--storage.path`
(the notification log and silences persist there), and a config written by the test. Two
such processes fed the same alerts behave like an HA pair whose gossip is partitioned: both
notify, which is the duplicate case the relay has to absorb.

Binary: `POLICY_BOT_ALERTMANAGER_BIN`, else `prometheus-alertmanager` or `alertmanager` on
PATH. Missing, the tests are skipped with the reason, unless POLICY_BOT_REQUIRE_ALERTMANAGER=1
(CI), where they fail instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import shutil
import signal
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import pytest
import yaml

BINARY_ENV = "POLICY_BOT_ALERTMANAGER_BIN"
REQUIRE_ENV = "POLICY_BOT_REQUIRE_ALERTMANAGER"
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 5.0
_PR_SET_PDEATHSIG = 1


class AlertmanagerNotInstalled(Exception):
    """No Alertmanager binary was found; the message says where we looked."""


def find_binary() -> Path:
    configured = os.environ.get(BINARY_ENV)
    if configured:
        if not os.access(configured, os.X_OK):
            raise AlertmanagerNotInstalled(f"{BINARY_ENV}={configured} is not executable")
        return Path(configured)
    for name in ("prometheus-alertmanager", "alertmanager"):
        found = shutil.which(name)
        if found:
            return Path(found)
    raise AlertmanagerNotInstalled(
        "prometheus-alertmanager is not installed (apt-get install prometheus-alertmanager, "
        f"or set {BINARY_ENV})"
    )


def webhook_receiver(
    url: str,
    *,
    token: str,
    group_by: Sequence[str] = ("alertname", "policy_name"),
    group_wait: str = "1s",
    group_interval: str = "2s",
    repeat_interval: str = "1h",
) -> dict[str, Any]:
    """A config sending every alert to `url` with a bearer token."""
    return {
        "global": {"resolve_timeout": "5m"},
        "route": {
            "receiver": "policy-bot",
            "group_by": list(group_by),
            "group_wait": group_wait,
            "group_interval": group_interval,
            "repeat_interval": repeat_interval,
        },
        "receivers": [
            {
                "name": "policy-bot",
                "webhook_configs": [
                    {
                        "url": url,
                        "send_resolved": True,
                        "max_alerts": 0,
                        "http_config": {"authorization": {"type": "Bearer", "credentials": token}},
                    }
                ],
            }
        ],
    }


def slack_receiver(
    api_url: str,
    *,
    channel: str,
    group_by: Sequence[str] = ("alertname", "policy_name"),
    group_wait: str = "1s",
    group_interval: str = "2s",
    repeat_interval: str = "1h",
) -> dict[str, Any]:
    """A config using Alertmanager's own Slack notifier (default templates, resolved too)."""
    return {
        "global": {"resolve_timeout": "5m", "slack_api_url": api_url},
        "route": {
            "receiver": "slack-native",
            "group_by": list(group_by),
            "group_wait": group_wait,
            "group_interval": group_interval,
            "repeat_interval": repeat_interval,
        },
        "receivers": [
            {"name": "slack-native", "slack_configs": [{"channel": channel, "send_resolved": True}]}
        ],
    }


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass
class Alertmanager:
    """One running Alertmanager; `push` is what Prometheus (or Policy Reporter) would do."""

    url: str
    log_path: Path
    process: asyncio.subprocess.Process

    async def _request(self, method: str, path: str, body: Any = None) -> Any:
        timeout = aiohttp.ClientTimeout(total=10)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.request(method, f"{self.url}{path}", json=body) as response,
        ):
            text = await response.text()
            if response.status != 200:
                raise AssertionError(f"{method} {path}: {response.status} {text}")
            return await response.json(content_type=None) if text.strip() else None

    async def push(self, alerts: Sequence[Mapping[str, Any]]) -> None:
        """`POST /api/v2/alerts` (labels, annotations, startsAt, endsAt to resolve)."""
        await self._request("POST", "/api/v2/alerts", list(alerts))

    async def silences(self) -> list[dict[str, Any]]:
        found = await self._request("GET", "/api/v2/silences")
        return list(found or [])

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _write_config(path: Path, config: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(dict(config), sort_keys=False))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM if the test process dies without cleaning up."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@contextlib.asynccontextmanager
async def running_alertmanager(
    config: Mapping[str, Any],
    workdir: Path,
    *,
    binary: Path | None = None,
    log_level: str = "debug",
) -> AsyncIterator[Alertmanager]:
    """Start Alertmanager with `config` in `workdir`; stopped (and waited for) on exit.

    Tests keep its debug log (it explains every retry); benchmarks pass `log_level="warn"`,
    because a chatty log on the same disk slows the bot's own fsyncs and skews the figures.
    """
    binary = binary or find_binary()
    config_path = workdir / "alertmanager.yml"
    log_path = workdir / "alertmanager.log"
    await asyncio.to_thread(_write_config, config_path, config)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log_file:
        process = await asyncio.create_subprocess_exec(
            str(binary),
            f"--config.file={config_path}",
            f"--storage.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--web.external-url={url}",
            "--cluster.listen-address=",
            f"--log.level={log_level}",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log_file,
            stderr=asyncio.subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
    server = Alertmanager(url=url, log_path=log_path, process=process)
    try:
        await wait_ready(server, "Alertmanager", START_TIMEOUT_S)
        yield server
    finally:
        await stop_process(process, STOP_TIMEOUT_S)


class _Server(Protocol):
    url: str
    process: asyncio.subprocess.Process

    def log_tail(self) -> str: ...


async def wait_ready(server: _Server, what: str, timeout_s: float) -> None:
    """Poll `/-/ready` (Prometheus' and Alertmanager's) until 200, or fail with the log."""
    timeout = aiohttp.ClientTimeout(total=2)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while loop.time() < deadline:
            if server.process.returncode is not None:
                break
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(f"{server.url}/-/ready") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.05)
    raise RuntimeError(f"{what} did not become ready:\n{server.log_tail()}")


async def stop_process(process: asyncio.subprocess.Process, timeout_s: float) -> None:
    """SIGTERM, then SIGKILL past `timeout_s`."""
    if process.returncode is not None:
        return
    process.terminate()
    try:
        await asyncio.wait_for(process.wait(), timeout_s)
    except TimeoutError:
        process.kill()
        await process.wait()


StartAlertmanager = Callable[[Mapping[str, Any]], Awaitable[Alertmanager]]


def require_binary() -> Path:
    """The Alertmanager binary, or a skip (a failure with POLICY_BOT_REQUIRE_ALERTMANAGER=1)."""
    try:
        return find_binary()
    except AlertmanagerNotInstalled as missing:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{missing} ({REQUIRE_ENV}=1)")
        pytest.skip(str(missing))


@contextlib.asynccontextmanager
async def alertmanager_starter(
    workdir: Path, *, binary: Path | None = None
) -> AsyncIterator[StartAlertmanager]:
    """A function starting Alertmanagers (each in its own directory); all stopped on exit."""
    async with contextlib.AsyncExitStack() as stack:
        count = 0

        async def start(config: Mapping[str, Any]) -> Alertmanager:
            nonlocal count
            count += 1
            return await stack.enter_async_context(
                running_alertmanager(config, workdir / f"alertmanager-{count}", binary=binary)
            )

        yield start
