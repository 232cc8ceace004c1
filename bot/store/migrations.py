"""Bring a store's schema to the head of its history, at start and by `python -m bot migrate`.

The history is Alembic's, shipped inside the package (`bot/store/schema_history/`, which
explains how to write a revision). There is no `alembic.ini` or `env.py`: this module finds
the revisions with `ScriptDirectory` and runs each one itself through `MigrationContext`, so
that it can keep the store's guarantees:

- One transaction per revision (both backends have transactional DDL), recorded in
  `alembic_version` in that same transaction: a failure (`MigrationFailed`) leaves the
  schema at the last complete revision.
- Several processes may start at once. On PostgreSQL an advisory lock makes the others wait
  while one migrates; on SQLite each revision runs under `BEGIN IMMEDIATE` and re-reads the
  current revision inside its transaction first, so none is applied twice.
- A store at a revision this code does not know was migrated by a newer release; starting
  against it is refused (`SchemaTooNew`), because older code could write rows newer code
  does not expect.

Stores created before the history kept a `schema_migrations` table of numbered versions
(1-3 core and audit, 100 alerts, 200 exceptions, 300-302 backups, 400-401 promotion, 500
notices) and no `alembic_version`. The first revision, `r0001_baseline`, is exactly that
schema, one step per numbered version. On its first start with this code such a store runs
the steps of any version it lacks, is stamped at the baseline, and loses `schema_migrations`
(all in one transaction), so it ends with the same schema as a store created fresh, and a
release from before the history refuses to start against it (its first migration finds the
audit table already there) instead of writing to a schema it does not know. A numbered
version no release ever shipped is refused as `SchemaTooNew`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol, TypeVar

import sqlalchemy as sa
from alembic.config import Config
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from alembic.script import Script, ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.clock import Clock
from bot.store.errors import MigrationFailed, SchemaTooNew, StoreError, StoreUnavailable

log = logging.getLogger(__name__)

HISTORY: Final = Path(__file__).with_name("schema_history")
"""The directory of the shipped history (`versions/` inside)."""
BASELINE: Final = "r0001_baseline"
"""The revision equal to the schema the numbered migrations left."""
LEGACY_TABLE: Final = "schema_migrations"
MIGRATION_LOCK = "schema-migrations"
LOCK_WAIT_S: Final = 120.0
"""How long a replica waits for another one that is migrating before giving up."""
MIGRATION_TIMEOUT_S: Final = 600.0
"""Upper bound for one revision; data migrations on big tables may take minutes."""

_T = TypeVar("_T")


class Store(Protocol):
    """What migrating needs of `bot.store.database.Database` (which imports this module)."""

    @property
    def dialect(self) -> str: ...

    def begin(
        self, *, timeout_s: float | None = None
    ) -> AbstractAsyncContextManager[AsyncConnection]: ...

    def connect(
        self, *, timeout_s: float | None = None
    ) -> AbstractAsyncContextManager[AsyncConnection]: ...

    def advisory_lock(
        self, name: str, *, wait_s: float = 0.0
    ) -> AbstractAsyncContextManager[bool]: ...


@dataclass(frozen=True, slots=True)
class SchemaState:
    """Where a store's schema is: a revision of the history, numbered versions, or nothing."""

    revision: str | None
    legacy_versions: tuple[int, ...] = ()

    def describe(self) -> str:
        if self.revision is not None:
            return self.revision
        if self.legacy_versions:
            listed = ", ".join(str(v) for v in self.legacy_versions)
            return f"numbered migrations {listed} (before the schema history)"
        return "empty (never migrated)"


def alembic_config(history: Path = HISTORY) -> Config:
    """An Alembic `Config` for the history, for `alembic.command` (e.g. `revision`)."""
    config = Config()
    config.set_main_option("script_location", str(history))
    return config


def schema_history(history: Path = HISTORY) -> ScriptDirectory:
    """The revisions in `history`; refuses a history with more than one head."""
    script = ScriptDirectory.from_config(alembic_config(history))
    heads = script.get_heads()
    if len(heads) > 1:
        raise ValueError(f"the schema history must be linear; it has heads {sorted(heads)}")
    return script


async def schema_state(db: Store) -> SchemaState:
    """The store's current revision (or numbered versions); does not write."""
    async with db.connect() as conn:
        return await conn.run_sync(_state)


async def pending_migrations(db: Store, history: Path = HISTORY) -> list[str]:
    """The revisions `migrate()` would apply now, oldest first (for checks and readiness).

    A store from before the history that holds every numbered version needs none of the
    baseline: it is only stamped, so the baseline is not listed for it.
    """
    script = schema_history(history)
    state = await schema_state(db)
    current = state.revision
    if current is None and state.legacy_versions:
        _refuse_unknown_legacy(dict.fromkeys(state.legacy_versions, ""), _legacy_steps(script))
        if set(state.legacy_versions) == set(_legacy_steps(script)):
            current = BASELINE
    else:
        _check_known(script, (current,) if current else ())
    return [r.revision for r in _path(script, current)]


async def apply_migrations(db: Store, *, clock: Clock, history: Path = HISTORY) -> list[str]:
    """Apply what is pending, in order; returns the revisions this call applied."""
    script = schema_history(history)
    if db.dialect != "postgresql":
        return await _apply(db, script, clock=clock)
    async with db.advisory_lock(MIGRATION_LOCK, wait_s=LOCK_WAIT_S) as held:
        if not held:
            raise StoreUnavailable(
                f"another process has held the migration lock for over {LOCK_WAIT_S:g} s"
            )
        return await _apply(db, script, clock=clock)


async def _apply(db: Store, script: ScriptDirectory, *, clock: Clock) -> list[str]:
    done: list[str] = []
    adopted = await _in_transaction(
        db,
        lambda conn: _adopt_legacy(conn, script, clock),
        failure=lambda: f"upgrading the numbered migrations to {BASELINE}",
    )
    if adopted is not None:
        log.info(
            "stamped a store from before the schema history",
            extra={"revision": BASELINE, "versions_added": adopted},
        )
        if adopted:
            done.append(BASELINE)
    attempted: list[Script] = []
    while True:
        attempted.clear()
        revision = await _in_transaction(
            db,
            lambda conn: _apply_next(conn, script, clock, attempted),
            failure=lambda: f"revision {_name(attempted[-1])}" if attempted else "migrating",
        )
        if revision is None:
            return done
        log.info("applied schema revision", extra={"revision": revision})
        done.append(revision)


async def _in_transaction(
    db: Store, work: Callable[[sa.Connection], _T], *, failure: Callable[[], str]
) -> _T:
    try:
        async with db.begin(timeout_s=MIGRATION_TIMEOUT_S) as conn:
            if db.dialect == "postgresql":
                ms = int(MIGRATION_TIMEOUT_S * 1000)
                await conn.execute(sa.text(f"SET LOCAL statement_timeout = {ms}"))
            return await conn.run_sync(work)
    except (StoreUnavailable, SchemaTooNew):
        raise
    except Exception as err:
        raise MigrationFailed(f"{failure()} failed and was rolled back: {err}") from err


def _apply_next(
    conn: sa.Connection, script: ScriptDirectory, clock: Clock, attempted: list[Script]
) -> str | None:
    """Apply the revision after the current one, if any; runs inside one transaction.

    The current revision is read here, inside the transaction, so another process that
    applied it meanwhile (SQLite has no advisory lock) is seen rather than repeated.
    """
    context = _context(conn, clock)
    heads = context.get_current_heads()
    _check_known(script, heads)
    path = _path(script, heads[0] if heads else None)
    if not path:
        return None
    revision = path[0]
    attempted.append(revision)
    with Operations.context(context):
        revision.module.upgrade()
    context.stamp(script, revision.revision)
    return revision.revision


def _adopt_legacy(conn: sa.Connection, script: ScriptDirectory, clock: Clock) -> list[int] | None:
    """Move a store from numbered migrations onto the history; None if it has nothing to move.

    Returns the numbered versions whose baseline steps had to run first.
    """
    if not sa.inspect(conn).has_table(LEGACY_TABLE):
        return None
    context = _context(conn, clock)
    recorded = _legacy_versions(conn)
    if context.get_current_heads():
        if not recorded:
            # Left behind by a release from before the history that refused to start.
            conn.execute(sa.text(f"DROP TABLE {LEGACY_TABLE}"))
        return None
    steps = _legacy_steps(script)
    _refuse_unknown_legacy(recorded, steps)
    missing = [version for version in steps if version not in recorded]
    with Operations.context(context):
        for version in missing:
            steps[version]()
    context.stamp(script, BASELINE)
    conn.execute(sa.text(f"DROP TABLE {LEGACY_TABLE}"))
    return missing


def _state(conn: sa.Connection) -> SchemaState:
    heads = _context(conn, None).get_current_heads()
    if heads:
        return SchemaState(revision=heads[0])
    if sa.inspect(conn).has_table(LEGACY_TABLE):
        return SchemaState(revision=None, legacy_versions=tuple(sorted(_legacy_versions(conn))))
    return SchemaState(revision=None)


def _context(conn: sa.Connection, clock: Clock | None) -> MigrationContext:
    # Configured inside our own transaction: Alembic sees it and begins or commits nothing.
    return MigrationContext.configure(conn, opts={"clock": clock})


def _path(script: ScriptDirectory, current: str | None) -> list[Script]:
    """The revisions after `current` (all of them for None), oldest first."""
    oldest_first = list(reversed(list(script.walk_revisions())))
    if current is None:
        return oldest_first
    ids = [r.revision for r in oldest_first]
    return oldest_first[ids.index(current) + 1 :]


def _check_known(script: ScriptDirectory, heads: tuple[str, ...]) -> None:
    for head in heads:
        try:
            script.get_revision(head)
        except CommandError:
            raise SchemaTooNew(
                f"the database is at schema revision {head!r}, which this policy-bot does not "
                "know. It was migrated by a newer release; run that release (or newer), or "
                "restore a backup taken before the upgrade."
            ) from None
    if len(heads) > 1:
        raise StoreError(f"the database records several schema revisions: {sorted(heads)}")


def _legacy_versions(conn: sa.Connection) -> dict[int, str]:
    rows = conn.execute(sa.text(f"SELECT version, name FROM {LEGACY_TABLE}"))
    return {int(version): str(name) for version, name in rows}


def _legacy_steps(script: ScriptDirectory) -> dict[int, Callable[[], None]]:
    baseline = script.get_revision(BASELINE)
    assert baseline is not None
    steps: dict[int, Callable[[], None]] = baseline.module.LEGACY_STEPS
    return steps


def _refuse_unknown_legacy(
    recorded: Mapping[int, str], steps: Mapping[int, Callable[[], None]]
) -> None:
    unknown = sorted(set(recorded) - set(steps))
    if unknown:
        listed = ", ".join(f"{v} ({recorded[v]})" if recorded[v] else str(v) for v in unknown)
        raise SchemaTooNew(
            f"the database has numbered schema migrations this policy-bot does not know: "
            f"{listed}. It was migrated by a newer release; run that release (or newer), or "
            "restore a backup taken before the upgrade."
        )


def _name(revision: Script) -> str:
    return f"{revision.revision} ({revision.doc})" if revision.doc else revision.revision
