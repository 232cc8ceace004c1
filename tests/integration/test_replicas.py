"""Two replicas on one PostgreSQL, as the chart runs them with `replicaCount: 2`.

Two `python -m bot` processes (HTTP mode, ports of their own) share a real PostgreSQL, the
Slack emulator and a real kube-apiserver. The store URL reaches them only through
POLICY_BOT_STORE_URL (the config file names a SQLite file that must stay unused), as the
chart passes it from a Secret. One scenario, in the order a cluster would see it:

1. Alertmanager HA: the same notifications reach both replicas (and one is retried); each
   group gets exactly one Slack message although both senders drain the outbox.
2. A scheduled job fires on both replicas' schedules; its work (removing an expired
   PolicyException nobody owns) is done once, by the replica that claimed the firing.
3. A replica is SIGKILLed with a message still queued (Slack answered 429 with Retry-After);
   the survivor delivers it, once.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import sqlalchemy as sa
import yaml

from bot.alerts.tables import alert_messages, alert_notifications
from bot.clock import SYSTEM_CLOCK
from bot.playground import seed
from bot.playground.child import free_port
from bot.playground.control_plane import ControlPlane
from bot.playground.slack_emulator import SlackEmulator
from bot.store import Database, open_database
from bot.store.audit_trail import AuditTrail
from bot.store.scheduled_runs import scheduled_runs
from tests.alert_samples import alert, payload
from tests.deploy.process import BotProcess
from tests.emulators.fixtures import BOT_TOKEN, SIGNING_SECRET
from tests.harness import CHANNELS
from tests.kube.fixtures import ControlPlaneFactory
from tests.servers.postgres import PostgresServer

pytestmark = [pytest.mark.kube, pytest.mark.postgres]

TOKEN = "am-webhook-token"
EXCEPTIONS_NS = "kyverno-exceptions"
ORPHAN = "pe-left-behind"
SWEEP_EVERY_S = 30  # the smallest interval the config allows
ALERTS = CHANNELS["alerts"]


@pytest.fixture(scope="module")
def plane(kube_assets: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A cluster holding an expired PolicyException the bot labelled but no request owns."""
    factory = ControlPlaneFactory(kube_assets, tmp_path_factory.mktemp("replica-plane"))
    expired = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        (started,) = factory.start(1)
        with started.api_client() as api:
            seed.apply_objects(
                api,
                [
                    seed.namespace(EXCEPTIONS_NS),
                    seed.legacy_cluster_policy("require-labels"),
                    seed.kyverno_policy_exception(
                        ORPHAN,
                        EXCEPTIONS_NS,
                        policy="require-labels",
                        rules=["check-for-labels"],
                        labels={
                            "app.kubernetes.io/managed-by": "policy-bot",
                            "policy-bot.io/request-id": "R-0000dead",
                        },
                        annotations={"policy-bot.io/expires-at": expired},
                    ),
                ],
            )
        yield started
    finally:
        factory.stop_all()


@pytest_asyncio.fixture
async def store_url(postgres_server: PostgresServer) -> AsyncIterator[str]:
    url = await postgres_server.lease_database()
    yield url
    await postgres_server.release_database(url)


@pytest_asyncio.fixture
async def database(store_url: str) -> AsyncIterator[Database]:
    """The test's own connection to the replicas' database, for reading what they did."""
    db = await open_database(store_url)
    try:
        yield db
    finally:
        await db.close()


def write_config(path: Path, *, plane: ControlPlane, port: int, unused_sqlite: Path) -> None:
    path.write_text(
        yaml.safe_dump(
            {
                "server": {"host": "127.0.0.1", "port": port, "shutdown_timeout_s": 5},
                "store": {"url": f"sqlite:///{unused_sqlite}"},
                "slack": {"mode": "http", "channels": CHANNELS},
                "environments": [
                    {"name": "dev", "kubeconfig": str(plane.kubeconfig), "timeout_s": 5}
                ],
                "exceptions": {"namespace": EXCEPTIONS_NS, "sweep_every_s": SWEEP_EVERY_S},
                "backup": {"cron": None, "evidence_cron": None},
            }
        )
    )


async def post_webhook(bot: BotProcess, body: dict[str, Any]) -> int:
    timeout = aiohttp.ClientTimeout(total=15)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.post(bot.url + "/alertmanager", data=json.dumps(body), headers=headers) as r,
    ):
        return r.status


async def eventually(condition: Callable[[], Any], *, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        await asyncio.sleep(0.1)
    return value


async def eventually_async(condition: Callable[[], Any], *, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := await condition()):
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        await asyncio.sleep(0.2)
    return value


def group(policy: str, *names: str) -> dict[str, Any]:
    return payload([alert(n, policy=policy, namespace="payments") for n in names])


def parents_of(emulator: SlackEmulator, policy: str) -> list[Any]:
    return [m for m in emulator.parents(ALERTS) if policy in m.text]


async def drained(db: Database) -> bool:
    """No notification waits to be applied and no outbox row is pending or leased: nothing
    more will be sent."""
    m = alert_messages.c
    async with db.connect() as conn:
        busy = await conn.scalar(
            sa.select(sa.func.count()).where(sa.or_(m.pending.is_(True), m.claimed_by.is_not(None)))
        )
        unapplied = await conn.scalar(
            sa.select(sa.func.count()).where(alert_notifications.c.applied.is_(False))
        )
    return busy == 0 and unapplied == 0


async def finished_runs(db: Database) -> list[tuple[str, str, str]] | None:
    """The expiry sweep's firings (slot, replica, outcome) once none is still running."""
    r = scheduled_runs.c
    async with db.connect() as conn:
        rows = (
            await conn.execute(
                sa.select(r.slot, r.claimed_by, r.outcome, r.finished_at).where(
                    r.job == "exceptions.expiry"
                )
            )
        ).all()
    if not rows or any(finished is None for *_, finished in rows):
        return None
    return [(slot, who, outcome) for slot, who, outcome, _ in rows]


async def test_two_replicas_share_the_work_without_doing_it_twice(
    plane: ControlPlane,
    store_url: str,
    database: Database,
    slack_emulator: SlackEmulator,
    tmp_path: Path,
) -> None:
    unused = tmp_path / "unused.db"
    env = {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack_emulator.base_url,
        "ALERTMANAGER_WEBHOOK_TOKEN": TOKEN,
        "POLICY_BOT_STORE_URL": store_url,
    }
    # Both start on an empty database at once, as the pods of a new Deployment do: the
    # migration lock lets one migrate while the other waits.
    replicas: list[BotProcess] = []
    for name in ("a", "b"):
        port = free_port()
        config = tmp_path / f"{name}.yaml"
        write_config(config, plane=plane, port=port, unused_sqlite=unused)
        replicas.append(
            BotProcess.start(name, config=config, port=port, env=env, workdir=tmp_path / name)
        )
    a, b = replicas
    started = time.monotonic()
    try:
        await asyncio.gather(a.wait_until_ready(), b.wait_until_ready())

        # 1. HA duplicates and a retry: two groups, posted to both replicas, one twice.
        first, second = group("require-labels", "api", "web"), group("disallow-latest", "db")
        statuses = await asyncio.gather(
            *(post_webhook(r, body) for body in (first, second) for r in (a, b)),
            post_webhook(a, first),
        )
        assert statuses == [200] * 5
        await eventually(
            lambda: (
                parents_of(slack_emulator, "require-labels")
                and parents_of(slack_emulator, "disallow-latest")
            ),
            timeout=30,
            what="both alert groups posted",
        )
        await eventually_async(lambda: drained(database), timeout=30, what="outbox drained")
        assert len(parents_of(slack_emulator, "require-labels")) == 1
        assert len(parents_of(slack_emulator, "disallow-latest")) == 1
        assert len([c for c in slack_emulator.calls("chat.postMessage") if c.ok]) == 2

        # 2. The expiry sweep fires on both schedules; the orphan is removed once.
        trail = AuditTrail(database, clock=SYSTEM_CLOCK)

        async def orphan_removals() -> list[Any]:
            return [
                e
                for e in await trail.entries()
                if e.action == "exception.expire" and e.target == f"{EXCEPTIONS_NS}/{ORPHAN}"
            ]

        await eventually_async(
            orphan_removals, timeout=SWEEP_EVERY_S + 45, what="the sweep removed the orphan"
        )
        gone = plane.kubectl(
            "get", "policyexceptions.kyverno.io", "-n", EXCEPTIONS_NS, "-o", "name"
        ).stdout
        assert gone.strip() == ""
        runs = await eventually_async(
            lambda: finished_runs(database), timeout=30, what="the sweep's firings finished"
        )
        print(
            f"\nexpiry sweep firings (slot, replica, outcome): {runs} after "
            f"{time.monotonic() - started:.1f} s; replicas a={a.popen.pid} b={b.popen.pid}"
        )
        assert len({slot for slot, _, _ in runs}) == len(runs)  # one claimant per firing
        assert all(outcome == "ok" for _, _, outcome in runs)
        assert len(await orphan_removals()) == 1

        # 3. A message queued behind a 429 when replica a dies is delivered by b, once.
        calls_before = len(slack_emulator.calls("chat.postMessage"))
        slack_emulator.fail_next("chat.postMessage", "ratelimited", status=429, retry_after=3)
        assert await post_webhook(a, group("restrict-image-registries", "cache")) == 200
        await eventually(
            lambda: any(not c.ok for c in slack_emulator.calls("chat.postMessage")[calls_before:]),
            timeout=15,
            what="the first attempt was rate limited",
        )
        a.kill()
        assert not a.alive
        await eventually(
            lambda: parents_of(slack_emulator, "restrict-image-registries"),
            timeout=30,
            what="replica b delivered the queued message",
        )
        await eventually_async(lambda: drained(database), timeout=30, what="outbox drained")
        assert len(parents_of(slack_emulator, "restrict-image-registries")) == 1
        assert b.alive and (await b.get("/readyz"))[0] == 200
        assert await b.terminate() == 0
    finally:
        for replica in replicas:
            replica.kill()
    assert not unused.exists(), "POLICY_BOT_STORE_URL must override store.url"
    print(f"scenario took {time.monotonic() - started:.1f} s")
