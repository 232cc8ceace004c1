"""JIRA through the synchronous `jira` library, kept off the event loop and bounded.

`jira` 3.10 is built on blocking `requests` and one shared session, so every call (the
constructor too: it fetches `serverInfo`) runs on this adapter's own single-thread
executor and is bounded twice: by the HTTP timeouts handed to `requests` and by
`asyncio.wait_for` around the whole call. The library's own retries are switched off (they
sleep up to a minute, twice `Retry-After`); this module retries a few times itself, only
where it is safe: 429 and 502/503/504 answers and refused connections, which JIRA never
processed, and read timeouts of reads. A create that timed out is never blindly repeated:
`ensure` searches for the request's fingerprint label before creating, so clicking Approve
again finds the ticket an earlier attempt made instead of filing a second one; a create that
got no answer raises `TicketOutcomeUnknown`, because JIRA Cloud's search is eventually
consistent and may not list that ticket yet (the caller remembers the attempt).

Cloud (`JIRA_USER` + `JIRA_API_TOKEN`, basic auth) and Data Center (`JIRA_TOKEN`, a personal
access token sent as Bearer) differ in authentication and in the search endpoint; the
library picks `/search/jql` on Cloud from `serverInfo.deploymentType`, which is why
`get_server_info` stays on. REST v2 is used on both, so text fields are plain strings.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from functools import partial
from typing import Any, TypeVar

import requests
from jira import JIRA, JIRAError

from bot.errors import BotError
from bot.jira.jql import labelled
from bot.settings import JiraSettings

log = logging.getLogger(__name__)

T = TypeVar("T")

KEY = re.compile(r"^[A-Z][A-Z0-9_]{1,9}-[1-9][0-9]{0,9}$")
"""An issue key such as SEC-1423 (project keys are 2-10 upper-case characters)."""
MAX_SUMMARY = 255
RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
NOFORMAT = "{noformat}"


class TicketTrackerError(BotError):
    """Base of the adapter's errors; `user_message` says what happened and what to do."""


class TicketsUnavailable(TicketTrackerError):
    """JIRA did not answer, answered 5xx, or kept rate limiting: trying later may work."""

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"JIRA is not reachable right now ({reason}). Nothing was changed; "
            "try again in a minute."
        )
        self.reason = reason


class TicketOutcomeUnknown(TicketsUnavailable):
    """A change JIRA may have made although its answer never came (a create or comment that
    timed out): repeating it blindly could make it twice."""

    def __init__(self, reason: str) -> None:
        TicketTrackerError.__init__(
            self,
            f"JIRA is not reachable right now ({reason}); it may have made the change all "
            "the same. Nothing else was changed; try again in a minute: the bot first looks "
            "for what JIRA already has.",
        )
        self.reason = reason


class TicketsRejected(TicketTrackerError):
    """JIRA refused the call (credentials, permissions, project or issue type)."""

    def __init__(self, reason: str) -> None:
        super().__init__(
            f"JIRA refused the bot's request ({reason}). Check the `jira` settings "
            "(project, issue_type) and the bot's JIRA credentials."
        )
        self.reason = reason


class TicketNotFound(TicketTrackerError):
    def __init__(self, key: str) -> None:
        super().__init__(f"JIRA has no issue {key} (or the bot may not see it).")
        self.key = key


@dataclass(frozen=True)
class TicketDraft:
    """A ticket to file. `fingerprint` is a label unique to the request (the dedup key)."""

    fingerprint: str
    summary: str
    description: str
    quoted: str = ""
    labels: tuple[str, ...] = ()
    due: date | None = None


@dataclass(frozen=True)
class Ticket:
    key: str
    status: str
    url: str
    created: bool = False


class JiraTickets:
    """Tickets in one JIRA project. Create in a running loop; `close()` at shutdown."""

    def __init__(
        self,
        settings: JiraSettings,
        *,
        attempts: int = 3,
        max_wait_s: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._settings = settings
        self._attempts = max(1, attempts)
        self._max_wait_s = max_wait_s
        self._sleep = sleep
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="jira")
        self._client: JIRA | None = None
        timeout = settings.timeout_s
        # Every attempt may take the connect and read timeouts plus a wait before the next.
        self._deadline_s = self._attempts * (timeout + min(5.0, timeout) + max_wait_s) + 1.0

    @property
    def project(self) -> str:
        return self._settings.project

    @property
    def base_url(self) -> str:
        return self._settings.url.rstrip("/")

    def browse_url(self, key: str) -> str:
        return f"{self.base_url}/browse/{key}"

    @property
    def search_lag_s(self) -> float:
        return self._settings.search_lag_s

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        client = self._client
        if client is not None:
            await asyncio.get_running_loop().run_in_executor(None, client.close)

    # -- operations --------------------------------------------------------------------

    async def ensure(self, draft: TicketDraft) -> Ticket:
        """The request's ticket: the one carrying its fingerprint label, else a new one.

        Raises TicketOutcomeUnknown when the create got no answer: the issue may exist, and
        JIRA Cloud's search may not list it for a while (see `find`)."""
        existing = await self.find(draft.fingerprint)
        if existing is not None:
            return existing
        return await self._run(partial(self._create, draft), idempotent=False)

    async def find(self, fingerprint: str) -> Ticket | None:
        return await self._run(partial(self._find, fingerprint), idempotent=True)

    async def get(self, key: str) -> Ticket:
        """The issue `key`; raises TicketNotFound when JIRA does not know it."""
        if not KEY.match(key):
            raise TicketNotFound(key)
        return await self._run(partial(self._get, key), idempotent=True)

    async def comment(self, key: str, text: str, *, quoted: str = "") -> None:
        await self._run(partial(self._comment, key, text, quoted), idempotent=False)

    async def transition(self, key: str, names: Sequence[str]) -> str | None:
        """Move the issue through the first transition called one of `names` (any case).

        Workflows differ ("Done", "Close Issue", "Resolve"); None when none matched.
        """
        return await self._run(partial(self._transition, key, tuple(names)), idempotent=False)

    async def check(self) -> str:
        """Who the bot is on JIRA (for `check-config`); raises when it cannot log in."""
        return await self._run(self._whoami, idempotent=True)

    # -- worker-thread side ------------------------------------------------------------

    def _jira(self) -> JIRA:
        if self._client is None:
            s = self._settings
            timeout = (min(5.0, s.timeout_s), s.timeout_s)
            options: dict[str, Any] = {"rest_api_version": "2", "check_update": False}
            if s.user is not None and s.api_token is not None:
                self._client = JIRA(
                    server=s.url,
                    options=options,
                    basic_auth=(s.user, s.api_token.get_secret_value()),
                    timeout=timeout,
                    max_retries=0,
                    logging=False,
                )
            else:
                assert s.token is not None  # settings validation requires one of the two
                self._client = JIRA(
                    server=s.url,
                    options=options,
                    token_auth=s.token.get_secret_value(),
                    timeout=timeout,
                    max_retries=0,
                    logging=False,
                )
        return self._client

    def _find(self, fingerprint: str) -> Ticket | None:
        found: object = self._jira().search_issues(
            labelled(self.project, fingerprint),
            maxResults=1,
            fields="status",
            json_result=True,
        )
        issues = found.get("issues") if isinstance(found, dict) else None
        if not issues:
            return None
        return self._ticket(issues[0])

    def _create(self, draft: TicketDraft) -> Ticket:
        description = draft.description
        if draft.quoted:
            description += f"\n\n{_noformat(draft.quoted)}"
        fields: dict[str, Any] = {
            "project": {"key": self.project},
            "issuetype": {"name": self._settings.issue_type},
            "summary": _one_line(draft.summary, MAX_SUMMARY),
            "description": description,
            "labels": [draft.fingerprint, *draft.labels],
        }
        if draft.due is not None:
            fields["duedate"] = draft.due.isoformat()
        issue = self._jira().create_issue(fields=fields, prefetch=False)
        key = str(issue.key)
        log.info("created JIRA issue", extra={"key": key, "fingerprint": draft.fingerprint})
        return Ticket(key=key, status="", url=self.browse_url(key), created=True)

    def _get(self, key: str) -> Ticket:
        try:
            issue = self._jira().issue(key, fields="status")
        except JIRAError as err:
            if err.status_code == 404:
                raise TicketNotFound(key) from None
            raise
        return self._ticket(issue.raw)

    def _comment(self, key: str, text: str, quoted: str) -> None:
        body = text + (f"\n{_noformat(quoted)}" if quoted else "")
        self._jira().add_comment(key, body)

    def _transition(self, key: str, names: tuple[str, ...]) -> str | None:
        jira = self._jira()
        available = jira.transitions(key)
        by_name = {str(t.get("name", "")).lower(): t for t in available}
        for name in names:
            chosen = by_name.get(name.lower())
            if chosen is not None:
                jira.transition_issue(key, str(chosen["id"]))
                return str(chosen.get("name"))
        log.warning(
            "no matching JIRA transition",
            extra={"key": key, "wanted": list(names), "available": sorted(by_name)},
        )
        return None

    def _whoami(self) -> str:
        me = self._jira().myself()
        return str(me.get("displayName") or me.get("name") or me.get("accountId") or "?")

    def _ticket(self, raw: Any) -> Ticket:
        key = str(raw.get("key", ""))
        status = ((raw.get("fields") or {}).get("status") or {}).get("name") or ""
        return Ticket(key=key, status=str(status), url=self.browse_url(key))

    # -- retries, deadlines, errors ----------------------------------------------------

    async def _run(self, fn: Callable[[], T], *, idempotent: bool) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(
                loop.run_in_executor(self._pool, partial(self._attempt, fn, idempotent)),
                self._deadline_s,
            )
        except TimeoutError:
            reason = f"no answer within {self._deadline_s:.0f} s"
            if not idempotent:
                raise TicketOutcomeUnknown(reason) from None
            raise TicketsUnavailable(reason) from None
        except RuntimeError as err:  # executor shut down: the bot is stopping
            raise TicketsUnavailable(str(err)) from None

    def _attempt(self, fn: Callable[[], T], idempotent: bool) -> T:
        attempt = 0
        while True:
            attempt += 1
            try:
                return fn()
            except JIRAError as err:
                wait = self._retry_wait(err, attempt)
                if wait is None:
                    raise _translate(err) from None
                log.warning(
                    "JIRA answered %s; retrying", err.status_code, extra={"attempt": attempt}
                )
            except requests.exceptions.ConnectionError as err:
                # Connect failures (refused, DNS, connect timeout) never reached JIRA.
                if attempt >= self._attempts:
                    raise TicketsUnavailable(_reason(err)) from None
                wait = min(self._max_wait_s, 0.5 * 2.0 ** (attempt - 1))
            except requests.exceptions.Timeout as err:
                if not idempotent:
                    raise TicketOutcomeUnknown(_reason(err)) from None
                if attempt >= self._attempts:
                    raise TicketsUnavailable(_reason(err)) from None
                wait = 0.0
            except requests.exceptions.RequestException as err:
                raise TicketsUnavailable(_reason(err)) from None
            self._sleep(wait)

    def _retry_wait(self, err: JIRAError, attempt: int) -> float | None:
        """Seconds to wait before retrying `err`, or None when it must not be retried."""
        if err.status_code not in RETRYABLE_STATUS or attempt >= self._attempts:
            return None
        retry_after = _retry_after(err)
        if retry_after is None:
            return min(self._max_wait_s, 0.5 * 2.0 ** (attempt - 1))
        if retry_after > self._max_wait_s:
            return None  # JIRA asks for longer than a person waits for a button
        return retry_after


def _translate(err: JIRAError) -> TicketTrackerError:
    status = err.status_code
    detail = _jira_detail(err)
    if status is None:
        return TicketsRejected(detail or "the client refused the call")
    if status in (401, 403):
        return TicketsRejected(f"HTTP {status}: not allowed{': ' + detail if detail else ''}")
    if status == 429:
        after = _retry_after(err)
        hint = f", retry after {after:g} s" if after is not None else ""
        return TicketsUnavailable(f"rate limited{hint}")
    if status >= 500:
        return TicketsUnavailable(f"HTTP {status}")
    return TicketsRejected(f"HTTP {status}{': ' + detail if detail else ''}")


def _jira_detail(err: JIRAError) -> str:
    response = getattr(err, "response", None)
    try:
        data = response.json() if response is not None else None
    except ValueError:
        data = None
    if isinstance(data, dict):
        parts = [str(m) for m in data.get("errorMessages") or ()]
        parts += [f"{k}: {v}" for k, v in (data.get("errors") or {}).items()]
        if parts:
            return "; ".join(parts)[:300]
    return str(err.text or "")[:300]


def _retry_after(err: JIRAError) -> float | None:
    response = getattr(err, "response", None)
    raw = response.headers.get("Retry-After") if response is not None else None
    try:
        return max(0.0, float(str(raw))) if raw is not None else None
    except ValueError:
        return None


def _reason(err: BaseException) -> str:
    text = str(err)
    if "Connection refused" in text:
        return "connection refused"
    if "timed out" in text.lower():
        return "timed out"
    return f"{type(err).__name__}"


def _one_line(text: str, limit: int) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _noformat(text: str) -> str:
    """User text shown verbatim: no wiki markup (links, macros) can come out of it."""
    return f"{NOFORMAT}\n{text.replace(NOFORMAT, '{ noformat }')}\n{NOFORMAT}"
