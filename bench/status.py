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
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from bot.playground.slack_emulator import RateLimits, SlackEmulator
from bot.playground.slack_signed_client import SignedSlackClient
from tests.emulators.fixtures import APP_TOKEN, BOT_TOKEN, SIGNING_SECRET
from tests.kube import seed
from tests.kube.controlplane import Assets, ControlPlane
from tests.kube.fixtures import TEST_PLANE_CRDS
from tests.kube.kyverno import crd_directory

ROOT = Path(__file__).parent.parent
POLICIES = 500
REPORTS = 20_000
RESULTS_PER_REPORT = 5
CONCURRENT = 50
USER, CHANNEL = "U0BENCH", "C0BENCH"
WARM_CALLS = 300


def assets() -> Assets:
    out = subprocess.run(
        ["bash", str(ROOT / "tools/kubebins/build.sh")], capture_output=True, text=True, check=True
    )
    return Assets.from_directory(Path(out.stdout.strip().splitlines()[-1]))


def seed_plane(plane: ControlPlane) -> None:
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
    per_namespace = REPORTS // len(namespaces)
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


def time_kubectl(plane: ControlPlane, *args: str, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        plane.kubectl(*args, timeout=300)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


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


async def run_bot_bench(plane: ControlPlane, workdir: Path) -> dict[str, Any]:
    emulator = SlackEmulator(bot_token=BOT_TOKEN, app_token=APP_TOKEN, rate_limits=RateLimits.off())
    await emulator.start()
    emulator.add_channel(CHANNEL, "bench")
    emulator.add_user(USER, "bench")
    port = free_port()
    config = workdir / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "server": {"host": "127.0.0.1", "port": port},
                "store": {"url": f"sqlite:///{workdir}/state.db"},
                "slack": {"mode": "http"},
                "environments": [
                    {"name": "dev", "kubeconfig": str(plane.kubeconfig), "timeout_s": 30}
                ],
                "status": {"cache": False},  # the cold list; the cache is measured apart
            }
        )
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SLACK_")},
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": emulator.base_url,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "--config", str(config), "--log-level", "WARNING"],
        env=env,
        cwd=ROOT,
    )
    figures: dict[str, Any] = {}
    try:
        url = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as session:
            for _ in range(300):
                try:
                    async with session.get(url + "/healthz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.1)
        await asyncio.sleep(2)
        figures["idle_rss_mib"] = rss_kib(process.pid, "VmRSS") / 1024
        async with SignedSlackClient(url, SIGNING_SECRET, emulator, timeout=60) as client:
            await ack_latencies(client, "help", 5)  # warm-up: Bolt's auth.test, imports
            figures["ack_help"] = await ack_latencies(client, "help", CONCURRENT)
            figures["status_s"] = [
                await answer_time(client, emulator, "status dev") for _ in range(3)
            ]
            figures["status_policy_s"] = await answer_time(
                client, emulator, "status bench-policy-001"
            )
            figures["ack_status"] = await ack_latencies(client, "status dev", CONCURRENT)
            while len(emulator.responses) < 4 + CONCURRENT:
                await asyncio.sleep(0.1)
        figures["peak_rss_mib"] = rss_kib(process.pid, "VmHWM") / 1024
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
        await emulator.stop()
    return figures


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
    for _ in range(3):
        t0 = time.perf_counter()
        listed = await cold.snapshot("dev")
        cold_s.append(time.perf_counter() - t0)
    figures["cold_s"] = statistics.median(cold_s)
    note(f"cold lists: {', '.join(f'{t:.2f} s' for t in cold_s)}")
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
            print(
                f"seeded {POLICIES} policies and {REPORTS} reports in {time.perf_counter() - started:.0f} s",
                file=sys.stderr,
            )
            kubectl_s = time_kubectl(plane, "get", "policyreports", "-A", "-o", "json")
            figures = asyncio.run(run_bot_bench(plane, workdir))
            cache = cache_figures(plane)
            print(
                f"status cache: {cache['reports']:,} reports, {cache['results']:,} results "
                f"synced in {cache['sync_s']:.1f} s; {cache['changes']} report changes during "
                f"the warm answers; cached snapshot equal to a fresh list: {cache['equal']}",
                file=sys.stderr,
            )
        finally:
            plane.stop()
    status_s = statistics.median(figures["status_s"])
    ack_help, ack_status = figures["ack_help"], figures["ack_status"]
    warm = cache["warm_s"]
    per_100k = cache["cache_rss_mib"] * 100_000 / max(1, cache["results"])
    return [
        (
            f"ack of /policy help, {CONCURRENT} concurrent signed requests",
            f"p50 {pct(ack_help, 50) * 1000:.0f} ms · p99 {pct(ack_help, 99) * 1000:.0f} ms",
            "Slack allows 3,000 ms",
            "p99 < 100 ms",
        ),
        (
            f"ack of /policy status dev, {CONCURRENT} concurrent (each then scans 100k results)",
            f"p50 {pct(ack_status, 50) * 1000:.0f} ms · p99 {pct(ack_status, 99) * 1000:.0f} ms",
            "Slack allows 3,000 ms",
            "p99 < 100 ms",
        ),
        (
            f"/policy status dev: {POLICIES} policies, {REPORTS:,} reports, {REPORTS * RESULTS_PER_REPORT:,} results",
            f"{status_s:.2f} s (median of 3; {status_s / kubectl_s:.2f}x kubectl)",
            f"kubectl get policyreports -A -o json: {kubectl_s:.2f} s",
            "≤ 1.5x kubectl",
        ),
        (
            f"/policy status dev warm (watch cache), {WARM_CALLS} answers while reports change",
            f"p50 {pct(warm, 50) * 1000:.1f} ms · p99 {pct(warm, 99) * 1000:.1f} ms "
            f"(cold list in-process: {cache['cold_s']:.2f} s)",
            f"kubectl get policyreports -A -o json: {kubectl_s:.2f} s",
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
            "/policy status POLICY (all environments)",
            f"{figures['status_policy_s']:.2f} s",
            "—",
            "—",
        ),
        (
            "peak resident memory of the bot during the above",
            f"{figures['peak_rss_mib']:.0f} MiB",
            "—",
            "< 300 MiB",
        ),
        ("idle resident memory of the bot", f"{figures['idle_rss_mib']:.0f} MiB", "—", "< 150 MiB"),
    ]
