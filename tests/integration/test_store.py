"""The store on both backends: URLs, migrations, timeouts, locks and write transactions."""

from __future__ import annotations

import asyncio
import shutil
import socket
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.clock import SYSTEM_CLOCK
from bot.store import (
    Database,
    MigrationFailed,
    SchemaTooNew,
    StoreUnavailable,
    UtcDateTime,
    open_database,
    pending_migrations,
    schema_state,
)
from bot.store.database import driver_url_for
from bot.store.migrations import HISTORY, schema_history
from bot.store.schema import metadata

KNOWN = [r.revision for r in reversed(list(schema_history().walk_revisions()))]
"""Every shipped revision, oldest first."""
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


# --- migrations (the schema history; see also tests/integration/test_schema_history.py) ----------------


async def test_migrations_apply_once_and_rerun_is_a_no_op(store_url: str) -> None:
    async with await open_database(store_url) as db:
        assert (await schema_state(db)).revision is None
        assert await pending_migrations(db) == KNOWN
        assert await db.migrate(clock=SYSTEM_CLOCK) == KNOWN
        assert await db.migrate(clock=SYSTEM_CLOCK) == []
        assert await pending_migrations(db) == []
        assert (await schema_state(db)).revision == KNOWN[-1]
        tables = await _tables(db)
        assert {"alembic_version", "audit_entries"} <= tables
        assert "schema_migrations" not in tables
    async with await open_database(store_url) as again:  # a restart
        assert await again.migrate(clock=SYSTEM_CLOCK) == []


async def test_newer_schema_is_refused(database: Database) -> None:
    async with database.begin() as conn:
        await conn.execute(sa.text("UPDATE alembic_version SET version_num = 'r9999_future'"))
    with pytest.raises(SchemaTooNew, match=r"revision 'r9999_future'.*newer release"):
        await database.migrate(clock=SYSTEM_CLOCK)
    with pytest.raises(SchemaTooNew):
        await pending_migrations(database)
    assert "t990" not in await _tables(database)


def _revision(rev_id: str, down: str, body: str) -> str:
    doc = rev_id.split("_", 1)[1]
    return (
        f'"""{doc}"""\n\n'
        "import sqlalchemy as sa\n"
        "from alembic import op\n\n"
        f"revision = {rev_id!r}\n"
        f"down_revision = {down!r}\n"
        "branch_labels = None\n"
        "depends_on = None\n\n\n"
        "def upgrade() -> None:\n"
        f"    {body}\n"
    )


def _table(name: str) -> str:
    return f'op.create_table("{name}", sa.Column("id", sa.Integer(), primary_key=True))'


def history_with(tmp_path: Path, *revisions: tuple[str, str]) -> Path:
    """The shipped history plus test revisions `(id, upgrade body)`, chained after its head."""
    history = tmp_path / "history"
    shutil.copytree(HISTORY, history, ignore=shutil.ignore_patterns("__pycache__"))
    down = KNOWN[-1]
    for rev_id, body in revisions:
        (history / "versions" / f"{rev_id}.py").write_text(_revision(rev_id, down, body))
        down = rev_id
    return history


async def _tables(db: Database) -> set[str]:
    async with db.connect() as conn:
        return await conn.run_sync(lambda c: set(sa.inspect(c).get_table_names()))


async def test_a_new_revision_is_applied_on_the_next_start(
    database: Database, tmp_path: Path
) -> None:
    history = history_with(tmp_path, ("r0990_t990", _table("t990")))
    assert await pending_migrations(database, history) == ["r0990_t990"]
    assert await database.migrate(clock=SYSTEM_CLOCK, history=history) == ["r0990_t990"]
    assert "t990" in await _tables(database)
    assert (await schema_state(database)).revision == "r0990_t990"
    # The release before it refuses the store now.
    with pytest.raises(SchemaTooNew, match="r0990_t990"):
        await database.migrate(clock=SYSTEM_CLOCK)


async def test_failed_migration_is_rolled_back_and_stops_the_run(
    database: Database, tmp_path: Path
) -> None:
    history = history_with(
        tmp_path,
        ("r0990_t990", _table("t990")),
        ("r0991_breaks", _table("t991") + '; raise RuntimeError("boom")'),
        ("r0992_t992", _table("t992")),
    )
    with pytest.raises(
        MigrationFailed, match=r"revision r0991_breaks \(breaks\) failed and was rolled back: boom"
    ):
        await database.migrate(clock=SYSTEM_CLOCK, history=history)
    # The last complete revision stays; nothing of the failed one or after it.
    assert (await schema_state(database)).revision == "r0990_t990"
    tables = await _tables(database)
    assert "t990" in tables
    assert not {"t991", "t992"} & tables


def test_the_history_must_be_linear(tmp_path: Path) -> None:
    schema_history()
    history = history_with(tmp_path, ("r0990_a", "pass"))
    (history / "versions" / "r0991_b.py").write_text(_revision("r0991_b", KNOWN[-1], "pass"))
    with pytest.raises(ValueError, match="linear"):
        schema_history(history)


async def test_every_table_in_metadata_is_created_by_a_migration(database: Database) -> None:
    # A table declared on the shared metadata but created by no revision fails at run time.
    assert set(metadata.tables) <= await _tables(database)


async def test_two_processes_migrating_at_once_apply_each_version_once(store_url: str) -> None:
    first = await open_database(store_url)
    second = await open_database(store_url)
    try:
        done = await asyncio.gather(
            first.migrate(clock=SYSTEM_CLOCK), second.migrate(clock=SYSTEM_CLOCK)
        )
        assert sorted(done[0] + done[1]) == KNOWN
        assert (await schema_state(first)).revision == KNOWN[-1]
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
