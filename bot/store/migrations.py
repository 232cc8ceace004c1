"""Numbered schema migrations, applied in order at start and recorded in `schema_migrations`.

Each feature owns a range of versions and contributes plain functions that take a sync
`sqlalchemy.Connection`; this module lists them in `MIGRATIONS`. Ranges:

    1-99     core and audit trail
    100-199  alert relay
    200-299  exceptions
    300-399  backups
    400-499  promotion
    500-599  notices (the outbox of messages to people)

Rules for writing one:
- Never edit or renumber a migration that has shipped; add a new one.
- Do not create tables from the live `metadata` definition unless it is the table's first
  and only shape: when a later migration adds a column, the first one must keep creating
  the old shape, or a fresh database would get the column twice. Freeze the first shape
  in a function (see `bot.store.audit_trail`) or write explicit DDL.
- Branch on `conn.dialect.name` for SQLite/PostgreSQL differences (triggers, indexes).

Versions are applied by set, not by maximum: a database at {1, 2, 100} gets 3 when a release
adds it. A database holding a version this code does not know was migrated by a newer
release, and starting against it is refused (`SchemaTooNew`).

Each migration runs in its own transaction (both backends have transactional DDL), so a
failure leaves the schema at the last complete version. With several replicas on
PostgreSQL, an advisory lock makes the others wait while one migrates; on SQLite,
`BEGIN IMMEDIATE` plus a re-check inside the transaction does the same.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.alerts import migrations as alert_migrations
from bot.backup import migrations as backup_migrations
from bot.clock import Clock
from bot.exceptions import migrations as exception_migrations
from bot.notices import migrations as notice_migrations
from bot.promotion import migrations as promotion_migrations
from bot.store import audit_trail
from bot.store.database import UtcDateTime
from bot.store.errors import MigrationFailed, SchemaTooNew, StoreUnavailable
from bot.store.scheduled_runs import create_scheduled_runs_v1
from bot.store.schema import metadata

if TYPE_CHECKING:
    from bot.store.database import Database

log = logging.getLogger(__name__)

MIGRATION_LOCK = "schema-migrations"
LOCK_WAIT_S: Final = 120.0
"""How long a replica waits for another one that is migrating before giving up."""
MIGRATION_TIMEOUT_S: Final = 600.0
"""Upper bound for one migration; data migrations on big tables may take minutes."""


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema change; `apply` runs inside a transaction via `AsyncConnection.run_sync`."""

    version: int
    name: str
    apply: Callable[[sa.Connection], None]


schema_migrations = sa.Table(
    "schema_migrations",
    metadata,
    sa.Column("version", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("applied_at", UtcDateTime(), nullable=False),
)


MIGRATIONS: tuple[Migration, ...] = (
    # 1-99: core and audit trail
    Migration(1, "audit trail entries", audit_trail.create_audit_entries_v1),
    Migration(2, "audit trail append-only guard", audit_trail.create_append_only_guard),
    Migration(3, "scheduled job runs", create_scheduled_runs_v1),
    # 100-199: alert relay
    Migration(100, "alert relay tables", alert_migrations.create_alert_tables_v1),
    # 200-299: exceptions
    Migration(200, "exception register tables", exception_migrations.create_exception_tables_v1),
    # 300-399: backups
    Migration(300, "backup catalog", backup_migrations.create_backup_tables_v1),
    Migration(301, "restore plans", backup_migrations.create_restore_plans_v1),
    Migration(302, "evidence packs", backup_migrations.create_evidence_packs_v1),
    # 400-499: promotion
    Migration(400, "promotion plans", promotion_migrations.create_plans_v1),
    Migration(401, "promotion records", promotion_migrations.create_records_v1),
    # 500-599: notices
    Migration(500, "notice outbox", notice_migrations.create_notices_v1),
)


def check_registry(migrations: Sequence[Migration]) -> None:
    """Refuse a registry with duplicate, unordered or non-positive versions (a coding error)."""
    previous = 0
    for migration in migrations:
        if migration.version <= previous:
            raise ValueError(
                f"migration {migration.version} ({migration.name}) must have a version "
                f"greater than {previous}; keep MIGRATIONS in ascending order without repeats"
            )
        previous = migration.version


async def applied_versions(db: Database) -> dict[int, str]:
    """Versions recorded in the database (name by version); empty if never migrated."""
    async with db.connect() as conn:
        exists = await conn.run_sync(
            lambda sync: sa.inspect(sync).has_table(schema_migrations.name)
        )
        if not exists:
            return {}
        return await _recorded(conn)


async def pending_migrations(
    db: Database, migrations: Sequence[Migration] = MIGRATIONS
) -> list[Migration]:
    """The migrations `migrate()` would apply now (for `check-config` and readiness)."""
    applied = await applied_versions(db)
    _refuse_unknown(applied, migrations)
    return [m for m in migrations if m.version not in applied]


async def apply_migrations(
    db: Database, migrations: Sequence[Migration], *, clock: Clock
) -> list[int]:
    """Apply what is pending, in order; returns the versions this call applied."""
    check_registry(migrations)
    if db.dialect != "postgresql":
        return await _apply(db, migrations, clock=clock)
    async with db.advisory_lock(MIGRATION_LOCK, wait_s=LOCK_WAIT_S) as held:
        if not held:
            raise StoreUnavailable(
                f"another process has held the migration lock for over {LOCK_WAIT_S:g} s"
            )
        return await _apply(db, migrations, clock=clock)


async def _apply(db: Database, migrations: Sequence[Migration], *, clock: Clock) -> list[int]:
    async with db.begin() as conn:
        await conn.run_sync(lambda sync: schema_migrations.create(sync, checkfirst=True))
        applied = await _recorded(conn)
    _refuse_unknown(applied, migrations)
    done: list[int] = []
    for migration in migrations:
        if migration.version in applied:
            continue
        if await _apply_one(db, migration, clock=clock):
            done.append(migration.version)
    return done


async def _apply_one(db: Database, migration: Migration, *, clock: Clock) -> bool:
    try:
        async with db.begin(timeout_s=MIGRATION_TIMEOUT_S) as conn:
            # Another SQLite process may have applied it since we looked; BEGIN IMMEDIATE
            # makes this check and the change one step.
            if migration.version in await _recorded(conn):
                return False
            if db.dialect == "postgresql":
                ms = int(MIGRATION_TIMEOUT_S * 1000)
                await conn.execute(sa.text(f"SET LOCAL statement_timeout = {ms}"))
            await conn.run_sync(migration.apply)
            await conn.execute(
                schema_migrations.insert().values(
                    version=migration.version, name=migration.name, applied_at=clock.now()
                )
            )
    except StoreUnavailable:
        raise
    except Exception as err:
        raise MigrationFailed(
            f"migration {migration.version} ({migration.name}) failed and was rolled back: {err}"
        ) from err
    log.info(
        "applied schema migration",
        extra={"version": migration.version, "migration": migration.name},
    )
    return True


async def _recorded(conn: AsyncConnection) -> dict[int, str]:
    rows = await conn.execute(sa.select(schema_migrations.c.version, schema_migrations.c.name))
    return {int(version): str(name) for version, name in rows}


def _refuse_unknown(applied: dict[int, str], migrations: Sequence[Migration]) -> None:
    known = {m.version for m in migrations}
    unknown = sorted(set(applied) - known)
    if unknown:
        listed = ", ".join(f"{v} ({applied[v]})" for v in unknown)
        raise SchemaTooNew(
            f"the database has schema migrations this policy-bot does not know: {listed}. "
            "It was migrated by a newer release; run that release (or newer), or restore "
            "a backup taken before the upgrade."
        )
