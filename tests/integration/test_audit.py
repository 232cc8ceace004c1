"""The audit trail: the pure hash chain, and its storage on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import sys
import textwrap
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.audit import (
    GENESIS_HASH,
    AuditEntry,
    ChainHead,
    canonical_json,
    content_hash,
    entry_hash,
    format_timestamp,
    next_entry,
    verify_chain,
)
from bot.clock import SYSTEM_CLOCK
from bot.store import (
    AuditTrail,
    Database,
    StoreError,
    StoreUnavailable,
    open_database,
    verify_audit_trail,
)
from bot.store.audit_trail import audit_entries

T0 = datetime(2025, 3, 1, 9, 0, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]


class SteppingClock:
    """A clock that moves one second per reading, so every entry has its own time."""

    def __init__(self, start: datetime = T0) -> None:
        self._now = start

    def now(self) -> datetime:
        current = self._now
        self._now += timedelta(seconds=1)
        return current


# --- the pure chain ----------------------------------------------------------------------


def test_canonical_json_is_sorted_compact_and_keeps_unicode() -> None:
    text = canonical_json({"b": 1, "a": {"z": [1, 2], "y": "Grüße 🚀"}})
    assert text == '{"a":{"y":"Grüße 🚀","z":[1,2]},"b":1}'


def test_canonical_json_refuses_what_other_tools_cannot_reproduce() -> None:
    with pytest.raises(ValueError, match="JSON compliant"):
        canonical_json({"x": float("nan")})
    with pytest.raises(TypeError, match="cannot hold a object"):
        canonical_json({"x": object()})


def test_canonical_json_writes_datetimes_and_enums_as_text() -> None:
    class Mode(StrEnum):
        ENFORCE = "Enforce"

    at = datetime(2025, 3, 1, 10, 0, tzinfo=timezone(timedelta(hours=1)))
    assert canonical_json({"at": at, "mode": Mode.ENFORCE}) == (
        '{"at":"2025-03-01T09:00:00.000000Z","mode":"Enforce"}'
    )


def test_timestamps_are_fixed_width_utc() -> None:
    assert format_timestamp(T0) == "2025-03-01T09:00:00.000000Z"
    assert format_timestamp(T0.replace(microsecond=7)) == "2025-03-01T09:00:00.000007Z"
    with pytest.raises(ValueError, match="timezone-aware"):
        format_timestamp(datetime(2025, 1, 1))


def test_hash_is_sha256_of_the_documented_serialisation() -> None:
    fields = {
        "id": 7,
        "at": "2025-03-01T09:00:00.000000Z",
        "actor": "U0ALICE",
        "action": "exception.approve",
        "outcome": "ok",
        "environment": "production",
        "target": "require-labels",
        "details": {"ticket": "SEC-1", "reason": "Ausnahme für Ümlaute"},
        "prev_hash": "ab" * 32,
    }
    blob = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    expected = hashlib.sha256(blob.encode("utf-8")).hexdigest()
    assert (
        entry_hash(
            id=7,
            at=T0,
            actor="U0ALICE",
            action="exception.approve",
            outcome="ok",
            environment="production",
            target="require-labels",
            details={"reason": "Ausnahme für Ümlaute", "ticket": "SEC-1"},
            prev_hash="ab" * 32,
        )
        == expected
    )


def test_hash_depends_on_every_field() -> None:
    base = next_entry(None, at=T0, actor="U1", action="command.status", outcome="ok")
    variants = [
        replace(base, id=2),
        replace(base, at=T0 + timedelta(microseconds=1)),
        replace(base, actor="U2"),
        replace(base, action="command.help"),
        replace(base, outcome="denied"),
        replace(base, environment="dev"),
        replace(base, target="p"),
        replace(base, details={"k": 1}),
        replace(base, prev_hash="f" * 64),
    ]
    hashes = {content_hash(v) for v in variants}
    assert base.hash not in hashes
    assert len(hashes) == len(variants)


def test_unicode_is_hashed_as_utf8_not_as_escapes() -> None:
    one = next_entry(None, at=T0, actor="U1", action="a", outcome="ok", details={"t": "é"})
    fields = json.dumps(
        {
            "id": 1,
            "at": format_timestamp(T0),
            "actor": "U1",
            "action": "a",
            "outcome": "ok",
            "environment": None,
            "target": None,
            "details": {"t": "é"},
            "prev_hash": GENESIS_HASH,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    assert "é" in fields
    assert one.hash == hashlib.sha256(fields.encode()).hexdigest()


def test_key_order_and_containers_do_not_change_the_hash() -> None:
    a = next_entry(None, at=T0, actor="U1", action="a", outcome="ok", details={"x": 1, "y": (1,)})
    b = next_entry(None, at=T0, actor="U1", action="a", outcome="ok", details={"y": [1], "x": 1})
    assert a.hash == b.hash
    assert a.details == {"x": 1, "y": [1]}


def test_chain_starts_at_genesis_and_links() -> None:
    first = next_entry(None, at=T0, actor="system", action="bot.start", outcome="ok")
    second = next_entry(first.link, at=T0, actor="U1", action="command.status", outcome="ok")
    assert (first.id, first.prev_hash) == (1, GENESIS_HASH)
    assert (second.id, second.prev_hash) == (2, first.hash)
    assert first.link == ChainHead(id=1, hash=first.hash)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("actor", "", "actor must be a non-empty string"),
        ("action", " ", "action must be a non-empty string"),
        ("outcome", "x" * 33, "outcome is longer than 32"),
        ("environment", "e" * 64, "environment is longer than 63"),
        ("target", "a\x00b", "target must not contain NUL"),
        ("actor", "U\ud800", "actor holds text that is not valid Unicode"),
    ],
)
def test_bad_fields_are_refused(field: str, value: str, message: str) -> None:
    fields = {"actor": "U1", "action": "a", "outcome": "ok", field: value}
    with pytest.raises(ValueError, match=message):
        next_entry(None, at=T0, **fields)  # type: ignore[arg-type]


def test_naive_time_and_non_object_details_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next_entry(None, at=datetime(2025, 1, 1), actor="U", action="a", outcome="ok")
    with pytest.raises(ValueError, match="details holds text that is not valid Unicode"):
        next_entry(None, at=T0, actor="U", action="a", outcome="ok", details={"x": "\udc80"})
    with pytest.raises(TypeError, match="mapping"):
        next_entry(None, at=T0, actor="U", action="a", outcome="ok", details=[1])  # type: ignore[arg-type]


def _chain(n: int) -> list[AuditEntry]:
    entries: list[AuditEntry] = []
    for i in range(n):
        head = entries[-1].link if entries else None
        entries.append(
            next_entry(head, at=T0 + timedelta(seconds=i), actor="U1", action="a", outcome="ok")
        )
    return entries


def test_pure_verification() -> None:
    chain = _chain(5)
    report = verify_chain(chain)
    assert (report.ok, report.checked, report.head_id, report.head_hash) == (
        True,
        5,
        5,
        chain[-1].hash,
    )
    assert verify_chain([]).describe() == "audit trail intact: no entries yet"
    edited = [*chain[:2], replace(chain[2], actor="U2"), *chain[3:]]
    assert verify_chain(edited).reason == "entry 3: hash does not match its content"
    gap = [*chain[:1], *chain[3:]]
    assert verify_chain(gap).reason == "entries 2 to 3 are missing (ids jump from 1 to 4)"
    assert verify_chain(gap).first_bad_id == 2
    assert verify_chain(chain[1:]).reason == "entry 1 is missing (the trail starts at entry 2)"
    broken = verify_chain(edited)
    assert broken.describe() == (
        "audit trail BROKEN: entry 3: hash does not match its content "
        "(2 entries verified before it)"
    )
    assert (broken.head_id, broken.checked) == (2, 2)


# --- storage -----------------------------------------------------------------------------


async def _fill(trail: AuditTrail, n: int) -> list[AuditEntry]:
    return [
        await trail.append(
            actor=f"U{i % 3}",
            action="command.status",
            outcome="ok",
            environment="dev" if i % 2 else None,
            target=f"policy-{i}",
            details={"i": i, "note": "prüfen"},
        )
        for i in range(n)
    ]


async def _drop_guard(db: Database) -> None:
    """What a tamperer with DDL rights does first."""
    async with db.begin() as conn:
        if db.dialect == "postgresql":
            await conn.execute(sa.text("DROP TRIGGER audit_entries_append_only ON audit_entries"))
        else:
            await conn.execute(sa.text("DROP TRIGGER audit_entries_no_update"))
            await conn.execute(sa.text("DROP TRIGGER audit_entries_no_delete"))


async def _sql(db: Database, statement: str, **params: object) -> None:
    async with db.begin() as conn:
        await conn.execute(sa.text(statement), params)


async def test_append_head_and_entries(database: Database) -> None:
    trail = AuditTrail(database, clock=SteppingClock())
    assert await trail.head() is None
    first = await trail.append(actor="system", action="bot.start", outcome="ok")
    second = await trail.append(
        actor="U0ALICE",
        action="exception.approve",
        outcome="ok",
        environment="production",
        target="require-labels",
        details={"ticket": "SEC-12", "reason": "Grüße — 🚀", "days": 30, "nested": {"a": [1]}},
    )
    assert (first.id, first.prev_hash, first.at) == (1, GENESIS_HASH, T0)
    assert (second.id, second.prev_hash) == (2, first.hash)
    assert await trail.head() == second
    stored = await trail.entries()
    assert stored == [first, second]
    assert stored[1].details["reason"] == "Grüße — 🚀"
    assert stored[1].at.tzinfo is not None
    assert all(content_hash(e) == e.hash for e in stored)


async def test_entries_by_time_window_and_limit(database: Database) -> None:
    trail = AuditTrail(database, clock=SteppingClock(), page_size=3)
    await _fill(trail, 10)  # at = T0 + 0..9 s
    window = await trail.entries(since=T0 + timedelta(seconds=2), until=T0 + timedelta(seconds=8))
    assert [e.id for e in window] == [3, 4, 5, 6, 7, 8]
    assert [e.id for e in await trail.entries(limit=4)] == [1, 2, 3, 4]
    assert [e.id async for e in trail.stream(since=T0 + timedelta(seconds=7))] == [8, 9, 10]


async def test_verify_an_intact_chain_of_500_entries(database: Database) -> None:
    trail = AuditTrail(database, clock=SteppingClock(), page_size=64)
    entries = await _fill(trail, 500)
    report = await trail.verify()
    assert report.ok, report.reason
    assert (report.checked, report.head_id, report.head_hash) == (500, 500, entries[-1].hash)
    assert report.first_bad_id is None and report.reason == ""


async def test_the_guard_refuses_update_and_delete(database: Database) -> None:
    trail = AuditTrail(database, clock=SteppingClock())
    await _fill(trail, 3)
    for statement in (
        "UPDATE audit_entries SET actor = 'U0MALLORY' WHERE id = 2",
        "DELETE FROM audit_entries WHERE id = 3",
    ):
        with pytest.raises(sa.exc.IntegrityError, match="append-only"):
            await _sql(database, statement)
    if database.dialect == "postgresql":
        with pytest.raises(sa.exc.IntegrityError, match="append-only: TRUNCATE"):
            await _sql(database, "TRUNCATE audit_entries")
    assert (await trail.verify()).checked == 3


async def test_a_fork_is_refused_by_the_schema(database: Database) -> None:
    trail = AuditTrail(database, clock=SteppingClock())
    first, _ = await _fill(trail, 2)
    fork = next_entry(first.link, at=T0, actor="U9", action="a", outcome="ok")
    with pytest.raises(sa.exc.IntegrityError):
        async with database.begin() as conn:
            await conn.execute(
                audit_entries.insert().values(
                    id=99,
                    at=fork.at,
                    actor=fork.actor,
                    action=fork.action,
                    outcome=fork.outcome,
                    details="{}",
                    prev_hash=fork.prev_hash,
                    hash=fork.hash,
                )
            )


async def _forge_entry_17(db: Database, entries: list[AuditEntry]) -> None:
    """Change entry 17 and recompute its own hash, as a careful tamperer would."""
    forged = replace(entries[16], actor="U0MALLORY")
    await _sql(
        db,
        "UPDATE audit_entries SET actor = :actor, hash = :hash WHERE id = 17",
        actor=forged.actor,
        hash=content_hash(forged),
    )


async def _backdate_entry_17(db: Database, entries: list[AuditEntry]) -> None:
    async with db.begin() as conn:
        await conn.execute(
            audit_entries.update()
            .where(audit_entries.c.id == 17)
            .values(at=entries[16].at - timedelta(days=1))
        )


async def _swap_20_and_21(db: Database, _: list[AuditEntry]) -> None:
    await _sql(db, "UPDATE audit_entries SET id = -1 WHERE id = 20")
    await _sql(db, "UPDATE audit_entries SET id = 20 WHERE id = 21")
    await _sql(db, "UPDATE audit_entries SET id = 21 WHERE id = -1")


Tamper = Callable[[Database, list[AuditEntry]], Awaitable[None]]

TAMPERING: list[tuple[str, Tamper, int, str]] = [
    (
        "changed details",
        lambda db, _: _sql(db, "UPDATE audit_entries SET details = :d WHERE id = 17", d='{"i":16}'),
        17,
        "entry 17: hash does not match its content",
    ),
    (
        "changed actor",
        lambda db, _: _sql(db, "UPDATE audit_entries SET actor = 'U0MALLORY' WHERE id = 17"),
        17,
        "entry 17: hash does not match its content",
    ),
    (
        "changed outcome",
        lambda db, _: _sql(db, "UPDATE audit_entries SET outcome = 'denied' WHERE id = 17"),
        17,
        "entry 17: hash does not match its content",
    ),
    ("changed time", _backdate_entry_17, 17, "entry 17: hash does not match its content"),
    (
        "deleted middle row",
        lambda db, _: _sql(db, "DELETE FROM audit_entries WHERE id = 12"),
        12,
        "entry 12 is missing (ids jump from 11 to 13)",
    ),
    (
        "deleted first row",
        lambda db, _: _sql(db, "DELETE FROM audit_entries WHERE id = 1"),
        1,
        "entry 1 is missing (the trail starts at entry 2)",
    ),
    (
        "changed prev_hash",
        lambda db, _: _sql(db, f"UPDATE audit_entries SET prev_hash = '{'0' * 63}1' WHERE id = 18"),
        18,
        "entry 18: hash does not match its content",
    ),
    (
        "rehashed after an edit",
        _forge_entry_17,
        18,
        "entry 18: prev_hash does not link to entry 17",
    ),
    ("reordered rows", _swap_20_and_21, 20, "entry 20: hash does not match its content"),
    (
        "details no longer JSON",
        lambda db, _: _sql(db, "UPDATE audit_entries SET details = '{oops' WHERE id = 5"),
        5,
        "entry 5: details are not valid JSON",
    ),
]


@pytest.mark.parametrize(
    ("tamper", "first_bad", "reason"),
    [pytest.param(t, bad, why, id=name) for name, t, bad, why in TAMPERING],
)
async def test_tampering_is_detected_at_the_first_bad_entry(
    database: Database, tamper: Tamper, first_bad: int, reason: str
) -> None:
    trail = AuditTrail(database, clock=SteppingClock(), page_size=7)  # spans pages
    entries = await _fill(trail, 30)
    assert (await trail.verify()).ok
    await _drop_guard(database)
    await tamper(database, entries)
    report = await trail.verify()
    assert not report.ok
    assert (report.first_bad_id, report.reason) == (first_bad, reason)
    assert report.checked == min(first_bad - 1, 30)


async def test_published_heads_catch_a_rewritten_or_truncated_tail(database: Database) -> None:
    trail = AuditTrail(database, clock=SteppingClock())
    entries = await _fill(trail, 10)
    published = {8: entries[7].hash}
    assert (await trail.verify(anchors=published)).ok
    await _drop_guard(database)
    await _sql(database, "DELETE FROM audit_entries WHERE id >= 8")
    assert (await trail.verify()).ok  # the chain alone cannot see a cut-off tail
    report = await trail.verify(anchors=published)
    assert (report.ok, report.first_bad_id) == (False, 8)
    assert "entries were removed from the end" in report.reason
    fake = {5: "f" * 64}
    report = await trail.verify(anchors=fake)
    assert report.reason == (
        "entry 5: hash differs from the published chain head (the chain was rewritten from here on)"
    )


async def test_concurrent_appends_keep_one_chain(database: Database) -> None:
    trail = AuditTrail(database, clock=SYSTEM_CLOCK)
    appended = await asyncio.gather(
        *(trail.append(actor=f"U{i}", action="command.status", outcome="ok") for i in range(50))
    )
    assert sorted(e.id for e in appended) == list(range(1, 51))
    report = await trail.verify()
    assert (report.ok, report.checked) == (True, 50), report.reason


async def test_two_connection_pools_appending_at_once_keep_one_chain(store_url: str) -> None:
    # Two Database objects behave like two replicas: nothing in-process is shared.
    first = await open_database(store_url)
    second = await open_database(store_url)
    try:
        await first.migrate(clock=SYSTEM_CLOCK)
        trails = [
            AuditTrail(first, clock=SYSTEM_CLOCK),
            AuditTrail(second, clock=SYSTEM_CLOCK),
            AuditTrail(first, clock=SYSTEM_CLOCK),
            AuditTrail(second, clock=SYSTEM_CLOCK),
        ]
        await asyncio.gather(
            *(
                trails[i % 4].append(actor="scheduler", action="job.tick", outcome="ok")
                for i in range(60)
            )
        )
        report = await AuditTrail(second, clock=SYSTEM_CLOCK).verify()
        assert (report.ok, report.checked) == (True, 60), report.reason
    finally:
        await first.close()
        await second.close()


_APPENDER = textwrap.dedent(
    """
    import asyncio, sys
    from bot.clock import SYSTEM_CLOCK
    from bot.store import AuditTrail, open_database

    async def main(url, name):
        async with await open_database(url) as db:
            await db.migrate(clock=SYSTEM_CLOCK)
            trail = AuditTrail(db, clock=SYSTEM_CLOCK)
            for i in range(40):
                await trail.append(actor="cli", action="test.append", outcome="ok",
                                   details={"process": name, "i": i})

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


async def test_two_os_processes_appending_keep_one_chain(store_url: str) -> None:
    async def run(name: str) -> None:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _APPENDER,
            store_url,
            name,
            stderr=subprocess.PIPE,
            cwd=ROOT,
        )
        _, err = await asyncio.wait_for(proc.communicate(), timeout=60)
        assert proc.returncode == 0, err.decode()

    await asyncio.gather(run("a"), run("b"))
    report = await verify_audit_trail(store_url, clock=SYSTEM_CLOCK)
    assert (report.ok, report.checked) == (True, 80), report.reason


async def test_verify_audit_trail_for_the_command_line(database: Database, store_url: str) -> None:
    trail = AuditTrail(database, clock=SteppingClock())
    entries = await _fill(trail, 5)
    report = await verify_audit_trail(store_url, clock=SYSTEM_CLOCK)
    assert report.ok
    assert report.describe() == (
        f"audit trail intact: 5 entries, head is entry 5 with hash {entries[-1].hash}"
    )


async def test_verify_audit_trail_on_a_database_without_a_trail(store_url: str) -> None:
    with pytest.raises(StoreError, match="has no audit trail"):
        await verify_audit_trail(store_url, clock=SYSTEM_CLOCK)


async def test_verify_audit_trail_when_the_store_is_down() -> None:
    with pytest.raises(StoreUnavailable):
        await verify_audit_trail(
            "postgresql://postgres@127.0.0.1:1/bot", connect_timeout_s=1, clock=SYSTEM_CLOCK
        )
