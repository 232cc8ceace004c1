"""The soak's world: real processes on loopback, each of which the fault schedule can break.

PostgreSQL (crashed and restarted by `tests.servers.postgres`), one control plane with real
Kyverno seeded like the playground's `dev` environment and reached only through a `TcpProxy`
(cut and restored), the Slack and JIRA emulators, and two `python -m bot` replicas on the one
database (SIGKILLed and started again), as the chart runs them.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from bench.status import assets as kube_assets
from bot.playground import sample, seed
from bot.playground.child import free_port
from bot.playground.control_plane import ControlPlane
from bot.playground.jira_emulator import PAT, JiraEmulator
from bot.playground.kyverno import EXCEPTION_NAMESPACE, Kyverno, build_assets
from bot.playground.slack_emulator import RateLimits, SlackEmulator
from bot.playground.slack_signed_client import SignedSlackClient
from bot.playground.world import CHANNELS, PEOPLE
from bot.store import Database, open_database
from tests.deploy.process import BotProcess
from tests.harness import TcpProxy, kubeconfig_via
from tests.servers.postgres import PostgresServer, running_postgres

ENVIRONMENT = "dev"
BOT_TOKEN = "xoxb-soak"
SIGNING_SECRET = "soak-signing-secret-0123456789abcdef"
WEBHOOK_TOKEN = "soak-alertmanager-token"
JIRA_TIMEOUT_S = 5
JIRA_SEARCH_LAG_S = 20
REPLICAS = ("a", "b")
PROMOTED = "soak-promotable"
"""The policy the promoter moves between Audit and Enforce in `dev`, and back."""


@dataclass
class Replica:
    """One bot process and the signed Slack client that talks to it."""

    name: str
    config: Path
    port: int
    workdir: Path
    process: BotProcess
    client: SignedSlackClient
    restarts: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Held from a kill to the restart: two faults never restart one replica twice."""


@dataclass
class Stage:
    postgres: PostgresServer
    store_url: str
    database: Database
    plane: ControlPlane
    kyverno: Kyverno
    proxy: TcpProxy
    slack: SlackEmulator
    jira: JiraEmulator
    replicas: dict[str, Replica]
    workdir: Path
    env: dict[str, str]
    backups: Path
    api_cut: bool = False
    started: float = 0.0
    """When the flows began (time.monotonic, the emulators' clock): the schedule's t+0."""
    rng: random.Random = field(default_factory=random.Random)

    def live(self) -> list[Replica]:
        return [r for r in self.replicas.values() if r.process.alive]

    def any_replica(self) -> Replica | None:
        live = self.live()
        return self.rng.choice(live) if live else None

    async def kill(self, name: str) -> None:
        """SIGKILL one replica: no shutdown, whatever it held in flight is cut."""
        replica = self.replicas[name]
        replica.process.kill()
        await asyncio.to_thread(replica.process.popen.wait, 30)

    async def start_again(self, name: str) -> None:
        replica = self.replicas[name]
        replica.restarts += 1
        replica.process = BotProcess.start(
            f"{name}{replica.restarts}",
            config=replica.config,
            port=replica.port,
            env=self.env,
            workdir=replica.workdir,
        )
        await replica.process.wait_until_ready(timeout=180)

    async def cut_api(self) -> None:
        self.api_cut = True
        await self.proxy.stop()

    async def restore_api(self) -> None:
        await self.proxy.start()
        self.api_cut = False


def write_config(path: Path, *, port: int, kubeconfig: Path, jira: str, backups: Path) -> None:
    approvers = [p.id for p in PEOPLE if "approver" in p.role]
    admin = [p.id for p in PEOPLE if p.role == "admin"]
    document: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": port, "shutdown_timeout_s": 5},
        # Never used: POLICY_BOT_STORE_URL names the shared PostgreSQL, as the chart does.
        "store": {"url": f"sqlite:///{path.parent / 'unused.db'}"},
        "slack": {
            "mode": "http",
            "channels": {k: v for k, v in CHANNELS.items() if k != "general"},
            "roles": {
                "approvers": {"users": approvers},
                # The only environment is the last rung, "production": a second promoter
                # confirms what the first asked for.
                "promoters": {"users": [*admin, approvers[0]]},
                "admins": {"users": admin},
            },
        },
        "environments": [{"name": ENVIRONMENT, "kubeconfig": str(kubeconfig), "timeout_s": 5}],
        "exceptions": {"namespace": EXCEPTION_NAMESPACE, "sweep_every_s": 30},
        "jira": {
            "url": jira,
            "project": "SEC",
            "timeout_s": JIRA_TIMEOUT_S,
            "search_lag_s": JIRA_SEARCH_LAG_S,
        },
        "promotion": {
            "stages": [{"environment": ENVIRONMENT, "mode": m} for m in ("Audit", "Enforce")],
            "gates": [{"type": "max_failures", "max": 1000}],  # none would mean the defaults
            "readiness_timeout_s": 30,
            "readiness_poll_s": 0.5,
        },
        "backup": {
            "cron": None,
            "evidence_cron": None,
            "targets": [{"type": "dir", "path": str(backups)}],
        },
    }
    path.write_text(yaml.safe_dump(document))


def _start_cluster(workdir: Path) -> tuple[ControlPlane, Kyverno]:
    kyverno_assets = build_assets()
    plane = ControlPlane.start(kube_assets(), workdir / "plane", crd_dir=kyverno_assets.crd_dir)
    try:
        kyverno = Kyverno.start(kyverno_assets, plane, workdir / "kyverno")
    except BaseException:
        plane.stop()
        raise
    try:
        sample.populate(kyverno, production=False)
        rule = seed.require_label_rule("check-owner-label", label="owner", kinds=("Pod",))
        rule["match"]["any"][0]["resources"]["namespaces"] = ["soak-*"]  # blocks nobody
        kyverno.apply(seed.legacy_cluster_policy(PROMOTED, action="Audit", rules=[rule]))
        kyverno.wait_policy_ready(PROMOTED, None)
    except BaseException:
        kyverno.stop(remove_webhooks=False)
        plane.stop()
        raise
    return plane, kyverno


def _workspace(slack: SlackEmulator) -> None:
    for person in PEOPLE:
        slack.add_user(person.id, person.name, f"{person.name.title()} ({person.role})")
    for name, channel in CHANNELS.items():
        slack.add_channel(channel, name)


@contextlib.asynccontextmanager
async def running_stage(workdir: Path, rng: random.Random) -> AsyncIterator[Stage]:
    async with contextlib.AsyncExitStack() as stack:
        postgres = stack.enter_context(running_postgres())
        store_url = await postgres.create_database("soak")
        print("starting a control plane with Kyverno …", flush=True)
        plane, kyverno = await asyncio.to_thread(_start_cluster, workdir)
        stack.callback(plane.stop)
        stack.callback(kyverno.stop, remove_webhooks=False)
        api = urlsplit(plane.url)
        proxy = TcpProxy(api.hostname or "127.0.0.1", api.port or 443)
        await proxy.start()
        stack.push_async_callback(proxy.stop)
        kubeconfig = kubeconfig_via(plane.kubeconfig, proxy.port, workdir / "kubeconfig.yaml")

        # As strict as Slack: per-channel pacing and the per-method tiers.
        slack = SlackEmulator(bot_token=BOT_TOKEN, rate_limits=RateLimits(tiers=True))
        await slack.start()
        stack.push_async_callback(slack.stop)
        _workspace(slack)
        jira = await stack.enter_async_context(JiraEmulator(mode="server", projects=("SEC",)))
        jira.search_lags = True  # as JIRA Cloud: search lists a new issue only later

        backups = workdir / "backups"
        backups.mkdir()
        env = {
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": slack.base_url,
            "JIRA_TOKEN": PAT,
            "ALERTMANAGER_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
            "POLICY_BOT_STORE_URL": store_url,
        }
        replicas: dict[str, Replica] = {}
        for name in REPLICAS:
            bot_port = free_port()
            home = workdir / name
            home.mkdir()
            config = home / "config.yaml"
            write_config(
                config, port=bot_port, kubeconfig=kubeconfig, jira=jira.url, backups=backups
            )
            process = BotProcess.start(name, config=config, port=bot_port, env=env, workdir=home)
            client = SignedSlackClient(process.url, SIGNING_SECRET, slack, timeout=15)
            stack.push_async_callback(client.close)
            replicas[name] = Replica(name, config, bot_port, home, process, client)

        def kill_all() -> None:
            for replica in replicas.values():
                replica.process.kill()

        stack.callback(kill_all)
        await asyncio.gather(*(r.process.wait_until_ready(timeout=180) for r in replicas.values()))
        database = await open_database(store_url)
        stack.push_async_callback(database.close)
        yield Stage(
            postgres=postgres,
            store_url=store_url,
            database=database,
            plane=plane,
            kyverno=kyverno,
            proxy=proxy,
            slack=slack,
            jira=jira,
            replicas=replicas,
            workdir=workdir,
            env=env,
            backups=backups,
            rng=rng,
        )
