"""The backup catalog in the store: what was backed up when, where it went, restore plans.

Rows are written once per backup (in one transaction) and read by the next backup (its
diff), by `/policy status` (age of the last good backup) and by restore (where to load a
backup from). Only the newest `MANIFESTS_KEPT` backups keep their MANIFEST in the store;
older ones still list where their bundles are.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from bot.backup.tables import backup_environments, backups, evidence_packs, restore_plans
from bot.store.database import Database

MANIFESTS_KEPT = 60


@dataclass(frozen=True)
class CatalogEntry:
    id: str
    started_at: datetime
    finished_at: datetime
    trigger: str
    actor: str
    summary: Mapping[str, Any]
    stored: tuple[Mapping[str, Any], ...]


@dataclass(frozen=True)
class PlanRecord:
    id: str
    backup_id: str
    environment: str
    source: str
    requested_by: str
    created_at: datetime
    state: str  # pending, applying, applied, failed
    items: tuple[Mapping[str, Any], ...]
    decided_by: str | None
    decided_at: datetime | None
    result: Mapping[str, Any] | None


class Catalog:
    def __init__(self, database: Database) -> None:
        self._db = database

    # -- backups -----------------------------------------------------------------------

    async def record(
        self,
        *,
        backup_id: str,
        started_at: datetime,
        finished_at: datetime,
        trigger: str,
        actor: str,
        summary: Mapping[str, Any],
        stored: Sequence[Mapping[str, Any]],
        manifest: Mapping[str, Any],
        environments: Mapping[str, tuple[bool, int, str | None]],
    ) -> None:
        """Store a finished backup; `environments` maps name -> (ok, objects, error)."""
        packed = gzip.compress(json.dumps(manifest, sort_keys=True).encode(), mtime=0)
        async with self._db.begin() as conn:
            await conn.execute(
                backups.insert().values(
                    id=backup_id,
                    started_at=started_at,
                    finished_at=finished_at,
                    trigger=trigger,
                    actor=actor,
                    summary=dict(summary),
                    stored=list(stored),
                    manifest=packed,
                )
            )
            if environments:
                await conn.execute(
                    backup_environments.insert(),
                    [
                        {
                            "backup_id": backup_id,
                            "environment": env,
                            "ok": ok,
                            "finished_at": finished_at,
                            "objects": objects,
                            "error": error,
                        }
                        for env, (ok, objects, error) in environments.items()
                    ],
                )
            keep = (
                sa.select(backups.c.id)
                .order_by(backups.c.started_at.desc(), backups.c.id.desc())
                .limit(MANIFESTS_KEPT)
                .scalar_subquery()
            )
            await conn.execute(
                backups.update()
                .where(backups.c.manifest.is_not(None), backups.c.id.not_in(keep))
                .values(manifest=None)
            )

    async def exists(self, backup_id: str) -> bool:
        async with self._db.connect() as conn:
            row = (
                await conn.execute(sa.select(backups.c.id).where(backups.c.id == backup_id))
            ).first()
        return row is not None

    async def get(self, backup_id: str) -> CatalogEntry | None:
        async with self._db.connect() as conn:
            row = (await conn.execute(sa.select(*_ENTRY).where(backups.c.id == backup_id))).first()
        return None if row is None else _entry(row)

    async def recent(self, limit: int = 10) -> list[CatalogEntry]:
        query = sa.select(*_ENTRY).order_by(backups.c.started_at.desc()).limit(limit)
        async with self._db.connect() as conn:
            return [_entry(r) for r in (await conn.execute(query)).all()]

    async def previous_manifest(
        self, environment: str, *, before: str
    ) -> tuple[str, Mapping[str, Any]] | None:
        """(id, MANIFEST) of the newest good backup of `environment` older than `before`."""
        query = (
            sa.select(backups.c.id, backups.c.manifest)
            .join(backup_environments, backup_environments.c.backup_id == backups.c.id)
            .where(
                backup_environments.c.environment == environment,
                backup_environments.c.ok.is_(True),
                backups.c.id < before,
                backups.c.manifest.is_not(None),
            )
            .order_by(backups.c.id.desc())
            .limit(1)
        )
        async with self._db.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        return str(row.id), json.loads(gzip.decompress(row.manifest))

    async def latest_good(self, environment: str) -> str | None:
        """The id of the newest backup that read `environment` successfully."""
        query = (
            sa.select(backup_environments.c.backup_id)
            .where(
                backup_environments.c.environment == environment,
                backup_environments.c.ok.is_(True),
            )
            .order_by(
                backup_environments.c.finished_at.desc(), backup_environments.c.backup_id.desc()
            )
            .limit(1)
        )
        async with self._db.connect() as conn:
            value = (await conn.execute(query)).scalar_one_or_none()
        return None if value is None else str(value)

    async def last_success(self, environment: str) -> datetime | None:
        query = sa.select(sa.func.max(backup_environments.c.finished_at)).where(
            backup_environments.c.environment == environment,
            backup_environments.c.ok.is_(True),
        )
        async with self._db.connect() as conn:
            value: datetime | None = (await conn.execute(query)).scalar_one_or_none()
        return value

    async def last_successes(self) -> dict[str, datetime]:
        """`last_success` of every environment backed up at least once, in one query."""
        query = (
            sa.select(
                backup_environments.c.environment, sa.func.max(backup_environments.c.finished_at)
            )
            .where(backup_environments.c.ok.is_(True))
            .group_by(backup_environments.c.environment)
        )
        async with self._db.connect() as conn:
            rows = (await conn.execute(query)).all()
        return {str(environment): at for environment, at in rows if at is not None}

    # -- restore plans -----------------------------------------------------------------

    async def save_plan(self, plan: PlanRecord) -> None:
        async with self._db.begin() as conn:
            await conn.execute(
                restore_plans.insert().values(
                    id=plan.id,
                    backup_id=plan.backup_id,
                    environment=plan.environment,
                    source=plan.source,
                    requested_by=plan.requested_by,
                    created_at=plan.created_at,
                    state=plan.state,
                    items=[dict(i) for i in plan.items],
                )
            )

    async def plan(self, plan_id: str) -> PlanRecord | None:
        async with self._db.connect() as conn:
            row = (
                await conn.execute(sa.select(restore_plans).where(restore_plans.c.id == plan_id))
            ).first()
        if row is None:
            return None
        return PlanRecord(
            id=row.id,
            backup_id=row.backup_id,
            environment=row.environment,
            source=row.source,
            requested_by=row.requested_by,
            created_at=row.created_at,
            state=row.state,
            items=tuple(row.items or ()),
            decided_by=row.decided_by,
            decided_at=row.decided_at,
            result=row.result,
        )

    async def claim_plan(self, plan_id: str, *, user: str, at: datetime) -> bool:
        """Move a pending plan to `applying` for `user`; False when someone else got there first."""
        async with self._db.begin() as conn:
            result = await conn.execute(
                restore_plans.update()
                .where(restore_plans.c.id == plan_id, restore_plans.c.state == "pending")
                .values(state="applying", decided_by=user, decided_at=at)
            )
        return bool(result.rowcount)

    async def finish_plan(self, plan_id: str, *, state: str, result: Mapping[str, Any]) -> None:
        async with self._db.begin() as conn:
            await conn.execute(
                restore_plans.update()
                .where(restore_plans.c.id == plan_id)
                .values(state=state, result=dict(result))
            )

    # -- evidence packs ----------------------------------------------------------------

    async def record_evidence(
        self,
        *,
        month: str,
        created_at: datetime,
        actor: str,
        head: tuple[int, str] | None,
        stored: Sequence[Mapping[str, Any]],
    ) -> None:
        async with self._db.begin() as conn:
            await conn.execute(
                evidence_packs.insert().values(
                    month=month,
                    created_at=created_at,
                    actor=actor,
                    head_id=head[0] if head else None,
                    head_hash=head[1] if head else None,
                    stored=list(stored),
                )
            )

    async def published_heads(self) -> dict[int, str]:
        """Every audit chain head handed out in an evidence pack (id -> hash)."""
        query = sa.select(evidence_packs.c.head_id, evidence_packs.c.head_hash).where(
            evidence_packs.c.head_id.is_not(None)
        )
        async with self._db.connect() as conn:
            return {int(r.head_id): str(r.head_hash) for r in (await conn.execute(query)).all()}


_ENTRY = (
    backups.c.id,
    backups.c.started_at,
    backups.c.finished_at,
    backups.c.trigger,
    backups.c.actor,
    backups.c.summary,
    backups.c.stored,
)


def _entry(row: Any) -> CatalogEntry:
    return CatalogEntry(
        id=row.id,
        started_at=row.started_at,
        finished_at=row.finished_at,
        trigger=row.trigger,
        actor=row.actor,
        summary=row.summary or {},
        stored=tuple(row.stored or ()),
    )
