"""The connection to the state store: SQLite for one replica, PostgreSQL for several.

`open_database` turns the configured URL (`sqlite:////abs/path.db` or `postgresql://...`)
into a SQLAlchemy `AsyncEngine` on an asyncio driver (aiosqlite, asyncpg), so no query ever
blocks the event loop. `Database` adds what every feature of the bot needs on top:

- bounded waits: every block run through `connect()`/`begin()` has a deadline, PostgreSQL
  sessions carry `statement_timeout` and `idle_in_transaction_session_timeout`, and SQLite
  waits for a writer for at most `busy_timeout`;
- one error for "the store is not there": driver connection errors, pool exhaustion and
  deadlines become `StoreUnavailable`, which the HTTP edge answers with 503;
- write transactions that cannot interleave on SQLite (`BEGIN IMMEDIATE`, and one writer
  at a time inside the process, so no busy-waiting between our own coroutines);
- named advisory locks, so with several replicas on PostgreSQL a scheduled job runs once.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from bot.clock import Clock
from bot.store.errors import InvalidStoreUrl, StoreUnavailable
from bot.store.migrations import HISTORY, apply_migrations

log = logging.getLogger(__name__)

Dialect = Literal["sqlite", "postgresql"]

DEFAULT_CONNECT_TIMEOUT_S: Final = 5.0
DEFAULT_TIMEOUT_S: Final = 10.0
_IMMEDIATE: Final = "policy_bot_begin_immediate"
_LOCK_POLL_S: Final = 0.2
_WAL_RETRY_S: Final = 0.01


class UtcDateTime(sa.TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on both backends.

    PostgreSQL stores `timestamptz`; SQLite has no timestamp type, so the value is stored
    as naive UTC text of fixed width (which also sorts correctly) and read back as UTC.
    Naive datetimes are refused on the way in: their meaning depends on the host's zone.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamps written to the store must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def advisory_key(name: str) -> int:
    """A stable signed 64-bit PostgreSQL advisory-lock key for a lock name."""
    digest = hashlib.sha256(f"policy-bot:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class Database:
    """An open store. Create it with `open_database`; close it with `close()`.

    Use `begin()` for anything that writes (one transaction, committed on success) and
    `connect()` for reads. Both are bounded by `timeout_s` and raise `StoreUnavailable` when
    the database cannot be reached. Do not nest `begin()` blocks: on SQLite the second
    would wait for the first.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        dialect: Dialect,
        display_url: str,
        connect_timeout_s: float,
        timeout_s: float,
    ) -> None:
        self.engine = engine
        self.dialect: Dialect = dialect
        self.display_url = display_url
        self.connect_timeout_s = connect_timeout_s
        self.timeout_s = timeout_s
        # SQLite has one writer at a time; queueing our own writers here is cheaper and
        # fairer than letting them spin on SQLITE_BUSY inside `busy_timeout`.
        self._sqlite_writer = asyncio.Lock()

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"Database({self.display_url!r})"

    @asynccontextmanager
    async def connect(self, *, timeout_s: float | None = None) -> AsyncIterator[AsyncConnection]:
        """A pooled connection for reads, returned to the pool (rolled back) on exit."""
        async with (
            self.guard(timeout_s) as deadline,
            self.engine.connect() as conn,
            self._interrupt_at(deadline, conn),
        ):
            yield conn

    @asynccontextmanager
    async def begin(self, *, timeout_s: float | None = None) -> AsyncIterator[AsyncConnection]:
        """A write transaction: committed when the block ends, rolled back if it raises.

        On SQLite it starts with `BEGIN IMMEDIATE`, taking the write lock up front, so a
        transaction that reads and then writes cannot fail half-way because another
        process wrote in between; across processes the wait is bounded by `busy_timeout`.
        """
        writer = self._sqlite_writer if self.dialect == "sqlite" else nullcontext()
        async with self.guard(timeout_s) as deadline, writer, self.engine.connect() as conn:
            if self.dialect == "sqlite":
                conn = await conn.execution_options(**{_IMMEDIATE: True})
            async with self._interrupt_at(deadline, conn), conn.begin():
                yield conn

    @asynccontextmanager
    async def _interrupt_at(self, deadline: float, conn: AsyncConnection) -> AsyncIterator[None]:
        """Stop a running SQLite statement when the block's deadline passes.

        aiosqlite runs each connection on its own thread: cancelling the coroutine does not
        stop the statement, and SQLAlchemy's clean-up of the cancelled connection would
        wait for it to finish, far past the deadline. `sqlite3_interrupt`, which is safe to
        call from another thread, ends it at once. asyncpg cancels server-side by itself.
        """
        if self.dialect != "sqlite":
            yield
            return
        driver = (await conn.get_raw_connection()).driver_connection
        sqlite_conn = getattr(driver, "_conn", None)  # aiosqlite's sqlite3.Connection
        if sqlite_conn is None:
            yield
            return
        loop = asyncio.get_running_loop()
        handle = loop.call_at(deadline, sqlite_conn.interrupt)
        try:
            yield
        finally:
            handle.cancel()

    @asynccontextmanager
    async def guard(self, timeout_s: float | None = None) -> AsyncIterator[float]:
        """Bound a block of database calls by a deadline and translate connection errors.

        Yields the deadline (event-loop time). Exposed for code that drives the engine
        directly (locks); ordinary callers get it through `connect()` and `begin()`.
        """
        limit = self.timeout_s if timeout_s is None else timeout_s
        deadline = asyncio.get_running_loop().time() + limit
        try:
            async with asyncio.timeout_at(deadline):
                yield deadline
        except TimeoutError as err:
            raise StoreUnavailable(
                f"the store at {self.display_url} did not answer within {limit:g} s"
            ) from err
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as err:
            if self._is_programming_error(err):
                raise
            raise StoreUnavailable(
                f"the store at {self.display_url} is unavailable: {_first_line(err.orig)}"
            ) from err
        except sa.exc.DBAPIError as err:
            if not err.connection_invalidated:
                raise
            raise StoreUnavailable(
                f"the connection to {self.display_url} was lost: {_first_line(err.orig)}"
            ) from err
        except sa.exc.TimeoutError as err:
            raise StoreUnavailable(
                f"no free connection to {self.display_url} within the pool timeout"
            ) from err
        except OSError as err:
            raise StoreUnavailable(
                f"the store at {self.display_url} is unavailable: {err.strerror or err}"
            ) from err

    def _is_programming_error(self, err: sa.exc.DBAPIError) -> bool:
        # sqlite3 reports a missing table or column as OperationalError; that is a bug or
        # a database that was never migrated, not an outage, so it must not read as 503.
        return self.dialect == "sqlite" and str(err.orig).startswith(("no such", "table "))

    async def ping(self) -> None:
        """Prove the store answers a query; raises `StoreUnavailable` within the timeout."""
        async with self.connect(timeout_s=self.connect_timeout_s) as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def close(self) -> None:
        """Close every pooled connection; bounded, because shutdown must not hang."""
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                await self.engine.dispose()
        except TimeoutError:
            log.warning("closing the store's connections timed out", extra={"store": self})

    async def migrate(self, *, clock: Clock, history: Path = HISTORY) -> list[str]:
        """Bring the schema to the head of its history (see `bot.store.migrations`).

        Returns the revisions applied. Raises `SchemaTooNew` for a store migrated by a newer
        release, `MigrationFailed` when a revision fails (rolled back; earlier ones stay).
        `history` is another revision directory, for tests.
        """
        return await apply_migrations(self, clock=clock, history=history)

    def advisory_lock(self, name: str, *, wait_s: float = 0.0) -> AbstractAsyncContextManager[bool]:
        """Hold a named lock shared by every process using this database; yields whether held.

        On PostgreSQL this is a session advisory lock on a connection kept for the block,
        tried (`pg_try_advisory_lock`) until `wait_s` has passed; the server drops it by
        itself if the process dies. On SQLite there is only one process, so it is always
        held. The block's own duration is not bounded here: a job may run for minutes.
        """
        if self.dialect == "sqlite":
            return _always_held()
        return self._pg_advisory_lock(name, wait_s=wait_s)

    @asynccontextmanager
    async def _pg_advisory_lock(self, name: str, *, wait_s: float) -> AsyncIterator[bool]:
        key = advisory_key(name)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        async with self.guard(self.connect_timeout_s):
            conn = await self.engine.connect()
        acquired = False
        try:
            while True:
                async with self.guard():
                    result = await conn.execute(
                        sa.select(sa.func.pg_try_advisory_lock(key)),
                    )
                    acquired = bool(result.scalar_one())
                    # End the implicit transaction: the lock is session-level, and an idle
                    # session must not count as "idle in transaction" while the job runs.
                    await conn.commit()
                if acquired or loop.time() >= deadline:
                    break
                await asyncio.sleep(min(_LOCK_POLL_S, max(0.0, deadline - loop.time())))
            yield acquired
        finally:
            await self._pg_release(conn, key, name, held=acquired)

    async def _pg_release(self, conn: AsyncConnection, key: int, name: str, *, held: bool) -> None:
        try:
            if held:
                async with self.guard():
                    await conn.execute(sa.select(sa.func.pg_advisory_unlock(key)))
                    await conn.commit()
            await conn.close()
        except (StoreUnavailable, sa.exc.SQLAlchemyError):
            # Ending the session releases the lock on the server; make sure it ends.
            log.warning("releasing an advisory lock failed", extra={"lock": name}, exc_info=True)
            await conn.invalidate()
            await conn.close()


@asynccontextmanager
async def _always_held() -> AsyncIterator[bool]:
    yield True


async def open_database(
    url: str,
    *,
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    pool_size: int = 5,
    max_overflow: int = 10,
) -> Database:
    """Build the engine for `url`; does not connect yet (call `ping()` for that).

    `connect_timeout_s` bounds opening a connection and waiting for a pooled one;
    `timeout_s` bounds each block of statements and, on PostgreSQL, each statement on the
    server (`statement_timeout`). For SQLite the parent directory is created.
    """
    driver_url, dialect = driver_url_for(url)
    display = driver_url.render_as_string(hide_password=True)
    if dialect == "sqlite":
        path = Path(driver_url.database or "")
        try:
            await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        except OSError as err:
            raise StoreUnavailable(
                f"cannot create the directory of {path}: {err.strerror or err}"
            ) from err
        engine = create_async_engine(
            driver_url,
            connect_args={"timeout": timeout_s},
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_timeout=connect_timeout_s,
        )
        _configure_sqlite(engine, busy_timeout_s=timeout_s)
    else:
        engine = create_async_engine(
            driver_url,
            connect_args=_postgres_connect_args(
                connect_timeout_s=connect_timeout_s, timeout_s=timeout_s
            ),
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_timeout=connect_timeout_s,
            pool_pre_ping=True,
            pool_recycle=1800,
        )
    return Database(
        engine,
        dialect=dialect,
        display_url=display,
        connect_timeout_s=connect_timeout_s,
        timeout_s=timeout_s,
    )


def driver_url_for(url: str) -> tuple[URL, Dialect]:
    """Map the configured URL onto the asyncio driver SQLAlchemy should use.

    `sqlite:////abs/path.db` becomes `sqlite+aiosqlite:////abs/path.db` (the path must be
    absolute, so the database does not move with the working directory);
    `postgresql://` or `postgres://` becomes `postgresql+asyncpg://`, with libpq's
    `sslmode` renamed to asyncpg's `ssl`.
    """
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError as err:
        raise InvalidStoreUrl(f"not a database URL: {err}") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database or ""
        if not database or database == ":memory:" or not Path(database).is_absolute():
            raise InvalidStoreUrl("a SQLite store needs an absolute path: sqlite:////abs/path.db")
        return parsed.set(drivername="sqlite+aiosqlite"), "sqlite"
    if backend in ("postgresql", "postgres"):
        query = dict(parsed.query)
        if "sslmode" in query:
            query["ssl"] = query.pop("sslmode")
        return parsed.set(drivername="postgresql+asyncpg", query=query), "postgresql"
    raise InvalidStoreUrl(
        f"unsupported store URL scheme {parsed.drivername!r}: use sqlite or postgresql"
    )


def _postgres_connect_args(*, connect_timeout_s: float, timeout_s: float) -> dict[str, Any]:
    ms = str(int(timeout_s * 1000))
    return {
        "timeout": connect_timeout_s,
        "server_settings": {
            "application_name": "policy-bot",
            "statement_timeout": ms,
            # A transaction left open by a stuck coroutine must not hold locks forever.
            "idle_in_transaction_session_timeout": str(int(max(timeout_s * 3, 30.0) * 1000)),
        },
    }


def _configure_sqlite(engine: AsyncEngine, *, busy_timeout_s: float) -> None:
    """WAL, a busy timeout and foreign keys on every connection; BEGIN under our control.

    Python 3.11's sqlite3 starts transactions lazily and not for DDL or SELECT; taking over
    BEGIN (SQLAlchemy's documented recipe) makes transactions real, including DDL in
    migrations, and lets `Database.begin()` ask for `BEGIN IMMEDIATE`.
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            _enter_wal(cursor, busy_timeout_s)
            cursor.execute("PRAGMA synchronous = FULL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        immediate = conn.get_execution_options().get(_IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _enter_wal(cursor: Any, wait_s: float) -> None:
    """Switch the database to WAL, waiting out another connection doing the same.

    The switch needs an exclusive lock, and SQLite answers "database is locked" at once,
    without its busy handler, when two connections open a fresh database together (the bot
    starting while `python -m bot migrate` or a CLI backup opens the same file). Retrying
    within the busy timeout makes the switch as patient as every other statement. This runs
    on the driver's own thread, so the short sleeps do not block the event loop.
    """
    deadline = time.monotonic() + wait_s
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or time.monotonic() >= deadline:
                raise
            time.sleep(_WAL_RETRY_S)


def _first_line(error: object) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
