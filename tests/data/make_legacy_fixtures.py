"""Regenerate tests/data/legacy_store/ from a checkout of the release before the schema history.

    git worktree add /tmp/oldmain a2f6707
    .venv/bin/python -m tests.data.make_legacy_fixtures /tmp/oldmain
    git worktree remove /tmp/oldmain

Runs `make_legacy_store.py` with the old checkout's code (first on the import path) twice:
against a new SQLite file, copied to `legacy_store/state.db`, and against a database on a
throw-away PostgreSQL server (tests/servers/postgres.py), dumped with `pg_dump --inserts`
to `legacy_store/postgres.sql` (psql meta-commands removed, so asyncpg can run it).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

from sqlalchemy.engine import make_url

from tests.servers.postgres import find_bin_dir, running_postgres

HERE = Path(__file__).parent
SCRIPT = HERE / "make_legacy_store.py"
OUT = HERE / "legacy_store"


def run_old(old: Path, url: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(old)}
    subprocess.run([sys.executable, str(SCRIPT), url], cwd=old, env=env, check=True)


def main(old: Path) -> None:
    OUT.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "state.db"
        run_old(old, f"sqlite:///{path}")
        with sqlite3.connect(path) as conn:  # one self-contained file, no -wal beside it
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.execute("PRAGMA journal_mode = DELETE")
        shutil.copyfile(path, OUT / "state.db")

    bin_dir = find_bin_dir()
    with running_postgres(bin_dir) as server:
        url = asyncio.run(server.create_database("legacy"))
        run_old(old, url)
        parsed = make_url(url)
        dump = subprocess.run(
            [
                str(bin_dir / "pg_dump"),
                "--inserts",
                "--no-owner",
                "--no-privileges",
                "--no-comments",
                f"--host={parsed.host}",
                f"--port={parsed.port}",
                f"--username={parsed.username}",
                parsed.database or "",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    lines = [line for line in dump.splitlines() if not line.startswith("\\")]
    (OUT / "postgres.sql").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
