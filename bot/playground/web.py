"""The playground's page and its API, on loopback: a Slack-like client of the Slack emulator.

The workspace lives in the emulator, so a refresh or a second tab shows the same messages.
What a person does on the page reaches the bot exactly as Slack would send it: slash commands,
clicks and form submissions go through :class:`SignedSlackClient`, signed, built from what the
bot really posted (a click on a button the bot never rendered is refused). Pages learn of
changes through server-sent events carrying a revision number, then re-read the state.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.playground import sample
from bot.playground.slack_emulator import EphemeralMessage, Message, SlackEmulator, ViewRecord
from bot.playground.world import CHANNELS, PEOPLE, World

STATIC = Path(__file__).parent / "static"
WORLD: web.AppKey[World] = web.AppKey("world", World)
EVENT_WAIT_S = 15.0
"""How long an event stream waits for a change before a keep-alive comment."""


def build_page_app(world: World) -> web.Application:
    app = web.Application(client_max_size=256 * 1024)
    app[WORLD] = world
    app.router.add_get("/", _index)
    app.router.add_static("/static/", STATIC)
    app.router.add_get("/api/state", _state)
    app.router.add_get("/api/events", _events)
    app.router.add_post("/api/command", _command)
    app.router.add_post("/api/action", _action)
    app.router.add_post("/api/submit", _submit)
    app.router.add_post("/api/home", _home)
    app.router.add_post("/api/close", _close)
    app.router.add_post("/api/world/workload", _workload_create)
    app.router.add_post("/api/world/alert", _alert)
    app.router.add_post("/api/world/clock", _clock)
    app.router.add_get("/api/world/objects", _objects)
    return app


async def _index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html")


def revision(world: World) -> str:
    return f"{len(world.slack.calls())}.{world.revision}"


def _names(slack: SlackEmulator) -> dict[str, str]:
    names = {p.id: p.name for p in PEOPLE}
    names[slack.bot_user_id] = "policy-bot"
    return names


def _message(m: Message) -> dict[str, Any]:
    return {
        "ts": m.ts,
        "text": m.text,
        "blocks": m.blocks,
        "attachments": m.attachments,
        "thread_ts": m.thread_ts if m.is_reply else None,
        "user": m.user,
        "edited": m.edits > 0,
    }


def _ephemeral(e: EphemeralMessage) -> dict[str, Any]:
    return {"ts": e.ts, "text": e.text, "blocks": e.blocks, "channel": e.channel, "error": e.error}


def _view(v: ViewRecord) -> dict[str, Any]:
    last = v.submissions[-1] if v.submissions else {}
    errors = last.get("errors") if last.get("response_action") == "errors" else None
    return {"id": v.id, "definition": v.definition, "errors": errors or {}, "hash": v.hash}


async def _state(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    slack = world.slack
    user = request.query.get("user", PEOPLE[0].id)
    channels = []
    for name, channel_id in CHANNELS.items():
        messages = [_message(m) for m in slack.messages(channel_id)]
        ephemeral = [_ephemeral(e) for e in slack.ephemeral(channel_id, user) if not e.deleted]
        channels.append(
            {"id": channel_id, "name": name, "messages": messages, "ephemeral": ephemeral}
        )
    direct = [
        _ephemeral(e)
        for e in slack.ephemeral(user=user)
        if not e.deleted and e.channel not in CHANNELS.values()
    ]
    dms = [_message(m) for m in slack.messages("D" + user[1:])]  # the emulator's DM ids
    home = slack.home(user)
    body = {
        "revision": revision(world),
        "user": user,
        "people": [{"id": p.id, "name": p.name, "role": p.role} for p in PEOPLE],
        "names": _names(slack),
        "channels": channels,
        "dms": dms + direct,
        "views": [_view(v) for v in slack.open_views(user)],
        "home": _view(home) if home is not None else None,
        "environments": list(world.environments),
        "workloads": [{"namespace": w.namespace, "name": w.name} for w in sample.WORKLOADS],
        "clock_offset_days": world.clock.offset.total_seconds() / 86400,
        "timings": world.timings,
        "alert_chain": world.alert_chain,
        "jira_browse": world.jira.url.rstrip("/") + "/browse/",
    }
    return web.json_response(body)


def _moved(world: World, seen: str) -> bool:
    return revision(world) != seen


async def _events(request: web.Request) -> web.StreamResponse:
    world = request.app[WORLD]
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    seen = ""
    woken = asyncio.Event()
    world.subscribe(woken.set)
    try:
        while True:
            woken.clear()
            current = revision(world)
            if current != seen:
                seen = current
                await response.write(f"data: {json.dumps({'revision': seen})}\n\n".encode())
                continue
            slack_change = asyncio.ensure_future(
                world.slack.wait_until(functools.partial(_moved, world, seen), timeout=EVENT_WAIT_S)
            )
            world_change = asyncio.ensure_future(woken.wait())
            try:
                await asyncio.wait(
                    {slack_change, world_change}, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                for task in (slack_change, world_change):
                    task.cancel()
                await asyncio.gather(slack_change, world_change, return_exceptions=True)
            if revision(world) == seen:
                await response.write(b": keep-alive\n\n")
    except ConnectionResetError:
        pass
    finally:
        world.unsubscribe(woken.set)
    return response


async def _body(request: web.Request) -> dict[str, Any]:
    data = await request.json()
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(text="a JSON object is expected")
    return data


def _person(data: dict[str, Any]) -> str:
    user = str(data.get("user", ""))
    if user not in {p.id for p in PEOPLE}:
        raise web.HTTPBadRequest(text=f"unknown user {user!r}")
    return user


async def _command(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    data = await _body(request)
    text = str(data.get("text", "")).strip()
    command, _, rest = text.partition(" ")
    if command != "/policy":
        raise web.HTTPBadRequest(text="only /policy commands reach the bot here")
    channel = str(data.get("channel", CHANNELS["general"]))
    interaction = await world.client.command(
        "/policy", rest.strip(), user=_person(data), channel=channel
    )
    world.changed()  # the acknowledgement's own answer is recorded without a request
    return web.json_response({"status": interaction.response.status})


async def _action(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    data = await _body(request)
    click: dict[str, Any] = {
        k: data[k]
        for k in ("channel", "message_ts", "ephemeral", "view_id", "value", "block_id")
        if data.get(k) not in (None, "")
    }
    if data.get("selected_option"):
        click["selected_option"] = data["selected_option"]
    try:
        interaction = await world.client.block_action(
            str(data["action_id"]), user=_person(data), **click
        )
    except (KeyError, ValueError, LookupError) as exc:
        message = f"that element is not on the page the bot sent: {exc}"
        raise web.HTTPBadRequest(text=message) from exc
    return web.json_response({"status": interaction.response.status})


async def _submit(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    data = await _body(request)
    values = data.get("values") or {}
    try:
        interaction = await world.client.view_submission(
            str(data["view_id"]), values, user=_person(data)
        )
    except (KeyError, ValueError) as exc:
        raise web.HTTPBadRequest(text=str(exc)) from exc
    world.changed()  # so is the submission's response_action (errors, update, clear)
    answer = interaction.response.json() if interaction.response.text.strip() else {}
    return web.json_response({"status": interaction.response.status, "answer": answer})


async def _home(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    data = await _body(request)
    response = await world.client.app_home_opened(_person(data))
    return web.json_response({"status": response.status})


async def _close(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    data = await _body(request)
    view_id = str(data.get("view_id", ""))
    if view_id not in {v.id for v in world.slack.open_views(_person(data))}:
        raise web.HTTPBadRequest(text="no such open view")
    await world.slack.close_by_user(view_id)
    world.changed()
    return web.json_response({"ok": True})


def _environment(world: World, data: dict[str, Any]) -> Any:
    name = str(data.get("environment", ""))
    if name not in world.environments:
        raise web.HTTPBadRequest(text=f"unknown environment {name!r}")
    return world.environments[name]


def _workload(data: dict[str, Any]) -> sample.Workload:
    namespace = str(data.get("namespace") or sample.VIOLATOR.namespace)
    name = str(data.get("name") or sample.VIOLATOR.name)
    image = str(data.get("image") or sample.VIOLATOR.image)
    return sample.Workload(namespace, name, labelled=bool(data.get("labelled")), image=image)


async def _workload_create(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    data = await _body(request)
    environment = _environment(world, data)
    code, message = await asyncio.to_thread(environment.create, _workload(data).manifest())
    world.changed()
    return web.json_response({"code": code, "message": message, "admitted": code < 300})


async def _alert(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    data = await _body(request)
    environment = _environment(world, data)
    await world.alert(environment.name, _workload(data), firing=data.get("status") != "resolved")
    return web.json_response({"ok": True})


async def _clock(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    data = await _body(request)
    days = float(data.get("days", 1))
    if not 0 < days <= 365:
        raise web.HTTPBadRequest(text="days must be between 0 and 365")
    await world.advance_clock(days)
    return web.json_response({"offset_days": world.clock.offset.total_seconds() / 86400})


async def _objects(request: web.Request) -> web.Response:
    world = request.app[WORLD]
    environment = _environment(world, dict(request.query))
    return web.json_response({"text": await asyncio.to_thread(environment.objects)})


@contextlib.asynccontextmanager
async def serving_page(world: World, port: int) -> AsyncIterator[str]:
    runner = web.AppRunner(build_page_app(world), handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, shutdown_timeout=1)
    await site.start()
    bound = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{bound}/"
    finally:
        await runner.cleanup()
