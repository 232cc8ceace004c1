"""The schema history against real stores: stores made by the release before it, the live
table definitions, concurrent starts and `python -m bot migrate`.

The legacy stores in tests/data/legacy_store/ were made by that release's own code (see the
README there); each holds a row in every table, which today's feature stores must read.
"""

from __future__ import annotations

import ast
import asyncio
import shutil
import sqlite3
import sys
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped, unused-ignore]
import pytest
import sqlalchemy as sa
import yaml
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import make_url

import bot.alerts.tables
import bot.backup.tables
import bot.digest.tables
import bot.exceptions.tables
import bot.notices.tables
import bot.promotion.records
import bot.store.scheduled_runs  # noqa: F401  (every table on the shared metadata)
from bot.alerts.outbox import Outbox
from bot.backup.catalog import Catalog
from bot.clock import SYSTEM_CLOCK
from bot.exceptions.model import RequestId, State
from bot.exceptions.store import RequestStore
from bot.notices.outbox import NoticeOutbox
from bot.promotion.records import PromotionStore, promotion_plans
from bot.store import (
    AuditTrail,
    Database,
    SchemaTooNew,
    open_database,
    pending_migrations,
    schema_state,
    verify_audit_trail,
)
from bot.store.migrations import BASELINE, HISTORY, schema_history
from bot.store.scheduled_runs import scheduled_runs
from bot.store.schema import metadata
from tests.servers.postgres import PostgresServer

LEGACY = Path(__file__).parents[1] / "data" / "legacy_store"
KNOWN = [r.revision for r in reversed(list(schema_history().walk_revisions()))]
HEAD = KNOWN[-1]
ROOT = Path(__file__).parents[2]
ROWS = {
    "alert_messages": 1,
    "alert_notifications": 1,
    "audit_entries": 3,
    "backup_environments": 1,
    "backups": 1,
    "evidence_packs": 1,
    "exception_reminders": 1,
    "exception_requests": 1,
    "exception_review_items": 1,
    "exception_reviews": 1,
    "notices": 1,
    "promotion_plans": 1,
    "promotion_records": 1,
    "restore_plans": 1,
    "scheduled_runs": 1,
}
"""What make_legacy_store.py wrote: at least one row in every table."""
MIGRATED = {**ROWS, "digest_figures": 0}
"""The same store after the revisions since: tables they create start empty."""


# --- helpers -------------------------------------------------------------------------------


def legacy_sqlite(tmp_path: Path) -> str:
    path = tmp_path / "legacy.db"
    shutil.copyfile(LEGACY / "state.db", path)
    return f"sqlite:///{path}"


async def legacy_postgres(url: str) -> str:
    """Load the legacy dump into the (empty) database at `url`."""
    parsed = make_url(url)
    conn = await asyncpg.connect(
        host=parsed.host, port=parsed.port, user=parsed.username, database=parsed.database
    )
    try:
        await conn.execute((LEGACY / "postgres.sql").read_text())
    finally:
        await conn.close()
    return url


async def legacy_store(store_url: str, tmp_path: Path) -> str:
    if store_url.startswith("sqlite"):
        return legacy_sqlite(tmp_path)
    return await legacy_postgres(store_url)


def _describe(conn: sa.Connection) -> dict[str, Any]:
    """Tables, columns, keys, indexes and triggers, as SQLAlchemy and the catalog see them."""
    inspector = sa.inspect(conn)
    schema: dict[str, Any] = {}
    for table in sorted(inspector.get_table_names()):
        schema[table] = {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"], str(c.get("default")))
                for c in inspector.get_columns(table)
            ],
            "pk": inspector.get_pk_constraint(table),
            "unique": sorted(
                (u["name"] or "", tuple(u["column_names"]))
                for u in inspector.get_unique_constraints(table)
            ),
            "indexes": sorted(
                (i["name"] or "", tuple(i["column_names"]), bool(i["unique"]))
                for i in inspector.get_indexes(table)
            ),
        }
    if conn.dialect.name == "sqlite":
        triggers = conn.exec_driver_sql(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' ORDER BY name"
        )
    else:
        triggers = conn.exec_driver_sql(
            "SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger "
            "WHERE NOT tgisinternal ORDER BY tgname"
        )
    schema["triggers"] = [tuple(row) for row in triggers]
    return schema


async def another_store(store_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """An empty store on the same backend as `store_url`, for a fresh schema to compare with."""
    if store_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path}/fresh.db"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return await server.create_database()  # gone with the session's server


async def describe(db: Database) -> dict[str, Any]:
    async with db.connect() as conn:
        return await conn.run_sync(_describe)


async def counts(db: Database) -> dict[str, int]:
    async with db.connect() as conn:
        tables = await conn.run_sync(lambda c: sa.inspect(c).get_table_names())
        return {
            table: int((await conn.execute(sa.text(f"SELECT count(*) FROM {table}"))).scalar_one())
            for table in tables
            if table != "alembic_version"
        }


async def fresh_schema(url: str) -> dict[str, Any]:
    async with await open_database(url) as db:
        await db.migrate(clock=SYSTEM_CLOCK)
        return await describe(db)


async def assert_every_row_reads_back(db: Database, url: str) -> None:
    """Each feature's own store finds what the release before the history wrote."""
    report = await verify_audit_trail(url, clock=SYSTEM_CLOCK)
    assert report.ok, report.describe()
    head = await AuditTrail(db, clock=SYSTEM_CLOCK).head()
    assert head is not None and head.id == 3

    group = await Outbox(db, clock=SYSTEM_CLOCK).get(1)
    assert group is not None
    assert group.channel == "C0ALERTS"
    assert list(group.alerts) == ["0123456789abcdef"]

    requests = RequestStore(db)
    request = await requests.get(RequestId("R-1a2b3c4d"))
    assert request is not None
    assert request.state is State.PENDING
    assert request.scope.namespaces == ("payments",)
    review = await requests.review(1)
    assert review is not None

    catalog = Catalog(db)
    backup = await catalog.get("20261201T090000Z-legacy")
    assert backup is not None
    assert await catalog.latest_good("dev") == "20261201T090000Z-legacy"
    plan = await catalog.plan("RP-legacy")
    assert plan is not None and plan.state == "pending"
    assert await catalog.published_heads() == {3: head.hash}

    promotion = PromotionStore(db)
    async with db.connect() as conn:
        plan_id = (await conn.execute(sa.select(promotion_plans.c.id))).scalar_one()
        run = (await conn.execute(sa.select(scheduled_runs))).one()
    assert (await promotion.plan(plan_id)) is not None
    records = await promotion.latest_records(kind="ClusterPolicy", policy="require-labels")
    assert set(records) == {"dev"}
    assert run.job == "backup" and run.outcome == "ok"

    assert await NoticeOutbox(db, clock=SYSTEM_CLOCK).states() == {"pending": 1}


# --- upgrading a store made before the history -----------------------------------------------


async def test_a_legacy_store_is_stamped_and_keeps_every_row(
    store_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = await legacy_store(store_url, tmp_path)
    async with await open_database(url) as db:
        state = await schema_state(db)
        assert state.revision is None
        assert state.legacy_versions == (1, 2, 3, 100, 200, 300, 301, 302, 400, 401, 500)
        # Complete: stamped at the baseline without running it, then the rest of the history.
        after_baseline = KNOWN[KNOWN.index(BASELINE) + 1 :]
        assert await pending_migrations(db) == after_baseline

        assert await db.migrate(clock=SYSTEM_CLOCK) == after_baseline
        assert (await schema_state(db)).revision == HEAD
        assert await counts(db) == MIGRATED  # schema_migrations is gone, nothing else
        await assert_every_row_reads_back(db, url)
        upgraded = await describe(db)

        # Still writable, the chain continues, and the append-only guard survived.
        await AuditTrail(db, clock=SYSTEM_CLOCK).append(
            actor="U0NEW", action="after.upgrade", outcome="ok"
        )
        assert (await verify_audit_trail(url, clock=SYSTEM_CLOCK)).ok
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            async with db.begin() as conn:
                await conn.execute(sa.text("UPDATE audit_entries SET actor = 'x'"))

    assert upgraded == await fresh_schema(await another_store(store_url, tmp_path, request))


async def test_a_legacy_store_missing_versions_gets_them_first(tmp_path: Path) -> None:
    url = legacy_sqlite(tmp_path)
    path = make_url(url).database or ""
    with sqlite3.connect(path) as conn:  # a store from before the notice outbox existed
        conn.execute("DROP TABLE notices")
        conn.execute("DELETE FROM schema_migrations WHERE version = 500")
    async with await open_database(url) as db:
        assert await pending_migrations(db) == KNOWN
        assert await db.migrate(clock=SYSTEM_CLOCK) == KNOWN
        assert (await schema_state(db)).revision == HEAD
        assert await counts(db) == {**MIGRATED, "notices": 0}
        upgraded = await describe(db)
    assert upgraded == await fresh_schema(f"sqlite:///{tmp_path}/fresh.db")


async def test_a_legacy_store_from_a_newer_release_is_refused_untouched(tmp_path: Path) -> None:
    url = legacy_sqlite(tmp_path)
    path = make_url(url).database or ""
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO schema_migrations VALUES (9999, 'from the future', '2026-12-01 00:00:00')"
        )
    async with await open_database(url) as db:
        with pytest.raises(SchemaTooNew, match=r"9999 \(from the future\).*newer release"):
            await db.migrate(clock=SYSTEM_CLOCK)
        state = await schema_state(db)
    assert state.revision is None and 9999 in state.legacy_versions


async def test_replicas_starting_together_on_a_legacy_store_stamp_it_once(
    store_url: str, tmp_path: Path
) -> None:
    url = await legacy_store(store_url, tmp_path)
    stores = [await open_database(url) for _ in range(4)]
    try:
        done = await asyncio.gather(*(s.migrate(clock=SYSTEM_CLOCK) for s in stores))
        assert sorted(r for applied in done for r in applied) == KNOWN[1:]
        assert (await schema_state(stores[0])).revision == HEAD
        assert await counts(stores[0]) == MIGRATED
    finally:
        await asyncio.gather(*(s.close() for s in stores))


# --- the history itself --------------------------------------------------------------------


async def test_a_fresh_store_matches_the_live_table_definitions(store_url: str) -> None:
    """A table changed in code without a revision (or a revision without the code) fails."""
    async with await open_database(store_url) as db:
        await db.migrate(clock=SYSTEM_CLOCK)
        async with db.connect() as conn:
            diff = await conn.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c), metadata)
            )
    assert diff == []


def test_revisions_import_nothing_from_the_bot() -> None:
    """Frozen DDL: a revision must create the same thing whatever the code becomes."""
    for path in sorted((HISTORY / "versions").glob("r*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not [n for n in names if n.split(".")[0] in ("bot", "handlers")], path.name


# --- python -m bot migrate -----------------------------------------------------------------


async def run_migrate(tmp_path: Path, url: str) -> tuple[int, str, str]:
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "store": {"url": url},
                "slack": {"mode": "http"},
                "environments": [{"name": "dev", "kubeconfig": "/nonexistent"}],
            }
        )
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "migrate",
        "--config",
        str(config),
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, out.decode(), err.decode()


async def test_migrate_command_reports_the_revision_before_and_after(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    code, out, err = await run_migrate(tmp_path, url)
    assert code == 0, err
    assert out.splitlines() == [
        "schema before: empty (never migrated)",
        f"applied: {', '.join(KNOWN)}",
        f"schema after: {HEAD}",
    ]
    code, out, err = await run_migrate(tmp_path, url)
    assert code == 0, err
    assert "applied: nothing (up to date)" in out

    legacy = legacy_sqlite(tmp_path)
    code, out, err = await run_migrate(tmp_path, legacy)
    assert code == 0, err
    assert out.splitlines()[0].startswith("schema before: numbered migrations 1, 2, 3, 100")
    assert out.splitlines()[-1] == f"schema after: {HEAD}"

    async with await open_database(url) as db, db.begin() as conn:
        await conn.execute(sa.text("UPDATE alembic_version SET version_num = 'r9999_future'"))
    code, out, err = await run_migrate(tmp_path, url)
    assert code == 1
    assert "r9999_future" in err and "newer release" in err
