"""Alert storm: 1,000 alerts in 50 groups through real Alertmanager into a rate-limited Slack.

Run twice with identical Alertmanager timers and the same Slack emulator limits (about one
message per second per channel, bursts of three, 429 + Retry-After beyond):

- policy-bot: Alertmanager's webhook -> the relay (its real handler, outbox on SQLite, sender)
  -> chat.postMessage / chat.update;
- native: Alertmanager's own `slack_configs` receiver -> an incoming-webhook endpoint in front
  of the emulator. The emulator has no incoming webhooks, so this module mounts one on it that
  posts the body with chat.postMessage: same channel limit, same 429s, as Slack applies the
  channel pacing to incoming webhooks too.

Not a test: it prints a table and never fails on a slow machine.
`python -m bench.alert_storm` prints the detailed comparison; `make bench` includes it.
"""

from __future__ import annotations

import asyncio
import gc
import json
import re
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bot.playground.slack_emulator import SlackEmulator
from tests.emulators.fixtures import APP_TOKEN, BOT_TOKEN
from tests.harness import relay_settings, running_relay
from tests.servers.alertmanager import (
    find_binary,
    rfc3339,
    running_alertmanager,
    slack_receiver,
    webhook_receiver,
)

GROUPS = 50
PER_GROUP = 20
ALERTS = GROUPS * PER_GROUP
CHANNEL = "C0STORM"
TIMERS = {"group_wait": "1s", "group_interval": "5s", "repeat_interval": "1h"}
DEADLINE_S = 150.0

_RELAY_TITLE = re.compile(r"· (policy-\d+) · (\d+) resources?")
_NATIVE_TITLE = re.compile(r"\[FIRING:(\d+)\] KyvernoPolicyViolation (policy-\d+)")


@dataclass
class Outcome:
    name: str
    answers: list[float]
    slack_calls: int
    messages: int
    parents: int
    represented: int
    rate_limited: int
    final_after_s: float | None

    @property
    def lost(self) -> int:
        return ALERTS - self.represented

    def percentile(self, q: float) -> float:
        if not self.answers:
            return float("nan")
        ordered = sorted(self.answers)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def storm(now: datetime) -> list[dict[str, Any]]:
    """50 policies failing on 20 resources each, as Prometheus would push them."""
    return [
        {
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
            "startsAt": rfc3339(now),
        }
        for g in range(GROUPS)
        for r in range(PER_GROUP)
    ]


async def push(am_url: str, alerts: Sequence[dict[str, Any]]) -> None:
    """One `POST /api/v2/alerts` with the whole storm, encoded before the clock starts.

    The load generator shares the process with the relay; keeping its work out of the storm
    window keeps it out of the relay's figures.
    """
    body = json.dumps(list(alerts)).encode()
    timeout = aiohttp.ClientTimeout(total=30)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.post(
            f"{am_url}/api/v2/alerts", data=body, headers={"Content-Type": "application/json"}
        ) as response,
    ):
        response.raise_for_status()


def represented(texts: Sequence[str], pattern: re.Pattern[str], *, native: bool) -> int:
    """Alerts Slack accounts for: per group, the largest count any message of it shows."""
    best: dict[str, int] = {}
    for text in texts:
        found = pattern.search(text)
        if found is None:
            continue
        count, group = (found[1], found[2]) if native else (found[2], found[1])
        best[group] = max(best.get(group, 0), int(count))
    return sum(best.values())


async def wait_final(
    emulator: SlackEmulator, count: Callable[[], int], started: float
) -> float | None:
    try:
        await emulator.wait_until(lambda: count() >= ALERTS, timeout=DEADLINE_S)
    except TimeoutError:
        return None
    return time.monotonic() - started


async def run_relay(binary: Path, workdir: Path) -> Outcome:
    emulator = SlackEmulator(bot_token=BOT_TOKEN, app_token=APP_TOKEN)
    await emulator.start()
    try:
        settings = relay_settings(emulator, default_channel=CHANNEL)
        url = f"sqlite:///{workdir}/relay.db"
        async with running_relay(emulator, url, settings=settings, poll_interval_s=2.0) as relay:
            config = webhook_receiver(relay.webhook_url, token=_token(settings), **TIMERS)
            async with running_alertmanager(
                config, workdir / "am-relay", binary=binary, log_level="warn"
            ) as am:

                def count() -> int:
                    texts = [m.text for m in emulator.parents(CHANNEL)]
                    return represented(texts, _RELAY_TITLE, native=False)

                settle_heap()
                started = time.monotonic()
                await push(am.url, storm(datetime.now(UTC)))
                final = await wait_final(emulator, count, started)
                await relay.wait_idle(timeout=30)
        calls = emulator.calls("chat.postMessage") + emulator.calls("chat.update")
        return Outcome(
            name="policy-bot relay",
            answers=list(relay.durations),
            slack_calls=len(calls),
            messages=len(emulator.messages(CHANNEL)),
            parents=len(emulator.parents(CHANNEL)),
            represented=count(),
            rate_limited=emulator.ratelimited_count(),
            final_after_s=final,
        )
    finally:
        await emulator.stop()


async def run_native(binary: Path, workdir: Path) -> Outcome:
    emulator = SlackEmulator(bot_token=BOT_TOKEN, app_token=APP_TOKEN)
    answers: list[float] = []
    hooks: list[int] = []
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))

    async def incoming_webhook(request: web.Request) -> web.Response:
        """Slack's incoming webhook: post the body to the channel, answer `ok` or 429."""
        started = time.perf_counter()
        body = await request.json()
        attachments = body.get("attachments") or []
        fallback = attachments[0].get("fallback", "") if attachments else ""
        message = {
            "channel": CHANNEL,
            "text": body.get("text") or fallback,
            "attachments": attachments,
        }
        async with session.post(
            f"{emulator.base_url}chat.postMessage",
            json=message,
            headers={"Authorization": f"Bearer {BOT_TOKEN}"},
        ) as posted:
            answer = await posted.json()
            retry_after = posted.headers.get("Retry-After")
        hooks.append(posted.status)
        if posted.status == 429:
            response = web.Response(
                status=429, text="rate_limited", headers={"Retry-After": retry_after or "1"}
            )
        elif answer.get("ok"):
            response = web.Response(text="ok")
        else:
            response = web.Response(status=400, text=str(answer.get("error")))
        answers.append(time.perf_counter() - started)
        return response

    emulator.app.router.add_post("/services/{hook:.*}", incoming_webhook)
    await emulator.start()
    try:
        config = slack_receiver(f"{emulator.url}/services/T0/B0/X", channel="#storm", **TIMERS)
        async with running_alertmanager(
            config, workdir / "am-native", binary=binary, log_level="warn"
        ) as am:

            def count() -> int:
                texts = [
                    a.get("title", "") for m in emulator.parents(CHANNEL) for a in m.attachments
                ]
                return represented(texts, _NATIVE_TITLE, native=True)

            settle_heap()
            started = time.monotonic()
            await push(am.url, storm(datetime.now(UTC)))
            final = await wait_final(emulator, count, started)
        return Outcome(
            name="Alertmanager slack_configs",
            answers=answers,
            slack_calls=len(hooks),
            messages=len(emulator.messages(CHANNEL)),
            parents=len(emulator.parents(CHANNEL)),
            represented=count(),
            rate_limited=emulator.ratelimited_count(),
            final_after_s=final,
        )
    finally:
        await session.close()
        await emulator.stop()


def settle_heap() -> None:
    """What the bot's start-up does once serving begins: collect, then freeze the heap.

    Everything allocated while importing and wiring lives for the whole process; frozen, it
    is no longer walked by every full collection, which otherwise stalls the loop for 100+ ms
    in the middle of a storm.
    """
    gc.collect()
    gc.freeze()


def _token(settings: Any) -> str:
    secret = settings.alertmanager.webhook_token
    return str(secret.get_secret_value()) if secret is not None else ""


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def _final(outcome: Outcome) -> str:
    if outcome.final_after_s is None:
        return f"not within {DEADLINE_S:.0f} s"
    return f"{outcome.final_after_s:.1f} s"


def table(outcomes: Sequence[Outcome]) -> str:
    rows = [
        ("", *(o.name for o in outcomes)),
        ("webhook answer p50", *(_ms(o.percentile(0.5)) for o in outcomes)),
        ("webhook answer p99", *(_ms(o.percentile(0.99)) for o in outcomes)),
        ("webhook requests", *(str(len(o.answers)) for o in outcomes)),
        ("Slack calls", *(str(o.slack_calls) for o in outcomes)),
        ("messages in channel (parents)", *(f"{o.messages} ({o.parents})" for o in outcomes)),
        ("alerts represented in Slack", *(f"{o.represented} / {ALERTS}" for o in outcomes)),
        ("alerts lost", *(str(o.lost) for o in outcomes)),
        ("429s provoked", *(str(o.rate_limited) for o in outcomes)),
        ("time until Slack shows the final state", *(_final(o) for o in outcomes)),
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    lines += [
        "",
        f"{ALERTS} alerts in {GROUPS} groups, one channel; Alertmanager 0.25 with group_wait "
        f"{TIMERS['group_wait']}, group_interval {TIMERS['group_interval']}; Slack emulator at "
        "1 message/s per channel, bursts of 3.",
        "'webhook answer' is how long the receiver took to answer Alertmanager: the relay's "
        "handler, or Slack's incoming webhook for slack_configs (which Alertmanager does not "
        "retry after a 429 until the next group_interval).",
    ]
    return "\n".join(lines)


async def measure(which: Sequence[str] = ("relay", "native")) -> list[Outcome]:
    binary = find_binary()
    runs = {"relay": run_relay, "native": run_native}
    with tempfile.TemporaryDirectory(prefix="alert-storm-") as tmp:
        return [await runs[name](binary, Path(tmp)) for name in which]


def main() -> list[tuple[str, str, str, str]]:
    """Rows for `python -m bench`: (scenario, policy-bot, peer, bar)."""
    relay, native = asyncio.run(measure())
    print(table([relay, native]), file=sys.stderr)
    return [
        (
            "alert storm: webhook answer p99",
            _ms(relay.percentile(0.99)),
            f"n/a (native receiver: {_ms(native.percentile(0.99))} per Slack post)",
            "< 50 ms",
        ),
        ("alert storm: alerts lost", str(relay.lost), f"{native.lost} (slack_configs)", "0"),
        (
            "alert storm: Slack 429s provoked",
            str(relay.rate_limited),
            f"{native.rate_limited} (slack_configs)",
            "0",
        ),
        (
            "alert storm: parent messages per group",
            f"{relay.parents} for {GROUPS} groups",
            f"{native.messages} messages (slack_configs)",
            "one per group",
        ),
    ]


if __name__ == "__main__":
    # `python -m bench.alert_storm [relay] [native]`: both by default.
    outcomes = asyncio.run(measure(sys.argv[1:] or ("relay", "native")))
    print(table(outcomes))
