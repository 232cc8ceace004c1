"""A loopback emulator of the JIRA REST API, enough for the real `jira` 3.10.5 client.

It answers the calls the bot makes, in the shapes the client needs (see
`tests/data/jira/README.md` for where they come from): `serverInfo` (whose
`deploymentType` makes the client pick Data Center or Cloud search), `myself`, `field`,
issue create / get / update, comments, transitions, and search: `/search` on Data Center,
`/search/jql` on Cloud, where the legacy `/search` answers 410 as real Cloud does.
Authentication is checked as configured: a personal access token as Bearer (Data Center)
or basic e-mail + API token (Cloud).

Faults are injected per request pattern: an HTTP status (500, 429 or 503 with
`Retry-After`), a delay, or both; every request is recorded in full so tests assert on
what reached JIRA (one create, a comment with these words).

Served on 127.0.0.1 with an OS-assigned port.
"""

from __future__ import annotations

import asyncio
import base64
import html
import itertools
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from aiohttp import web

JsonDict = dict[str, Any]
Mode = Literal["server", "cloud"]

PAT = "jira-pat-0123456789"
CLOUD_USER = "policy-bot@example.com"
CLOUD_TOKEN = "jira-api-token-0123456789"


@dataclass
class Recorded:
    method: str
    path: str
    query: list[tuple[str, str]]
    body: Any
    auth: str
    status: int = 0

    def param(self, name: str) -> str | None:
        return next((v for k, v in self.query if k == name), None)


@dataclass
class Comment:
    id: str
    body: str
    created: str


@dataclass
class Issue:
    id: str
    key: str
    fields: JsonDict
    comments: list[Comment] = field(default_factory=list)
    transitions_done: list[str] = field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        return list(self.fields.get("labels") or [])

    @property
    def status(self) -> str:
        return str(self.fields["status"]["name"])


@dataclass
class Fault:
    pattern: re.Pattern[str]
    method: str | None
    status: int | None
    delay_s: float
    retry_after: str | None
    remaining: int | None  # None: until cleared
    after: bool = False  # delay after doing the work: the answer is late, the change is made

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and bool(self.pattern.search(path))


WORKFLOW = ("To Do", "In Progress", "Done")
TRANSITIONS = {"11": "In Progress", "31": "Done"}


class JqlError(ValueError):
    pass


_TOKEN = re.compile(
    r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<op>!=|=)|(?P<word>[A-Za-z0-9_.-]+))', re.DOTALL
)


def parse_jql(jql: str) -> tuple[list[tuple[str, str, str]], str | None]:
    """`field op value` clauses joined by AND, plus an optional ORDER BY field.

    The subset the bot writes; anything else is a 400, as an unknown JQL is on JIRA.
    """
    tokens: list[tuple[str, str]] = []
    pos = 0
    text = jql.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise JqlError(f"Error in the JQL Query: unexpected character at {pos}")
        kind = m.lastgroup or ""
        value = m.group(kind)
        if kind == "str":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        tokens.append((kind, value))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    clauses: list[tuple[str, str, str]] = []
    order: str | None = None
    i = 0
    while i < len(tokens):
        kind, value = tokens[i]
        if kind == "word" and value.upper() == "ORDER":
            if i + 2 >= len(tokens) or tokens[i + 1][1].upper() != "BY":
                raise JqlError("Error in the JQL Query: expected ORDER BY <field>")
            order = tokens[i + 2][1]
            i += 3
            if i < len(tokens) and tokens[i][1].upper() in ("ASC", "DESC"):
                i += 1
            if i != len(tokens):
                raise JqlError("Error in the JQL Query: text after ORDER BY")
            break
        if i + 2 >= len(tokens):
            raise JqlError("Error in the JQL Query: incomplete clause")
        name, op, val = tokens[i], tokens[i + 1], tokens[i + 2]
        if name[0] != "word" or op[0] != "op" or val[0] not in ("str", "word"):
            raise JqlError(f"Error in the JQL Query: cannot parse clause at {name[1]!r}")
        clauses.append((name[1], op[1], val[1]))
        i += 3
        if i < len(tokens) and tokens[i][1].upper() == "AND":
            i += 1
            continue
        if i < len(tokens) and tokens[i][1].upper() != "ORDER":
            raise JqlError(f"Error in the JQL Query: only AND is supported, got {tokens[i][1]!r}")
    return clauses, order


class JiraEmulator:
    """Start with `await start()`; point the bot at `url`; inspect `issues` and `requests`."""

    def __init__(
        self,
        *,
        mode: Mode = "server",
        projects: Iterable[str] = ("SEC",),
        pat: str = PAT,
        user: str = CLOUD_USER,
        api_token: str = CLOUD_TOKEN,
    ) -> None:
        self.mode: Mode = mode
        self.projects = set(projects)
        self._pat = pat
        self._basic = base64.b64encode(f"{user}:{api_token}".encode()).decode()
        self.issues: dict[str, Issue] = {}
        self.requests: list[Recorded] = []
        self._faults: list[Fault] = []
        # JIRA Cloud's search is eventually consistent: with `search_lags`, a new issue is
        # readable by key at once but found by JQL only after `index()` (the indexer caught up).
        self.search_lags = False
        self._unindexed: set[str] = set()
        self._ids = itertools.count(10001)
        self._numbers: dict[str, itertools.count[int]] = {}
        self._comment_ids = itertools.count(20001)
        self._runner: web.AppRunner | None = None
        self.url = ""

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/browse/{key}", self._browse)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> JiraEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- faults ----------------------------------------------------------------------------

    def fail(
        self,
        status: int | None = 500,
        *,
        path: str = ".*",
        method: str | None = None,
        times: int | None = 1,
        delay_s: float = 0.0,
        retry_after: float | None = None,
        after: bool = False,
    ) -> Fault:
        """Answer matching requests with `status` (None: answer normally) after `delay_s`.

        `times=None` keeps the fault until `clear()`. With `after`, the request is carried
        out first and only its answer is late (a create whose response the client gave up
        on: the issue exists).
        """
        fault = Fault(
            pattern=re.compile(path),
            method=method,
            status=status,
            delay_s=delay_s,
            retry_after=None if retry_after is None else f"{retry_after:g}",
            remaining=times,
            after=after,
        )
        self._faults.append(fault)
        return fault

    def slow(self, seconds: float, *, path: str = ".*", times: int | None = None) -> Fault:
        return self.fail(None, path=path, times=times, delay_s=seconds)

    def clear(self) -> None:
        self._faults.clear()

    def index(self) -> None:
        """Let search find every issue created so far (see `search_lags`)."""
        self._unindexed.clear()

    # -- inspection ------------------------------------------------------------------------

    def calls(self, method: str | None = None, path: str | None = None) -> list[Recorded]:
        return [
            r
            for r in self.requests
            if (method is None or r.method == method) and (path is None or re.search(path, r.path))
        ]

    def creates(self) -> list[Recorded]:
        return [r for r in self.calls("POST", r"/issue$") if r.status == 201]

    def with_label(self, label: str) -> list[Issue]:
        return [i for i in self.issues.values() if label in i.labels]

    def add_issue(self, key: str, *, summary: str = "existing", status: str = "To Do") -> Issue:
        project, _, _ = key.partition("-")
        issue = Issue(
            id=str(next(self._ids)),
            key=key,
            fields=self._fields(project, summary, "", [], None, status),
        )
        self.issues[key] = issue
        return issue

    # -- dispatch --------------------------------------------------------------------------

    async def _browse(self, request: web.Request) -> web.Response:
        """The issue page a person opens from a link (not the REST API, so not recorded)."""
        issue = self.issues.get(request.match_info["key"])
        if issue is None:
            return web.Response(status=404, text="no such issue")
        text = html.escape
        description = str(issue.fields.get("description") or "")
        comments = "".join(
            f"<li><small>{text(c.created)}</small><br>{text(c.body)}</li>" for c in issue.comments
        )
        page = (
            f"<!doctype html><title>{text(issue.key)}</title>"
            f"<body style='font-family:sans-serif;max-width:760px;margin:2em auto'>"
            f"<p>{text(issue.key)} · {text(issue.status)}</p>"
            f"<h1>{text(str(issue.fields.get('summary', '')))}</h1>"
            f"<pre style='white-space:pre-wrap'>{text(description)}</pre>"
            f"<p>Labels: {text(', '.join(issue.labels))}</p><h2>Comments</h2><ul>{comments}</ul>"
        )
        return web.Response(text=page, content_type="text/html")

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
        record = Recorded(
            method=request.method,
            path=request.path,
            query=list(request.query.items()),
            body=body,
            auth=request.headers.get("Authorization", "").split(" ", 1)[0],
        )
        self.requests.append(record)
        response = await self._answer(request, record)
        record.status = response.status
        return response

    async def _answer(self, request: web.Request, record: Recorded) -> web.Response:
        fault = next((f for f in self._faults if f.matches(record.method, record.path)), None)
        if fault is not None:
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
            if fault.after:
                response = await self._answer_normally(request, record)
                await asyncio.sleep(fault.delay_s)
                return response
            if fault.delay_s:
                await asyncio.sleep(fault.delay_s)
            if fault.status is not None:
                headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
                return _error(fault.status, f"injected HTTP {fault.status}", headers=headers)
        return await self._answer_normally(request, record)

    async def _answer_normally(self, request: web.Request, record: Recorded) -> web.Response:
        if not self._authorized(request):
            return _error(401, "You are not authenticated. Authentication required to perform.")
        m = re.fullmatch(r"/rest/api/(2|3|latest)/(.*)", record.path)
        if m is None:
            return _error(404, f"no REST resource at {record.path}")
        route = m.group(2)
        try:
            return self._route(record, route)
        except JqlError as err:
            return _error(400, str(err))

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if self.mode == "server":
            return header == f"Bearer {self._pat}"
        return header == f"Basic {self._basic}"

    def _route(self, record: Recorded, route: str) -> web.Response:
        method = record.method
        if route == "serverInfo" and method == "GET":
            return self._server_info()
        if route == "myself" and method == "GET":
            return web.json_response(
                {"name": "policy-bot", "displayName": "Policy Bot", "accountId": "5b10ac8d82e05b"}
            )
        if route == "field" and method == "GET":
            return web.json_response(
                [
                    {
                        "id": "summary",
                        "name": "Summary",
                        "custom": False,
                        "clauseNames": ["summary"],
                    },
                    {"id": "labels", "name": "Labels", "custom": False, "clauseNames": ["labels"]},
                    {"id": "status", "name": "Status", "custom": False, "clauseNames": ["status"]},
                ]
            )
        if route == "issue" and method == "POST":
            return self._create(record.body)
        if route == "search" and method in ("GET", "POST"):
            if self.mode == "cloud":
                return _error(
                    410,
                    "The requested API has been removed. Please migrate to the "
                    "/rest/api/3/search/jql API.",
                )
            return self._search(record, cloud=False)
        if route == "search/jql" and method in ("GET", "POST"):
            if self.mode != "cloud":
                return _error(404, "null for uri: search/jql")
            return self._search(record, cloud=True)
        m = re.fullmatch(r"issue/([^/]+)(/comment|/transitions)?", route)
        if m is not None:
            issue = self._issue(m.group(1))
            if issue is None:
                return _error(404, "Issue does not exist or you do not have permission to see it.")
            sub = m.group(2)
            if sub is None and method == "GET":
                return web.json_response(self._issue_json(issue))
            if sub is None and method == "PUT":
                issue.fields.update((record.body or {}).get("fields") or {})
                return web.Response(status=204)
            if sub == "/comment" and method == "POST":
                return self._comment(issue, record.body)
            if sub == "/transitions" and method == "GET":
                return web.json_response({"transitions": self._transitions(issue)})
            if sub == "/transitions" and method == "POST":
                return self._transition(issue, record.body)
        return _error(404, f"no REST resource {method} {route}")

    # -- resources -------------------------------------------------------------------------

    def _server_info(self) -> web.Response:
        if self.mode == "cloud":
            info = {"version": "1001.0.0-SNAPSHOT", "versionNumbers": [1001, 0, 0]}
            kind = "Cloud"
        else:
            info = {"version": "9.12.2", "versionNumbers": [9, 12, 2]}
            kind = "Server"
        return web.json_response(
            {"baseUrl": self.url, **info, "deploymentType": kind, "serverTitle": "Emulated JIRA"}
        )

    def _fields(
        self,
        project: str,
        summary: str,
        description: str,
        labels: list[str],
        due: str | None,
        status: str = "To Do",
    ) -> JsonDict:
        category = "done" if status == "Done" else "new"
        return {
            "summary": summary,
            "description": description,
            "labels": labels,
            "duedate": due,
            "status": {"name": status, "statusCategory": {"key": category}},
            "issuetype": {"name": "Task"},
            "project": {"key": project},
            "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
        }

    def _create(self, body: Any) -> web.Response:
        fields = (body or {}).get("fields") if isinstance(body, dict) else None
        if not isinstance(fields, dict):
            return _error(400, "fields are required")
        project = str((fields.get("project") or {}).get("key") or "")
        errors: dict[str, str] = {}
        if project not in self.projects:
            errors["project"] = "valid project is required"
        if not (fields.get("issuetype") or {}).get("name"):
            errors["issuetype"] = "valid issue type is required"
        summary = str(fields.get("summary") or "")
        if not summary.strip():
            errors["summary"] = "You must specify a summary of the issue."
        elif len(summary) > 255 or "\n" in summary:
            errors["summary"] = "Summary must be less than 255 characters, on one line."
        labels = fields.get("labels") or []
        if any(not isinstance(lb, str) or " " in lb for lb in labels):
            errors["labels"] = "Labels cannot contain spaces."
        if errors:
            return _error(400, None, errors=errors)
        number = next(self._numbers.setdefault(project, itertools.count(1)))
        key = f"{project}-{number}"
        issue = Issue(
            id=str(next(self._ids)),
            key=key,
            fields=self._fields(
                project,
                summary,
                str(fields.get("description") or ""),
                list(labels),
                fields.get("duedate"),
            ),
        )
        self.issues[key] = issue
        if self.search_lags:
            self._unindexed.add(key)
        return web.json_response(
            {"id": issue.id, "key": key, "self": f"{self.url}/rest/api/2/issue/{issue.id}"},
            status=201,
        )

    def _issue(self, key_or_id: str) -> Issue | None:
        if key_or_id in self.issues:
            return self.issues[key_or_id]
        return next((i for i in self.issues.values() if i.id == key_or_id), None)

    def _issue_json(self, issue: Issue) -> JsonDict:
        return {
            "id": issue.id,
            "key": issue.key,
            "self": f"{self.url}/rest/api/2/issue/{issue.id}",
            "fields": issue.fields,
        }

    def _search(self, record: Recorded, *, cloud: bool) -> web.Response:
        jql = record.param("jql") or ""
        clauses, _ = parse_jql(jql)
        found = [
            i
            for i in self.issues.values()
            if i.key not in self._unindexed and all(_holds(i, c) for c in clauses)
        ]
        found.sort(key=lambda i: int(i.id))
        max_results = int(record.param("maxResults") or 50)
        shown = [self._issue_json(i) for i in found[:max_results]]
        if cloud:
            return web.json_response({"issues": shown, "isLast": len(found) <= max_results})
        start = int(record.param("startAt") or 0)
        return web.json_response(
            {"startAt": start, "maxResults": max_results, "total": len(found), "issues": shown}
        )

    def _comment(self, issue: Issue, body: Any) -> web.Response:
        text = (body or {}).get("body") if isinstance(body, dict) else None
        if not isinstance(text, str) or not text.strip():
            return _error(400, None, errors={"comment": "Comment body can not be empty!"})
        comment = Comment(
            id=str(next(self._comment_ids)),
            body=text,
            created=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
        )
        issue.comments.append(comment)
        return web.json_response(
            {
                "id": comment.id,
                "self": f"{self.url}/rest/api/2/issue/{issue.id}/comment/{comment.id}",
                "body": text,
                "created": comment.created,
            },
            status=201,
        )

    def _transitions(self, issue: Issue) -> list[JsonDict]:
        return [
            {
                "id": tid,
                "name": name,
                "to": {
                    "name": name,
                    "statusCategory": {"key": "done" if name == "Done" else "indeterminate"},
                },
            }
            for tid, name in TRANSITIONS.items()
            if name != issue.status
        ]

    def _transition(self, issue: Issue, body: Any) -> web.Response:
        tid = str(((body or {}).get("transition") or {}).get("id", ""))
        if tid not in {t["id"] for t in self._transitions(issue)}:
            return _error(400, f"Transition id '{tid}' is not valid for this issue.")
        name = TRANSITIONS[tid]
        category = "done" if name == "Done" else "indeterminate"
        issue.fields["status"] = {"name": name, "statusCategory": {"key": category}}
        issue.transitions_done.append(name)
        return web.Response(status=204)


def _holds(issue: Issue, clause: tuple[str, str, str]) -> bool:
    name, op, value = clause
    lowered = name.lower()
    if lowered == "project":
        actual = [str(issue.fields["project"]["key"])]
    elif lowered == "labels":
        actual = issue.labels
    elif lowered == "key":
        actual = [issue.key]
    elif lowered == "statuscategory":
        actual = [str(issue.fields["status"]["statusCategory"]["key"])]
        value = {"done": "done", "to do": "new", "in progress": "indeterminate"}.get(
            value.lower(), value
        )
    elif lowered == "status":
        actual = [issue.status]
    else:
        raise JqlError(f"Field '{name}' does not exist or you do not have permission to view it.")
    hit = value in actual
    return hit if op == "=" else not hit


def _error(
    status: int,
    message: str | None,
    *,
    errors: JsonDict | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    return web.json_response(
        {"errorMessages": [message] if message else [], "errors": errors or {}},
        status=status,
        headers=headers,
    )
