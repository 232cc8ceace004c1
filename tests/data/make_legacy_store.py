"""Create a store with the schema-migration registry that preceded the Alembic history.

Run it from a checkout of the commit named in tests/data/legacy_store/README.md (the last
release whose store kept `schema_migrations` and no `alembic_version`), with that checkout
first on the import path:

    git worktree add /tmp/oldmain a2f6707
    cd /tmp/oldmain && /work/main/.venv/bin/python \
        /work/main/tests/data/make_legacy_store.py sqlite:////tmp/legacy.db

It migrates the store with that code and writes at least one row into every table through
the features' own stores, so an upgrade test can read each of them back with today's code.
Every value is fixed (the ids of the alert outbox and promotion plans excepted, which the
code allocates), so the file only changes when the script does. Works on PostgreSQL too:
pass a `postgresql://` URL of an empty database.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from bot.alerts.intake import Intake
from bot.alerts.routing import Router
from bot.alerts.webhook import parse_notification
from bot.backup.catalog import Catalog, PlanRecord
from bot.exceptions.model import ExceptionRequest, RequestId, Scope, State
from bot.exceptions.store import RequestStore
from bot.notices.outbox import NoticeOutbox
from bot.promotion.records import PromotionStore
from bot.store import AuditTrail, open_database
from bot.store.scheduled_runs import scheduled_runs

AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
REQUEST = RequestId("R-1a2b3c4d")


class FixedClock:
    def __init__(self) -> None:
        self._now = AT

    def now(self) -> datetime:
        self._now += timedelta(seconds=1)
        return self._now


ALERT = {
    "version": "4",
    "groupKey": '{}:{alertname="PolicyViolation"}',
    "truncatedAlerts": 0,
    "status": "firing",
    "receiver": "policy-bot",
    "groupLabels": {"alertname": "PolicyViolation"},
    "commonLabels": {"alertname": "PolicyViolation", "severity": "warning"},
    "commonAnnotations": {},
    "externalURL": "http://alertmanager.example:9093",
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "PolicyViolation", "severity": "warning"},
            "annotations": {"summary": "a policy fails"},
            "startsAt": "2026-12-01T08:55:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus.example/graph",
            "fingerprint": "0123456789abcdef",
        }
    ],
}


async def populate(url: str) -> None:
    clock = FixedClock()
    db = await open_database(url)
    try:
        await db.migrate(clock=clock)
        trail = AuditTrail(db, clock=clock)
        for n in range(3):
            await trail.append(
                actor="U0LEGACY",
                action="legacy.fixture",
                outcome="ok",
                environment="dev",
                target=f"entry-{n}",
                details={"n": n},
            )

        raw = json.dumps(ALERT).encode()
        intake = Intake(db, router=Router((), default_channel="C0ALERTS"), clock=clock)
        await intake.store(parse_notification(raw), raw=raw)
        await intake.apply_pending()

        requests = RequestStore(db)
        await requests.insert(
            ExceptionRequest(
                id=REQUEST,
                state=State.PENDING,
                environment="dev",
                policy="require-labels",
                policy_kind="ClusterPolicy",
                scope=Scope(rules=("r",), namespaces=("payments",), kinds=("Deployment",)),
                justification="a justification long enough",
                days=30,
                requester="U0SAM",
                created_at=AT,
                requester_channel="C0PLATFORM",
                jira_key="SEC-1",
            )
        )
        await requests.mark_reminded(REQUEST, [7], now=AT)
        review = await requests.create_review([(REQUEST, "Open")], now=AT)
        await requests.set_review_message(review, channel="C0REVIEW", ts="1700000000.000100")

        catalog = Catalog(db)
        await catalog.record(
            backup_id="20261201T090000Z-legacy",
            started_at=AT,
            finished_at=AT + timedelta(minutes=1),
            trigger="manual",
            actor="U0LEGACY",
            summary={"environments": ["dev"]},
            stored=[{"target": "local", "location": "/backups/20261201T090000Z-legacy"}],
            manifest={"files": {"dev/clusterpolicies/require-labels.yaml": "0" * 64}},
            environments={"dev": (True, 1, None)},
        )
        await catalog.save_plan(
            PlanRecord(
                id="RP-legacy",
                backup_id="20261201T090000Z-legacy",
                environment="dev",
                source="/backups/20261201T090000Z-legacy",
                requested_by="U0LEGACY",
                created_at=AT,
                state="pending",
                items=({"kind": "ClusterPolicy", "name": "require-labels", "action": "create"},),
                decided_by=None,
                decided_at=None,
                result=None,
            )
        )
        last = await trail.head()
        assert last is not None and last.id is not None
        head = (last.id, last.hash)
        await catalog.record_evidence(
            month="2026-11",
            created_at=AT,
            actor="scheduler",
            head=head,
            stored=[{"target": "local", "location": "/evidence/2026-11"}],
        )

        promotion = PromotionStore(db)
        plan_id = await promotion.add_plan(
            body={"policy": "require-labels"},
            kind="ClusterPolicy",
            policy="require-labels",
            target_stage="enforce",
            blocked=False,
            requested_by="U0LEGACY",
            channel="C0PLATFORM",
            at=AT,
        )
        await promotion.record(
            at=AT,
            environment="dev",
            kind="ClusterPolicy",
            policy="require-labels",
            stage="enforce",
            action="promote",
            actor="U0LEGACY",
            plan_id=plan_id,
            resource_version="12345",
        )

        await NoticeOutbox(db, clock=clock).enqueue(
            "C0PLATFORM", "exception R-1a2b3c4d approved", key="legacy-notice"
        )

        async with db.begin() as conn:
            await conn.execute(
                scheduled_runs.insert().values(
                    job="backup",
                    slot="2026-12-01T09:00:00Z",
                    claimed_at=AT,
                    claimed_by="replica-legacy",
                    finished_at=AT + timedelta(minutes=1),
                    outcome="ok",
                )
            )

        async with db.connect() as conn:
            tables = await conn.run_sync(lambda c: sa.inspect(c).get_table_names())
            for table in sorted(tables):
                count = (await conn.execute(sa.text(f"SELECT count(*) FROM {table}"))).scalar()
                print(f"{table}: {count}")
    finally:
        await db.close()


if __name__ == "__main__":
    asyncio.run(populate(sys.argv[1]))
