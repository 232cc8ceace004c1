"""The store on both backends: URLs, migrations, timeouts, locks and write transactions."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.clock import SYSTEM_CLOCK
from bot.store import (
    MIGRATIONS,
    Database,
    Migration,
    MigrationFailed,
    SchemaTooNew,
    StoreUnavailable,
    UtcDateTime,
    open_database,
)
from bot.store.database import driver_url_for
from bot.store.migrations import applied_versions, check_registry, pending_migrations
from bot.store.schema import metadata

KNOWN = [m.version for m in MIGRATIONS]
HANG_S = 10.0
"""An upper bound that only a hang exceeds: timing bounds must not depend on the machine."""


# --- URLs --------------------------------------------------------------------------------


def test_sqlite_url_uses_aiosqlite() -> None:
    url, dialect = driver_url_for("sqlite:////var/lib/policy-bot/state.db")
    assert dialect == "sqlite"
    assert url.drivername == "sqlite+aiosqlite"
    assert url.database == "/var/lib/policy-bot/state.db"


@pytest.mark.parametrize("url", ["sqlite:///relative.db", "sqlite://", "sqlite:///:memory:"])
def test_sqlite_url_must_be_an_absolute_path(url: str) -> None:
    with pytest.raises(ValueError, match="absolute path"):
        driver_url_for(url)


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_postgres_url_uses_asyncpg_and_asyncpg_ssl_name(scheme: str) -> None:
    url, dialect = driver_url_for(f"{scheme}://bot:secret@db.example:5433/bot?sslmode=require")
    assert dialect == "postgresql"
    assert url.drivername == "postgresql+asyncpg"
    assert dict(url.query) == {"ssl": "require"}
    assert url.password == "secret"


def test_unknown_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported store URL scheme"):
        driver_url_for("mysql://db/bot")


async def test_display_url_hides_the_password() -> None:
    db = await open_database("postgresql://bot:hunter2@127.0.0.1:1/bot")
    try:
        assert "hunter2" not in db.display_url
        assert "hunter2" not in repr(db)
    finally:
        await db.close()


async def test_sqlite_parent_directory_is_created(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "state.db"
    async with await open_database(f"sqlite:///{path}") as db:
        await db.ping()
    assert path.exists()


async def test_sqlite_connection_settings(tmp_path: Path) -> None:
    db = await open_database(f"sqlite:///{tmp_path}/s.db", timeout_s=3)
    async with db, db.connect() as conn:
        pragmas = {
            name: (await conn.exec_driver_sql(f"PRAGMA {name}")).scalar_one()
            for name in ("journal_mode", "foreign_keys", "busy_timeout")
        }
    assert pragmas == {"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 3000}


# --- migrations --------------------------------------------------------------------------


async def test_migrations_apply_once_and_rerun_is_a_no_op(store_url: str) -> None:
    async with await open_database(store_url) as db:
        assert [m.version for m in await pending_migrations(db)] == KNOWN
        assert await db.migrate(clock=SYSTEM_CLOCK) == KNOWN
        assert await db.migrate(clock=SYSTEM_CLOCK) == []
        assert await pending_migrations(db) == []
        applied = await applied_versions(db)
        assert applied == {m.version: m.name for m in MIGRATIONS}
        async with db.connect() as conn:
            tables = await conn.run_sync(lambda c: set(sa.inspect(c).get_table_names()))
        assert {"schema_migrations", "audit_entries"} <= tables
    async with await open_database(store_url) as again:  # a restart
        assert await again.migrate(clock=SYSTEM_CLOCK) == []


async def test_newer_schema_is_refused(database: Database) -> None:
    async with database.begin() as conn:
        await conn.execute(
            sa.text(
                "INSERT INTO schema_migrations (version, name, applied_at) "
                "VALUES (9999, 'from the future', :at)"
            ).bindparams(sa.bindparam("at", type_=UtcDateTime())),
            {"at": datetime.now(UTC)},
        )
    with pytest.raises(SchemaTooNew, match=r"9999 \(from the future\).*newer release"):
        await database.migrate(clock=SYSTEM_CLOCK)
    with pytest.raises(SchemaTooNew):
        await pending_migrations(database)


def _create(name: str) -> Migration:
    def apply(conn: sa.Connection) -> None:
        conn.exec_driver_sql(f"CREATE TABLE {name} (id INTEGER PRIMARY KEY)")

    return Migration(int(name.removeprefix("t")), f"table {name}", apply)


async def _tables(db: Database) -> set[str]:
    async with db.connect() as conn:
        return await conn.run_sync(lambda c: set(sa.inspect(c).get_table_names()))


def _with(*extra: Migration) -> list[Migration]:
    """The shipped migrations plus test ones (versions above the reserved ranges)."""
    return sorted([*MIGRATIONS, *extra], key=lambda m: m.version)


async def test_versions_are_applied_by_set_not_by_maximum(database: Database) -> None:
    # One release adds 990; the next adds 980 (another feature's range): 980 must still be
    # applied although 990 > 980 is already there.
    assert await database.migrate(_with(_create("t990")), clock=SYSTEM_CLOCK) == [990]
    assert await database.migrate(_with(_create("t980"), _create("t990")), clock=SYSTEM_CLOCK) == [
        980
    ]
    assert {"t980", "t990"} <= await _tables(database)


async def test_failed_migration_is_rolled_back_and_stops_the_run(database: Database) -> None:
    def half_done(conn: sa.Connection) -> None:
        conn.exec_driver_sql("CREATE TABLE t991 (id INTEGER PRIMARY KEY)")
        raise RuntimeError("boom")

    broken = _with(Migration(991, "breaks", half_done), _create("t992"))
    with pytest.raises(MigrationFailed, match=r"migration 991 \(breaks\) .*rolled back: boom"):
        await database.migrate(broken, clock=SYSTEM_CLOCK)
    assert set(await applied_versions(database)) == set(KNOWN)
    assert not {"t991", "t992"} & await _tables(database)


def test_registry_must_be_ascending_and_unique() -> None:
    check_registry(MIGRATIONS)
    with pytest.raises(ValueError, match="ascending"):
        check_registry([_create("t5"), _create("t4")])
    with pytest.raises(ValueError, match="ascending"):
        check_registry([_create("t5"), _create("t5")])


def test_known_migrations_stay_in_reserved_ranges() -> None:
    assert all(1 <= m.version <= 599 for m in MIGRATIONS)
    check_registry(MIGRATIONS)


async def test_every_table_in_metadata_is_created_by_a_migration(database: Database) -> None:
    # A table declared on the shared metadata but created by no migration fails at run time.
    assert set(metadata.tables) <= await _tables(database)


async def test_two_processes_migrating_at_once_apply_each_version_once(store_url: str) -> None:
    first = await open_database(store_url)
    second = await open_database(store_url)
    try:
        done = await asyncio.gather(
            first.migrate(clock=SYSTEM_CLOCK), second.migrate(clock=SYSTEM_CLOCK)
        )
        assert sorted(done[0] + done[1]) == KNOWN
        assert set(await applied_versions(first)) == set(KNOWN)
    finally:
        await first.close()
        await second.close()


async def test_processes_opening_a_fresh_sqlite_store_together_all_get_in(tmp_path: Path) -> None:
    """Switching a new file to WAL needs an exclusive lock that SQLite refuses at once ("database
    is locked", without waiting) to a second connection doing the same; the store waits it
    out like any other lock. 20 rounds of 6 openers fail without that wait (3 in 300 pairs
    were refused when measured), and every round must now succeed."""
    for round_ in range(20):
        url = f"sqlite:///{tmp_path}/round-{round_}.db"
        stores = [await open_database(url) for _ in range(6)]
        try:
            await asyncio.gather(*(s.ping() for s in stores))
            done = await asyncio.gather(*(s.migrate(clock=SYSTEM_CLOCK) for s in stores))
            assert sorted(v for applied in done for v in applied) == KNOWN
        finally:
            await asyncio.gather(*(s.close() for s in stores))


# --- availability ------------------------------------------------------------------------


@pytest.fixture
def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts TCP connections and never answers (a hung server)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


async def test_ping_succeeds(database: Database) -> None:
    await database.ping()


async def test_ping_fails_fast_when_nothing_listens(unused_port: int) -> None:
    db = await open_database(f"postgresql://postgres@127.0.0.1:{unused_port}/bot")
    started = time.monotonic()
    try:
        with pytest.raises(StoreUnavailable, match="unavailable"):
            await db.ping()
    finally:
        await db.close()
    # A refusal, not a timeout (the message says so); the bound only catches a hang, so a
    # loaded machine cannot fail it.
    assert time.monotonic() - started < HANG_S


async def test_ping_gives_up_on_a_hung_server_within_the_timeout(silent_server: int) -> None:
    db = await open_database(
        f"postgresql://postgres@127.0.0.1:{silent_server}/bot", connect_timeout_s=0.5
    )
    started = time.monotonic()
    try:
        with pytest.raises(StoreUnavailable, match=r"within 0.5 s"):
            await db.ping()
    finally:
        await db.close()
    assert 0.4 < time.monotonic() - started < HANG_S  # waited for its timeout, then gave up


async def test_ping_fails_when_the_sqlite_directory_is_gone(tmp_path: Path) -> None:
    path = tmp_path / "gone" / "state.db"
    db = await open_database(f"sqlite:///{path}")
    path.parent.rmdir()
    try:
        with pytest.raises(StoreUnavailable, match="unable to open database file"):
            await db.ping()
    finally:
        await db.close()


async def test_a_missing_table_is_a_bug_not_an_outage(database: Database) -> None:
    with pytest.raises(sa.exc.DBAPIError) as raised:
        async with database.connect() as conn:
            await conn.execute(sa.text("SELECT * FROM no_such_table"))
    assert "no_such_table" in str(raised.value)


async def test_a_query_that_outlives_its_deadline_is_cut_off(store_url: str) -> None:
    async with await open_database(store_url) as db:
        slow = (
            "SELECT pg_sleep(5)"
            if db.dialect == "postgresql"
            # A recursive count that takes seconds in SQLite.
            else "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
            "WHERE x < 50000000) SELECT count(*) FROM c"
        )
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match=r"within 0.3 s"):
            async with db.connect(timeout_s=0.3) as conn:
                await conn.execute(sa.text(slow))
        # "within 0.3 s" above proves the deadline ended it; this only catches a hang.
        assert time.monotonic() - started < HANG_S
        if db.dialect == "postgresql":
            await db.ping()  # the pool recovered from the cancelled connection


async def test_sqlite_writer_waits_at_most_the_busy_timeout(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/s.db"
    holder = await open_database(url)
    other = await open_database(url, timeout_s=0.3)  # another process, short busy timeout
    try:
        await holder.migrate(clock=SYSTEM_CLOCK)
        async with holder.begin():
            started = time.monotonic()
            with pytest.raises(StoreUnavailable, match=r"locked|within 0.3 s"):
                async with other.begin() as conn:
                    await conn.execute(sa.text("SELECT 1"))
            assert time.monotonic() - started < HANG_S
    finally:
        await holder.close()
        await other.close()


async def test_begin_commits_or_rolls_back(database: Database) -> None:
    async with database.begin() as conn:
        await conn.exec_driver_sql("CREATE TABLE scratch (id INTEGER PRIMARY KEY)")
    with pytest.raises(RuntimeError):
        async with database.begin() as conn:
            await conn.exec_driver_sql("INSERT INTO scratch (id) VALUES (1)")
            raise RuntimeError("abort")
    async with database.begin() as conn:
        await conn.exec_driver_sql("INSERT INTO scratch (id) VALUES (2)")
    async with database.connect() as conn:
        ids = (await conn.exec_driver_sql("SELECT id FROM scratch")).scalars().all()
    assert ids == [2]


async def test_timestamps_are_utc_aware_on_both_backends(database: Database) -> None:
    table = sa.Table("stamps", sa.MetaData(), sa.Column("at", UtcDateTime(), nullable=False))
    async with database.begin() as conn:
        await conn.run_sync(table.create)
        local = datetime(2025, 3, 1, 13, 30, 0, 123456, tzinfo=timezone(timedelta(hours=1)))
        await conn.execute(table.insert().values(at=local))
    async with database.connect() as conn:
        stored = (await conn.execute(sa.select(table.c.at))).scalar_one()
    assert stored == local
    assert stored.tzinfo is not None and stored.utcoffset() == timedelta(0)
    with pytest.raises(sa.exc.StatementError, match="timezone-aware"):
        async with database.begin() as conn:
            await conn.execute(table.insert().values(at=datetime(2025, 1, 1)))


# --- advisory locks ----------------------------------------------------------------------


async def test_advisory_lock_is_held_by_one_process_at_a_time(store_url: str) -> None:
    first = await open_database(store_url)
    second = await open_database(store_url)
    try:
        async with first.advisory_lock("job:backup") as held:
            assert held
            async with second.advisory_lock("job:backup") as also:
                # SQLite has a single process by design, so it is always "held".
                assert also is (second.dialect == "sqlite")
            async with second.advisory_lock("job:other") as other:
                assert other
        async with second.advisory_lock("job:backup") as after_release:
            assert after_release
    finally:
        await first.close()
        await second.close()


@pytest.mark.postgres
async def test_advisory_lock_can_wait_for_the_holder(postgres_url: str) -> None:
    first = await open_database(postgres_url)
    second = await open_database(postgres_url)

    holding, release = asyncio.Event(), asyncio.Event()
    order: list[str] = []

    async def hold_until_released() -> None:
        async with first.advisory_lock("job:evidence") as held:
            assert held
            holding.set()
            await release.wait()
            order.append("released")

    try:
        holder = asyncio.create_task(hold_until_released())
        await holding.wait()
        asyncio.get_running_loop().call_later(0.3, release.set)
        async with second.advisory_lock("job:evidence", wait_s=HANG_S) as held:
            assert held
            order.append("acquired")
        assert order == ["released", "acquired"]  # it waited for the holder, then got it
        await holder
    finally:
        await first.close()
        await second.close()


@pytest.mark.postgres
async def test_advisory_lock_dies_with_its_holder(postgres_url: str) -> None:
    first = await open_database(postgres_url)
    second = await open_database(postgres_url)
    try:
        async with first.advisory_lock("job:x") as held:
            assert held
            # The replica holding the lock crashes: the server ends its sessions.
            async with second.begin() as conn:
                await conn.execute(
                    sa.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                )
            async with second.advisory_lock("job:x", wait_s=2) as taken_over:
                assert taken_over
        # Releasing on the dead session failed quietly; the lock is free for the next run.
        async with first.advisory_lock("job:x") as again:
            assert again
    finally:
        await first.close()
        await second.close()
