"""The quarterly review's message size and the sweep's resilience, with a real store.

The Slack side is a recording `Notifier`; clusters are not needed for requests whose
PolicyException was never created, and an environment that is gone is an error the sweep
logs and retries rather than one that stops it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from bot.exceptions.lifecycle import REVIEW_CHUNK, Lifecycle
from bot.exceptions.model import ExceptionRequest, Review, Scope, State, new_request_id
from bot.exceptions.ports import Event
from bot.exceptions.service import ExceptionService
from bot.exceptions.store import RequestStore
from bot.playground.slack_emulator import validate_blocks
from bot.roles import Role
from bot.settings import ExceptionSettings
from bot.store import Database
from handlers.render.exceptions import review_message

NOW = datetime(2027, 1, 1, 9, 0, tzinfo=UTC)


class Recorder:
    def __init__(self) -> None:
        self.reviews: list[Review] = []
        self.told: list[tuple[str, Event]] = []

    async def post_request(self, request: ExceptionRequest) -> None:
        return None

    async def refresh_request(self, request: ExceptionRequest) -> None:
        return None

    async def tell_requester(
        self, request: ExceptionRequest, event: Event, *, now: datetime
    ) -> None:
        self.told.append((request.id, event))

    async def announce(self, request: ExceptionRequest, event: Event, *, now: datetime) -> None:
        return None

    async def post_review(self, review: Review, *, now: datetime) -> None:
        self.reviews.append(review)

    async def refresh_review(self, review: Review, *, now: datetime) -> None:
        return None


class Everyone:
    async def has(self, user: str, role: Role) -> bool:
        return True

    def describe(self, role: Role) -> str:
        return "everyone"


class Audit:
    def __init__(self) -> None:
        self.entries: list[tuple[str, str]] = []

    async def append(self, *, actor: str, action: str, outcome: str, **_: object) -> None:
        self.entries.append((action, outcome))


def active(**changes: object) -> ExceptionRequest:
    base = ExceptionRequest(
        id=new_request_id(),
        state=State.ACTIVE,
        environment="dev",
        policy="require-labels",
        policy_kind="ClusterPolicy",
        scope=Scope(kinds=("Deployment",)),
        justification="a justification long enough",
        days=30,
        requester="U0SAM",
        created_at=NOW - timedelta(days=40),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def lifecycle(database: Database, recorder: Recorder, audit: Audit) -> Lifecycle:
    service = ExceptionService(
        settings=ExceptionSettings(),
        store=RequestStore(database),
        clusters={},
        tickets=None,
        roles=Everyone(),
        audit=audit,
        notifier=recorder,
        clock=type("Fixed", (), {"now": staticmethod(lambda: NOW)})(),
    )
    return Lifecycle(service, close_transitions=("Done",))


async def test_a_big_review_is_split_into_messages_that_fit(database: Database) -> None:
    store = RequestStore(database)
    for i in range(2 * REVIEW_CHUNK + 5):
        await store.insert(active(expires_at=NOW + timedelta(days=i + 1)))
    recorder, audit = Recorder(), Audit()
    reviews = await lifecycle(database, recorder, audit).start_review(NOW)
    assert [len(r.items) for r in reviews] == [REVIEW_CHUNK, REVIEW_CHUNK, 5]
    assert [r.id for r in recorder.reviews] == [r.id for r in reviews]
    for review in reviews:
        blocks = review_message(review, now=NOW, jira=None).blocks
        assert not validate_blocks(blocks)
        assert sum(b["type"] == "actions" for b in blocks) == len(review.items)
    assert audit.entries.count(("exception.review", "ok")) == 3


async def test_an_empty_review_still_says_so(database: Database) -> None:
    recorder = Recorder()
    reviews = await lifecycle(database, recorder, Audit()).start_review(NOW)
    assert len(reviews) == 1 and reviews[0].items == ()


async def test_the_sweep_goes_on_when_one_environment_is_gone(database: Database) -> None:
    store = RequestStore(database)
    gone = active(environment="removed", state=State.PENDING)
    plain = active(environment="dev", state=State.PENDING)
    for request, name in ((gone, "pe-x"), (plain, "")):
        await store.insert(request)
        assert await store.claim(request.id, approver="U0LEE", now=NOW, lease=timedelta(1))
        assert await store.activate(
            request.id,
            approver="U0LEE",
            now=NOW - timedelta(days=31),
            expires_at=NOW - timedelta(days=1),
            name=name,
            namespace="kyverno-exceptions",
            group="kyverno.io",
        )
    recorder = Recorder()
    expired = await lifecycle(database, recorder, Audit()).sweep(NOW)
    assert [r.id for r in expired] == [plain.id]
    assert (plain.id, Event.EXPIRED) in recorder.told
    left = await store.get(gone.id)
    assert left is not None and left.state is State.ACTIVE
