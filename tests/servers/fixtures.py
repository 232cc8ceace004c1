"""Pytest fixtures for the store: a session PostgreSQL server and per-test databases.

`store_url` runs a test once on SQLite and once on PostgreSQL; `database` gives it an opened
and migrated `Database` on that URL. The PostgreSQL variant is skipped (with the reason) when
no server binaries are installed, and fails instead when POLICY_BOT_REQUIRE_POSTGRES=1, as CI
sets it: a green CI run must have exercised PostgreSQL.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bot.clock import SYSTEM_CLOCK
from bot.store import Database, open_database
from tests.servers.postgres import (
    REQUIRE_ENV,
    PostgresNotInstalled,
    PostgresServer,
    check_installed,
    running_postgres,
)


@contextlib.contextmanager
def postgres_or_skip(*, durable: bool = False) -> Iterator[PostgresServer]:
    """A server of its own, or the test skipped (failed under POLICY_BOT_REQUIRE_POSTGRES=1)
    when no binaries are installed; `durable`: see `running_postgres`."""
    try:
        bin_dir = check_installed()
    except PostgresNotInstalled as missing:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{missing} ({REQUIRE_ENV}=1)")
        pytest.skip(str(missing))
    with running_postgres(bin_dir, durable=durable) as server:
        yield server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the whole session (starts in well under a second)."""
    with postgres_or_skip() as server:
        yield server


@pytest.fixture
async def postgres_url(postgres_server: PostgresServer) -> AsyncIterator[str]:
    """An empty database of its own for this test (emptied and recycled afterwards)."""
    url = await postgres_server.lease_database()
    yield url
    await postgres_server.release_database(url)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The store URL of an empty database, once per backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/state.db"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def database(store_url: str) -> AsyncIterator[Database]:
    """An opened, migrated store on each backend; closed after the test."""
    db = await open_database(store_url)
    try:
        await db.migrate(clock=SYSTEM_CLOCK)
        yield db
    finally:
        await db.close()
