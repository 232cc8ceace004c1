"""Benchmarks of SPEC 4.1 for the bot process itself: ack latency, `/policy status`, memory.

The bot runs as its own process (`python -m bot`), as in production, so its resident memory
is its own; Slack is the loopback emulator and the cluster a real kube-apiserver seeded with
500 policies and 20,000 per-resource reports (100,000 results). kubectl's list of the same
reports on the same server in the same run is the yardstick.

The bot process runs with `status.cache: false`, so its `/policy status` figures are those of
a cold list. The watch-backed cache is measured apart, in a fresh process of its own (so its
resident memory is its own): the resident memory it adds once synced, and warm `/policy status
ENV` answers (snapshot and Block Kit) while reports keep changing underneath.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import multiprocessing
import os
import queue
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from bench import profiling, storm_plan, versions
from bench.alert_storm import storm_alerts
from bench.figures import Runs, Target
from bot.playground import seed
from bot.playground.alertmanager import find_binary as find_alertmanager
from bot.playground.alertmanager import running_alertmanager, webhook_receiver
from bot.playground.control_plane import Assets, ControlPlane
from bot.playground.kyverno import crd_directory
from bot.playground.slack_emulator import RateLimits, SlackEmulator
from bot.playground.slack_signed_client import SignedSlackClient
from tests.emulators.fixtures import APP_TOKEN, BOT_TOKEN, SIGNING_SECRET
from tests.kube.fixtures import TEST_PLANE_CRDS

ROOT = Path(__file__).parent.parent
POLICIES = 500
REPORTS = int(os.environ.get("BENCH_REPORTS", "20000"))
RESULTS_PER_REPORT = 5
CONCURRENT = 50
CONCURRENT_STATUS = 10
RUNS = 5
#: Status across environments: this many control planes, each with FLEET_REPORTS reports.
FLEET = int(os.environ.get("BENCH_FLEET", "10"))
FLEET_REPORTS = 1_000
ALERTS_CHANNEL = "C0ALERTS"
WEBHOOK_TOKEN = "bench-token"
USER, CHANNEL = "U0BENCH", "C0BENCH"
WARM_CALLS = 300


def assets() -> Assets:
    out = subprocess.run(
        ["bash", str(ROOT / "tools/kubebins/build.sh")], capture_output=True, text=True, check=True
    )
    return Assets.from_directory(Path(out.stdout.strip().splitlines()[-1]))


def seed_plane(plane: ControlPlane, reports_total: int = REPORTS) -> None:
    # Every third policy is a ValidatingPolicy: Kyverno reports it without a rule and under a
    # source of its own, so the bot must count it apart from the kyverno.io policies.
    rules = [
        seed.PolicyRule(f"bench-policy-{i:03d}", "autogen-check-for-labels")
        if i % 3 != 2
        else seed.PolicyRule(f"bench-policy-{i:03d}", "", source=seed.VALIDATING_POLICY_SOURCE)
        for i in range(POLICIES)
    ]
    policies: list[dict[str, Any]] = []
    for i in range(POLICIES):
        if i % 3 == 0:
            policies.append(seed.legacy_cluster_policy(f"bench-policy-{i:03d}", action="Audit"))
        elif i % 3 == 1:
            policies.append(
                seed.per_rule_cluster_policy(f"bench-policy-{i:03d}", actions=("Enforce",))
            )
        else:
            policies.append(seed.validating_policy(f"bench-policy-{i:03d}", actions=("Deny",)))
    namespaces = [f"team-{n:02d}" for n in range(40)]
    reports: list[dict[str, Any]] = []
    per_namespace = reports_total // len(namespaces)
    for n, namespace in enumerate(namespaces):
        chosen = [rules[(n * 7 + k * 13) % POLICIES] for k in range(RESULTS_PER_REPORT)]
        reports += seed.report_fleet([namespace], per_namespace, rules=chosen, rng_seed=n)
    with plane.api_client() as api:
        seed.apply_objects(api, [seed.namespace(n) for n in namespaces] + policies, workers=8)
        for start in range(0, len(reports), 2000):
            seed.apply_objects(api, reports[start : start + 2000], workers=8)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def kubectl_list(plane: ControlPlane, out: Path, *, output: str, cache_dir: Path) -> float:
    """`kubectl get policyreports -A -o yaml > file` (the runbook's form) or `-o json >
    /dev/null`, timed as a person waits for it: a fresh kubectl process each time."""
    command = [
        str(plane.assets.kubectl),
        f"--kubeconfig={plane.kubeconfig}",
        f"--cache-dir={cache_dir}",
        *("get", "policyreports", "-A", "-o", output),
    ]
    started = time.perf_counter()
    if output == "yaml":
        with out.open("wb") as sink:
            subprocess.run(command, stdout=sink, stderr=subprocess.DEVNULL, check=True, timeout=600)
    else:
        subprocess.run(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, timeout=600
        )
    return time.perf_counter() - started


async def answer_time(client: SignedSlackClient, emulator: SlackEmulator, text: str) -> float:
    before = len(emulator.responses)
    started = time.perf_counter()
    interaction = await client.command("/policy", text, user=USER, channel=CHANNEL)
    assert interaction.response.status == 200, interaction.response.text
    while len(emulator.responses) == before:
        if time.perf_counter() - started > 300:
            raise TimeoutError("no answer within 300 s")
        await asyncio.sleep(0.01)
    return time.perf_counter() - started


async def ack_latencies(client: SignedSlackClient, text: str, n: int) -> list[float]:
    async def one() -> float:
        interaction = await client.command("/policy", text, user=USER, channel=CHANNEL)
        assert interaction.response.status == 200
        return interaction.response.elapsed

    return sorted(await asyncio.gather(*(one() for _ in range(n))))


def pct(values: Sequence[float], p: float) -> float:
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


@dataclass
class Bot:
    """`python -m bot` as its own process, as in production, against the emulator."""

    process: subprocess.Popen[bytes]
    url: str
    spawned: float

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def bot_config(
    workdir: Path,
    environments: Sequence[tuple[str, Path]],
    *,
    cache: bool,
    alerts: bool = False,
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": free_port()},
        "store": {"url": f"sqlite:///{workdir}/state-{time.monotonic_ns()}.db"},
        "slack": {"mode": "http", "channels": {"alerts": ALERTS_CHANNEL}},
        "environments": [
            {"name": name, "kubeconfig": str(kubeconfig), "timeout_s": 60}
            for name, kubeconfig in environments
        ],
        "status": {"cache": cache},
    }
    if alerts:
        config["alertmanager"] = {"routes": []}
    return config


async def start_bot(emulator: SlackEmulator, workdir: Path, config: dict[str, Any]) -> Bot:
    path = workdir / f"config-{time.monotonic_ns()}.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SLACK_")},
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": emulator.base_url,
        "ALERTMANAGER_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
    }
    spawned = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "--config", str(path), "--log-level", "WARNING"],
        env=env,
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{config['server']['port']}"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        for _ in range(600):
            try:
                async with session.get(url + "/healthz") as r:
                    if r.status == 200:
                        return Bot(process, url, spawned)
            except aiohttp.ClientConnectionError:
                pass
            if process.poll() is not None:
                break
            await asyncio.sleep(0.1)
    process.kill()
    raise RuntimeError("the bot did not start (see above)")


async def cache_watching(bot: Bot, environment: str, *, within_s: float = 600.0) -> None:
    deadline = time.monotonic() + within_s
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        while time.monotonic() < deadline:
            async with session.get(bot.url + "/readyz") as r:
                body = await r.json()
            if (body.get("status_cache") or {}).get(environment) == "watching":
                return
            await asyncio.sleep(0.5)
    raise TimeoutError(f"the status cache of {environment} did not sync within {within_s} s")


async def storm_peak(bot: Bot, emulator: SlackEmulator, workdir: Path) -> float:
    """1,000 alerts in one push through real Alertmanager into the bot; its peak RSS (MiB)."""
    config = webhook_receiver(
        f"{bot.url}/alertmanager",
        token=WEBHOOK_TOKEN,
        group_wait="1s",
        group_interval="5s",
    )
    async with running_alertmanager(
        config, workdir / "am-status", binary=find_alertmanager(), log_level="warn"
    ) as am:
        await am.push(storm_alerts(storm_plan.burst(), datetime.now(UTC), datetime.now(UTC)))
        await emulator.wait_until(
            lambda: len(emulator.parents(ALERTS_CHANNEL)) >= storm_plan.GROUPS, timeout=300
        )
        # The thread replies follow at the bot's pace: let them finish before timing status.
        seen = -1
        for _ in range(120):
            if len(emulator.calls()) == seen:
                break
            seen = len(emulator.calls())
            await asyncio.sleep(3)
    return rss_kib(bot.pid, "VmHWM") / 1024


async def run_bot_bench(plane: ControlPlane, workdir: Path) -> dict[str, Any]:
    # Limits off: these figures time the bot's answer against kubectl's and each other, and
    # hundreds of commands a minute to one channel would add Slack's waits, not the bot's.
    emulator = SlackEmulator(bot_token=BOT_TOKEN, app_token=APP_TOKEN, rate_limits=RateLimits.off())
    await emulator.start()
    emulator.add_channel(CHANNEL, "bench")
    emulator.add_channel(ALERTS_CHANNEL, "alerts")
    emulator.add_user(USER, "bench")
    env = [("dev", plane.kubeconfig)]
    figures: dict[str, Any] = {}
    try:
        # The bot as it answers with `status.cache: false`: a list on every command.
        bot = await start_bot(emulator, workdir, bot_config(workdir, env, cache=False, alerts=True))
        try:
            await asyncio.sleep(2)
            figures["idle_rss_start_mib"] = rss_kib(bot.pid, "VmRSS") / 1024
            async with SignedSlackClient(bot.url, SIGNING_SECRET, emulator, timeout=60) as client:
                await ack_latencies(client, "help", 1)  # the first command (answered in its ack)
                await asyncio.sleep(2)
                figures["idle_rss_first_mib"] = rss_kib(bot.pid, "VmRSS") / 1024
                figures["ack_help"] = await ack_latencies(client, "help", CONCURRENT)
                figures["storm_peak_rss_mib"] = await storm_peak(bot, emulator, workdir)
                note("storm through the bot done; kubectl and the bot interleaved …")
                shared = workdir / "kubectl-cache"
                await asyncio.to_thread(
                    kubectl_list, plane, workdir / "warm.yaml", output="json", cache_dir=shared
                )
                runs: dict[str, list[float]] = {k: [] for k in _INTERLEAVED}
                for run in range(RUNS):
                    empty = workdir / f"kubectl-cache-{run}"
                    runs["kubectl_yaml_cold"].append(
                        await asyncio.to_thread(
                            kubectl_list, plane, workdir / "r.yaml", output="yaml", cache_dir=empty
                        )
                    )
                    runs["bot_list"].append(await answer_time(client, emulator, "status dev"))
                    runs["kubectl_json_cold"].append(
                        await asyncio.to_thread(
                            kubectl_list,
                            plane,
                            workdir / "r.json",
                            output="json",
                            cache_dir=empty / "j",
                        )
                    )
                    runs["kubectl_yaml_warm"].append(
                        await asyncio.to_thread(
                            kubectl_list, plane, workdir / "r.yaml", output="yaml", cache_dir=shared
                        )
                    )
                    runs["kubectl_json_warm"].append(
                        await asyncio.to_thread(
                            kubectl_list, plane, workdir / "r.json", output="json", cache_dir=shared
                        )
                    )
                    note(
                        f"round {run + 1}/{RUNS}: "
                        + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in runs.items())
                    )
                figures.update(runs)
                figures["status_policy_s"] = await answer_time(
                    client, emulator, "status bench-policy-001"
                )
                before = len(emulator.responses)
                figures["ack_status"] = await ack_latencies(client, "status dev", CONCURRENT_STATUS)
                await emulator.wait_until(
                    lambda: len(emulator.responses) >= before + CONCURRENT_STATUS, timeout=600
                )
            figures["peak_rss_mib"] = rss_kib(bot.pid, "VmHWM") / 1024
        finally:
            bot.stop()
        # A fresh process each time, with the default config (watch cache on): from the spawn
        # to the first `/policy status dev` answer (start, imports, connection, discovery,
        # list or sync, render).
        cold: list[float] = []
        for _ in range(RUNS):
            bot = await start_bot(emulator, workdir, bot_config(workdir, env, cache=True))
            try:
                async with SignedSlackClient(
                    bot.url, SIGNING_SECRET, emulator, timeout=60
                ) as client:
                    await answer_time(client, emulator, "status dev")
                cold.append(time.perf_counter() - bot.spawned)
                # Warm: the same process once /readyz says its cache is synced and watching
                # (on a loaded machine the sync can outlast the first answer, which lists).
                await cache_watching(bot, "dev")
                async with SignedSlackClient(
                    bot.url, SIGNING_SECRET, emulator, timeout=60
                ) as client:
                    figures.setdefault("bot_warm_cache", []).append(
                        await answer_time(client, emulator, "status dev")
                    )
            finally:
                bot.stop()
        figures["bot_cold_process"] = cold
    finally:
        await emulator.stop()
    return figures


_INTERLEAVED = (
    "kubectl_yaml_cold",
    "bot_list",
    "kubectl_json_cold",
    "kubectl_yaml_warm",
    "kubectl_json_warm",
)


def note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _trimmed_rss_kib() -> int:
    """Resident memory after a full collection, with freed heap handed back to the system."""
    import gc

    gc.collect()
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    return rss_kib(os.getpid(), "VmRSS")


async def _cache_figures(kubeconfig: str) -> dict[str, Any]:
    from bot.clock import SYSTEM_CLOCK
    from bot.kube.gateway import ClusterGateway
    from bot.ladder import Ladder
    from bot.settings import Environment
    from bot.status.cache import StatusCache
    from bot.status.service import StatusService
    from handlers.render import status as render

    env = Environment(name="dev", kubeconfig=Path(kubeconfig), timeout_s=30)
    gateway = ClusterGateway(env)
    kinds = await gateway.kinds()
    polr = next(k for k in kinds if k.spec.kind == "PolicyReport")
    figures: dict[str, Any] = {}
    before = _trimmed_rss_kib()  # before any large list: its freed heap would hide the cache
    caches = StatusCache([gateway], clock=SYSTEM_CLOCK)
    await caches.start()
    cache = caches.environment("dev")
    started = time.perf_counter()
    while not cache.watching() or cache.cached(kinds) is None:
        await asyncio.sleep(0.05)
    figures["sync_s"] = time.perf_counter() - started
    snapshot = cache.snapshot()
    figures["results"] = sum(snapshot.tally.totals.values()) + sum(snapshot.tally.others.values())
    figures["reports"] = snapshot.tally.reports
    figures["cache_rss_mib"] = (_trimmed_rss_kib() - before) / 1024
    names = [
        (o["metadata"]["namespace"], o["metadata"]["name"])
        for o in await gateway.list_all(polr, namespace="team-00")
    ]
    note(f"status cache synced in {figures['sync_s']:.1f} s")

    cold = StatusService([gateway], clock=SYSTEM_CLOCK, ladder=Ladder(()))
    warm = StatusService([gateway], clock=SYSTEM_CLOCK, ladder=Ladder(()), cache=caches)
    cold_s = []
    for _ in range(RUNS):
        t0 = time.perf_counter()
        listed = await cold.snapshot("dev")
        cold_s.append(time.perf_counter() - t0)
    figures["cold_s"] = cold_s
    note(f"cold lists: {', '.join(f'{t:.2f} s' for t in cold_s)}")
    with profiling.profiled("cold /policy status dev: list + snapshot + render"):
        render.environment_message(await cold.snapshot("dev"), now=SYSTEM_CLOCK.now())
    taken = profiling.collected()
    figures["profile"] = taken[-1][1] if taken else ""
    figures["equal"] = listed == await warm.snapshot("dev")

    # A report changes before every answer, so each answer rebuilds from the counts (the
    # slow path of a warm cache); the answer is timed once the cache has seen the change.
    rng = random.Random(1)
    warm_s = []
    for _ in range(WARM_CALLS):
        namespace, name = rng.choice(names)
        outcome = rng.choice(seed.RESULTS)
        patch = {"results": [seed.report_result("bench-policy-000", "r", outcome)]}
        written = await gateway.merge_patch(polr, name, patch, namespace=namespace)
        version = int(written["metadata"]["resourceVersion"])
        while int(cache.resource_version(polr) or 0) < version:
            await asyncio.sleep(0.002)
        t0 = time.perf_counter()
        snap = await warm.snapshot("dev")
        render.environment_message(snap, now=SYSTEM_CLOCK.now())
        warm_s.append(time.perf_counter() - t0)
    figures["changes"] = len(warm_s)
    note(f"{len(warm_s)} warm answers")
    figures["warm_s"] = sorted(warm_s)
    await caches.stop()
    await gateway.close()
    return figures


def _cache_probe(kubeconfig: str, out: Any) -> None:
    out.put(asyncio.run(_cache_figures(kubeconfig)))


def cache_figures(plane: ControlPlane) -> dict[str, Any]:
    """The cache's figures, measured in a fresh process (its resident memory is its own)."""
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    process = context.Process(target=_cache_probe, args=(str(plane.kubeconfig), out))
    process.start()
    try:
        while True:
            try:
                figures: dict[str, Any] = out.get(timeout=5)
                return figures
            except queue.Empty:
                if not process.is_alive():
                    raise RuntimeError("the cache probe died (see above)") from None
    finally:
        process.join(60)


def start_planes(base: Path, n: int) -> list[ControlPlane]:
    crds = [crd_directory() / f for f in TEST_PLANE_CRDS]
    found = assets()
    with ThreadPoolExecutor(max_workers=n) as pool:
        futures = [
            pool.submit(ControlPlane.start, found, base / f"plane-{i}", crd_dir=crds)
            for i in range(n)
        ]
    planes = [f.result() for f in futures if f.exception() is None]
    errors = [e for f in futures if (e := f.exception()) is not None]
    if errors:
        for plane in planes:
            plane.stop()
        raise errors[0]
    return planes


async def run_fleet(planes: Sequence[ControlPlane], workdir: Path) -> dict[str, Any]:
    """`/policy status` across every environment vs `/policy status ENV` for each alone, in
    one bot process per config (watch cache on, the default; and off), interleaved."""
    # Limits off: these figures time the bot's answer against kubectl's and each other, and
    # hundreds of commands a minute to one channel would add Slack's waits, not the bot's.
    emulator = SlackEmulator(bot_token=BOT_TOKEN, app_token=APP_TOKEN, rate_limits=RateLimits.off())
    await emulator.start()
    emulator.add_channel(CHANNEL, "bench")
    emulator.add_user(USER, "bench")
    envs = [(f"env-{i}", p.kubeconfig) for i, p in enumerate(planes)]
    figures: dict[str, Any] = {}
    try:
        for cache in (True, False):
            bot = await start_bot(emulator, workdir, bot_config(workdir, envs, cache=cache))
            key = "cache" if cache else "list"
            try:
                async with SignedSlackClient(
                    bot.url, SIGNING_SECRET, emulator, timeout=120
                ) as client:
                    await answer_time(client, emulator, "status")  # start-up and sync behind
                    await asyncio.sleep(5)
                    every: list[float] = []
                    alone: dict[str, list[float]] = {name: [] for name, _ in envs}
                    for _ in range(RUNS):
                        every.append(await answer_time(client, emulator, "status"))
                        for name, _ in envs:
                            alone[name].append(
                                await answer_time(client, emulator, f"status {name}")
                            )
                figures[key] = (every, alone)
                note(
                    f"fleet ({key}): every environment {statistics.median(every):.3f} s; "
                    f"slowest alone {max(statistics.median(v) for v in alone.values()):.3f} s"
                )
            finally:
                bot.stop()
    finally:
        await emulator.stop()
    return figures


def main() -> list[tuple[str, str, str, str]]:
    """Rows of (scenario, policy-bot, peer, bar) for the summary table."""
    with tempfile.TemporaryDirectory(prefix="policy-bot-bench-") as tmp:
        workdir = Path(tmp)
        plane = ControlPlane.start(
            assets(), workdir / "plane", crd_dir=[crd_directory() / f for f in TEST_PLANE_CRDS]
        )
        try:
            started = time.perf_counter()
            seed_plane(plane)
            note(
                f"seeded {POLICIES} policies and {REPORTS} reports in "
                f"{time.perf_counter() - started:.0f} s"
            )
            figures = asyncio.run(run_bot_bench(plane, workdir))
            cache = cache_figures(plane)
            note(
                f"status cache: {cache['reports']:,} reports, {cache['results']:,} results "
                f"synced in {cache['sync_s']:.1f} s; {cache['changes']} report changes during "
                f"the warm answers; cached snapshot equal to a fresh list: {cache['equal']}"
            )
            VERSIONS.append(versions.read("kubectl", plane.assets.kubectl))
            VERSIONS.append(versions.read("kube-apiserver", plane.assets.kube_apiserver))
        finally:
            plane.stop()
        started = time.perf_counter()
        planes = start_planes(workdir / "fleet", FLEET)
        try:
            for fleet_plane in planes:
                seed_plane(fleet_plane, FLEET_REPORTS)
            note(
                f"{FLEET} planes started and seeded with {FLEET_REPORTS:,} reports each in "
                f"{time.perf_counter() - started:.0f} s"
            )
            fleet = asyncio.run(run_fleet(planes, workdir))
        finally:
            for fleet_plane in planes:
                fleet_plane.stop()
    return rows(figures, cache, fleet)


def rows(
    figures: dict[str, Any], cache: dict[str, Any], fleet: dict[str, Any]
) -> list[tuple[str, str, str, str]]:
    r = {k: Runs.of(figures[k]) for k in (*_INTERLEAVED, "bot_cold_process", "bot_warm_cache")}
    ack_help, ack_status = figures["ack_help"], figures["ack_status"]
    warm = cache["warm_s"]
    per_100k = cache["cache_rss_mib"] * 100_000 / max(1, cache["results"])
    results = f"{REPORTS * RESULTS_PER_REPORT:,} results in {REPORTS:,} reports"
    yaml_warm, json_warm = r["kubectl_yaml_warm"], r["kubectl_json_warm"]
    kubectl_warm = f"kubectl -o yaml > file {yaml_warm.show()}; -o json > /dev/null {json_warm.show()} (warm discovery cache)"
    kubectl_cold = (
        f"kubectl -o yaml > file {r['kubectl_yaml_cold'].show()}; -o json > /dev/null "
        f"{r['kubectl_json_cold'].show()} (empty discovery cache)"
    )
    every_c, alone_c = fleet["cache"]
    every_l, alone_l = fleet["list"]
    slowest_c = max(alone_c.values(), key=lambda v: statistics.median(v))
    slowest_l = max(alone_l.values(), key=lambda v: statistics.median(v))
    TARGETS.extend(
        [
            Target(
                f"status across {FLEET} environments ({FLEET} control planes, watch cache) / "
                "slowest one alone",
                statistics.median(every_c),
                statistics.median(slowest_c),
                1.3,
            ),
            Target(
                f"warm status p99 at {cache['results']:,} results / 50 ms",
                pct(warm, 99),
                0.050,
                1.0,
                strict=True,
            ),
        ]
    )
    if cache.get("profile"):
        PROFILES.append(
            ("cold /policy status dev: list + snapshot + render (cProfile)", cache["profile"])
        )
    return [
        (
            f"ack of /policy help, {CONCURRENT} concurrent signed requests",
            f"p50 {pct(ack_help, 50) * 1000:.0f} ms · p99 {pct(ack_help, 99) * 1000:.0f} ms",
            "Slack allows 3,000 ms",
            "p99 < 100 ms",
        ),
        (
            f"ack of /policy status dev, {CONCURRENT_STATUS} concurrent (each then lists {results})",
            f"p50 {pct(ack_status, 50) * 1000:.0f} ms · p99 {pct(ack_status, 99) * 1000:.0f} ms",
            "Slack allows 3,000 ms",
            "p99 < 100 ms",
        ),
        (
            f"/policy status dev, {results}: cold process (spawn -> first answer, cache on)",
            r["bot_cold_process"].show(),
            kubectl_cold,
            "≤ 1.5× kubectl",
        ),
        (
            "/policy status dev: warm process, status.cache false (a list per command)",
            r["bot_list"].show(),
            kubectl_warm,
            "≤ 1.5× kubectl",
        ),
        (
            "/policy status dev: warm process, watch cache (default), through Slack",
            r["bot_warm_cache"].show(),
            kubectl_warm,
            "—",
        ),
        (
            f"/policy status dev warm (watch cache), {WARM_CALLS} answers while reports change",
            f"p50 {pct(warm, 50) * 1000:.1f} ms · p99 {pct(warm, 99) * 1000:.1f} ms "
            f"(cold list in-process: {Runs.of(cache['cold_s']).show()})",
            "—",
            "p99 < 50 ms",
        ),
        (
            "resident memory the status cache adds, per 100,000 results",
            f"{per_100k:.0f} MiB ({cache['results']:,} results in {cache['reports']:,} reports; "
            f"4 environments: {4 * per_100k:.0f} MiB)",
            "—",
            "4 × 100,000 results < 300 MiB",
        ),
        (
            f"/policy status, {FLEET} environments ({FLEET} control planes, "
            f"{FLEET_REPORTS * RESULTS_PER_REPORT:,} results each), watch cache",
            f"every environment {Runs.of(every_c).show()}",
            f"slowest one alone {Runs.of(slowest_c).show()}",
            "≤ 1.3× slowest one",
        ),
        (
            f"/policy status, {FLEET} environments, status.cache false (lists)",
            f"every environment {Runs.of(every_l).show()}",
            f"slowest one alone {Runs.of(slowest_l).show()}",
            "—",
        ),
        (
            "/policy status POLICY (one environment)",
            f"{figures['status_policy_s']:.2f} s (n=1)",
            "—",
            "—",
        ),
        (
            "resident memory of the bot (status.cache false; first command /policy help)",
            f"idle after start {figures['idle_rss_start_mib']:.0f} MiB · after the first "
            f"command {figures['idle_rss_first_mib']:.0f} MiB · peak during a 1,000-alert "
            f"storm {figures['storm_peak_rss_mib']:.0f} MiB · peak overall "
            f"{figures['peak_rss_mib']:.0f} MiB",
            "—",
            "idle < 150 MiB · peak < 300 MiB",
        ),
    ]


#: Filled by `main()` for `python -m bench`.
TARGETS: list[Target] = []
VERSIONS: list[str] = []
PROFILES: list[tuple[str, str]] = []


if __name__ == "__main__":
    for row in main():
        print(" | ".join(row))
    for target in TARGETS:
        print(target.line())
    for title, text in PROFILES:
        print(f"\n{title}:\n{text}")
    print("\n".join(VERSIONS))
