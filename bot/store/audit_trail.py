"""The audit trail in the store: append-only, one unbroken hash chain across replicas.

The chain itself (what is hashed, how it is verified) is pure and lives in `bot.audit`.
This module adds what storage must guarantee for the chain to mean anything:

- Appends are serialised, so two writers never both continue from the same head and fork
  the chain: a transaction-scoped advisory lock on PostgreSQL (held until commit, across
  every process sharing the database), `BEGIN IMMEDIATE` on SQLite. A unique `prev_hash`
  backs this up in the schema: no two entries can claim the same predecessor.
- ids are assigned by the chain (head + 1), not by a sequence, so they have no gaps and a
  gap means a deleted row.
- Triggers refuse UPDATE and DELETE (and TRUNCATE on PostgreSQL). Someone with DDL rights
  can drop them, which is why the chain, not the trigger, is the actual evidence.
- Verification reads in pages by id, so a million entries need constant memory, and hashes
  each page in a worker thread so the bot stays responsive meanwhile.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Final, TypeAlias

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.audit import (
    MAX_ACTION,
    MAX_ACTOR,
    MAX_ENVIRONMENT,
    MAX_OUTCOME,
    MAX_TARGET,
    AuditEntry,
    ChainHead,
    ChainVerifier,
    VerifyReport,
    canonical_json,
    next_entry,
    validate_fields,
)
from bot.clock import Clock
from bot.store.database import (
    DEFAULT_CONNECT_TIMEOUT_S,
    Database,
    UtcDateTime,
    advisory_key,
    open_database,
)
from bot.store.errors import StoreError
from bot.store.schema import metadata

_Row: TypeAlias = sa.Row[*tuple[Any, ...]]

APPEND_LOCK: Final = "audit-trail-append"
DEFAULT_PAGE_SIZE: Final = 2000


def _columns_v1() -> list[sa.Column[Any]]:
    """The table's columns (created by the schema history's baseline revision)."""
    return [
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=False,
        ),
        sa.Column("at", UtcDateTime(), nullable=False, index=True),
        sa.Column("actor", sa.String(MAX_ACTOR), nullable=False),
        sa.Column("action", sa.String(MAX_ACTION), nullable=False),
        sa.Column("environment", sa.String(MAX_ENVIRONMENT), nullable=True),
        sa.Column("target", sa.String(MAX_TARGET), nullable=True),
        sa.Column("outcome", sa.String(MAX_OUTCOME), nullable=False),
        # Canonical JSON text, not a JSON column: PostgreSQL's jsonb would reorder keys
        # and normalise numbers, and the stored text is what the hash was computed over.
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("hash", sa.String(64), nullable=False, unique=True),
    ]


audit_entries = sa.Table("audit_entries", metadata, *_columns_v1())
"""The live definition; a change here needs a revision in `bot/store/schema_history/`.

The append-only triggers are created by the revisions too (the baseline's step 2): cheap
insurance against a mistaken maintenance query; a deliberate tamperer can drop them, and the
hash chain still shows what they changed."""


_COLUMNS = (
    audit_entries.c.id,
    audit_entries.c.at,
    audit_entries.c.actor,
    audit_entries.c.action,
    audit_entries.c.outcome,
    audit_entries.c.environment,
    audit_entries.c.target,
    audit_entries.c.details,
    audit_entries.c.prev_hash,
    audit_entries.c.hash,
)


class AuditTrail:
    """Append to, read and verify the audit trail of one store.

    `clock` stamps entries (inject a frozen one in tests). Appends from this object are
    queued in-process before they queue in the database, so a burst of commands does not
    hold a pool connection each while waiting for the chain lock.
    """

    def __init__(self, db: Database, *, clock: Clock, page_size: int = DEFAULT_PAGE_SIZE) -> None:
        if page_size < 1:
            raise ValueError("page_size must be positive")
        self._db = db
        self._clock = clock
        self._page_size = page_size
        self._append_lock = asyncio.Lock()
        self._lock_key = advisory_key(APPEND_LOCK)

    async def append(
        self,
        *,
        actor: str,
        action: str,
        outcome: str,
        environment: str | None = None,
        target: str | None = None,
        details: Mapping[str, object] | None = None,
    ) -> AuditEntry:
        """Seal and store the next entry; returns it with its id and hash.

        `details` must be a JSON object (datetimes and enums are written as text); it is
        stored canonically. Raises `ValueError`/`TypeError` for bad fields before anything
        is written, `StoreUnavailable` when the store cannot be reached.
        """
        entry = await self._append(
            actor=actor,
            action=action,
            outcome=outcome,
            environment=environment,
            target=target,
            details=details,
        )
        assert entry is not None
        return entry

    async def settle(
        self,
        intent: AuditEntry,
        *,
        outcomes: Sequence[str],
        actor: str,
        outcome: str,
        details: Mapping[str, object] | None = None,
    ) -> AuditEntry | None:
        """Append the outcome of `intent` (same action, environment and target) while
        `intent` is still the newest entry of those whose outcome is one of `outcomes`;
        checked under the chain's lock, so of two processes settling it one appends and the
        other gets None."""
        return await self._append(
            actor=actor,
            action=intent.action,
            outcome=outcome,
            environment=intent.environment,
            target=intent.target,
            details=details,
            settles=intent,
            outcomes=outcomes,
        )

    async def _append(
        self,
        *,
        actor: str,
        action: str,
        outcome: str,
        environment: str | None,
        target: str | None,
        details: Mapping[str, object] | None,
        settles: AuditEntry | None = None,
        outcomes: Sequence[str] = (),
    ) -> AuditEntry | None:
        clean = validate_fields(
            actor=actor,
            action=action,
            outcome=outcome,
            environment=environment,
            target=target,
            details=details,
        )
        async with self._append_lock, self._db.begin() as conn:
            if self._db.dialect == "postgresql":
                # Held until this transaction ends; every process takes the same key.
                await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(self._lock_key)))
            if settles is not None and not await self._newest(conn, settles, outcomes):
                return None
            head = await self._head_link(conn)
            entry = next_entry(
                head,
                at=self._clock.now(),
                actor=actor,
                action=action,
                outcome=outcome,
                environment=environment,
                target=target,
                details=clean,
            )
            await conn.execute(audit_entries.insert().values(_row(entry)))
        return entry

    async def _newest(
        self, conn: AsyncConnection, entry: AuditEntry, outcomes: Sequence[str]
    ) -> bool:
        a = audit_entries.c
        later = (
            sa.select(a.id)
            .where(
                a.id > entry.id,
                a.action == entry.action,
                a.environment == entry.environment,
                a.target == entry.target,
                a.outcome.in_(list(outcomes)),
            )
            .limit(1)
        )
        return (await conn.execute(later)).first() is None

    async def find(
        self, *, action: str, outcomes: Sequence[str], since: datetime, target: str | None = None
    ) -> list[AuditEntry]:
        """Entries of `action` with one of `outcomes` and `at >= since` (of `target` only,
        when given), in chain order."""
        a = audit_entries.c
        query = (
            sa.select(*_COLUMNS)
            .where(a.at >= since, a.action == action, a.outcome.in_(list(outcomes)))
            .order_by(a.id)
        )
        if target is not None:
            query = query.where(a.target == target)
        async with self._db.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_entry(row) for row in rows]

    async def head(self) -> AuditEntry | None:
        """The newest entry, or None while the trail is empty."""
        query = sa.select(*_COLUMNS).order_by(audit_entries.c.id.desc()).limit(1)
        async with self._db.connect() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else _entry(row)

    async def entries(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
    ) -> list[AuditEntry]:
        """Entries in chain order with `since <= at < until`, at most `limit` of them."""
        found: list[AuditEntry] = []
        async for entry in self.stream(since=since, until=until):
            if limit is not None and len(found) >= limit:
                break
            found.append(entry)
        return found

    async def stream(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> AsyncIterator[AuditEntry]:
        """Like `entries`, one page per query, for exports too large to hold at once."""
        after = 0
        while True:
            query = (
                sa.select(*_COLUMNS)
                .where(audit_entries.c.id > after)
                .order_by(audit_entries.c.id)
                .limit(self._page_size)
            )
            if since is not None:
                query = query.where(audit_entries.c.at >= since)
            if until is not None:
                query = query.where(audit_entries.c.at < until)
            async with self._db.connect() as conn:
                rows = (await conn.execute(query)).all()
            for row in rows:
                yield _entry(row)
            if len(rows) < self._page_size:
                return
            after = int(rows[-1].id)

    async def verify(self, *, anchors: Mapping[int, str] | None = None) -> VerifyReport:
        """Check the whole chain from entry 1 and name the first entry that fails.

        `anchors` are (id -> hash) pairs published earlier, e.g. the chain head of each
        monthly evidence pack; they catch a tail that was rewritten or cut off, which the
        chain alone cannot.
        """
        verifier = ChainVerifier(anchors=dict(anchors or {}))
        after = 0
        while True:
            query = (
                sa.select(*_COLUMNS)
                .where(audit_entries.c.id > after)
                .order_by(audit_entries.c.id)
                .limit(self._page_size)
            )
            async with self._db.connect() as conn:
                rows = (await conn.execute(query)).all()
            intact = await asyncio.to_thread(_feed, verifier, rows)
            if not intact or len(rows) < self._page_size:
                return verifier.report()
            after = int(rows[-1].id)

    async def _head_link(self, conn: AsyncConnection) -> ChainHead | None:
        query = (
            sa.select(audit_entries.c.id, audit_entries.c.hash)
            .order_by(audit_entries.c.id.desc())
            .limit(1)
        )
        row = (await conn.execute(query)).first()
        return None if row is None else ChainHead(id=int(row.id), hash=str(row.hash))


def _row(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "at": entry.at,
        "actor": entry.actor,
        "action": entry.action,
        "outcome": entry.outcome,
        "environment": entry.environment,
        "target": entry.target,
        "details": canonical_json(entry.details),
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
    }


def _entry(row: _Row) -> AuditEntry:
    try:
        details = json.loads(row.details)
    except ValueError as err:
        raise StoreError(
            f"audit entry {row.id} has details that are not JSON; run `audit verify`"
        ) from err
    return AuditEntry(
        id=int(row.id),
        at=row.at,
        actor=row.actor,
        action=row.action,
        outcome=row.outcome,
        environment=row.environment,
        target=row.target,
        details=details,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


def _feed(verifier: ChainVerifier, rows: Sequence[_Row]) -> bool:
    """Verify one page (runs in a worker thread); False once the chain is broken."""
    for row in rows:
        try:
            entry = _entry(row)
        except StoreError:
            verifier.reject(int(row.id), "details are not valid JSON")
            return False
        if not verifier.feed((entry,)):
            return False
    return not verifier.broken


async def verify_audit_trail(
    url: str,
    *,
    clock: Clock,
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
    anchors: Mapping[int, str] | None = None,
) -> VerifyReport:
    """Open the store at `url`, verify its audit trail, close it: `audit verify` in one call.

    Read-only: it neither migrates nor writes. Raises `StoreUnavailable` when the store
    cannot be reached and `StoreError` when it holds no audit trail at all (never migrated,
    or the wrong database).
    """
    async with await open_database(url, connect_timeout_s=connect_timeout_s) as db:
        await db.ping()
        async with db.connect() as conn:
            exists = await conn.run_sync(
                lambda sync: sa.inspect(sync).has_table(audit_entries.name)
            )
        if not exists:
            raise StoreError(
                f"{db.display_url} has no audit trail: the bot has never run against it"
            )
        return await AuditTrail(db, clock=clock).verify(anchors=anchors)
