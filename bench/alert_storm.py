"""Alert storm: 1,000 alerts in 50 groups through real Alertmanager into a rate-limited Slack.

Two shapes (see `bench.storm_plan`): *burst*, every alert in one push; *spread*, arrivals over
`STORM_SPREAD_S` seconds of real time (300 by default, no compressed clock) with a quarter of
the alerts resolving and half of those firing again. Alertmanager groups by policy with its
default `group_wait` (30s) and a `group_interval` of 1m (its default is 5m; 1m is a common
production choice for alerts people act on).

Slack is the loopback emulator with Slack's published limits on: about one message per second
per channel with bursts of three (chat.postMessage and chat.update), and the per-method tiers
(chat.update Tier 3, 50 a minute per workspace; Tier 1–4 as Slack's docs list). The relay
runs with the bot's default pacing (`alertmanager.per_channel_rate`/`burst` unset): it is told
nothing about the tiers.

Each shape runs three receivers, the relay and Alertmanager's own Slack receiver in two
processes at the same time (each with its own Alertmanager and emulator), and the floor:

- policy-bot: Alertmanager's webhook -> the relay (its real handler, outbox on SQLite, sender)
  -> chat.postMessage / chat.update;
- the floor: a bare aiohttp handler that reads the body and answers 200, fed by the same
  Alertmanager (a second webhook of the same receiver) in the same process and event loop as
  the relay, so the relay's answer times read as a ratio to what the machine allows;
- the durable floor: the same handler, but it appends the body to a file and fsyncs it (in a
  thread) before answering: what any receiver that answers only once a notification is safe
  on disk (SPEC 2.2) pays at least, on this machine's disk;
- native: Alertmanager's `slack_configs` -> an incoming-webhook endpoint in front of the
  emulator that posts with chat.postMessage (same channel limit, same 429s; Alertmanager
  retries a 429 itself).

Lag: from each notification Alertmanager sends for a group (its arrival at the receiver) to
the first message for the group Slack accepted at or after it. Lost: alerts whose final state
(firing or not) Slack does not show once the storm settled.

Not a test: it prints a table and never fails on a slow machine.
`python -m bench.alert_storm [burst] [spread]` prints the detailed comparison.
"""

from __future__ import annotations

import asyncio
import gc
import json
import multiprocessing
import os
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bench import profiling, storm_plan, versions
from bench.figures import Target, ms, percentile
from bench.storm_plan import ALERTS, PER_GROUP, Event
from bot.clock import SYSTEM_CLOCK
from bot.playground.alertmanager import find_binary, rfc3339, running_alertmanager, slack_receiver
from bot.playground.slack_emulator import RateLimits, SlackEmulator
from bot.settings import parse_settings
from bot.slack_api import SlackApi
from bot.store import AuditTrail, open_database
from handlers.alert_relay import AlertRelay
from tests.emulators.fixtures import APP_TOKEN, BOT_TOKEN
from tests.harness import slack_env

CHANNEL = "C0STORM"
TIMERS = {"group_wait": "30s", "group_interval": "1m", "repeat_interval": "4h"}
SPREAD_S = float(os.environ.get("STORM_SPREAD_S", "300"))
#: After the last event: one group_interval, then the paced sends, with a wide margin.
SETTLE_S = 180.0
WEBHOOK_TOKEN = "storm-token"


@dataclass
class Outcome:
    side: str
    shape: str
    answers: list[float]
    floor: list[float]
    durable_floor: list[float]
    slack_calls: int
    rate_limited: dict[str, int]
    lags: list[float]
    unshown: int
    lost: int
    final_after_s: float | None
    peak_rss_mib: float
    sends: int
    profile: str = ""
    notes: list[str] = field(default_factory=list)


def storm_alerts(
    events: Sequence[Event], start: datetime, now: datetime, fired: dict[int, float] | None = None
) -> list[dict[str, Any]]:
    """Alertmanager's API form of `events`: a fire starts anew; a resolve keeps the alert's
    last start (from `fired`, which this updates) and ends it `now`."""
    fired = {} if fired is None else fired
    out = []
    for event in events:
        if not event.resolve:
            fired[event.index] = event.at
        g, r = divmod(event.index, PER_GROUP)
        alert: dict[str, Any] = {
            "labels": {
                "alertname": "KyvernoPolicyViolation",
                "policy_name": f"policy-{g:02d}",
                "rule_name": "check",
                "resource_kind": "Deployment",
                "resource_namespace": f"team-{r % 4}",
                "resource_name": f"app-{r:02d}",
                "severity": "warning",
                "cluster": "bench",
            },
            "annotations": {"description": f"policy-{g:02d} fails on team-{r % 4}/app-{r:02d}"},
            "startsAt": rfc3339(start + timedelta(seconds=fired.get(event.index, event.at))),
        }
        if event.resolve:
            alert["endsAt"] = rfc3339(now)
        out.append(alert)
    return out


async def drive(am_url: str, events: Sequence[Event]) -> float:
    """Push the events on their real-time schedule, one POST per second that has any; the
    time the last push was answered (monotonic)."""
    timeout = aiohttp.ClientTimeout(total=30)
    start_wall = datetime.now(UTC)
    start = time.monotonic()
    fired: dict[int, float] = {}
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for at, batch in storm_plan.ticks(events):
            delay = start + at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            # A resolve ends after its alert's start even when both fall in this tick.
            latest = max(e.at for e in batch) + 0.001
            now = max(datetime.now(UTC), start_wall + timedelta(seconds=latest))
            body = json.dumps(storm_alerts(batch, start_wall, now, fired)).encode()
            async with session.post(
                f"{am_url}/api/v2/alerts", data=body, headers={"Content-Type": "application/json"}
            ) as response:
                response.raise_for_status()
    return time.monotonic()


def _timed(answers: list[float], arrivals: list[tuple[float, bytes]]) -> Any:
    @web.middleware
    async def timing(request: web.Request, handler: Any) -> web.StreamResponse:
        arrived = time.monotonic()
        started = time.perf_counter()
        response: web.StreamResponse = await handler(request)
        answers.append(time.perf_counter() - started)
        if request.path == "/alertmanager" and response.status == 200:
            arrivals.append((arrived, await request.read()))  # cached by a handler's read()
        return response

    return timing


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


async def floor_server(
    answers: list[float], arrivals: list[tuple[float, bytes]]
) -> tuple[web.AppRunner, str]:
    """The floor: read the body, answer 200, nothing else. It hears every notification the
    relay hears, at the same moment (one receiver, two webhooks), so its arrivals are the
    times Alertmanager sent them; the relay's handler consumes its body as a stream."""

    async def bare(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="ok")

    app = web.Application(middlewares=[_timed(answers, arrivals)])
    app.router.add_post("/alertmanager", bare)
    return await serve(app)


async def durable_floor_server(answers: list[float], journal: Path) -> tuple[web.AppRunner, str]:
    """The durable floor: read the body, append it to `journal`, fsync, answer 200."""

    def append(body: bytes) -> None:
        with journal.open("ab") as out:
            out.write(body)
            out.flush()
            os.fsync(out.fileno())

    async def durable(request: web.Request) -> web.Response:
        await asyncio.to_thread(append, await request.read())
        return web.Response(text="ok")

    app = web.Application(middlewares=[_timed(answers, [])])
    app.router.add_post("/alertmanager", durable)
    return await serve(app)


def _group_of_webhook(body: bytes) -> str | None:
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    policy = (payload.get("groupLabels") or {}).get("policy_name")
    return str(policy) if policy else None


def _accepted_parents(emulator: SlackEmulator) -> list[tuple[float, str]]:
    shown = []
    for call in emulator.calls():
        if call.method not in ("chat.postMessage", "chat.update") or not call.ok:
            continue
        if call.method == "chat.postMessage" and call.params.get("thread_ts"):
            continue
        text = str(call.params.get("text") or "")
        attachments = call.params.get("attachments") or []
        if isinstance(attachments, str):
            attachments = json.loads(attachments)
        titles = " ".join(str(a.get("title", "")) for a in attachments if isinstance(a, dict))
        group = storm_plan.group_in(text) or storm_plan.group_in(titles)
        if group is not None:
            shown.append((call.at, group))
    return shown


def _ratelimited(emulator: SlackEmulator) -> dict[str, int]:
    return {
        method: count
        for method in ("chat.postMessage", "chat.update")
        if (count := emulator.ratelimited_count(method))
    }


def _peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _settle(
    shown: Callable[[], dict[str, int]], expected: Mapping[str, int], deadline_s: float
) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < deadline_s:
        if storm_plan.mismatch(expected, shown()) == 0:
            return time.monotonic()
        await asyncio.sleep(0.25)
    return None


async def relay_side(
    shape: str, events: Sequence[Event], workdir: Path, *, profile: bool = False
) -> Outcome:
    emulator = SlackEmulator(
        bot_token=BOT_TOKEN, app_token=APP_TOKEN, rate_limits=RateLimits(tiers=True)
    )
    await emulator.start()
    settings = parse_settings(
        {
            "slack": {"mode": "http", "channels": {"alerts": CHANNEL}, "timeout_s": 5},
            "environments": [{"name": "bench"}],
            # The bot's default pacing: per_channel_rate and burst are left unset.
            "alertmanager": {"routes": [], "timeout_s": 5},
        },
        slack_env(emulator, ALERTMANAGER_WEBHOOK_TOKEN=WEBHOOK_TOKEN),
    )
    database = await open_database(f"sqlite:///{workdir}/relay.db", timeout_s=2.0)
    await database.migrate(clock=SYSTEM_CLOCK)
    slack = SlackApi.open(token=BOT_TOKEN, base_url=emulator.base_url, timeout_s=5.0)
    relay = AlertRelay(
        settings=settings,
        database=database,
        slack=slack,
        audit=AuditTrail(database, clock=SYSTEM_CLOCK),
        clock=SYSTEM_CLOCK,
    )
    answers: list[float] = []
    floor: list[float] = []
    durable_floor: list[float] = []
    arrivals: list[tuple[float, bytes]] = []
    app = web.Application(middlewares=[_timed(answers, [])])
    app.router.add_post("/alertmanager", relay.webhook_handler)
    runner, url = await serve(app)
    floor_runner, floor_url = await floor_server(floor, arrivals)
    durable_runner, durable_url = await durable_floor_server(durable_floor, workdir / "journal")
    expected = storm_plan.expected_firing(events)

    def shown() -> dict[str, int]:
        counts: dict[str, int] = {}
        for message in emulator.parents(CHANNEL):
            found = storm_plan.relay_shown(message.text)
            if found is not None:
                counts[found[0]] = found[1]
        return counts

    config = _with_floor(
        _webhook_config(f"{url}/alertmanager"),
        f"{floor_url}/alertmanager",
        f"{durable_url}/alertmanager",
    )
    final: float | None = None
    try:
        await relay.start()
        async with running_alertmanager(
            config, workdir / "am-relay", binary=find_binary(), log_level="warn"
        ) as am:
            gc.collect()
            gc.freeze()  # as the bot's start-up does once it serves
            started = time.monotonic()
            with profiling.profiled(f"storm ({shape}), relay process", enabled=profile):
                last = await drive(am.url, events)
                final = await _settle(shown, expected, last - started + SETTLE_S)
        frames = next((p for t, p in profiling.collected() if "storm" in t), "")
    finally:
        await relay.stop(drain_timeout_s=5.0)
        await runner.cleanup()
        await floor_runner.cleanup()
        await durable_runner.cleanup()
        await slack.close()
        await database.close()
        await emulator.stop()
    sends = [(at, g) for at, body in arrivals if (g := _group_of_webhook(body)) is not None]
    accepted = _accepted_parents(emulator)
    return Outcome(
        side="policy-bot relay",
        shape=shape,
        answers=answers,
        floor=floor,
        durable_floor=durable_floor,
        slack_calls=len(emulator.calls("chat.postMessage")) + len(emulator.calls("chat.update")),
        rate_limited=_ratelimited(emulator),
        lags=storm_plan.lags(sends, accepted),
        unshown=storm_plan.unshown(sends, accepted),
        lost=storm_plan.mismatch(expected, shown()),
        final_after_s=None if final is None else final - started,
        peak_rss_mib=_peak_rss_mib(),
        sends=len(sends),
        profile=frames,
    )


def _webhook_config(url: str) -> dict[str, Any]:
    from bot.playground.alertmanager import webhook_receiver

    return webhook_receiver(url, token=WEBHOOK_TOKEN, **TIMERS)


def _with_floor(config: dict[str, Any], *floor_urls: str) -> dict[str, Any]:
    """The same receiver also posts every notification to the floors (Alertmanager fans a
    receiver's integrations out in parallel)."""
    receiver = config["receivers"][0]
    for floor_url in floor_urls:
        receiver["webhook_configs"].append({"url": floor_url, "send_resolved": True})
    config.setdefault("global", {})["resolve_timeout"] = "1h"
    return config


async def native_side(
    shape: str, events: Sequence[Event], workdir: Path, *, profile: bool = False
) -> Outcome:
    emulator = SlackEmulator(
        bot_token=BOT_TOKEN, app_token=APP_TOKEN, rate_limits=RateLimits(tiers=True)
    )
    answers: list[float] = []
    sends: list[tuple[float, str]] = []
    pending: set[str] = set()
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))

    async def incoming_webhook(request: web.Request) -> web.Response:
        """Slack's incoming webhook: post the body to the channel, answer `ok` or 429."""
        arrived = time.monotonic()
        started = time.perf_counter()
        body = await request.json()
        attachments = body.get("attachments") or []
        title = attachments[0].get("title", "") if attachments else ""
        group = storm_plan.group_in(title)
        if group is not None and group not in pending:
            # Alertmanager retries a 429 with the same notification: the first attempt is
            # the send; the retries are its delivery.
            pending.add(group)
            sends.append((arrived, group))
        message = {
            "channel": CHANNEL,
            "text": body.get("text") or (attachments[0].get("fallback", "") if attachments else ""),
            "attachments": attachments,
        }
        async with session.post(
            f"{emulator.base_url}chat.postMessage",
            json=message,
            headers={"Authorization": f"Bearer {BOT_TOKEN}"},
        ) as posted:
            answer = await posted.json()
            retry_after = posted.headers.get("Retry-After")
        if posted.status == 429:
            response = web.Response(
                status=429, text="rate_limited", headers={"Retry-After": retry_after or "1"}
            )
        elif answer.get("ok"):
            pending.discard(group or "")
            response = web.Response(text="ok")
        else:
            response = web.Response(status=400, text=str(answer.get("error")))
        answers.append(time.perf_counter() - started)
        return response

    emulator.app.router.add_post("/services/{hook:.*}", incoming_webhook)
    await emulator.start()
    expected = storm_plan.expected_firing(events)

    def shown() -> dict[str, int]:
        counts: dict[str, int] = {}
        for message in emulator.parents(CHANNEL):  # in order: the newest per group wins
            for attachment in message.attachments:
                found = storm_plan.native_shown(str(attachment.get("title", "")))
                if found is not None:
                    counts[found[0]] = found[1]
        return counts

    config = slack_receiver(f"{emulator.url}/services/T0/B0/X", channel="#storm", **TIMERS)
    config.setdefault("global", {})["resolve_timeout"] = "1h"
    final: float | None = None
    try:
        async with running_alertmanager(
            config, workdir / "am-native", binary=find_binary(), log_level="warn"
        ) as am:
            gc.collect()
            gc.freeze()
            started = time.monotonic()
            last = await drive(am.url, events)
            final = await _settle(shown, expected, last - started + SETTLE_S)
    finally:
        await session.close()
        await emulator.stop()
    accepted = _accepted_parents(emulator)
    return Outcome(
        side="Alertmanager slack_configs",
        shape=shape,
        answers=answers,
        floor=[],
        durable_floor=[],
        slack_calls=len(emulator.calls("chat.postMessage")),
        rate_limited=_ratelimited(emulator),
        lags=storm_plan.lags(sends, accepted),
        unshown=storm_plan.unshown(sends, accepted),
        lost=storm_plan.mismatch(expected, shown()),
        final_after_s=None if final is None else final - started,
        peak_rss_mib=_peak_rss_mib(),
        sends=len(sends),
    )


SIDES: dict[str, Callable[..., Coroutine[Any, Any, Outcome]]] = {
    "relay": relay_side,
    "native": native_side,
}


def events_of(shape: str) -> list[Event]:
    return storm_plan.burst() if shape == "burst" else storm_plan.spread(SPREAD_S)


def _side_process(side: str, shape: str, workdir: str, out: Any, profile: bool) -> None:
    try:
        out.put(asyncio.run(SIDES[side](shape, events_of(shape), Path(workdir), profile=profile)))
    except BaseException as exc:  # report, so the parent does not wait for nothing
        out.put(f"{side} {shape} failed: {exc!r}")
        raise


def run_shape(
    shape: str, sides: Sequence[str] = ("relay", "native"), *, profile: bool = False
) -> list[Outcome]:
    """The relay and the native receiver at the same time, each in a process of its own."""
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix=f"alert-storm-{shape}-") as tmp:
        queues = {side: context.Queue() for side in sides}
        processes = {
            side: context.Process(
                target=_side_process,
                args=(side, shape, str(Path(tmp) / side), queues[side], profile),
            )
            for side in sides
        }
        for side, process in processes.items():
            (Path(tmp) / side).mkdir()
            process.start()
        outcomes = []
        for side, process in processes.items():
            got = queues[side].get(timeout=SPREAD_S + 2 * SETTLE_S + 300)
            process.join(60)
            if isinstance(got, str):
                raise RuntimeError(got)
            outcomes.append(got)
    return outcomes


def _final(outcome: Outcome) -> str:
    if outcome.final_after_s is None:
        return "not settled"
    return f"{outcome.final_after_s:.1f} s"


def _limited(outcome: Outcome) -> str:
    total = sum(outcome.rate_limited.values())
    detail = ", ".join(f"{m} {n}" for m, n in outcome.rate_limited.items())
    return f"{total}" + (f" ({detail})" if detail else "")


def detail(outcomes: Sequence[Outcome]) -> str:
    from bench.figures import table

    relay = next(o for o in outcomes if o.floor)
    rows = [
        ("webhook answer p50", *(ms(percentile(o.answers, 0.5)) for o in outcomes)),
        ("webhook answer p99", *(ms(percentile(o.answers, 0.99)) for o in outcomes)),
        (
            "bare aiohttp floor p50 / p99",
            f"{ms(percentile(relay.floor, 0.5))} / {ms(percentile(relay.floor, 0.99))}",
            "—",
        ),
        (
            "durable floor (body fsync'd) p50 / p99",
            f"{ms(percentile(relay.durable_floor, 0.5))} / "
            f"{ms(percentile(relay.durable_floor, 0.99))}",
            "—",
        ),
        ("notifications (sends) from Alertmanager", *(str(o.sends) for o in outcomes)),
        ("Slack calls (postMessage + update)", *(str(o.slack_calls) for o in outcomes)),
        ("429s", *(_limited(o) for o in outcomes)),
        ("lag send -> Slack shows it, p99", *(ms(percentile(o.lags, 0.99), 0) for o in outcomes)),
        (
            "lag send -> Slack shows it, max",
            *(ms(max(o.lags, default=float("nan")), 0) for o in outcomes),
        ),
        ("sends never shown", *(str(o.unshown) for o in outcomes)),
        ("alerts lost (final state not shown)", *(str(o.lost) for o in outcomes)),
        ("settled after (from the first push)", *(_final(o) for o in outcomes)),
        ("peak RSS of the receiving process", *(f"{o.peak_rss_mib:.0f} MiB" for o in outcomes)),
    ]
    shape = outcomes[0].shape
    return f"alert storm, {shape}:\n" + table(("", *(o.side for o in outcomes)), rows)


def describe(shape: str) -> str:
    if shape == "burst":
        return f"burst: {ALERTS:,} alerts in one push"
    events = events_of(shape)
    resolves = sum(e.resolve for e in events)
    refires = len(events) - resolves - ALERTS
    return (
        f"spread: {ALERTS:,} alerts over {SPREAD_S:.0f} s real time, {resolves} resolves, "
        f"{refires} re-fires"
    )


#: Filled by `main()` for `python -m bench`.
TARGETS: list[Target] = []
VERSIONS: list[str] = []
PROFILES: list[tuple[str, str]] = []


def rows_for(outcomes: Sequence[Outcome]) -> list[tuple[str, str, str, str]]:
    relay, native = outcomes
    shape = describe(relay.shape)
    floor_p99 = percentile(relay.floor, 0.99)
    TARGETS.append(
        Target(
            f"storm {relay.shape}: relay webhook p99 / bare aiohttp p99",
            percentile(relay.answers, 0.99),
            floor_p99,
            2.0,
        )
    )
    TARGETS.append(
        Target(
            f"storm {relay.shape}: relay webhook p99 / SPEC 4.1's 50 ms",
            percentile(relay.answers, 0.99),
            0.050,
            1.0,
            strict=True,
        )
    )
    return [
        (
            f"storm {shape}: webhook answer p99",
            f"{ms(percentile(relay.answers, 0.99))} (p50 {ms(percentile(relay.answers, 0.5))})",
            f"bare aiohttp 200: p99 {ms(floor_p99)} (p50 {ms(percentile(relay.floor, 0.5))})",
            "≤ 2× floor",
        ),
        (
            f"storm {relay.shape}: webhook answer p99 against the durable floor",
            f"{ms(percentile(relay.answers, 0.99))}",
            f"body appended and fsync'd, then 200: p99 "
            f"{ms(percentile(relay.durable_floor, 0.99))} "
            f"(p50 {ms(percentile(relay.durable_floor, 0.5))})",
            "SPEC 4.1: p99 < 50 ms",
        ),
        (
            f"storm {relay.shape}: Slack calls · 429s",
            f"{relay.slack_calls} · {_limited(relay)}",
            f"slack_configs: {native.slack_calls} · {_limited(native)}",
            "429s → 0",
        ),
        (
            f"storm {relay.shape}: lag from Alertmanager's send to Slack, p99 · max",
            f"{ms(percentile(relay.lags, 0.99), 0)} · {ms(max(relay.lags, default=float('nan')), 0)}",
            f"slack_configs: {ms(percentile(native.lags, 0.99), 0)} · "
            f"{ms(max(native.lags, default=float('nan')), 0)}",
            "—",
        ),
        (
            f"storm {relay.shape}: alerts lost · sends never shown · settled after",
            f"{relay.lost} · {relay.unshown} · {_final(relay)}",
            f"slack_configs: {native.lost} · {native.unshown} · {_final(native)}",
            "lost = 0",
        ),
        (
            f"storm {relay.shape}: peak RSS of the receiving process",
            f"{relay.peak_rss_mib:.0f} MiB (relay + emulator + floor + load in one process)",
            f"{native.peak_rss_mib:.0f} MiB (emulator + webhook shim; Alertmanager apart)",
            "—",
        ),
    ]


def main(shapes: Sequence[str] = ("burst", "spread")) -> list[tuple[str, str, str, str]]:
    """Rows for `python -m bench`: (scenario, policy-bot, peer, bar)."""
    rows: list[tuple[str, str, str, str]] = []
    for shape in shapes:
        print(f"alert storm {describe(shape)} …", file=sys.stderr, flush=True)
        outcomes = run_shape(shape)
        print(detail(outcomes), file=sys.stderr, flush=True)
        rows += rows_for(outcomes)
    if profiling.ENABLED:
        # A pass of its own: cProfile slows the relay several times over, so the measured
        # passes above run without it.
        print("alert storm burst, relay alone under cProfile …", file=sys.stderr, flush=True)
        (profiled,) = run_shape("burst", ("relay",), profile=True)
        PROFILES.append(("storm (burst), relay process, a separate pass", profiled.profile))
    VERSIONS.append(versions.read("alertmanager", find_binary()))
    VERSIONS.append(
        f"storm: Alertmanager group_wait {TIMERS['group_wait']}, group_interval "
        f"{TIMERS['group_interval']}; Slack emulator 1 msg/s per channel, bursts of 3, "
        "tiers on; relay on the bot's default pacing (1/s, burst 3), tiers unknown to it"
    )
    return rows


if __name__ == "__main__":
    for row in main(sys.argv[1:] or ("burst", "spread")):
        print(" | ".join(row))
    for target in TARGETS:
        print(target.line())
    for title, text in PROFILES:
        print(f"\n{title}:\n{text}")
    print("\n".join(VERSIONS))
