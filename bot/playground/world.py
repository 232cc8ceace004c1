"""The playground's world: clusters with Kyverno, Prometheus, Alertmanager, JIRA, Slack and the bot.

Every part is the real one the tests run against: an etcd + kube-apiserver per environment with
Kyverno's four controllers deciding admission, Prometheus scraping each Kyverno's metrics and
evaluating the chart's alert rule, the Alertmanager binary routing to the bot's webhook, and
the Slack and JIRA emulators. A workload that violates a policy thus alerts in #alerts the way
it would in production: Kyverno counts the failure, Prometheus' rule fires, Alertmanager groups
and calls the bot. Without the prometheus binary (or helm, which renders the rule) the world
runs without that chain and says so; the side panel's Fire button pushes to Alertmanager either
way. The control-plane, Kyverno and Alertmanager starters
are this package's (``control_plane``, ``kyverno``, ``alertmanager``), which the tests share: the
playground runs from a checkout, where ``make kube kyverno`` has built and cached their binaries.

The bot is built by the composition root like in production; its settings point Slack at the
emulator, the environments at the planes and the store at SQLite in a temporary directory. Its
clock is the system's plus an offset the page can advance, to show expiry and reminders.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.app import Services, build_app, build_services
from bot.clock import SYSTEM_CLOCK
from bot.playground import alert_rule, sample
from bot.playground import alertmanager as am
from bot.playground import prometheus as prom
from bot.playground.child import BinaryNotInstalled
from bot.playground.control_plane import Assets, ControlPlane
from bot.playground.jira_emulator import PAT, JiraEmulator
from bot.playground.kyverno import Kyverno, KyvernoAssets, build_assets, on_a_plane_of_its_own
from bot.playground.slack_emulator import SlackEmulator
from bot.playground.slack_signed_client import SignedSlackClient
from bot.settings import Settings, parse_settings

LADDER = ("dev", "qac", "staging", "production")
BOT_TOKEN = "xoxb-playground"
APP_TOKEN = "xapp-playground"
SIGNING_SECRET = "playground-signing-secret-0123456789"
WEBHOOK_TOKEN = "playground-alertmanager-token"
REPO_ROOT = Path(__file__).resolve().parents[2]
SCRAPE_INTERVAL = "2s"
"""Prometheus' scrape and rule evaluation interval: a demo's pace, not a production one."""
GROUP_WAIT = "1s"
ALERT_CHAIN = (
    f"alert chain: Prometheus scrapes each Kyverno every {SCRAPE_INTERVAL} and evaluates the "
    f"chart's rule as often; a workload that violates a policy alerts in #alerts within about "
    f"10 s (Alertmanager groups for {GROUP_WAIT}), and resolves about {alert_rule.WINDOW} after "
    "its last violation (the seeded violations alert just after start)"
)


@dataclass(frozen=True)
class Person:
    id: str
    name: str
    role: str


PEOPLE = (
    Person("U0REQUESTER", "rita", "requester"),
    Person("U0APPROVER1", "alice", "approver"),
    Person("U0APPROVER2", "bob", "second approver"),
    Person("U0ADMIN", "ada", "admin"),
)
CHANNELS = {
    "alerts": "C0ALERTS",
    "approvals": "C0APPROVALS",
    "reports": "C0REPORTS",
    "general": "C0GENERAL",
}


def environment_names(count: int) -> tuple[str, ...]:
    """The last `count` rungs of the ladder: 2 → staging, production; 4 → all of it."""
    if not 1 <= count <= len(LADDER):
        raise ValueError(f"--environments must be 1 to {len(LADDER)}")
    return LADDER[len(LADDER) - count :]


class ShiftedClock:
    """The system's time plus an offset the playground moves forward (never back)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def now(self) -> datetime:
        return SYSTEM_CLOCK.now() + self.offset

    def advance(self, delta: timedelta) -> None:
        self.offset += delta


@dataclass
class Environment:
    name: str
    kyverno: Kyverno

    @property
    def plane(self) -> ControlPlane:
        return self.kyverno.plane

    def create(self, deployment: dict[str, Any]) -> tuple[int, str]:
        """(Re-)create a Deployment as a person would: the API server's status and message.

        An existing one of that name is deleted first, so the same workload can be tried
        again after a policy or an exception changed (deletes are not validated)."""
        metadata = deployment["metadata"]
        path = f"/apis/apps/v1/namespaces/{metadata['namespace']}/deployments"
        self.kyverno.request("DELETE", f"{path}/{metadata['name']}")
        code, answer = self.kyverno.request("POST", path, deployment)
        return code, str(answer.get("message", "created" if code < 300 else answer))

    def objects(self) -> str:
        """What `kubectl get` shows of the kinds the playground is about."""
        kinds = "clusterpolicies.kyverno.io,policies.kyverno.io,policyexceptions.kyverno.io"
        named = "-o=custom-columns=KIND:.kind,NAMESPACE:.metadata.namespace,NAME:.metadata.name"
        image = "IMAGE:.spec.template.spec.containers[0].image"
        running = f"-o=custom-columns=NAMESPACE:.metadata.namespace,NAME:.metadata.name,{image}"
        sections = []
        for title, args in (
            ("Policies and exceptions", ("get", kinds, "-A", named)),
            (
                "Deployments",
                ("get", "deployments.apps", "-A", "-l", sample.PLAYGROUND_LABEL, running),
            ),
        ):
            result = self.plane.kubectl(*args, check=False, timeout=20)
            sections.append(f"# {title}\n{(result.stdout or result.stderr).strip()}")
        return "\n\n".join(sections)


@dataclass
class World:
    environments: dict[str, Environment]
    slack: SlackEmulator
    jira: JiraEmulator
    alertmanager: am.Alertmanager
    prometheus: prom.Prometheus | None
    alert_chain: str
    """What turns a violation into an alert here, or why nothing does (for the page)."""
    services: Services
    client: SignedSlackClient
    clock: ShiftedClock
    bot_url: str
    workdir: Path
    timings: dict[str, float] = field(default_factory=dict)
    revision: int = 0
    _listeners: list[Callable[[], None]] = field(default_factory=list)

    def subscribe(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def unsubscribe(self, listener: Callable[[], None]) -> None:
        self._listeners.remove(listener)

    def changed(self) -> None:
        """Something outside Slack changed (a cluster, the clock): pages re-read."""
        self.revision += 1
        for listener in self._listeners:
            listener()

    async def advance_clock(self, days: float) -> None:
        """Move the bot's clock forward and run its scheduled jobs at the new time."""
        self.clock.advance(timedelta(days=days))
        scheduler = self.services.scheduler
        for job in scheduler.jobs:
            if job.every_s is None:
                continue
            # A firing of its own (the scheduler's may hold the current slot): the sweep has
            # run at the new time when this returns, so the page shows its outcome.
            moment = self.clock.now()
            while not await scheduler.fire(job.name, moment):
                moment += timedelta(seconds=1)
        self.changed()

    async def alert(self, environment: str, target: sample.Workload, *, firing: bool) -> None:
        # Alertmanager keeps the real time, whatever the bot's clock says.
        now = SYSTEM_CLOCK.now()
        await self.alertmanager.push([sample.alert(environment, target, firing=firing, now=now)])


def _built(script: str, what: str) -> Path:
    """The directory or binary a build script of tools/ prints last (cached after the first)."""
    done = subprocess.run(
        ["bash", str(REPO_ROOT / script)], capture_output=True, text=True, check=False
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"no {what} ({script} failed; run `make kube helm kyverno`):\n{tail}")
    return Path(lines[-1])


@contextlib.contextmanager
def _environment(
    name: str, kube: Assets, kyverno_assets: KyvernoAssets, workdir: Path
) -> Iterator[Environment]:
    with on_a_plane_of_its_own(
        kyverno_assets, kube, workdir / name, remove_webhooks=False
    ) as kyverno:
        yield Environment(name, kyverno)


async def _start_environment(
    stack: contextlib.ExitStack,
    name: str,
    assets: tuple[Assets, KyvernoAssets],
    workdir: Path,
    production: bool,
) -> Environment:
    def start() -> Environment:
        environment: Environment = stack.enter_context(_environment(name, *assets, workdir))
        sample.populate(environment.kyverno, production=production)
        return environment

    return await asyncio.to_thread(start)


def alert_chain_parts(workdir: Path) -> tuple[Path, dict[str, Any]] | str:
    """The prometheus binary and the chart's rule file, or why the chain cannot run."""
    try:
        binary = prom.find_binary()
        return binary, alert_rule.render(workdir / "helm")
    except (BinaryNotInstalled, alert_rule.RuleUnavailable) as missing:
        return str(missing)


def prometheus_config(environments: Sequence[Environment], alertmanager_url: str) -> dict[str, Any]:
    """Each environment's Kyverno admission controller as a target named by its environment."""
    scrapes = []
    for environment in environments:
        url = environment.kyverno.metrics_url("admission-controller")
        scrape = prom.scrape_config(f"kyverno-{environment.name}", url)
        scrape["static_configs"][0]["labels"] = {"environment": environment.name}
        scrapes.append(scrape)
    return prom.server_config(scrapes, alertmanager_url=alertmanager_url, interval=SCRAPE_INTERVAL)


def bot_settings(world_urls: dict[str, str], environments: Sequence[Environment]) -> Settings:
    names = [e.name for e in environments]
    document: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": int(world_urls["port"]), "shutdown_timeout_s": 5},
        "store": {"url": f"sqlite:///{world_urls['store']}"},
        "slack": {
            "mode": "http",
            "channels": {k: v for k, v in CHANNELS.items() if k != "general"},
            "roles": {
                "approvers": {"users": [p.id for p in PEOPLE if "approver" in p.role]},
                "promoters": {"users": [PEOPLE[0].id, PEOPLE[3].id]},
                "admins": {"users": [PEOPLE[3].id]},
            },
        },
        "environments": [
            {"name": e.name, "kubeconfig": str(e.plane.kubeconfig), "timeout_s": 10}
            for e in environments
        ],
        "exceptions": {
            "namespace": environments[0].kyverno.exception_namespace,
            "default_days": 7,
            "max_days": 30,
        },
        "jira": {"url": world_urls["jira"], "project": "SEC", "timeout_s": 5},
        "alertmanager": {"url": world_urls["alertmanager"]},
        "backup": {
            "targets": [{"type": "dir", "path": world_urls["backups"]}],
            "helm_releases": [{"name": "kyverno", "namespace": sample.KYVERNO_NAMESPACE}],
        },
        "promotion": {
            "stages": [
                {"environment": name, "mode": mode}
                for name in names
                for mode in ("Audit", "Enforce")
            ],
            "gates": [{"type": "max_failures", "max": 1000}],
            "readiness_timeout_s": 60,
            "readiness_poll_s": 0.5,
        },
    }
    env = {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": world_urls["slack"],
        "JIRA_TOKEN": PAT,
        "ALERTMANAGER_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
    }
    return parse_settings(document, env)


def _workspace(slack: SlackEmulator) -> None:
    for person in PEOPLE:
        slack.add_user(person.id, person.name, f"{person.name.title()} ({person.role})")
    for name, channel in CHANNELS.items():
        slack.add_channel(channel, name)


@contextlib.asynccontextmanager
async def running_world(
    workdir: Path, *, environments: int = 2, progress: Callable[[str], None] = print
) -> AsyncIterator[World]:
    """Start everything (clusters in parallel); stop everything on exit, children included."""
    started = time.monotonic()
    timings: dict[str, float] = {}
    names = environment_names(environments)
    kube = Assets.from_directory(await asyncio.to_thread(_built, "tools/kubebins/build.sh", "kube"))
    assets = (kube, await asyncio.to_thread(build_assets))
    alertmanager_binary = am.find_binary()
    with contextlib.ExitStack() as clusters:
        async with contextlib.AsyncExitStack() as stack:
            slack = SlackEmulator(bot_token=BOT_TOKEN, app_token=APP_TOKEN)
            await slack.start()
            stack.push_async_callback(slack.stop)
            _workspace(slack)
            jira = await stack.enter_async_context(JiraEmulator(mode="server", projects=("SEC",)))
            progress(f"starting {len(names)} control planes with Kyverno: {', '.join(names)}")
            planes, chain_parts = await asyncio.gather(
                asyncio.gather(
                    *(
                        _start_environment(clusters, n, assets, workdir, n == names[-1])
                        for n in names
                    )
                ),
                asyncio.to_thread(alert_chain_parts, workdir),
            )
            timings["clusters"] = time.monotonic() - started
            by_name = {e.name: e for e in planes}
            bot_site = await _BotSite.bind()
            receiver = am.webhook_receiver(
                f"{bot_site.url}/alertmanager",
                token=WEBHOOK_TOKEN,
                # The side panel's alerts name `policy_name`, the chart's rule `policy` and
                # `namespace`: each violation of a policy in a namespace is a thread of its own.
                group_by=("alertname", "policy_name", "policy", "namespace", "environment"),
                group_wait=GROUP_WAIT,
                group_interval="2s",
            )
            alertmanager = await stack.enter_async_context(
                am.running_alertmanager(
                    receiver, workdir / "alertmanager", binary=alertmanager_binary, log_level="warn"
                )
            )
            prometheus: prom.Prometheus | None = None
            if isinstance(chain_parts, str):
                alert_chain = (
                    f"no alert chain ({chain_parts}): alerts come only from the side panel"
                )
            else:
                binary, rules = chain_parts
                prometheus = await stack.enter_async_context(
                    prom.running_prometheus(
                        prometheus_config(planes, alertmanager.url),
                        rules,
                        workdir / "prometheus",
                        binary=binary,
                        log_level="warn",
                    )
                )
                alert_chain = ALERT_CHAIN
            progress(alert_chain)
            (workdir / "backups").mkdir(exist_ok=True)
            settings = bot_settings(
                {
                    "store": str(workdir / "state.db"),
                    "jira": jira.url,
                    "alertmanager": alertmanager.url,
                    "backups": str(workdir / "backups"),
                    "slack": slack.base_url,
                    "port": str(bot_site.port),
                },
                planes,
            )
            clock = ShiftedClock()
            services = await build_services(settings, clock=clock)
            await bot_site.serve(build_app(services))
            stack.push_async_callback(bot_site.stop)
            client = SignedSlackClient(bot_site.url, SIGNING_SECRET, slack)
            stack.push_async_callback(client.close)
            timings["ready"] = time.monotonic() - started
            yield World(
                environments=by_name,
                slack=slack,
                jira=jira,
                alertmanager=alertmanager,
                prometheus=prometheus,
                alert_chain=alert_chain,
                services=services,
                client=client,
                clock=clock,
                bot_url=bot_site.url,
                workdir=workdir,
                timings=timings,
            )


class _BotSite:
    """The bot's HTTP server on a loopback port chosen before the bot exists (Alertmanager's
    receiver needs the URL first)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._runner: web.AppRunner | None = None

    @classmethod
    async def bind(cls) -> _BotSite:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        return cls(port)

    async def serve(self, app: web.Application) -> None:
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
