"""`check-config`: reach every dependency the config names and say what answered."""

from __future__ import annotations

import asyncio

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import BotError
from bot.kube.gateway import ClusterGateway
from bot.settings import Settings
from bot.store.database import open_database
from bot.store.errors import StoreError

TIMEOUT_S = 10.0


async def check_dependencies(settings: Settings) -> list[tuple[str, str | None]]:
    """(dependency, problem or None) for the store, Slack, every cluster and Alertmanager."""
    checks = [("store", _store(settings)), ("slack", _slack(settings))]
    checks += [
        (f"channel {channel} ({', '.join(uses)})", _channel(settings, channel))
        for channel, uses in configured_channels(settings).items()
    ]
    checks += [
        (f"environment {e.name}", _cluster(ClusterGateway(e))) for e in settings.environments
    ]
    if settings.jira is not None:
        checks.append(("jira", _jira(settings)))
    if settings.alertmanager.url:
        checks.append(
            ("alertmanager", _http_ok(settings.alertmanager.url.rstrip("/") + "/-/healthy"))
        )
    results = await asyncio.gather(
        *(asyncio.wait_for(c, TIMEOUT_S) for _, c in checks), return_exceptions=True
    )
    return [
        (
            name,
            None
            if r is None
            else (f"no answer within {TIMEOUT_S:.0f} s" if isinstance(r, TimeoutError) else str(r)),
        )
        for (name, _), r in zip(checks, results, strict=True)
    ]


async def _store(settings: Settings) -> None:
    try:
        database = await open_database(settings.store.url)
    except StoreError as err:
        raise RuntimeError(f"cannot open {settings.store.url.split('@')[-1]}: {err}") from None
    try:
        await database.ping()
    finally:
        await database.close()


def _slack_client(settings: Settings) -> AsyncWebClient:
    return AsyncWebClient(
        token=settings.slack.bot_token.get_secret_value(),
        base_url=settings.slack.api_url,
        timeout=int(TIMEOUT_S),
    )


async def _slack(settings: Settings) -> None:
    client = _slack_client(settings)
    try:
        await client.auth_test()
    except SlackApiError as err:
        raise RuntimeError(f"auth.test failed: {err.response.get('error')}") from None
    except aiohttp.ClientError as err:
        raise RuntimeError(f"cannot reach {settings.slack.api_url}: {err}") from None


def configured_channels(settings: Settings) -> dict[str, list[str]]:
    """Every channel the config names, with what the bot posts there."""
    uses: dict[str, list[str]] = {}
    named = settings.slack.channels
    for use, channel in (
        ("alerts", named.alerts),
        ("approvals", named.approvals),
        ("reports", named.reports),
        ("digest", settings.digest.channel if settings.digest else None),
    ):
        if channel:
            uses.setdefault(channel, []).append(use)
    for number, route in enumerate(settings.alertmanager.routes, start=1):
        for channel in route.targets:
            if f"alert route {number}" not in uses.setdefault(channel, []):
                uses[channel].append(f"alert route {number}")
    return uses


async def _channel(settings: Settings, channel: str) -> None:
    """The bot can post in `channel`: it exists for the bot, is not archived, has the bot in."""
    try:
        answer = await _slack_client(settings).conversations_info(channel=channel)
        info = answer.get("channel") or {}
    except SlackApiError as err:
        error = err.response.get("error")
        if error == "channel_not_found":
            raise RuntimeError(
                "Slack does not show this channel to the bot: a wrong id, or a private channel "
                "the bot was not invited to (run `/invite @policy-bot` there)"
            ) from None
        raise RuntimeError(f"conversations.info failed: {error}") from None
    except aiohttp.ClientError as err:
        raise RuntimeError(f"cannot reach {settings.slack.api_url}: {err}") from None
    name = f"#{info.get('name') or channel}"
    if info.get("is_archived"):
        raise RuntimeError(f"{name} is archived: nothing can be posted there")
    if not info.get("is_member"):
        raise RuntimeError(
            f"the bot is not a member of {name}: run `/invite @policy-bot` there (a public "
            "channel takes its posts through chat:write.public, but the bot cannot read it "
            "back to find a post whose answer Slack lost)"
        )


async def _jira(settings: Settings) -> None:
    from bot.jira.adapter import JiraTickets

    assert settings.jira is not None
    tickets = JiraTickets(settings.jira, attempts=1)
    try:
        await tickets.check()
    except BotError as err:
        raise RuntimeError(err.user_message) from None
    finally:
        await tickets.close()


async def _cluster(gateway: ClusterGateway) -> None:
    try:
        await gateway.ping()
        await gateway.kinds()
    except BotError as err:
        raise RuntimeError(err.user_message) from None
    finally:
        await gateway.close()


async def _http_ok(url: str) -> None:
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as response:
            if response.status != 200:
                raise RuntimeError(f"{url} answered HTTP {response.status}")
    except aiohttp.ClientError as err:
        raise RuntimeError(f"cannot reach {url}: {err}") from None
