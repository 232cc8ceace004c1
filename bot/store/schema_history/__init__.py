"""The store's schema history: Alembic revisions, applied by `bot.store.migrations`.

There is no `alembic.ini` and no `env.py`: `bot.store.migrations` finds this directory with
`ScriptDirectory` and runs each revision itself, one transaction per revision, under the
migration lock. `versions/` holds one module per revision, in one linear history.

Writing a revision:

- Create it with Alembic's generator and give it a readable id that sorts after the last one:

      .venv/bin/python -c "from alembic import command; from bot.store.migrations import \
      alembic_config; command.revision(alembic_config(), 'add x to y', rev_id='r0002_x')"

  then write `upgrade()` by hand with `op` (there is no autogenerate against a live database;
  `tests/integration/test_schema_history.py` compares a fresh store with the tables' live
  definitions, so a table changed in code without a revision fails there).
- Frozen DDL only: spell out the columns, types, constraint and index names. Import nothing
  from `bot`: a revision must create the same thing forever, whatever the code becomes.
- Change the table's live definition (`bot/<feature>/tables.py`, ...) in the same commit.
- SQLite cannot ALTER most things: use `with op.batch_alter_table("t") as batch:`, which
  copies the table. The copy loses triggers, so a revision that batch-alters
  `audit_entries` must recreate its append-only triggers (see the baseline).
- Branch on `op.get_bind().dialect.name` for SQLite/PostgreSQL differences.
- A revision that records a time uses the injected clock: `op.get_context().opts["clock"]`.
- Never edit a revision that has shipped; add another. Downgrades are not supported: a failed
  upgrade rolls back by itself, and going back a release means restoring a backup.
"""
