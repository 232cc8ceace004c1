"""The JIRA adapter with the real `jira` 3.10.5 client against the loopback JIRA emulator.

Data Center (PAT as Bearer, `/search`) and Cloud (e-mail + API token, `/search/jql`, where
the legacy `/search` answers 410), idempotent creation by fingerprint label, bounded retries
(429 with `Retry-After`, 503, refused connections) and none where a retry could duplicate
(500 and read timeouts on a create), timeouts, and an event loop that keeps running while
the synchronous client waits.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from urllib.parse import parse_qs, parse_qsl

import pytest
import pytest_asyncio
from pydantic import SecretStr

from bot.jira.adapter import (
    JiraTickets,
    TicketDraft,
    TicketNotFound,
    TicketsRejected,
    TicketsUnavailable,
)
from bot.playground.jira_emulator import CLOUD_TOKEN, CLOUD_USER, PAT, JiraEmulator
from bot.settings import JiraSettings

DRAFT = TicketDraft(
    fingerprint="policy-bot-R-0123abcd",
    summary="Kyverno exception: require-labels in dev (R-0123abcd)",
    description="Environment: dev",
    quoted="Because {noformat}[click|http://evil]{noformat}",
    labels=("kyverno-exception",),
    due=date(2026, 12, 28),
)


class Sleeps:
    """Records the adapter's waits between attempts instead of sleeping."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest_asyncio.fixture(params=["server", "cloud"])
async def jira(request: pytest.FixtureRequest) -> AsyncIterator[JiraEmulator]:
    async with JiraEmulator(mode=request.param) as emulator:
        yield emulator


def settings(emulator: JiraEmulator, *, timeout_s: float = 3.0, good: bool = True) -> JiraSettings:
    if emulator.mode == "cloud":
        return JiraSettings(
            url=emulator.url,
            project="SEC",
            user=CLOUD_USER,
            api_token=SecretStr(CLOUD_TOKEN if good else "wrong"),
            timeout_s=timeout_s,
        )
    return JiraSettings(
        url=emulator.url,
        project="SEC",
        token=SecretStr(PAT if good else "wrong"),
        timeout_s=timeout_s,
    )


@pytest_asyncio.fixture
async def sleeps() -> Sleeps:
    return Sleeps()


@pytest_asyncio.fixture
async def tickets(jira: JiraEmulator, sleeps: Sleeps) -> AsyncIterator[JiraTickets]:
    adapter = JiraTickets(settings(jira), sleep=sleeps)
    yield adapter
    await adapter.close()


async def test_ensure_creates_once_and_finds_the_ticket_again(
    jira: JiraEmulator, tickets: JiraTickets
) -> None:
    first = await tickets.ensure(DRAFT)
    again = await tickets.ensure(DRAFT)
    assert first.created and not again.created
    assert first.key == again.key == "SEC-1" and again.status == "To Do"
    assert first.url == f"{jira.url}/browse/SEC-1"
    assert len(jira.creates()) == 1
    issue = jira.issues["SEC-1"]
    assert issue.labels == ["policy-bot-R-0123abcd", "kyverno-exception"]
    assert issue.fields["duedate"] == "2026-12-28"
    # The requester's text is shown verbatim: its own {noformat} cannot end the block.
    assert issue.fields["description"] == (
        "Environment: dev\n\n{noformat}\nBecause { noformat }[click|http://evil]{ noformat }\n"
        "{noformat}"
    )
    search = "/search/jql" if jira.mode == "cloud" else "/search"
    assert {r.path for r in jira.calls("GET", "search")} == {f"/rest/api/2{search}"}
    auth = "Basic" if jira.mode == "cloud" else "Bearer"
    assert {r.auth for r in jira.requests} == {auth}


async def test_get_comment_transition_and_whoami(jira: JiraEmulator, tickets: JiraTickets) -> None:
    key = (await tickets.ensure(DRAFT)).key
    assert (await tickets.get(key)).status == "To Do"
    await tickets.comment(key, "Approved by U0LEE", quoted="reason <b>")
    assert (
        jira.issues[key].comments[0].body == "Approved by U0LEE\n{noformat}\nreason <b>\n{noformat}"
    )
    assert await tickets.transition(key, ["Close Issue", "done"]) == "Done"
    assert (await tickets.get(key)).status == "Done"
    assert await tickets.transition(key, ["Close Issue", "Resolve"]) is None
    assert len(jira.calls("POST", "/transitions$")) == 1
    assert await tickets.check() == "Policy Bot"
    with pytest.raises(TicketNotFound):
        await tickets.get("SEC-999")
    before = len(jira.requests)
    with pytest.raises(TicketNotFound):
        await tickets.get('SEC-1" OR "x')  # not a key: never sent
    assert len(jira.requests) == before


async def test_a_label_with_quotes_stays_a_value(jira: JiraEmulator, tickets: JiraTickets) -> None:
    assert await tickets.find('x" OR labels = "policy-bot-R-0123abcd') is None
    await tickets.ensure(DRAFT)
    assert await tickets.find('x" OR labels = "policy-bot-R-0123abcd') is None
    assert (await tickets.find("policy-bot-R-0123abcd")) is not None


async def test_wrong_credentials_are_refused_with_a_reason(jira: JiraEmulator) -> None:
    adapter = JiraTickets(settings(jira, good=False), sleep=Sleeps())
    try:
        with pytest.raises(TicketsRejected, match="HTTP 401"):
            await adapter.ensure(DRAFT)
    finally:
        await adapter.close()
    assert jira.issues == {}


async def test_bad_project_is_rejected_not_retried(jira: JiraEmulator, sleeps: Sleeps) -> None:
    adapter = JiraTickets(settings(jira).model_copy(update={"project": "NOPE"}), sleep=sleeps)
    try:
        with pytest.raises(TicketsRejected, match="project: valid project is required"):
            await adapter.ensure(DRAFT)
    finally:
        await adapter.close()
    assert len(jira.calls("POST", "/issue$")) == 1 and sleeps.waits == []


async def test_429_with_retry_after_is_retried(
    jira: JiraEmulator, tickets: JiraTickets, sleeps: Sleeps
) -> None:
    jira.fail(429, path="search", retry_after=1, times=1)
    assert (await tickets.ensure(DRAFT)).created
    assert sleeps.waits == [1.0]
    assert len(jira.calls("GET", "search")) == 2 and len(jira.issues) == 1


async def test_429_asking_for_too_long_is_reported_not_slept_on(
    jira: JiraEmulator, tickets: JiraTickets, sleeps: Sleeps
) -> None:
    jira.fail(429, path="search", retry_after=60, times=None)
    with pytest.raises(TicketsUnavailable, match="rate limited, retry after 60 s"):
        await tickets.ensure(DRAFT)
    assert sleeps.waits == [] and jira.issues == {}


async def test_503_is_retried_a_bounded_number_of_times(
    jira: JiraEmulator, tickets: JiraTickets, sleeps: Sleeps
) -> None:
    jira.fail(503, path="/issue$", times=2)
    assert (await tickets.ensure(DRAFT)).created
    assert sleeps.waits == [0.5, 1.0]
    jira.fail(503, path="/comment$", times=None)
    with pytest.raises(TicketsUnavailable, match="HTTP 503"):
        await tickets.comment("SEC-1", "x")
    assert len(jira.calls("POST", "/comment$")) == 3


async def test_500_on_create_is_not_retried(
    jira: JiraEmulator, tickets: JiraTickets, sleeps: Sleeps
) -> None:
    jira.fail(500, path="/issue$", times=1)
    with pytest.raises(TicketsUnavailable, match="HTTP 500"):
        await tickets.ensure(DRAFT)
    assert len(jira.calls("POST", "/issue$")) == 1 and sleeps.waits == []


async def test_a_hung_jira_times_out_and_the_loop_keeps_running(jira: JiraEmulator) -> None:
    adapter = JiraTickets(settings(jira, timeout_s=1.0), sleep=Sleeps())
    jira.slow(3.0, path="/issue$")
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.05)
            ticks += 1

    task = asyncio.create_task(ticker())
    started = time.monotonic()
    try:
        with pytest.raises(TicketsUnavailable, match="timed out"):
            await adapter.ensure(DRAFT)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await adapter.close()
    elapsed = time.monotonic() - started
    assert 1.0 <= elapsed < 3.0, elapsed  # the read timeout, not JIRA's pace
    assert ticks >= elapsed / 0.05 * 0.5  # the event loop was never blocked
    assert len(jira.calls("POST", "/issue$")) == 1  # a create is not repeated after a timeout


async def test_jira_down_is_reported_after_bounded_retries(sleeps: Sleeps) -> None:
    emulator = JiraEmulator()
    await emulator.start()
    url = emulator.url
    await emulator.stop()  # nothing listens there any more
    adapter = JiraTickets(
        JiraSettings(url=url, project="SEC", token=SecretStr(PAT), timeout_s=2), sleep=sleeps
    )
    started = time.monotonic()
    try:
        with pytest.raises(TicketsUnavailable, match="connection refused"):
            await adapter.ensure(DRAFT)
    finally:
        await adapter.close()
    assert sleeps.waits == [0.5, 1.0] and time.monotonic() - started < 5


TRACES = Path(__file__).parents[1] / "data" / "jira"
REPLAYED = (
    "create_issue(fields={project:{key}, issuetype:{name}, ...})",
    "issue('OPS-1')",
    "issue('OPS-1', fields='summary,status')",
    "add_comment('OPS-1', body)",
    "transitions('OPS-1')",
    "transition_issue('OPS-1', 'Done')",
    "search_issues(jql, maxResults=1)",
    "search_issues(jql, fields='summary,labels', json_result=True)",
)


@pytest.mark.parametrize("mode", ["server", "cloud"])
async def test_the_emulator_receives_what_the_recorded_client_sent(mode: str) -> None:
    """Replay the recorded calls with the real client: the same requests must arrive."""
    from jira import JIRA

    trace = json.loads((TRACES / f"jira-3.10.5-request-trace-{mode}.json").read_text())
    entries = {e["call"]: e for e in trace["trace"]}
    create_body = entries[REPLAYED[0]]["requests"][0]["body"]
    comment_body = entries[REPLAYED[3]]["requests"][0]["body"]["body"]
    jql = parse_qs(entries[REPLAYED[6]]["requests"][-1]["raw_query"])["jql"][0]

    async with JiraEmulator(mode=mode, projects=("OPS",)) as emulator:  # type: ignore[arg-type]

        def replay() -> list[list[tuple[str, str, list[tuple[str, str]], object]]]:
            if mode == "cloud":
                client = JIRA(
                    server=emulator.url,
                    basic_auth=(CLOUD_USER, CLOUD_TOKEN),
                    options={"rest_api_version": "3"},
                )
            else:
                client = JIRA(server=emulator.url, token_auth=PAT)
            calls = [
                lambda: client.create_issue(fields=create_body["fields"]),
                lambda: client.issue("OPS-1"),
                lambda: client.issue("OPS-1", fields="summary,status"),
                lambda: client.add_comment("OPS-1", comment_body),
                lambda: client.transitions("OPS-1"),
                lambda: client.transition_issue("OPS-1", "Done"),
                lambda: client.search_issues(jql, maxResults=1),
                lambda: client.search_issues(jql, fields="summary,labels", json_result=True),
            ]
            seen = []
            for call in calls:
                before = len(emulator.requests)
                call()
                seen.append(
                    [(r.method, r.path, r.query, r.body) for r in emulator.requests[before:]]
                )
            client.close()
            return seen

        seen = await asyncio.to_thread(replay)
    for name, requests in zip(REPLAYED, seen, strict=True):
        expected = [
            (r["method"], r["path"], parse_qsl(r["raw_query"]), r["body"])
            for r in entries[name]["requests"]
        ]
        assert requests == expected, name
