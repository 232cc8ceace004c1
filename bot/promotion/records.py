"""Promotion state in the store: plans (what was shown, and what became of it) and records
(the bot's own history of which stage it put a policy into, and when).

The tables are created and changed by the revisions in `bot/store/schema_history/`.

A plan moves `pending` -> `applying` -> `applied` (or `failed`), or `pending` -> `cancelled`
/ `stale`. The move out of `pending` is one conditional UPDATE, so of two people clicking
Promote at the same moment exactly one proceeds; the other is told who did.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from bot.ladder import StageRecord
from bot.store.database import Database, UtcDateTime
from bot.store.schema import metadata

_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

PENDING = "pending"
APPLYING = "applying"
APPLIED = "applied"
CANCELLED = "cancelled"
STALE = "stale"
FAILED = "failed"


def _plan_columns_v1() -> list[sa.Column[Any] | sa.Index]:
    """The columns of `promotion_plans`; the schema history creates them."""
    return [
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("requested_by", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("message_ts", sa.String(32), nullable=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("policy", sa.String(512), nullable=False),
        sa.Column("target_stage", sa.String(80), nullable=False),
        sa.Column("blocked", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("decided_by", sa.String(64), nullable=True),
        sa.Column("decided_at", UtcDateTime(), nullable=True),
        sa.Column("override_by", sa.String(64), nullable=True),
        sa.Column("override_reason", sa.Text(), nullable=True),
        sa.Column("superseded_by", sa.String(16), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Index("ix_promotion_plans_policy", "kind", "policy"),
    ]


def _record_columns_v1() -> list[sa.Column[Any] | sa.Index]:
    """The columns of `promotion_records`; the schema history creates them."""
    return [
        sa.Column("id", _Id, primary_key=True, autoincrement=True),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("environment", sa.String(63), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("policy", sa.String(512), nullable=False),
        sa.Column("stage", sa.String(80), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("plan_id", sa.String(16), nullable=True),
        sa.Column("resource_version", sa.String(64), nullable=False),
        sa.Index("ix_promotion_records_policy", "kind", "policy", "environment", "at"),
    ]


promotion_plans = sa.Table("promotion_plans", metadata, *_plan_columns_v1())
promotion_records = sa.Table("promotion_records", metadata, *_record_columns_v1())
"""The live definitions; a change here needs a revision in `bot/store/schema_history/`."""


@dataclass(frozen=True)
class PlanRow:
    id: str
    created_at: datetime
    requested_by: str
    channel: str
    message_ts: str | None
    state: str
    body: Mapping[str, Any]
    decided_by: str | None
    decided_at: datetime | None
    override_by: str | None
    override_reason: str | None
    superseded_by: str | None


class PromotionStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    # -- plans -------------------------------------------------------------------------

    async def add_plan(
        self,
        *,
        body: Mapping[str, Any],
        kind: str,
        policy: str,
        target_stage: str,
        blocked: bool,
        requested_by: str,
        channel: str,
        at: datetime,
    ) -> str:
        """Store a plan under a fresh short id (`P-` and six hex digits) and return the id."""
        for _ in range(5):
            plan_id = f"P-{secrets.token_hex(3).upper()}"
            values = {
                "id": plan_id,
                "created_at": at,
                "requested_by": requested_by,
                "channel": channel,
                "kind": kind,
                "policy": policy,
                "target_stage": target_stage,
                "blocked": blocked,
                "state": PENDING,
                "body": {**body, "id": plan_id},
            }
            try:
                async with self._db.begin() as conn:
                    await conn.execute(promotion_plans.insert().values(values))
            except IntegrityError:
                continue
            return plan_id
        raise RuntimeError("could not allocate a plan id")  # 16.7 M ids: a bug, not bad luck

    async def plan(self, plan_id: str) -> PlanRow | None:
        query = sa.select(promotion_plans).where(promotion_plans.c.id == plan_id)
        async with self._db.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        if row is None:
            return None
        return PlanRow(
            id=row["id"],
            created_at=row["created_at"],
            requested_by=row["requested_by"],
            channel=row["channel"],
            message_ts=row["message_ts"],
            state=row["state"],
            body=row["body"],
            decided_by=row["decided_by"],
            decided_at=row["decided_at"],
            override_by=row["override_by"],
            override_reason=row["override_reason"],
            superseded_by=row["superseded_by"],
        )

    async def attach_message(self, plan_id: str, *, channel: str, ts: str) -> None:
        async with self._db.begin() as conn:
            await conn.execute(
                promotion_plans.update()
                .where(promotion_plans.c.id == plan_id)
                .values(channel=channel, message_ts=ts)
            )

    async def claim(
        self,
        plan_id: str,
        *,
        user: str,
        at: datetime,
        to: str = APPLYING,
        override_reason: str | None = None,
    ) -> bool:
        """Move a pending plan to `to`; False when someone else moved it first."""
        values: dict[str, Any] = {"state": to, "decided_by": user, "decided_at": at}
        if override_reason is not None:
            values |= {"override_by": user, "override_reason": override_reason}
        async with self._db.begin() as conn:
            result = await conn.execute(
                promotion_plans.update()
                .where(promotion_plans.c.id == plan_id, promotion_plans.c.state == PENDING)
                .values(values)
            )
        return bool(result.rowcount)

    async def take_over(
        self, plan_id: str, *, user: str, at: datetime, claimed_at: datetime
    ) -> bool:
        """Take an `applying` plan claimed at `claimed_at` (an apply that never finished) over
        for `user`; False when it finished or somebody took it over meanwhile."""
        p = promotion_plans.c
        async with self._db.begin() as conn:
            result = await conn.execute(
                promotion_plans.update()
                .where(p.id == plan_id, p.state == APPLYING, p.decided_at == claimed_at)
                .values(decided_by=user, decided_at=at)
            )
        return bool(result.rowcount)

    async def release(self, plan_id: str) -> None:
        """Back to pending after a write that did not happen (cluster down), for a retry."""
        async with self._db.begin() as conn:
            await conn.execute(
                promotion_plans.update()
                .where(promotion_plans.c.id == plan_id, promotion_plans.c.state == APPLYING)
                .values(
                    state=PENDING,
                    decided_by=None,
                    decided_at=None,
                    override_by=None,
                    override_reason=None,
                )
            )

    async def finish(
        self,
        plan_id: str,
        *,
        state: str,
        result: Mapping[str, Any] | None = None,
        superseded_by: str | None = None,
    ) -> None:
        async with self._db.begin() as conn:
            await conn.execute(
                promotion_plans.update()
                .where(promotion_plans.c.id == plan_id)
                .values(
                    state=state,
                    result=dict(result) if result is not None else None,
                    superseded_by=superseded_by,
                )
            )

    # -- records -----------------------------------------------------------------------

    async def record(
        self,
        *,
        at: datetime,
        environment: str,
        kind: str,
        policy: str,
        stage: str,
        action: str,
        actor: str,
        plan_id: str | None,
        resource_version: str,
    ) -> None:
        """Record a write; a write is recorded once, however often it is finished: a plan's
        by its plan, one without a plan (a demote) by its stage time."""
        r = promotion_records.c
        async with self._db.begin() as conn:
            same = (
                sa.select(r.id).where(
                    r.plan_id == plan_id, r.environment == environment, r.stage == stage
                )
                if plan_id is not None
                else sa.select(r.id).where(
                    r.plan_id.is_(None),
                    r.environment == environment,
                    r.kind == kind,
                    r.policy == policy,
                    r.stage == stage,
                    r.action == action,
                    r.at == at,
                )
            )
            if (await conn.execute(same)).first() is not None:
                return
            await conn.execute(
                promotion_records.insert().values(
                    at=at,
                    environment=environment,
                    kind=kind,
                    policy=policy,
                    stage=stage,
                    action=action,
                    actor=actor,
                    plan_id=plan_id,
                    resource_version=resource_version,
                )
            )

    async def latest_records(self, *, kind: str, policy: str) -> dict[str, StageRecord]:
        """The bot's latest record per environment for one policy."""
        r = promotion_records.c
        query = (
            sa.select(r.environment, r.stage, r.at, r.actor, r.action)
            .where(r.kind == kind, r.policy == policy)
            .order_by(r.at, r.id)
        )
        async with self._db.connect() as conn:
            rows = (await conn.execute(query)).all()
        latest: dict[str, StageRecord] = {}
        for environment, stage, at, actor, action in rows:
            latest[str(environment)] = StageRecord(str(stage), at, str(actor), str(action))
        return latest
