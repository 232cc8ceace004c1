"""A real Prometheus Alertmanager (the Debian package's 0.25 binary): the playground's, the tests'.

Alertmanager's grouping, timers, retries and HA behaviour are what the relay must cope with,
and no fake reproduces them faithfully, so tests run the real binary: one process per test on
a free loopback port, gossip off (`--cluster.listen-address=` empty), a fresh `--storage.path`
(the notification log and silences persist there), and a config written by the test. Two
such processes fed the same alerts behave like an HA pair whose gossip is partitioned: both
notify, which is the duplicate case the relay has to absorb.

The playground runs one such process routing to its bot's webhook.

Binary: `POLICY_BOT_ALERTMANAGER_BIN`, else `prometheus-alertmanager` or `alertmanager` on
PATH. Missing, the tests are skipped with the reason, unless POLICY_BOT_REQUIRE_ALERTMANAGER=1
(CI), where they fail instead (``tests/servers/alertmanager.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypedDict, Unpack

import aiohttp

from bot.playground.child import ServerProcess, serving, write_yaml
from bot.playground.child import find_binary as find

BINARY_ENV = "POLICY_BOT_ALERTMANAGER_BIN"
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 5.0


def find_binary() -> Path:
    return find(
        BINARY_ENV,
        ("prometheus-alertmanager", "alertmanager"),
        "apt-get install prometheus-alertmanager",
    )


class Grouping(TypedDict, total=False):
    """How Alertmanager's route groups and times notifications (its defaults in `_config`)."""

    group_by: Sequence[str]
    group_wait: str
    group_interval: str
    repeat_interval: str


def _config(receiver: dict[str, Any], grouping: Grouping, **global_: str) -> dict[str, Any]:
    """A config sending every alert to the one `receiver`."""
    return {
        "global": {"resolve_timeout": "5m", **global_},
        "route": {
            "receiver": receiver["name"],
            "group_by": list(grouping.get("group_by", ("alertname", "policy_name"))),
            "group_wait": grouping.get("group_wait", "1s"),
            "group_interval": grouping.get("group_interval", "2s"),
            "repeat_interval": grouping.get("repeat_interval", "1h"),
        },
        "receivers": [receiver],
    }


def webhook_receiver(url: str, *, token: str, **grouping: Unpack[Grouping]) -> dict[str, Any]:
    """A config sending every alert to `url` with a bearer token."""
    webhook = {
        "url": url,
        "send_resolved": True,
        "max_alerts": 0,
        "http_config": {"authorization": {"type": "Bearer", "credentials": token}},
    }
    return _config({"name": "policy-bot", "webhook_configs": [webhook]}, grouping)


def slack_receiver(api_url: str, *, channel: str, **grouping: Unpack[Grouping]) -> dict[str, Any]:
    """A config using Alertmanager's own Slack notifier (default templates, resolved too)."""
    slack = {"channel": channel, "send_resolved": True}
    return _config(
        {"name": "slack-native", "slack_configs": [slack]}, grouping, slack_api_url=api_url
    )


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass
class Alertmanager(ServerProcess):
    """One running Alertmanager; `push` is what Prometheus (or Policy Reporter) would do."""

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

    async def expire(self, silence_id: str) -> None:
        """`DELETE /api/v2/silence/{id}`, as someone on Alertmanager's own page would."""
        await self._request("DELETE", f"/api/v2/silence/{silence_id}")


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
    await asyncio.to_thread(write_yaml, config_path, config)

    def args(url: str, port: int) -> list[str]:
        return [
            f"--config.file={config_path}",
            f"--storage.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--web.external-url={url}",
            "--cluster.listen-address=",
            f"--log.level={log_level}",
        ]

    async with serving(
        "Alertmanager",
        Alertmanager,
        binary,
        args,
        workdir / "alertmanager.log",
        start_timeout_s=START_TIMEOUT_S,
        stop_timeout_s=STOP_TIMEOUT_S,
    ) as server:
        yield server


StartAlertmanager = Callable[[Mapping[str, Any]], Awaitable[Alertmanager]]


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
