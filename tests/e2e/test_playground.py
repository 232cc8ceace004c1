"""The playground in a real browser: `python -m bot playground` driven through Debian's Chromium.

The playground runs as people start it (a child process, Ctrl-C to stop), with its real
control planes, Kyverno, Prometheus, Alertmanager, the emulators and the bot; Playwright drives the system
Chromium (no browser download) through the page as a person would: typing commands, clicking
the bot's buttons, filling its modal, switching people, using the world panel. Every wait is on
what the page shows (Playwright's auto-waiting locators); the long timeouts are a safety net
for a loaded machine, never a pace.

With POLICY_BOT_SCREENSHOTS=DIR the main steps are saved there as PNGs (`make screenshots`
writes the README's pictures in docs/playground/).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Locator, Page, async_playwright

from tests.servers.child import skip_or_fail

pytestmark = [pytest.mark.kube, pytest.mark.kyverno, pytest.mark.browser]

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
REQUIRE_ENV = "POLICY_BOT_REQUIRE_BROWSER"
REQUIRE_PROMETHEUS_ENV = "POLICY_BOT_REQUIRE_PROMETHEUS"
START_TIMEOUT_S = 240  # a safety net under the 300 s test timeout; a warm start takes 30-60 s
HONOURED_TIMEOUT_S = 60
STEP_TIMEOUT_MS = int(os.environ.get("STEP_MS", "90000"))
REQUESTER, APPROVER, ADMIN = "U0REQUESTER", "U0APPROVER1", "U0ADMIN"
SHOTS = os.environ.get("POLICY_BOT_SCREENSHOTS")


@dataclass
class Playground:
    process: subprocess.Popen[str]
    url: str = ""
    lines: list[str] = field(default_factory=list)
    ready_s: float = 0.0
    _ready: threading.Event = field(default_factory=threading.Event)
    _reader: threading.Thread = field(init=False)

    def __post_init__(self) -> None:
        self._reader = threading.Thread(target=self.read, daemon=True)
        self._reader.start()

    def read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            found = re.search(r"ready in ([\d.]+) s: open (\S+)", line)
            if found:
                self.ready_s, self.url = float(found[1]), found[2]
                self._ready.set()
        self._ready.set()

    def wait_ready(self) -> None:
        if not self._ready.wait(START_TIMEOUT_S) or not self.url:
            self.stop()
            raise AssertionError("the playground did not start:\n" + "\n".join(self.lines))

    def stop(self) -> int:
        """Ctrl-C, as a person stops it; its exit code once its output is read to the end."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.process.kill()
        code = self.process.wait()
        self._reader.join(timeout=30)
        if self.process.stdout is not None:
            self.process.stdout.close()
        return code


def descendants(pid: int) -> set[tuple[int, str]]:
    """Every process below `pid`, as (pid, start time) so a reused pid is not mistaken."""
    children: dict[int, list[int]] = {}
    started: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
            children.setdefault(int(fields[1]), []).append(int(entry.name))
            started[int(entry.name)] = fields[19]
    found: set[tuple[int, str]] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add((child, started[child]))
            todo.append(child)
    return found


def command(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/comm").read_text().strip()
    return ""


def alive(process: tuple[int, str]) -> bool:
    try:
        fields = Path(f"/proc/{process[0]}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return False
    return fields[19] == process[1] and fields[0] != "Z"


def listening_addresses(pids: set[int]) -> set[str]:
    """The local addresses of the TCP sockets these processes listen on."""
    inodes: set[str] = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
    addresses = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            parts = line.split()
            if parts[3] == "0A" and parts[9] in inodes:  # 0A: LISTEN
                addresses.add(parts[1].rpartition(":")[0])
    return addresses


LOOPBACK = {
    "0100007F",
    "00000000000000000000000001000000",
}  # 127.0.0.1 and ::1, as the kernel writes them


@pytest.fixture(scope="module")
def playground() -> Iterator[Playground]:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
    if not CHROMIUM.exists():
        skip_or_fail(f"no browser: {CHROMIUM} (Debian's chromium package)", REQUIRE_ENV)
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "playground", "--port", "0"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # a Ctrl-C in the terminal reaches pytest only
    )
    running = Playground(process)
    try:
        running.wait_ready()
        print(f"playground ready in {running.ready_s:.1f} s")
        yield running
    finally:
        running.stop()


@pytest_asyncio.fixture
async def browser(playground: Playground) -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        launched = await p.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield launched
        finally:
            await launched.close()


class Person:
    """One browser tab on the playground, as whoever the user switcher says."""

    def __init__(self, page: Page, url: str) -> None:
        self.page = page
        self.url = url
        page.set_default_timeout(STEP_TIMEOUT_MS)

    @classmethod
    async def open(cls, browser: Browser, url: str, *, place: str = "general") -> Person:
        page = await browser.new_page(viewport={"width": 1500, "height": 940})
        person = cls(page, url)
        await page.goto(f"{url}#{place}")
        await page.locator("[data-testid=channel-general]").wait_for()
        await page.locator("body[data-live=yes]").wait_for()
        return person

    async def be(self, user: str) -> None:
        await self.page.select_option("[data-testid=user-switcher]", user)
        await self.page.locator(f"body[data-user={user}]").wait_for()

    async def go(self, channel: str) -> None:
        await self.page.click(f"[data-testid=channel-{channel}]")
        await self.page.locator("#title", has_text=f"# {channel}").wait_for()

    async def type(self, text: str) -> None:
        await self.page.fill("[data-testid=message-box]", text)
        await self.page.press("[data-testid=message-box]", "Enter")

    def ephemeral(self, text: str) -> Locator:
        return self.page.locator("[data-testid=ephemeral]", has_text=text).last

    def message(self, text: str) -> Locator:
        return self.page.locator("#messages [data-testid=message]", has_text=text).last

    def alert(self, state: str, *texts: str) -> Locator:
        """The alert message in `state` (FIRING, RESOLVED) that shows every one of `texts`:
        Prometheus' alerts for the seeded violations come and go in #alerts meanwhile."""
        messages = self.page.locator("#messages [data-testid=message]", has_text=state)
        for text in texts:
            messages = messages.filter(has_text=text)
        return messages.last

    async def create(self, environment: str, namespace: str, name: str, image: str) -> str:
        await self.page.select_option("[data-testid=env]", environment)
        await self.page.fill("#wl-namespace", namespace)
        await self.page.fill("#wl-name", name)
        await self.page.fill("#wl-image", image)
        result = self.page.locator("[data-testid=workload-result]")
        await self.page.evaluate("document.getElementById('workload-result').textContent = ''")
        await self.page.click("[data-testid=create-workload]")
        await result.locator("text=/^(admitted|refused)/").wait_for()
        return str(await result.text_content())

    async def create_until(
        self, outcome: str, environment: str, namespace: str, name: str, image: str
    ) -> str:
        """Create until the API server answers `outcome`: Kyverno's webhook learns of a new or
        deleted PolicyException and a changed policy from its informers, a moment after the
        bot's answer (as in tests/e2e/test_kyverno_flows.py)."""
        deadline = time.monotonic() + HONOURED_TIMEOUT_S
        while True:
            answer = await self.create(environment, namespace, name, image)
            if answer.startswith(outcome) or time.monotonic() > deadline:
                return answer
            await self.page.wait_for_timeout(500)  # between tries only; the deadline decides

    async def objects(self, environment: str) -> str:
        await self.page.select_option("[data-testid=env]", environment)
        await self.page.evaluate("document.getElementById('objects').textContent = ''")
        await self.page.click("[data-testid=show-objects]")
        await self.page.locator(
            "[data-testid=objects]", has_text="# Policies and exceptions"
        ).wait_for()
        return str(await self.page.locator("[data-testid=objects]").text_content())

    async def shot(self, name: str) -> None:
        if SHOTS:
            await self.page.screenshot(path=str(Path(SHOTS) / f"{name}.png"))


async def test_status_help_refresh_and_two_tabs(playground: Playground, browser: Browser) -> None:
    assert playground.lines[0].startswith("policy-bot playground"), playground.lines[:2]
    assert "make run CONFIG=" in "\n".join(playground.lines[:2])
    rita = await Person.open(browser, playground.url)
    await rita.type("/policy status")
    answer = rita.ephemeral("Policy status · 2 environments")
    await answer.wait_for()
    assert "staging" in str(await answer.text_content())
    assert "production" in str(await answer.text_content())
    await rita.shot("status")

    await rita.type("/policy frobnicate")
    help_answer = rita.ephemeral("There is no /policy frobnicate subcommand")
    await help_answer.wait_for()
    assert "/policy status" in str(await help_answer.text_content())

    # The workspace lives in the emulator: a reload shows the same answers, a second tab too
    # (ephemeral answers are rita's, so the second tab is rita as well).
    await rita.page.reload()
    await rita.ephemeral("There is no /policy frobnicate subcommand").wait_for()
    second = await Person.open(browser, playground.url)
    await second.ephemeral("Policy status · 2 environments").wait_for()
    await second.type("/policy status production")
    await rita.ephemeral("production · 3 policies").wait_for()

    # App Home, published by the bot when the tab opens.
    await rita.page.click("[data-testid=nav-home]")
    home = rita.page.locator("[data-testid=home]")
    await home.locator("text=Environments").wait_for()
    assert "production" in str(await home.text_content())


async def test_mrkdwn_is_drawn_as_slack_draws_it(playground: Playground, browser: Browser) -> None:
    rita = await Person.open(browser, playground.url)
    source = (
        "*bold* _italic_ ~gone~ `code` <https://example.com/a?b=1&amp;c=2|a link> "
        "<@U0APPROVER1> <#C0ALERTS> :warning: &lt;script&gt;alert(1)&lt;/script&gt;"
    )
    drawn = await rita.page.evaluate(
        "(text) => BlockKit.mrkdwn(text, {names: {U0APPROVER1: 'alice'}, "
        "channelNames: {C0ALERTS: 'alerts'}})",
        source,
    )
    assert "<b>bold</b>" in drawn and "<i>italic</i>" in drawn and "<s>gone</s>" in drawn
    assert "<code>code</code>" in drawn
    assert '<a href="https://example.com/a?b=1&amp;c=2"' in drawn and ">a link</a>" in drawn
    assert "@alice" in drawn and "#alerts" in drawn and "⚠️" in drawn
    assert "<script>" not in drawn and "&lt;script&gt;" in drawn


@pytest.mark.prometheus
async def test_a_violating_workload_alerts_through_prometheus(
    playground: Playground, browser: Browser
) -> None:
    """Kyverno's counter → the chart's rule in Prometheus → Alertmanager → the bot: no push by
    hand. team-web has no seeded violation of the team label (nor does another test make one),
    so its alert in staging is a new one."""
    said = [line for line in playground.lines if line.startswith(("alert chain", "no alert chain"))]
    assert said, playground.lines
    if not said[0].startswith("alert chain: Prometheus"):
        skip_or_fail(said[0], REQUIRE_PROMETHEUS_ENV)
    rita = await Person.open(browser, playground.url)
    await rita.page.locator("[data-testid=alert-chain]", has_text="Prometheus scrapes").wait_for()
    await rita.go("alerts")
    ours = ("team-web Deployment — Deployment resources failed", "require-team-label", "· staging")
    assert not await rita.alert("FIRING", *ours).count()

    started = time.monotonic()
    admitted = await rita.create("staging", "team-web", "frontend-unlabelled", "nginx:1.27")
    assert admitted.startswith("admitted"), admitted  # staging only audits the team label
    # The chart's rule names the policy, the rule, the kind and the namespace, never a
    # resource (Kyverno's metrics have none), unlike the side panel's pushed alerts.
    alert = rita.alert("FIRING", *ours)
    await alert.wait_for()
    print(f"violation → alert in #alerts: {time.monotonic() - started:.1f} s")
    shown = str(await alert.text_content())
    assert "KyvernoPolicyViolation · require-team-label · 1 resource" in shown, shown
    assert "rule autogen-check-team-label" in shown, shown
    await rita.shot("prometheus-alert")


async def test_exception_from_an_alert_then_expiry_then_promotion(
    playground: Playground, browser: Browser
) -> None:
    rita = await Person.open(browser, playground.url)
    refused = await rita.create("production", "team-payments", "ledger", "nginx:1.27")
    assert refused.startswith("refused"), refused
    assert "require-team-label" in refused

    # An alert for it, and the exception requested from the alert's own button.
    await rita.page.click("[data-testid=fire-alert]")
    await rita.go("alerts")
    alert = rita.alert("FIRING", "team-payments Deployment/ledger")
    await alert.wait_for()
    alert_ts = await alert.get_attribute("data-ts")
    await rita.shot("alert")
    await alert.locator("button", has_text="Request exception").click()
    modal = rita.page.locator("[data-testid=modal]")
    await modal.locator("header", has_text="Request exception").wait_for()
    justification = modal.locator(".bk-input-block", has_text="Justification").locator("textarea")
    await justification.fill("The ledger team adds the label with next week's release.")
    await rita.shot("exception-modal")
    await modal.locator("[data-testid=modal-submit]").click()
    await modal.wait_for(state="detached")

    # The approver approves in #approvals; the bot files the JIRA ticket and links it.
    await rita.be(APPROVER)
    await rita.go("approvals")
    request = rita.message("team-payments")
    await request.locator("button", has_text="Approve").click()
    link = request.locator("a", has_text=re.compile(r"SEC-\d+")).first
    await link.wait_for()
    href = str(await link.get_attribute("href"))
    assert "/browse/SEC-" in href
    ticket = await browser.new_page()  # the link opens the ticket, as on JIRA
    await ticket.goto(href)
    assert "require-team-label" in str(await ticket.locator("body").text_content())
    await ticket.close()
    await rita.shot("approved")

    # The alert resolves through Alertmanager; the bot updates its message in place.
    await rita.page.click("[data-testid=resolve-alert]")
    await rita.go("alerts")
    resolved = rita.page.locator(f"#messages [data-ts='{alert_ts}']", has_text="RESOLVED")
    await resolved.wait_for()
    assert "require-team-label" in str(await resolved.text_content())

    # The PolicyException is in the cluster and the refused workload is admitted.
    admitted = await rita.create_until(
        "admitted", "production", "team-payments", "ledger", "nginx:1.27"
    )
    assert admitted.startswith("admitted"), admitted
    objects = await rita.objects("production")
    assert "policyexception" in objects.lower(), objects
    await rita.shot("admitted")

    # Past its expiry the bot removes the exception; the same workload is refused again.
    await rita.page.fill("#days", "8")
    await rita.page.click("[data-testid=advance-clock]")
    await rita.page.locator("[data-testid=clock][data-advanced='8']").wait_for()
    # The clock's answer comes after the bot's expiry sweep ran at the new time.
    objects = await rita.objects("production")
    assert "policyexception" not in objects.lower(), objects
    again = await rita.create_until(
        "refused", "production", "team-payments", "ledger", "nginx:1.27"
    )
    assert again.startswith("refused"), again

    # A promotion to Enforce: rita plans it, ada (a second person) clicks Promote.
    await rita.be(REQUESTER)
    await rita.go("general")
    await rita.type("/policy promote disallow-latest-tag")
    plan = rita.message("Promote disallow-latest-tag")
    await plan.locator("button", has_text="Promote").wait_for()
    await rita.be(ADMIN)
    await plan.locator("button", has_text="Promote").click()
    confirm = rita.page.locator("[data-testid=confirm]")  # Promote into production asks first
    await confirm.locator("[data-role=confirm]").click()
    promoted = rita.message("Ready on production")
    await promoted.locator("[data-testid=replies]").click()
    await rita.page.locator("[data-testid=thread]", has_text="Field-by-field diff").wait_for()
    latest = await rita.create_until(
        "refused", "production", "team-search", "crawler-2", "crawler:latest"
    )
    assert latest.startswith("refused"), latest
    assert "latest" in latest
    await rita.shot("promoted")


def test_every_server_listens_on_loopback_only(playground: Playground) -> None:
    pids = {pid for pid, _ in descendants(playground.process.pid)} | {playground.process.pid}
    addresses = listening_addresses(pids)
    assert addresses, "found no listening socket at all"
    assert addresses <= LOOPBACK, f"listening beyond loopback: {addresses - LOOPBACK}"


def test_ctrl_c_leaves_no_process(playground: Playground) -> None:
    tree = descendants(playground.process.pid)
    assert len(tree) >= 5, tree  # etcd, kube-apiserver and Kyverno per environment, Alertmanager
    if any(line.startswith("alert chain: Prometheus") for line in playground.lines):
        assert "prometheus" in {command(pid) for pid, _ in tree}, tree
    code = playground.stop()
    assert code == 0, "\n".join(playground.lines[-30:])
    assert "stopped" in playground.lines[-3:], playground.lines[-3:]
    left = {p for p in tree if alive(p)}
    assert not left, f"still running after Ctrl-C: {left}"
